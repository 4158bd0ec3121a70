//! `filemap:mm_filemap_add_to_page_cache`: a folio entered the page cache while a fault was in
//! flight in this thread, so the fault had to read it: its own page (a major fault) or, as
//! readahead, its neighbours. The folio's pages are counted: the bytes the fault read.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use cowtrace_common::config::OFFSET_ABSENT;

use crate::{config::setting, inflight::fault_in_flight};

#[tracepoint]
pub fn cache_fill(ctx: TracePointContext) -> u32 {
    let Some(fault) = fault_in_flight() else {
        return 0;
    };
    let offset = setting(|c| &c.cache_fill_order);
    // Kernels without the field add single pages.
    let order = if offset == OFFSET_ABSENT {
        0
    } else {
        unsafe { ctx.read_at::<u8>(offset as usize) }.unwrap_or(0)
    };
    fault.on_cache_fill(order as u32);
    0
}
