//! `filemap:mm_filemap_fault`: the fault in flight went through the page cache, so it is a
//! file fault.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::inflight::fault_in_flight;

#[tracepoint]
pub fn filemap_fault(_ctx: TracePointContext) -> u32 {
    if let Some(fault) = fault_in_flight() {
        fault.on_filemap();
    }
    0
}
