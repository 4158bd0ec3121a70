//! `kmem:mm_page_alloc`: a page allocated by a thread that is in the middle of a fault. A
//! movable page is user data: the copy of a COW copy, or the new page of a first touch.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{config::setting, maps::INFLIGHT, output::current_task};

#[tracepoint]
pub fn page_alloc(ctx: TracePointContext) -> u32 {
    let (_, tid) = current_task();
    // Fires for every allocation in the system: the in-flight lookup is the filter.
    let Some(fault) = INFLIGHT.get_ptr_mut(&tid) else {
        return 0;
    };
    let migratetype =
        unsafe { ctx.read_at::<i32>(setting(|c| &c.alloc_migratetype) as usize) }.unwrap_or(-1);
    let order = unsafe { ctx.read_at::<u32>(setting(|c| &c.alloc_order) as usize) }.unwrap_or(0);
    let pfn = unsafe { ctx.read_at::<u64>(setting(|c| &c.alloc_pfn) as usize) }.unwrap_or(0);
    unsafe {
        (*fault).on_page_alloc(
            pfn,
            order,
            migratetype as u32,
            setting(|c| &c.migrate_movable),
        )
    };
    0
}
