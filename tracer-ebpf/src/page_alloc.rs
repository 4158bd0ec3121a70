//! Raw tracepoint `mm_page_alloc`: a page allocated by a thread that is in the middle of a
//! fault. A movable page is user data: the copy of a COW copy, or the new page of a first
//! touch.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use cowtrace_common::config::{frame_base, frame_number};

use crate::{config::setting, inflight::fault_in_flight, maps::FRAME_BASE, output::current_task};

/// `TP_PROTO(struct page *page, unsigned int order, gfp_t gfp_flags, int migratetype)`,
/// checked against BTF at start-up.
const ARG_PAGE: usize = 0;
const ARG_ORDER: usize = 1;
const ARG_MIGRATETYPE: usize = 3;

#[raw_tracepoint]
pub fn page_alloc(ctx: RawTracePointContext) -> i32 {
    // Fires for every allocation in the system: the in-flight lookup is the filter.
    let Some(fault) = fault_in_flight() else {
        if current_task().1 == setting(|c| &c.calibration_tid) {
            calibrate(&ctx);
        }
        return 0;
    };
    let migratetype: i32 = ctx.arg(ARG_MIGRATETYPE);
    let order: u32 = ctx.arg(ARG_ORDER);
    let page: u64 = ctx.arg(ARG_PAGE);
    let base = FRAME_BASE.get(frame_base::BASE).copied().unwrap_or(0);
    let pfn = frame_number(page, base, setting(|c| &c.struct_page_size));
    fault.on_page_alloc(
        pfn,
        order,
        migratetype as u32,
        setting(|c| &c.migrate_movable),
    );
    0
}

/// The tracer's calibration thread allocated a page: keep its `struct page *` for user space,
/// which knows its frame number (see `frame_base`). Only movable order-0 pages: the data page
/// of the tracer's own write fault, not the page table page the same fault may allocate.
#[inline(never)]
fn calibrate(ctx: &RawTracePointContext) {
    let migratetype: i32 = ctx.arg(ARG_MIGRATETYPE);
    let order: u32 = ctx.arg(ARG_ORDER);
    if migratetype as u32 != setting(|c| &c.migrate_movable) || order != 0 {
        return;
    }
    if let Some(slot) = FRAME_BASE.get_ptr_mut(frame_base::CALIBRATION_PAGE) {
        unsafe { *slot = ctx.arg(ARG_PAGE) };
    }
}
