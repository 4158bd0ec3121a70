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

    /// `sizeof(struct page)` from BTF: `mm_page_alloc`'s raw argument is a `struct page *`,
    /// and its frame number is its index in the kernel's page array (see [`frame_number`]).
    pub struct_page_size: u32,
    /// The tracer thread that calibrates the page array's base address at start-up (see
    /// [`frame_base`]): its movable page allocations are reported outside any fault.
    pub calibration_tid: u32,
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
    /// Fault records wake the reader only once this many bytes wait in the ring buffer: a
    /// wakeup per record (an interrupt on the faulting CPU) costs more than the record. The
    /// reader also drains the buffer on a timer, so records never wait longer than that.
    pub wakeup_bytes: u32,
}

/// Slots of the `FRAME_BASE` array map. With `CONFIG_SPARSEMEM_VMEMMAP` (x86-64), a page's
/// frame number is its `struct page`'s index in the kernel's page array (`vmemmap`), whose base
/// is randomised at boot and not exported. User space finds it at start-up: the kernel side
/// stores the `struct page *` of a page the tracer allocates ([`CALIBRATION_PAGE`]), user
/// space reads that page's frame number from /proc/self/pagemap, and writes the base
/// ([`BASE`]) before any traced fault can happen.
///
/// [`CALIBRATION_PAGE`]: frame_base::CALIBRATION_PAGE
/// [`BASE`]: frame_base::BASE
pub mod frame_base {
    pub const BASE: u32 = 0;
    pub const CALIBRATION_PAGE: u32 = 1;
    pub const SLOTS: u32 = 2;
}

/// The frame number of the page whose `struct page` is at `page_address`, given the page
/// array's base and `sizeof(struct page)`. Zero when the address is not in the array (the
/// base is not calibrated yet, or a corrupt size): a frame number of zero is never a user page.
#[inline(always)]
pub fn frame_number(page_address: u64, base: u64, struct_page_size: u32) -> u64 {
    if page_address < base || struct_page_size == 0 {
        return 0;
    }
    (page_address - base) / struct_page_size as u64
}

/// The page array's base, from one page whose `struct page` address and frame number are both
/// known. `None` when they cannot belong together.
pub fn frame_base_from(page_address: u64, pfn: u64, struct_page_size: u32) -> Option<u64> {
    let offset = pfn.checked_mul(struct_page_size as u64)?;
    page_address.checked_sub(offset)
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
    /// Fault starts that got no per-thread state slot (the kernel could not allocate the
    /// thread's task storage, or it was busy in an interrupted program): not recorded.
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
