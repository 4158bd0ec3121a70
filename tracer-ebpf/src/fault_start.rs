//! Fault start: the raw tracepoints `page_fault_user` and `page_fault_kernel` (the same
//! program attached to both; the error code's USER bit tells them apart).
//!
//! Raw tracepoints, here and at the other per-fault probes: the program gets the tracepoint's
//! arguments as they are, where a classic tracepoint first fills a perf record with every
//! field and then calls the program. On this path, which runs on every fault, that costs more
//! than the program itself.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use cowtrace_common::{Counter, FaultInFlight};

use crate::{
    maps::INFLIGHT,
    output::{bump, current_task, is_traced, now_ns},
};

/// Kernel addresses on x86-64 have the top bit set; only faults on user addresses matter.
const KERNEL_ADDRESS_BIT: u64 = 1 << 63;

/// `TP_PROTO(unsigned long address, struct pt_regs *regs, unsigned long error_code)`, checked
/// against BTF at start-up.
const ARG_ADDRESS: usize = 0;
const ARG_ERROR_CODE: usize = 2;

#[raw_tracepoint]
pub fn fault_start(ctx: RawTracePointContext) -> i32 {
    let (tgid, _) = current_task();
    if !is_traced(tgid) {
        return 0;
    }
    let address: u64 = ctx.arg(ARG_ADDRESS);
    if address & KERNEL_ADDRESS_BIT != 0 {
        return 0;
    }
    let error_code: u64 = ctx.arg(ARG_ERROR_CODE);
    let fault = FaultInFlight::start(now_ns(), address, error_code as u32);
    let Some(slot) = INFLIGHT.current_or_create() else {
        bump(Counter::InflightMapFull);
        return 0;
    };
    // A fault still in flight in this thread never reached its end (e.g. a bad address that
    // became SIGSEGV before handle_mm_fault): it is replaced, and counted as incomplete.
    if slot.in_flight() {
        bump(Counter::FaultsIncomplete);
    }
    *slot = fault;
    0
}
