//! Faults per mapping: how the pages of each file, heap, stack or anonymous region got there.
//! Mappings are keyed by name (a file's path, `[heap]`, `[anon]`, ...), over all traced
//! processes: a library's text faulted by a parent and its child is one row.

use std::collections::HashMap;

use cowtrace_common::{FaultKind, FaultRecord, fault::flags};

use super::fault_attribution::{FaultAttribution, is_major};

/// Where faults go that no mapping holds.
pub const GUP_ROW: &str = "(get_user_pages: no address)";
pub const UNMAPPED_ROW: &str = "(no known mapping)";

/// Latencies in power-of-two buckets: bucket `i` holds `[2^(i-1), 2^i)` ns (bucket 0: 0 ns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: [u64; 65],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: [0; 65] }
    }
}

impl LatencyHistogram {
    pub fn add(&mut self, latency_ns: u64) {
        self.buckets[Self::bucket(latency_ns)] += 1;
    }

    fn bucket(latency_ns: u64) -> usize {
        (u64::BITS - latency_ns.leading_zeros()) as usize
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `[low, high)` in ns of each non-empty bucket, with its count, lowest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(bucket, &count)| {
                let low = if bucket == 0 { 0 } else { 1u64 << (bucket - 1) };
                let high = 1u64.checked_shl(bucket as u32).unwrap_or(u64::MAX);
                (low, high, count)
            })
    }

    /// Upper bound of the bucket holding the `quantile` (0 to 1) latency; `None` when empty.
    pub fn quantile_upper_ns(&self, quantile: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.buckets().find_map(|(_, high, count)| {
            seen += count;
            (seen >= rank).then_some(high)
        })
    }
}

/// What happened in one mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingStats {
    pub name: String,
    pub faults_by_kind: [u64; FaultKind::COUNT],
    /// Pages in the ranges fault-around scanned: an upper bound of the pages it mapped (exactly
    /// that many when those ranges were cached and unmapped).
    pub fault_around_window_pages: u64,
    /// Pages the faults added to the page cache: read from disk for this mapping.
    pub cache_fill_pages: u64,
    /// Latency of the major faults (`PGMAJFAULT`): the time the I/O made the process wait.
    pub major_latency: LatencyHistogram,
    /// Faults whose first allocation was a huge page (order 9: 2 MiB on x86-64).
    pub huge_page_faults: u64,
}

/// The allocation order of a PMD-sized page with 4 KiB base pages (x86-64).
pub const PMD_ORDER: u32 = 9;

impl MappingStats {
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.faults_by_kind[kind as usize]
    }

    pub fn faults(&self) -> u64 {
        self.faults_by_kind.iter().sum()
    }

    pub fn major_faults(&self) -> u64 {
        self.major_latency.count()
    }

    pub fn bytes_read(&self, page_size: u64) -> u64 {
        self.cache_fill_pages * page_size
    }

    fn add(&mut self, fault: &FaultRecord, kind: FaultKind) {
        self.faults_by_kind[kind as usize] += 1;
        self.fault_around_window_pages += u64::from(fault.fault_around_window_pages);
        self.cache_fill_pages += u64::from(fault.cache_fill_pages);
        if is_major(fault) {
            self.major_latency.add(fault.latency_ns);
        }
        if fault.alloc_count > 0 && fault.alloc_order == PMD_ORDER {
            self.huge_page_faults += 1;
        }
    }
}

/// Every mapping faults were attributed to, by name.
#[derive(Clone, Debug, Default)]
pub struct MappingTable {
    by_name: HashMap<String, MappingStats>,
}

impl MappingTable {
    pub fn new() -> MappingTable {
        MappingTable::default()
    }

    /// Counts one fault under its mapping (or a row for faults without one).
    pub fn add(&mut self, fault: &FaultRecord, attribution: &FaultAttribution) {
        let Some(kind) = attribution.kind else {
            return; // unknown kind: the process table counts it apart
        };
        let name = match &attribution.mapping {
            Some(mapping) => mapping.name.as_str(),
            None if fault.flags & flags::NO_START != 0 => GUP_ROW,
            None => UNMAPPED_ROW,
        };
        if !self.by_name.contains_key(name) {
            let stats = MappingStats {
                name: name.to_string(),
                ..Default::default()
            };
            self.by_name.insert(name.to_string(), stats);
        }
        if let Some(stats) = self.by_name.get_mut(name) {
            stats.add(fault, kind);
        }
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&MappingStats> {
        self.by_name.get(name)
    }

    /// The `limit` mappings with the most faults, most first (ties by name).
    pub fn top(&self, limit: usize) -> Vec<&MappingStats> {
        let mut rows: Vec<&MappingStats> = self.by_name.values().collect();
        rows.sort_by(|a, b| {
            b.faults()
                .cmp(&a.faults())
                .then_with(|| a.name.cmp(&b.name))
        });
        rows.truncate(limit);
        rows
    }
}

#[cfg(test)]
mod tests {
    use cowtrace_common::RecordHeader;

    use super::*;
    use crate::model::fault_attribution::FaultMapping;

    fn fault(latency_ns: u64, fault_flags: u32) -> FaultRecord {
        FaultRecord {
            header: RecordHeader::fault(1, 0, 5, 5),
            address: 0x1000,
            latency_ns,
            flags: fault_flags,
            ..Default::default()
        }
    }

    fn at(name: &str, kind: FaultKind) -> FaultAttribution {
        FaultAttribution {
            kind: Some(kind),
            mapping: Some(FaultMapping {
                name: name.into(),
                file_offset: None,
            }),
        }
    }

    #[test]
    fn counts_kinds_pages_read_and_fault_around_pages_per_mapping() {
        let mut table = MappingTable::new();
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        for _ in 0..3 {
            let mut minor = fault(1_000, flags::FILEMAP);
            minor.fault_around_window_pages = 16;
            table.add(&minor, &at(libc, FaultKind::FileMinor));
        }
        let mut major = fault(300_000, flags::FILEMAP | flags::MAJOR | flags::CACHE_FILL);
        major.cache_fill_pages = 32;
        major.fault_around_window_pages = 16 + 16;
        table.add(&major, &at(libc, FaultKind::FileMajor));
        // Readahead by a minor fault: pages read, no major fault.
        let mut readahead = fault(40_000, flags::FILEMAP | flags::CACHE_FILL);
        readahead.cache_fill_pages = 64;
        table.add(&readahead, &at(libc, FaultKind::FileMinor));
        table.add(&fault(2_000, 0), &at("[heap]", FaultKind::AnonFirstTouch));

        let stats = table.get(libc).unwrap();
        assert_eq!(stats.faults(), 5);
        assert_eq!(stats.count(FaultKind::FileMinor), 4);
        assert_eq!(stats.count(FaultKind::FileMajor), 1);
        assert_eq!(stats.fault_around_window_pages, 3 * 16 + 32);
        assert_eq!(stats.cache_fill_pages, 96);
        assert_eq!(stats.bytes_read(4096), 96 * 4096);
        assert_eq!(stats.major_faults(), 1);
        let top: Vec<&str> = table.top(10).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(top, [libc, "[heap]"]);
        assert_eq!(table.top(1).len(), 1);
    }

    #[test]
    fn faults_without_a_mapping_get_their_own_rows() {
        let mut table = MappingTable::new();
        let none = |kind| FaultAttribution {
            kind: Some(kind),
            mapping: None,
        };
        table.add(&fault(0, flags::NO_START), &none(FaultKind::GupFault));
        table.add(&fault(10, 0), &none(FaultKind::ZeroPage));
        // An unknown kind is not counted here.
        table.add(
            &fault(10, 0),
            &FaultAttribution {
                kind: None,
                mapping: None,
            },
        );
        assert_eq!(table.get(GUP_ROW).unwrap().count(FaultKind::GupFault), 1);
        assert_eq!(table.get(UNMAPPED_ROW).unwrap().faults(), 1);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn huge_page_faults_are_order_nine_allocations() {
        let mut table = MappingTable::new();
        let mut huge = fault(50_000, flags::ALLOCATED);
        huge.alloc_count = 1;
        huge.alloc_order = PMD_ORDER;
        table.add(&huge, &at("[anon]", FaultKind::AnonFirstTouch));
        let mut small = fault(1_000, flags::ALLOCATED);
        small.alloc_count = 1;
        table.add(&small, &at("[anon]", FaultKind::AnonFirstTouch));
        assert_eq!(table.get("[anon]").unwrap().huge_page_faults, 1);
    }

    #[test]
    fn histogram_buckets_are_powers_of_two_and_quantiles_their_upper_bounds() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.quantile_upper_ns(0.5), None);
        for latency in [0, 1, 1_000, 1_023, 1_024, 200_000, 5_000_000] {
            histogram.add(latency);
        }
        let buckets: Vec<(u64, u64, u64)> = histogram.buckets().collect();
        assert_eq!(
            buckets,
            [
                (0, 1, 1),
                (1, 2, 1),
                (512, 1024, 2),
                (1024, 2048, 1),
                (131_072, 262_144, 1),
                (4_194_304, 8_388_608, 1)
            ]
        );
        assert_eq!(histogram.count(), 7);
        // The 4th of 7 latencies (1023 ns) is in [512, 1024).
        assert_eq!(histogram.quantile_upper_ns(0.5), Some(1024));
        assert_eq!(histogram.quantile_upper_ns(1.0), Some(8_388_608));
        histogram.add(u64::MAX);
        assert_eq!(histogram.quantile_upper_ns(1.0), Some(u64::MAX));
    }
}
