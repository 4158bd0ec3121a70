//! Settings passed to the eBPF programs as a global before load (libbpf-tools style), and the
//! kernel-side counters user space reads back.

/// Marks an offset as "field absent on this kernel": the program then skips that read.
pub const OFFSET_ABSENT: u32 = u32::MAX;

/// Everything the eBPF side needs to know about this kernel and this run. Tracepoint field
/// offsets come from tracefs format files and enum values from BTF, both read at start-up,
/// so nothing kernel-specific is compiled in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// The tracer's own process: never traced, so its own faults cannot feed back.
    pub tracer_tgid: u32,
    /// Non-zero: trace every process (`-a`) instead of the tracked set.
    pub trace_all: u32,
    /// `enum vm_event_item` values: `PGFAULT` ends a fault, `PGMAJFAULT` marks it major.
    pub item_pgfault: u32,
    pub item_pgmajfault: u32,
    /// `enum migratetype` value of `MIGRATE_MOVABLE`: user data pages are movable.
    pub migrate_movable: u32,

    /// `exceptions:page_fault_{user,kernel}`: address (8 bytes), error_code (8 bytes).
    pub fault_address: u32,
    pub fault_error_code: u32,
    /// `kmem:mm_page_alloc`: pfn (8 bytes), order (4), migratetype (4).
    pub alloc_pfn: u32,
    pub alloc_order: u32,
    pub alloc_migratetype: u32,
    /// `memcg:count_memcg_events`: item (4 bytes).
    pub memcg_item: u32,
    /// `task:task_newtask`: pid (4 bytes), clone_flags (8 bytes).
    pub newtask_pid: u32,
    pub newtask_clone_flags: u32,
    /// `sched:sched_process_fork`: child_pid (4 bytes).
    pub fork_child_pid: u32,
    /// `sched:sched_process_exec`: old_pid (4 bytes).
    pub exec_old_pid: u32,
    /// `sched:sched_process_exit`: group_dead (1 byte, bool), or [`OFFSET_ABSENT`].
    pub exit_group_dead: u32,
    /// `syscalls:sys_enter_*`: `__syscall_nr` (4 bytes), then the arguments (8 bytes each).
    pub syscall_nr: u32,
    pub syscall_args: u32,
    /// `syscalls:sys_exit_*`: ret (8 bytes).
    pub syscall_ret: u32,
    /// `filemap:mm_filemap_map_pages`: index and last_index (8 bytes each), the file pages
    /// fault-around scanned.
    pub map_pages_index: u32,
    pub map_pages_last_index: u32,
    /// `filemap:mm_filemap_add_to_page_cache`: order (1 byte), or [`OFFSET_ABSENT`] on kernels
    /// that add only single pages.
    pub cache_fill_order: u32,
    pub reserved: u32,
}

/// A syscall between its entry and its return (per-thread map value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallInFlight {
    pub enter_ns: u64,
    pub args: [u64; 6],
    pub syscall_nr: u32,
    pub arg_count: u32,
}

/// Kernel-side counters, one slot each in a per-CPU array; user space sums over CPUs.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Records the programs tried to write to the ring buffer.
    RecordsProduced = 0,
    /// Of those, records that did not fit (ring buffer full): lost, and said so.
    RecordsDropped = 1,
    /// Faults that started but never ended in accounting: a bad address (SIGSEGV), a thread
    /// that died mid-fault, or a start that a newer start replaced.
    FaultsIncomplete = 2,
    /// Fault starts that found the per-thread state map full: their fault is not recorded.
    InflightMapFull = 3,
    /// Forks of traced processes whose child could not be added to the traced set.
    TracedSetFull = 4,
}

impl Counter {
    pub const COUNT: u32 = 5;
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::RecordsProduced,
        Counter::RecordsDropped,
        Counter::FaultsIncomplete,
        Counter::InflightMapFull,
        Counter::TracedSetFull,
    ];
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for ProbeConfig {}
