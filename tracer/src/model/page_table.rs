//! Virtual page → physical frame for one process, stored in chunks of 16 consecutive pages so
//! that dense memory (the usual case: heaps, arenas, mapped regions) costs about 9 bytes per
//! page, against 16+ for a plain hash map entry.

use std::collections::HashMap;

pub type Pfn = u64;
/// Virtual page number (address / page size).
pub type Vpn = u64;

const CHUNK_SHIFT: u32 = 4;
const CHUNK_PAGES: u64 = 1 << CHUNK_SHIFT;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Chunk {
    /// Bit i set: page i of the chunk is present.
    present: u16,
    frames: [Pfn; CHUNK_PAGES as usize],
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageTable {
    chunks: HashMap<u64, Chunk>,
    len: u64,
}

impl PageTable {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, vpn: Vpn) -> Option<Pfn> {
        let chunk = self.chunks.get(&(vpn >> CHUNK_SHIFT))?;
        let bit = 1u16 << (vpn % CHUNK_PAGES);
        (chunk.present & bit != 0).then(|| chunk.frames[(vpn % CHUNK_PAGES) as usize])
    }

    /// Maps `vpn` to `pfn`; returns the frame it mapped before.
    pub fn set(&mut self, vpn: Vpn, pfn: Pfn) -> Option<Pfn> {
        let chunk = self.chunks.entry(vpn >> CHUNK_SHIFT).or_insert(Chunk {
            present: 0,
            frames: [0; CHUNK_PAGES as usize],
        });
        let index = (vpn % CHUNK_PAGES) as usize;
        let bit = 1u16 << index;
        let previous = (chunk.present & bit != 0).then(|| chunk.frames[index]);
        if previous.is_none() {
            self.len += 1;
        }
        chunk.present |= bit;
        chunk.frames[index] = pfn;
        previous
    }

    pub fn remove(&mut self, vpn: Vpn) -> Option<Pfn> {
        let key = vpn >> CHUNK_SHIFT;
        let chunk = self.chunks.get_mut(&key)?;
        let index = (vpn % CHUNK_PAGES) as usize;
        let bit = 1u16 << index;
        if chunk.present & bit == 0 {
            return None;
        }
        chunk.present &= !bit;
        self.len -= 1;
        let pfn = chunk.frames[index];
        if chunk.present == 0 {
            self.chunks.remove(&key);
        }
        Some(pfn)
    }

    /// Removes [start, end) and returns the pages removed, in order.
    pub fn remove_range(&mut self, start: Vpn, end: Vpn) -> Vec<(Vpn, Pfn)> {
        let mut removed = Vec::new();
        if end <= start {
            return removed;
        }
        // Walk chunks, not pages: a huge unmapped range costs only its present chunks.
        let mut keys: Vec<u64> = self
            .chunks
            .keys()
            .copied()
            .filter(|&key| key >= start >> CHUNK_SHIFT && key <= (end - 1) >> CHUNK_SHIFT)
            .collect();
        keys.sort_unstable();
        for key in keys {
            for index in 0..CHUNK_PAGES {
                let vpn = (key << CHUNK_SHIFT) + index;
                if (start..end).contains(&vpn)
                    && let Some(pfn) = self.remove(vpn)
                {
                    removed.push((vpn, pfn));
                }
            }
        }
        removed
    }

    /// Moves the pages of [start, start + pages) to begin at `to` (mremap).
    pub fn move_range(&mut self, start: Vpn, pages: u64, to: Vpn) {
        for (vpn, pfn) in self.remove_range(start, start + pages) {
            self.set(to + (vpn - start), pfn);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (Vpn, Pfn)> + '_ {
        self.chunks.iter().flat_map(|(&key, chunk)| {
            (0..CHUNK_PAGES)
                .filter(move |index| chunk.present & (1 << index) != 0)
                .map(move |index| ((key << CHUNK_SHIFT) + index, chunk.frames[index as usize]))
        })
    }

    /// Bytes of heap this table holds per present page (hash map slots included), for the
    /// memory figure of the benchmark.
    pub fn bytes_per_page(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let slot = std::mem::size_of::<(u64, Chunk)>() + 1; // + hashbrown's control byte
        (self.chunks.capacity() * slot) as f64 / self.len as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_remove_keep_the_count() {
        let mut table = PageTable::default();
        assert_eq!(table.set(5, 100), None);
        assert_eq!(table.set(5, 101), Some(100));
        assert_eq!(table.set(21, 7), None);
        assert_eq!(
            (table.len(), table.get(5), table.get(6)),
            (2, Some(101), None)
        );
        assert_eq!(table.remove(5), Some(101));
        assert_eq!(table.remove(5), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn ranges_cross_chunk_boundaries() {
        let mut table = PageTable::default();
        for vpn in 0..53 {
            table.set(1000 + vpn, 5000 + vpn);
        }
        let removed = table.remove_range(1010, 1041);
        assert_eq!(removed.len(), 31);
        assert_eq!(removed.first(), Some(&(1010, 5010)));
        assert_eq!(table.len(), 22);
        table.move_range(1041, 12, 9000);
        assert_eq!(table.get(9000), Some(5041));
        assert_eq!(table.get(1041), None);
        assert_eq!(table.len(), 22);
        let mut all: Vec<_> = table.iter().collect();
        all.sort();
        assert_eq!(all.len(), 22);
        assert_eq!(all[0], (1000, 5000));
    }

    #[test]
    fn dense_pages_cost_well_under_16_bytes() {
        let mut table = PageTable::default();
        for vpn in 0..100_003 {
            table.set(vpn, vpn * 3);
        }
        assert!(
            table.bytes_per_page() <= 16.0,
            "{} bytes per page",
            table.bytes_per_page()
        );
    }
}
