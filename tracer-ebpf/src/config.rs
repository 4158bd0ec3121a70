//! Settings written by user space before load (tracepoint offsets, enum values, mode).

use cowtrace_common::ProbeConfig;

/// Zeroes here; the loader replaces the whole value (`EbpfLoader::set_global("CONFIG", ..)`).
#[unsafe(no_mangle)]
static CONFIG: ProbeConfig = ProbeConfig {
    tracer_tgid: 0,
    trace_all: 0,
    item_pgfault: 0,
    item_pgmajfault: 0,
    migrate_movable: 0,
    struct_page_size: 0,
    calibration_tid: 0,
    newtask_pid: 0,
    newtask_clone_flags: 0,
    fork_child_pid: 0,
    exec_old_pid: 0,
    exit_group_dead: 0,
    syscall_nr: 0,
    syscall_args: 0,
    syscall_ret: 0,
    map_pages_index: 0,
    map_pages_last_index: 0,
    cache_fill_order: 0,
    wakeup_bytes: 0,
};

/// Reads one setting. Volatile, or the compiler would fold in the zeroes above.
#[inline(always)]
pub fn setting(select: impl FnOnce(&ProbeConfig) -> &u32) -> u32 {
    unsafe { core::ptr::read_volatile(select(&CONFIG)) }
}
