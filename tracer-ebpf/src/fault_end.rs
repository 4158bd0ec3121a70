//! Fault end: the raw tracepoint `count_memcg_events`. `handle_mm_fault` counts `PGFAULT` when a fault
//! completes (not when it will be retried), and `filemap_fault` counts `PGMAJFAULT` in the
//! middle of a fault that needs I/O. The completed fault becomes one record.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use cowtrace_common::{FaultInFlight, RecordType};

use crate::{
    config::setting,
    inflight::fault_in_flight,
    output::{Wakeup, current_task, emit, header, is_traced, now_ns},
};

/// `TP_PROTO(struct mem_cgroup *memcg, int item, unsigned long val)`, checked against BTF at
/// start-up.
const ARG_ITEM: usize = 1;

#[raw_tracepoint]
pub fn fault_end(ctx: RawTracePointContext) -> i32 {
    let item: i32 = ctx.arg(ARG_ITEM);
    let item = item as u32;
    let is_end = item == setting(|c| &c.item_pgfault);
    if !is_end && item != setting(|c| &c.item_pgmajfault) {
        return 0;
    }
    let (tgid, tid) = current_task();
    let Some(fault) = fault_in_flight() else {
        // PGFAULT with no fault start in this thread: get_user_pages faulted a page in.
        if is_end && is_traced(tgid) {
            let header = header(RecordType::Fault, tgid, tid, now_ns());
            emit(
                &FaultInFlight::finish_without_start(header),
                Wakeup::WhenFilling,
            );
        }
        return 0;
    };
    if !is_end {
        fault.on_major();
        return 0;
    }
    let record = fault.finish(header(RecordType::Fault, tgid, tid, now_ns()));
    fault.end();
    emit(&record, Wakeup::WhenFilling);
    0
}
