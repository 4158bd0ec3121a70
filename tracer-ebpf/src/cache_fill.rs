//! `filemap:mm_filemap_add_to_page_cache`: a page entered the page cache while a fault was in
//! flight in this thread, so the fault had to read it: a major fault even where the kernel's
//! own accounting (`PGMAJFAULT`) does not say so, as with readahead.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{maps::INFLIGHT, output::current_task};

#[tracepoint]
pub fn cache_fill(_ctx: TracePointContext) -> u32 {
    let (_, tid) = current_task();
    if let Some(fault) = INFLIGHT.get_ptr_mut(&tid) {
        unsafe { (*fault).on_cache_fill() };
    }
    0
}
