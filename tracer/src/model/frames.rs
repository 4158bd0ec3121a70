//! Which physical frame each page of a region maps, per process, rebuilt from the records
//! alone by replaying them through the page model. Comparing the result with
//! `/proc/PID/pagemap` proves the trace right page by page.

use std::collections::HashMap;

use super::{mappings::AddressSpaces, pages::PageModel};
use crate::records::Record;

/// A contiguous range of virtual pages, the same in every process of a fork family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub pages: u64,
    pub page_size: u64,
}

impl Region {
    /// Index of the page holding `address`, if inside.
    pub fn page_of(&self, address: u64) -> Option<usize> {
        let offset = address.checked_sub(self.start)?;
        let page = offset / self.page_size;
        (page < self.pages).then_some(page as usize)
    }
}

/// The page model after replaying `records` up to `until_ns`, in time order (records from
/// different CPUs can arrive slightly out of order). No mappings are known offline, so every
/// private page counts as copy-on-write at a fork.
pub fn replay(records: &[Record], page_size: u64, until_ns: u64) -> PageModel {
    let mut ordered: Vec<&Record> = records.iter().filter(|r| r.time_ns() <= until_ns).collect();
    ordered.sort_by_key(|record| record.time_ns());
    let spaces = AddressSpaces::new(page_size);
    let mut model = PageModel::new(page_size);
    for record in ordered {
        model.apply(record, &spaces);
    }
    model
}

/// Frame (PFN) behind each region page for every process alive at `until_ns` (the replay
/// stops there); `None` where the trace never saw one.
pub fn region_frames_at(
    records: &[Record],
    region: Region,
    until_ns: u64,
) -> HashMap<u32, Vec<Option<u64>>> {
    let model = replay(records, region.page_size, until_ns);
    model
        .processes()
        .filter(|process| process.alive)
        .map(|process| {
            let frames = (0..region.pages)
                .map(|page| model.frame(process.pid, region.start + page * region.page_size))
                .collect();
            (process.pid, frames)
        })
        .collect()
}

/// Frames of the region while the whole family still holds it: just before the first
/// process that faulted in the region exits (afterwards, processes unmap and leave).
pub fn region_frames(records: &[Record], region: Region) -> HashMap<u32, Vec<Option<u64>>> {
    let in_region: std::collections::HashSet<u32> = records
        .iter()
        .filter_map(|record| match record {
            Record::Fault(fault) if region.page_of(fault.address).is_some() => {
                Some(fault.header.pid)
            }
            _ => None,
        })
        .collect();
    let first_exit = records
        .iter()
        .filter_map(|record| match record {
            Record::Exit(exit) if exit.group_dead != 0 && in_region.contains(&exit.header.pid) => {
                Some(exit.header.time_ns)
            }
            _ => None,
        })
        .min();
    region_frames_at(
        records,
        region,
        first_exit.map_or(u64::MAX, |time| time - 1),
    )
}

/// Pages where the reconstruction and the kernel's pagemap agree, out of all pages: the same
/// frame, or no frame where pagemap has none (PFN 0: not present).
pub fn agreement(reconstructed: &[Option<u64>], pagemap_pfns: &[u64]) -> (usize, usize) {
    let agree = reconstructed
        .iter()
        .zip(pagemap_pfns)
        .filter(|(frame, pfn)| match **pfn {
            0 => frame.is_none(),
            pfn => **frame == Some(pfn),
        })
        .count();
    (agree, pagemap_pfns.len())
}

#[cfg(test)]
mod tests {
    use cowtrace_common::{FaultKind, FaultRecord, ForkRecord, RecordHeader, RecordType};

    use super::*;

    const REGION: Region = Region {
        start: 0x10_0000,
        pages: 5,
        page_size: 4096,
    };

    fn fault(time: u64, pid: u32, page: u64, kind: FaultKind, pfn: Option<u64>) -> Record {
        Record::Fault(FaultRecord {
            header: RecordHeader::fault(time, 0, pid, pid),
            address: REGION.start + page * REGION.page_size + 8,
            kind: kind as u32,
            new_pfn: pfn.unwrap_or(0),
            alloc_count: pfn.is_some() as u32,
            ..Default::default()
        })
    }

    fn fork(time: u64, parent: u32, child: u32) -> Record {
        Record::Fork(ForkRecord {
            header: RecordHeader {
                record_type: RecordType::Fork as u32,
                pid: parent,
                tid: parent,
                time_ns: time,
                cpu: 0,
            },
            clone_flags: 0x11,
            child_pid: child,
            child_tid: child,
            comm: [0; 16],
        })
    }

    #[test]
    fn child_inherits_frames_and_copies_replace_them() {
        let records = vec![
            fault(1, 10, 0, FaultKind::AnonFirstTouch, Some(100)),
            fault(2, 10, 1, FaultKind::AnonFirstTouch, Some(101)),
            fault(3, 10, 2, FaultKind::AnonFirstTouch, Some(102)),
            fork(4, 10, 11),
            fault(5, 11, 0, FaultKind::CowCopy, Some(200)),
            fault(6, 10, 0, FaultKind::CowReuse, None),
            fault(7, 10, 1, FaultKind::CowCopy, Some(301)),
        ];
        let frames = region_frames(&records, REGION);
        assert_eq!(
            frames[&10],
            vec![Some(100), Some(301), Some(102), None, None]
        );
        assert_eq!(
            frames[&11],
            vec![Some(200), Some(101), Some(102), None, None]
        );
        assert_eq!(agreement(&frames[&11], &[200, 101, 102, 0, 0]), (5, 5));
        assert_eq!(agreement(&frames[&10], &[100, 999, 102, 0, 0]), (4, 5));
        // A frame the model has where the kernel has none is a disagreement too.
        assert_eq!(agreement(&[Some(7)], &[0]), (0, 1));
    }

    #[test]
    fn out_of_order_arrival_is_replayed_by_time() {
        // The child's copy arrives before the fork record (another CPU's ring buffer slot).
        let records = vec![
            fault(1, 10, 0, FaultKind::AnonFirstTouch, Some(100)),
            fault(5, 11, 0, FaultKind::CowCopy, Some(200)),
            fork(4, 10, 11),
        ];
        let frames = region_frames(&records, REGION);
        assert_eq!(frames[&11][0], Some(200));
        assert_eq!(frames[&10][0], Some(100));
    }

    #[test]
    fn addresses_outside_the_region_are_ignored() {
        assert_eq!(REGION.page_of(REGION.start - 1), None);
        assert_eq!(REGION.page_of(REGION.start + 5 * 4096), None);
        assert_eq!(REGION.page_of(REGION.start + 5 * 4096 - 1), Some(4));
    }
}
