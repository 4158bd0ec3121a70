//! The maps shared by the programs.

use crate::task_storage::TaskStorage;
use aya_ebpf::{
    macros::{btf_map, map},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use cowtrace_common::{
    Counter, FaultInFlight,
    config::{SyscallInFlight, frame_base},
};

/// The one ring buffer of tagged records. User space sets its size before load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Processes (thread group ids) being traced. Forks of traced processes are added in the
/// kernel, before the child first runs, so no early fault of a child is missed.
#[map]
pub static TRACED: HashMap<u32, u32> = HashMap::with_max_entries(32 * 1024, 0);

/// The fault each thread is in the middle of, hung off the thread itself: every fault looks it
/// up three times or more, and task storage finds it without hashing or locking, where a hash
/// map keyed by thread id cost most of the per-fault time. A fault can sleep and move between
/// CPUs, so per-CPU storage would not do. The kernel frees a thread's slot when it exits.
#[btf_map]
pub static INFLIGHT: TaskStorage<FaultInFlight> = TaskStorage::new();

/// Clone flags of a task just created, from `task_newtask` until `sched_process_fork` reports it.
#[map]
pub static PENDING_CLONE: HashMap<u32, u64> = HashMap::with_max_entries(4 * 1024, 0);

/// [`Counter`] slots, per CPU so counting never contends.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Syscalls to record (number → argument count, from the format files). Also the filter:
/// the syscall programs attach to a few tracepoints, and ignore any number not listed.
#[map]
pub static SYSCALL_ARG_COUNTS: HashMap<u32, u32> = HashMap::with_max_entries(64, 0);

/// The syscall each thread is in, from entry to return.
#[map]
pub static SYSCALL_INFLIGHT: HashMap<u32, SyscallInFlight> =
    HashMap::with_max_entries(32 * 1024, 0);

/// The kernel's page array base, to turn `mm_page_alloc`'s `struct page *` into a frame number
/// (slots in [`frame_base`]). Written by user space after start-up calibration.
#[map]
pub static FRAME_BASE: Array<u64> = Array::with_max_entries(frame_base::SLOTS, 0);
