//! The fault the current thread is in the middle of (see `maps::INFLIGHT`).

use cowtrace_common::FaultInFlight;

use crate::maps::INFLIGHT;

/// The current thread's fault, if one is in flight. Fast for the threads of every other
/// process too: a task that never faulted under cowtrace has no storage at all.
#[inline(always)]
pub fn fault_in_flight() -> Option<&'static mut FaultInFlight> {
    INFLIGHT.current().filter(|fault| fault.in_flight())
}
