//! `sched:sched_process_fork`: the clone of a traced task completed; report it.

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use cowtrace_common::{ForkRecord, RecordType, clone_flags::CLONE_THREAD};

use crate::{
    config::setting,
    maps::PENDING_CLONE,
    output::{Wakeup, current_task, emit, header, is_traced, now_ns},
};

#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_task();
    if !is_traced(tgid) {
        return 0;
    }
    let Ok(child_tid) = (unsafe { ctx.read_at::<i32>(setting(|c| &c.fork_child_pid) as usize) })
    else {
        return 0;
    };
    let child_tid = child_tid as u32;
    let clone_flags = unsafe { PENDING_CLONE.get(&child_tid) }
        .copied()
        .unwrap_or(0);
    let _ = PENDING_CLONE.remove(&child_tid);
    let child_pid = if clone_flags & CLONE_THREAD != 0 {
        tgid
    } else {
        child_tid
    };
    emit(
        &ForkRecord {
            header: header(RecordType::Fork, tgid, tid, now_ns()),
            clone_flags,
            child_pid,
            child_tid,
            comm: bpf_get_current_comm().unwrap_or_default(),
        },
        Wakeup::Now,
    );
    0
}
