//! Fault start: `exceptions:page_fault_user` and `exceptions:page_fault_kernel` (the same
//! program attached to both; the error code's USER bit tells them apart).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use cowtrace_common::{Counter, FaultInFlight};

use crate::{
    config::setting,
    maps::INFLIGHT,
    output::{bump, current_task, is_traced, now_ns},
};

/// Kernel addresses on x86-64 have the top bit set; only faults on user addresses matter.
const KERNEL_ADDRESS_BIT: u64 = 1 << 63;

#[tracepoint]
pub fn fault_start(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_task();
    if !is_traced(tgid) {
        return 0;
    }
    let Ok(address) = (unsafe { ctx.read_at::<u64>(setting(|c| &c.fault_address) as usize) })
    else {
        return 0;
    };
    if address & KERNEL_ADDRESS_BIT != 0 {
        return 0;
    }
    let error_code =
        unsafe { ctx.read_at::<u64>(setting(|c| &c.fault_error_code) as usize) }.unwrap_or(0);
    let fault = FaultInFlight::start(now_ns(), address, error_code as u32);
    // A fault still in flight in this thread never reached its end (e.g. a bad address that
    // became SIGSEGV before handle_mm_fault): it is replaced, and counted as incomplete.
    if unsafe { INFLIGHT.get(&tid) }.is_some() {
        bump(Counter::FaultsIncomplete);
    }
    if INFLIGHT.insert(&tid, &fault, 0).is_err() {
        bump(Counter::InflightMapFull);
    }
    0
}
