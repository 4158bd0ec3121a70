//! What a read of a file (or shmem) page does when its page cache contents are known, following
//! `do_fault_around` (mm/memory.c) and `filemap_map_pages` (mm/filemap.c):
//!
//! - a read of a page already mapped takes no fault;
//! - otherwise fault-around computes a window of `fault_around_bytes` (16 pages by default),
//!   aligned in the *virtual* address space, clipped to the mapping, to the page table (512
//!   pages) and to the end of the file, and maps every page in it that is cached and not
//!   mapped yet. `filemap:mm_filemap_map_pages` reports the window (`index..=last_index`),
//!   only when it held at least one cached page;
//! - if the faulting page is still not mapped, the fault goes to `->fault`: shmem allocates a
//!   zeroed page (a first touch); a regular file reads it from disk, which this model does not
//!   predict (readahead timing decides what the next faults find).
//!
//! The workloads predict their counts by replaying their reads here, page by page.

/// Pages covered by one page table on x86-64 with 4 KiB pages: windows never cross it.
pub(crate) const PAGES_PER_TABLE: u64 = 512;

/// The kernel's default `fault_around_bytes` (64 KiB), in 4 KiB pages.
pub(crate) const DEFAULT_WINDOW_PAGES: u64 = 16;

/// One read fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadFault {
    /// Pages in the window fault-around scanned; 0 when it found nothing cached (no event).
    pub window_pages: u64,
    /// The faulting page was missing and allocated (shmem only).
    pub allocated: bool,
}

/// Totals over many reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReadTotals {
    pub faults: u64,
    /// Faults whose page fault-around mapped from the cache.
    pub from_cache: u64,
    /// Faults that allocated their page (shmem first touches).
    pub allocated: u64,
    /// Of those, the ones where fault-around found a cached neighbour: the kernel side sees a
    /// page cache event and calls them `file_minor`; the mapping model refines them.
    pub allocated_after_window: u64,
    pub window_pages: u64,
}

/// A read the model cannot predict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotCached {
    pub page: u64,
}

/// One mapping of a file from offset 0, and the state of its pages.
#[derive(Debug, Clone)]
pub(crate) struct FaultAroundModel {
    window_pages: u64,
    /// Virtual page number of the mapping's first page.
    first_vpn: u64,
    file_pages: u64,
    cached: Vec<bool>,
    mapped: Vec<bool>,
    /// shmem: a read of a page not in the cache allocates it.
    allocates_missing: bool,
}

impl FaultAroundModel {
    /// A mapping of `cached.len()` pages starting at virtual page `first_vpn`, of a file of
    /// `file_pages` pages from offset 0, none mapped yet; `cached[i]`: page `i` is in the page
    /// cache and up to date.
    pub(crate) fn new(
        window_pages: u64,
        first_vpn: u64,
        file_pages: u64,
        cached: Vec<bool>,
    ) -> FaultAroundModel {
        FaultAroundModel {
            window_pages: window_pages.max(1),
            first_vpn,
            file_pages,
            mapped: vec![false; cached.len()],
            cached,
            allocates_missing: false,
        }
    }

    /// Shared anonymous memory (shmem): missing pages are allocated on a read.
    pub(crate) fn shmem(window_pages: u64, first_vpn: u64, pages: u64) -> FaultAroundModel {
        FaultAroundModel {
            allocates_missing: true,
            ..FaultAroundModel::new(window_pages, first_vpn, pages, vec![false; pages as usize])
        }
    }

    fn mapping_pages(&self) -> u64 {
        self.mapped.len() as u64
    }

    /// First and last page (inclusive, mapping-relative) of the window a fault on `page` scans.
    pub(crate) fn window(&self, page: u64) -> (u64, u64) {
        let pte_offset = (self.first_vpn + page) % PAGES_PER_TABLE;
        let from = (pte_offset / self.window_pages * self.window_pages)
            .max(pte_offset - pte_offset.min(page));
        let to = (from + self.window_pages)
            .min(PAGES_PER_TABLE)
            .min(pte_offset + self.mapping_pages() - page)
            - 1;
        let first = page - (pte_offset - from);
        let last = (page + (to - pte_offset)).min(self.file_pages - 1);
        (first, last)
    }

    /// Reads page `page`: the fault it takes, if any.
    pub(crate) fn read(&mut self, page: u64) -> Result<Option<ReadFault>, NotCached> {
        let index = page as usize;
        if self.mapped[index] {
            return Ok(None);
        }
        let (first, last) = self.window(page);
        let window = first as usize..=last as usize;
        let found_cached = window.clone().any(|p| self.cached[p]);
        if found_cached {
            for p in window {
                if self.cached[p] {
                    self.mapped[p] = true;
                }
            }
        }
        let window_pages = if found_cached { last - first + 1 } else { 0 };
        if self.mapped[index] {
            return Ok(Some(ReadFault {
                window_pages,
                allocated: false,
            }));
        }
        if !self.allocates_missing {
            return Err(NotCached { page });
        }
        self.cached[index] = true;
        self.mapped[index] = true;
        Ok(Some(ReadFault {
            window_pages,
            allocated: true,
        }))
    }

    /// Reads each page in order, adding up the faults.
    pub(crate) fn read_all(
        &mut self,
        pages: impl IntoIterator<Item = u64>,
    ) -> Result<ReadTotals, NotCached> {
        let mut totals = ReadTotals::default();
        for page in pages {
            if let Some(fault) = self.read(page)? {
                totals.faults += 1;
                totals.window_pages += fault.window_pages;
                if fault.allocated {
                    totals.allocated += 1;
                    if fault.window_pages > 0 {
                        totals.allocated_after_window += 1;
                    }
                } else {
                    totals.from_cache += 1;
                }
            }
        }
        Ok(totals)
    }

    /// A write fault on a page maps it (writes do no fault-around).
    pub(crate) fn map(&mut self, page: u64) {
        self.mapped[page as usize] = true;
        self.cached[page as usize] = true;
    }

    /// `MADV_DONTNEED`: the page table entries go, the cached pages stay (shared mappings).
    pub(crate) fn unmap_all(&mut self) {
        self.mapped.iter_mut().for_each(|mapped| *mapped = false);
    }

    pub(crate) fn mapped_pages(&self) -> u64 {
        self.mapped.iter().filter(|mapped| **mapped).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_cached(pages: u64) -> Vec<bool> {
        vec![true; pages as usize]
    }

    #[test]
    fn aligned_cached_file_faults_once_per_window() {
        // 1009 pages = 63 windows of 16 and one of 1, starting on a window boundary.
        let mut model = FaultAroundModel::new(16, 0x7f00_0000, 1009, all_cached(1009));
        let totals = model.read_all(0..1009).unwrap();
        assert_eq!(totals.faults, 64);
        assert_eq!(totals.from_cache, 64);
        assert_eq!(totals.window_pages, 1009);
        assert_eq!(model.mapped_pages(), 1009);
    }

    #[test]
    fn windows_are_aligned_in_the_address_space_and_clipped_to_the_mapping() {
        // The mapping starts 5 pages into a window: a window is clipped to the mapping's start
        // and then runs 16 pages from there, overlapping the next aligned one.
        let model = FaultAroundModel::new(16, 1024 + 5, 40, all_cached(40));
        assert_eq!(model.window(0), (0, 15));
        assert_eq!(model.window(4), (0, 15));
        assert_eq!(model.window(11), (11, 26));
        // The last window ends with the mapping (page 39).
        assert_eq!(model.window(38), (27, 39));
        // ... and never crosses a page table: a mapping 3 pages before a 512-page boundary.
        let model = FaultAroundModel::new(16, 512 - 3, 40, all_cached(40));
        assert_eq!(model.window(1), (0, 2));
        assert_eq!(model.window(3), (3, 18));
    }

    #[test]
    fn windows_stop_at_the_end_of_the_file() {
        // A mapping longer than the file: windows end with the file.
        let model = FaultAroundModel::new(16, 0, 20, all_cached(32));
        assert_eq!(model.window(17), (16, 19));
    }

    #[test]
    fn a_half_cached_window_is_scanned_whole_but_maps_only_cached_pages() {
        // Every other page cached; reading the cached ones takes one fault per window, whose
        // reported range covers twice the pages it maps.
        let cached: Vec<bool> = (0..127).map(|page| page % 2 == 0).collect();
        let mut model = FaultAroundModel::new(16, 0, 127, cached);
        let totals = model.read_all((0..127).step_by(2)).unwrap();
        assert_eq!(totals.faults, 8);
        assert_eq!(totals.window_pages, 127);
        assert_eq!(model.mapped_pages(), 64);
        // An uncached page is a read from disk: not predicted.
        assert_eq!(model.read(1), Err(NotCached { page: 1 }));
    }

    #[test]
    fn shmem_reads_allocate_then_fault_around_maps_from_the_cache() {
        let mut model = FaultAroundModel::shmem(16, 0, 251);
        let first = model.read_all(0..251).unwrap();
        // Every read allocates. The first page of each window finds nothing cached; the other
        // 15 find earlier pages (already mapped: nothing mapped, but the window is reported).
        assert_eq!(first.faults, 251);
        assert_eq!(first.allocated, 251);
        assert_eq!(first.allocated_after_window, 251 - 16);
        assert_eq!(first.window_pages, 15 * 15 * 16 + 10 * 11);
        model.unmap_all();
        let again = model.read_all(0..251).unwrap();
        assert_eq!(
            (again.faults, again.from_cache, again.window_pages),
            (16, 16, 251)
        );
    }

    #[test]
    fn written_pages_are_mapped_and_skipped_by_later_windows() {
        let mut model = FaultAroundModel::new(16, 0, 32, all_cached(32));
        for page in 0..4 {
            model.map(page);
        }
        let fault = model.read(5).unwrap().unwrap();
        assert_eq!(fault.window_pages, 16);
        assert_eq!(model.mapped_pages(), 16);
        assert_eq!(model.read(4).unwrap(), None);
    }
}
