//! `sched:sched_process_exit`: a thread exits. A fault it left in flight is incomplete; when
//! the last thread goes, the process leaves the traced set (its pid may be reused).

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use cowtrace_common::{Counter, ExitRecord, RecordType, config::OFFSET_ABSENT};

use crate::{
    config::setting,
    inflight::fault_in_flight,
    maps::TRACED,
    output::{Wakeup, bump, current_task, emit, header, is_traced, now_ns},
};

#[tracepoint]
pub fn process_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_task();
    // The kernel frees the thread's slot with the thread.
    if let Some(fault) = fault_in_flight() {
        fault.end();
        bump(Counter::FaultsIncomplete);
    }
    if !is_traced(tgid) {
        return 0;
    }
    let offset = setting(|c| &c.exit_group_dead);
    let group_dead = if offset == OFFSET_ABSENT {
        // Older kernels lack the field: the leader's exit is the best available sign.
        tid == tgid
    } else {
        unsafe { ctx.read_at::<u8>(offset as usize) }.unwrap_or(0) != 0
    };
    emit(
        &ExitRecord {
            header: header(RecordType::Exit, tgid, tid, now_ns()),
            group_dead: group_dead as u32,
            reserved: 0,
            comm: bpf_get_current_comm().unwrap_or_default(),
        },
        Wakeup::Now,
    );
    if group_dead {
        let _ = TRACED.remove(&tgid);
    }
    0
}
