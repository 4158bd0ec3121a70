//! The records of cowtrace's one ring buffer. Every record starts with a [`RecordHeader`]
//! whose first field is its [`RecordType`], so a reader can tell them apart by the first four
//! bytes (retsnoop style). All fields are integers; no implicit padding.

/// Tag at the start of every record.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    Fault = 1,
    Fork = 2,
    Exec = 3,
    Exit = 4,
    Syscall = 5,
}

impl RecordType {
    pub fn from_u32(value: u32) -> Option<RecordType> {
        match value {
            1 => Some(RecordType::Fault),
            2 => Some(RecordType::Fork),
            3 => Some(RecordType::Exec),
            4 => Some(RecordType::Exit),
            5 => Some(RecordType::Syscall),
            _ => None,
        }
    }
}

/// Common start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// A [`RecordType`] value.
    pub record_type: u32,
    /// CPU the record was produced on.
    pub cpu: u32,
    /// Process (thread group) id of the task the record is about.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub time_ns: u64,
}

/// One completed page fault.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultRecord {
    /// `time_ns` is when the fault ended.
    pub header: RecordHeader,
    /// Faulting user address (0 for a get_user_pages fault, whose address is not seen).
    pub address: u64,
    /// From fault start to fault end, probe cost included.
    pub latency_ns: u64,
    /// PFN of the first movable page allocated in the fault, when `alloc_count > 0`.
    pub new_pfn: u64,
    /// x86 page fault error code (see [`crate::fault::error_code`]).
    pub error_code: u32,
    /// Facts gathered in flight (see [`crate::fault::flags`]).
    pub flags: u32,
    /// A [`crate::FaultKind`] value.
    pub kind: u32,
    /// Order of the first movable allocation (0: one 4 KiB page; 9: a 2 MiB huge page).
    pub alloc_order: u32,
    /// How many movable allocations the fault made (readahead can make several).
    pub alloc_count: u32,
    /// Pages in the ranges fault-around (`filemap_map_pages`) scanned in the fault: an upper
    /// bound of the pages it mapped (the faulting one included), equal when the whole range was
    /// cached and unmapped.
    pub fault_around_window_pages: u32,
    /// Pages added to the page cache during the fault: read from disk (the faulting page, or
    /// readahead of its neighbours).
    pub cache_fill_pages: u32,
    pub reserved: u32,
}

/// A traced task created another task (fork, vfork, clone, thread).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkRecord {
    /// `pid`/`tid` are the parent's.
    pub header: RecordHeader,
    /// `clone_flags` of the new task (`CLONE_VM`, `CLONE_VFORK`, `CLONE_THREAD`, ...).
    pub clone_flags: u64,
    /// Process id of the new task: its own for a new process, the parent's for a thread.
    pub child_pid: u32,
    /// Thread id of the new task.
    pub child_tid: u32,
    /// Command name, NUL-padded (the child starts with the parent's).
    pub comm: [u8; 16],
}

/// A traced process replaced its memory image with `execve`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: RecordHeader,
    /// Thread id that called exec (differs from `pid` when a non-leader thread execs).
    pub old_tid: u32,
    pub reserved: u32,
    /// The new command name.
    pub comm: [u8; 16],
}

/// A traced thread exited; `group_dead` says the whole process is gone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitRecord {
    pub header: RecordHeader,
    /// 1 when this was the last thread of the process.
    pub group_dead: u32,
    pub reserved: u32,
    pub comm: [u8; 16],
}

/// A traced task completed a memory-map or fork syscall (mmap, munmap, mremap, mprotect,
/// madvise, brk; clone, clone3, fork, vfork): the arguments it entered with, its result, and
/// how long it took.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    /// `time_ns` is when the syscall returned.
    pub header: RecordHeader,
    /// Arguments as entered; only the first `arg_count` are meaningful.
    pub args: [u64; 6],
    /// Return value (negative errno on failure; the child's pid for a fork in the parent).
    pub ret: i64,
    /// From syscall entry to return.
    pub latency_ns: u64,
    /// Syscall number on this architecture.
    pub syscall_nr: u32,
    pub arg_count: u32,
}

/// Clone flags that matter for memory (`include/uapi/linux/sched.h`).
pub mod clone_flags {
    pub const CLONE_VM: u64 = 0x0000_0100;
    pub const CLONE_VFORK: u64 = 0x0000_4000;
    pub const CLONE_THREAD: u64 = 0x0001_0000;
}

/// What a [`ForkRecord`] created, as far as memory is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkKind {
    /// A new process with a copy-on-write copy of the parent's memory.
    Fork,
    /// A new process sharing the parent's memory until it execs or exits (vfork, posix_spawn):
    /// no copy-on-write.
    SharedVm,
    /// A new thread: same memory, not a fork.
    Thread,
}

impl ForkKind {
    pub fn from_clone_flags(flags: u64) -> ForkKind {
        if flags & clone_flags::CLONE_THREAD != 0 {
            ForkKind::Thread
        } else if flags & clone_flags::CLONE_VM != 0 {
            ForkKind::SharedVm
        } else {
            ForkKind::Fork
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ForkKind::Fork => "fork",
            ForkKind::SharedVm => "shared_vm",
            ForkKind::Thread => "thread",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    use crate::fault::FaultInFlight;
    unsafe impl aya::Pod for RecordHeader {}
    unsafe impl aya::Pod for FaultRecord {}
    unsafe impl aya::Pod for ForkRecord {}
    unsafe impl aya::Pod for ExecRecord {}
    unsafe impl aya::Pod for ExitRecord {}
    unsafe impl aya::Pod for FaultInFlight {}
    unsafe impl aya::Pod for SyscallRecord {}
    unsafe impl aya::Pod for crate::config::SyscallInFlight {}
}
