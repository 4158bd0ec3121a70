//! `filemap:mm_filemap_fault`: the fault in flight went through the page cache, so it is a
//! file fault.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{maps::INFLIGHT, output::current_task};

#[tracepoint]
pub fn filemap_fault(_ctx: TracePointContext) -> u32 {
    let (_, tid) = current_task();
    if let Some(fault) = INFLIGHT.get_ptr_mut(&tid) {
        unsafe { (*fault).on_filemap() };
    }
    0
}
