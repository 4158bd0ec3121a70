//! Classification from raw event sequences, exactly as the eBPF programs drive the state
//! machine: start → allocations / page cache events → end.

use cowtrace_common::{
    FaultInFlight, FaultKind, RecordHeader,
    fault::{error_code::*, flags},
};

const MOVABLE: u32 = 1;
/// One page entering the page cache.
const CACHE_FILL: Event = Event::CacheFill { order: 0 };
const UNMOVABLE: u32 = 0;

/// Events between a fault's start and its end, as the tracepoints deliver them.
enum Event {
    Alloc {
        pfn: u64,
        order: u32,
        migratetype: u32,
    },
    Filemap,
    FaultAround {
        index: u64,
        last_index: u64,
    },
    CacheFill {
        order: u32,
    },
    Major,
}

fn run(error_code: u32, events: &[Event]) -> cowtrace_common::FaultRecord {
    let mut fault = FaultInFlight::start(1_000, 0x7f00_0000_1000, error_code);
    for event in events {
        match *event {
            Event::Alloc {
                pfn,
                order,
                migratetype,
            } => fault.on_page_alloc(pfn, order, migratetype, MOVABLE),
            Event::Filemap => fault.on_filemap(),
            Event::FaultAround { index, last_index } => fault.on_fault_around(index, last_index),
            Event::CacheFill { order } => fault.on_cache_fill(order),
            Event::Major => fault.on_major(),
        }
    }
    fault.finish(RecordHeader::fault(4_500, 1, 100, 101))
}

fn kind(error_code: u32, events: &[Event]) -> FaultKind {
    FaultKind::from_u32(run(error_code, events).kind).unwrap()
}

fn alloc(pfn: u64) -> Event {
    Event::Alloc {
        pfn,
        order: 0,
        migratetype: MOVABLE,
    }
}

#[test]
fn write_to_present_page_with_allocation_is_a_cow_copy() {
    let record = run(USER | WRITE | PRESENT, &[alloc(0x1234)]);
    assert_eq!(FaultKind::from_u32(record.kind), Some(FaultKind::CowCopy));
    assert_eq!(record.new_pfn, 0x1234);
    assert_eq!(record.alloc_count, 1);
    assert_eq!(record.latency_ns, 3_500);
    assert_eq!(record.header.pid, 100);
    assert_eq!(record.header.tid, 101);
}

#[test]
fn write_to_present_page_without_allocation_is_a_reuse() {
    assert_eq!(kind(USER | WRITE | PRESENT, &[]), FaultKind::CowReuse);
}

#[test]
fn unmovable_allocations_are_page_tables_not_data() {
    // A page table page allocated during a reuse must not turn it into a copy.
    let events = [Event::Alloc {
        pfn: 9,
        order: 0,
        migratetype: UNMOVABLE,
    }];
    let record = run(USER | WRITE | PRESENT, &events);
    assert_eq!(FaultKind::from_u32(record.kind), Some(FaultKind::CowReuse));
    assert_eq!(record.alloc_count, 0);
    assert_eq!(record.new_pfn, 0);
}

#[test]
fn first_movable_allocation_is_the_new_page() {
    let events = [
        Event::Alloc {
            pfn: 7,
            order: 0,
            migratetype: UNMOVABLE,
        },
        alloc(11),
        alloc(13),
    ];
    let record = run(USER | WRITE, &events);
    assert_eq!(record.new_pfn, 11);
    assert_eq!(record.alloc_count, 2);
}

#[test]
fn huge_page_allocation_keeps_its_order() {
    let record = run(
        USER | WRITE,
        &[Event::Alloc {
            pfn: 512,
            order: 9,
            migratetype: MOVABLE,
        }],
    );
    assert_eq!(
        FaultKind::from_u32(record.kind),
        Some(FaultKind::AnonFirstTouch)
    );
    assert_eq!(record.alloc_order, 9);
}

#[test]
fn write_to_missing_anonymous_page_is_a_first_touch() {
    assert_eq!(kind(USER | WRITE, &[alloc(5)]), FaultKind::AnonFirstTouch);
}

#[test]
fn read_of_missing_anonymous_page_maps_the_zero_page() {
    assert_eq!(kind(USER, &[]), FaultKind::ZeroPage);
}

#[test]
fn read_through_page_cache_is_a_file_minor_fault() {
    assert_eq!(kind(USER, &[Event::Filemap]), FaultKind::FileMinor);
    assert_eq!(
        kind(USER | INSTRUCTION_FETCH, &[Event::Filemap]),
        FaultKind::FileMinor
    );
}

#[test]
fn page_cache_fill_or_pgmajfault_is_a_major_fault() {
    assert_eq!(
        kind(USER, &[Event::Filemap, Event::Major]),
        FaultKind::FileMajor
    );
    // Readahead allocates page cache pages (movable) and fills the cache: still major, not a copy.
    assert_eq!(
        kind(USER, &[alloc(1), CACHE_FILL, alloc(2), CACHE_FILL]),
        FaultKind::FileMajor
    );
}

#[test]
fn first_write_to_private_file_mapping_copies_from_page_cache() {
    assert_eq!(
        kind(USER | WRITE, &[alloc(3), Event::Filemap]),
        FaultKind::FilePrivateCopy
    );
}

#[test]
fn write_to_shared_file_mapping_allocates_nothing() {
    assert_eq!(
        kind(USER | WRITE, &[Event::Filemap]),
        FaultKind::WriteShared
    );
}

#[test]
fn read_of_present_page_is_other() {
    assert_eq!(kind(USER | PRESENT, &[]), FaultKind::Other);
}

#[test]
fn kernel_mode_fault_is_flagged_and_classified_the_same() {
    let record = run(WRITE | PRESENT, &[alloc(77)]);
    assert_ne!(record.flags & flags::KERNEL_MODE, 0);
    assert_eq!(FaultKind::from_u32(record.kind), Some(FaultKind::CowCopy));
    let user = run(USER | WRITE | PRESENT, &[alloc(77)]);
    assert_eq!(user.flags & flags::KERNEL_MODE, 0);
}

#[test]
fn end_without_start_is_a_gup_fault() {
    let record = FaultInFlight::finish_without_start(RecordHeader::fault(10, 0, 5, 6));
    assert_eq!(FaultKind::from_u32(record.kind), Some(FaultKind::GupFault));
    assert_eq!(record.flags, flags::NO_START);
}

#[test]
fn kind_names_round_trip_and_are_unique() {
    for (index, kind) in FaultKind::ALL.iter().enumerate() {
        assert_eq!(*kind as usize, index, "ALL must be in discriminant order");
        assert_eq!(FaultKind::from_name(kind.name()), Some(*kind));
        assert_eq!(FaultKind::from_u32(index as u32), Some(*kind));
    }
    assert_eq!(FaultKind::from_u32(FaultKind::COUNT as u32), None);
}

#[test]
fn fault_around_counts_the_pages_of_every_range_it_scanned() {
    // A read fault that fault-around serves: one range of 16 pages.
    let record = run(
        USER,
        &[Event::FaultAround {
            index: 32,
            last_index: 47,
        }],
    );
    assert_eq!(FaultKind::from_u32(record.kind), Some(FaultKind::FileMinor));
    assert_eq!(record.fault_around_window_pages, 16);
    assert_eq!(record.cache_fill_pages, 0);
    // A major fault scans again when it is retried after the read: both ranges count.
    let record = run(
        USER,
        &[
            Event::FaultAround {
                index: 0,
                last_index: 15,
            },
            Event::Filemap,
            alloc(9),
            CACHE_FILL,
            Event::Major,
            Event::FaultAround {
                index: 0,
                last_index: 10,
            },
        ],
    );
    assert_eq!(FaultKind::from_u32(record.kind), Some(FaultKind::FileMajor));
    assert_eq!(record.fault_around_window_pages, 16 + 11);
    // A range clamped to one page (the end of the file), and a malformed one (ignored).
    let record = run(
        USER,
        &[
            Event::FaultAround {
                index: 7,
                last_index: 7,
            },
            Event::FaultAround {
                index: 9,
                last_index: 8,
            },
        ],
    );
    assert_eq!(record.fault_around_window_pages, 1);
}

#[test]
fn cache_fills_count_pages_by_folio_order() {
    // Readahead of one single page and one 16 KiB folio (order 2).
    let record = run(
        USER,
        &[
            Event::Filemap,
            CACHE_FILL,
            Event::CacheFill { order: 2 },
            Event::Major,
        ],
    );
    assert_eq!(record.cache_fill_pages, 1 + 4);
    assert_ne!(record.flags & flags::CACHE_FILL, 0);
    // An order no kernel uses adds nothing rather than overflowing.
    let record = run(USER, &[Event::CacheFill { order: 40 }]);
    assert_eq!(record.cache_fill_pages, 0);
    assert_ne!(record.flags & flags::FILEMAP, 0);
}
