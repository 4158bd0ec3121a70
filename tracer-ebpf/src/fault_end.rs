//! Fault end: `memcg:count_memcg_events`. `handle_mm_fault` counts `PGFAULT` when a fault
//! completes (not when it will be retried), and `filemap_fault` counts `PGMAJFAULT` in the
//! middle of a fault that needs I/O. The completed fault becomes one record.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use cowtrace_common::{FaultInFlight, RecordType};

use crate::{
    config::setting,
    maps::INFLIGHT,
    output::{current_task, emit, header, is_traced, now_ns},
};

#[tracepoint]
pub fn fault_end(ctx: TracePointContext) -> u32 {
    let Ok(item) = (unsafe { ctx.read_at::<i32>(setting(|c| &c.memcg_item) as usize) }) else {
        return 0;
    };
    let item = item as u32;
    let is_end = item == setting(|c| &c.item_pgfault);
    if !is_end && item != setting(|c| &c.item_pgmajfault) {
        return 0;
    }
    let (tgid, tid) = current_task();
    let Some(fault) = INFLIGHT.get_ptr_mut(&tid) else {
        // PGFAULT with no fault start in this thread: get_user_pages faulted a page in.
        if is_end && is_traced(tgid) {
            let header = header(RecordType::Fault, tgid, tid, now_ns());
            emit(&FaultInFlight::finish_without_start(header));
        }
        return 0;
    };
    if !is_end {
        unsafe { (*fault).on_major() };
        return 0;
    }
    let record = unsafe { (*fault).finish(header(RecordType::Fault, tgid, tid, now_ns())) };
    let _ = INFLIGHT.remove(&tid);
    emit(&record);
    0
}
