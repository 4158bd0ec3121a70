//! Records cross the kernel/user boundary as raw bytes: their layout must have no implicit
//! padding (every byte defined) and must not change by accident.

use core::mem::size_of;

use cowtrace_common::*;

#[test]
fn records_have_no_padding_and_fixed_sizes() {
    // Sum of field sizes == struct size means no padding anywhere.
    assert_eq!(size_of::<RecordHeader>(), 4 * 4 + 8);
    assert_eq!(
        size_of::<FaultRecord>(),
        size_of::<RecordHeader>() + 3 * 8 + 8 * 4
    );
    assert_eq!(
        size_of::<ForkRecord>(),
        size_of::<RecordHeader>() + 8 + 2 * 4 + 16
    );
    assert_eq!(
        size_of::<ExecRecord>(),
        size_of::<RecordHeader>() + 2 * 4 + 16
    );
    assert_eq!(
        size_of::<ExitRecord>(),
        size_of::<RecordHeader>() + 2 * 4 + 16
    );
    assert_eq!(size_of::<FaultInFlight>(), 3 * 8 + 6 * 4);
    assert_eq!(size_of::<ProbeConfig>(), 19 * 4);
    assert_eq!(
        size_of::<SyscallRecord>(),
        size_of::<RecordHeader>() + 6 * 8 + 8 + 8 + 2 * 4
    );
    assert_eq!(size_of::<config::SyscallInFlight>(), 8 + 6 * 8 + 2 * 4);
    assert_eq!(size_of::<FaultRecord>(), 80);
}

#[test]
fn every_record_starts_with_its_type() {
    let record = FaultRecord {
        header: RecordHeader {
            record_type: RecordType::Fault as u32,
            ..Default::default()
        },
        ..Default::default()
    };
    let bytes: [u8; size_of::<FaultRecord>()] = unsafe { core::mem::transmute(record) };
    let tag = u32::from_ne_bytes(bytes[0..4].try_into().unwrap());
    assert_eq!(RecordType::from_u32(tag), Some(RecordType::Fault));
    assert_eq!(RecordType::from_u32(0), None);
}

#[test]
fn clone_flags_tell_forks_from_threads_and_vforks() {
    use cowtrace_common::clone_flags::*;
    assert_eq!(
        ForkKind::from_clone_flags(0x11 /* SIGCHLD */),
        ForkKind::Fork
    );
    assert_eq!(
        ForkKind::from_clone_flags(CLONE_VM | CLONE_VFORK | 0x11),
        ForkKind::SharedVm
    );
    assert_eq!(
        ForkKind::from_clone_flags(CLONE_VM | CLONE_THREAD),
        ForkKind::Thread
    );
}

#[test]
fn frame_numbers_are_indexes_into_the_page_array() {
    use cowtrace_common::config::{frame_base_from, frame_number};
    const BASE: u64 = 0xffff_ea00_0000_0000;
    const STRUCT_PAGE: u32 = 64;
    // Frame 1_000_003 (prime): its struct page sits 1_000_003 entries past the base.
    let page = BASE + 1_000_003 * 64;
    assert_eq!(frame_number(page, BASE, STRUCT_PAGE), 1_000_003);
    assert_eq!(frame_base_from(page, 1_000_003, STRUCT_PAGE), Some(BASE));
    // Another struct page size (a debug kernel's) moves every frame.
    assert_eq!(frame_number(BASE + 7 * 80, BASE, 80), 7);
    // Not calibrated, or below the array: zero, never a wrong frame that looks real.
    assert_eq!(frame_number(BASE - 64, BASE, STRUCT_PAGE), 0);
    assert_eq!(frame_number(page, BASE, 0), 0);
    // A frame number too large for the address cannot belong to it.
    assert_eq!(frame_base_from(64, 2, STRUCT_PAGE), None);
    assert_eq!(frame_base_from(BASE, u64::MAX, STRUCT_PAGE), None);
}

#[test]
fn a_thread_slot_is_idle_between_faults() {
    let mut slot = FaultInFlight::default();
    assert!(
        !slot.in_flight(),
        "a fresh slot (zeroed by the kernel) is idle"
    );
    slot = FaultInFlight::start(1_009, 0x7f00_0000_1000, 0x6);
    assert!(slot.in_flight());
    let record = slot.finish(RecordHeader::fault(2_003, 0, 5, 5));
    slot.end();
    assert!(!slot.in_flight());
    assert_eq!(record.latency_ns, 2_003 - 1_009);
}
