//! cowtrace's kernel side: tracepoint programs that follow every page fault of the traced
//! processes from its start to its end and write one record per completed fault.
//!
//! Only tracepoints are used (raw ones on the per-fault path), so this works where kprobes and
//! fentry do not. Each
//! program filters by traced process first and keeps its work small; the per-fault state
//! machine itself lives in `cowtrace-common` so user space can unit-test the same code.
#![no_std]
#![no_main]

mod config;
mod inflight;
mod maps;
mod output;
mod task_storage;

mod cache_fill;
mod fault_around;
mod fault_end;
mod fault_start;
mod filemap_fault;
mod floor;
mod page_alloc;
mod process_exec;
mod process_exit;
mod process_fork;
mod syscall_enter;
mod syscall_exit;
mod task_newtask;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible: `bpf_probe_read_kernel` is a GPL-only helper.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
