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
    assert_eq!(size_of::<ProbeConfig>(), 23 * 4);
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
