//! `task:task_newtask`: a traced task created a task. It runs in the parent before the child
//! is first scheduled, so adding the child to the traced set here misses none of its faults.
//! A thread (CLONE_THREAD) belongs to a traced process already.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use aya_log_ebpf::warn;
use cowtrace_common::{Counter, clone_flags::CLONE_THREAD};

use crate::{
    config::setting,
    maps::{PENDING_CLONE, TRACED},
    output::{bump, current_task, is_traced},
};

#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_task();
    if !is_traced(tgid) {
        return 0;
    }
    let Ok(child_tid) = (unsafe { ctx.read_at::<i32>(setting(|c| &c.newtask_pid) as usize) })
    else {
        return 0;
    };
    let child_tid = child_tid as u32;
    let flags =
        unsafe { ctx.read_at::<u64>(setting(|c| &c.newtask_clone_flags) as usize) }.unwrap_or(0);
    if flags & CLONE_THREAD == 0
        && setting(|c| &c.trace_all) == 0
        && TRACED.insert(&child_tid, &1, 0).is_err()
    {
        bump(Counter::TracedSetFull);
        warn!(
            &ctx,
            "traced set full: child {} of traced process {} is not traced", child_tid, tgid
        );
    }
    // sched_process_fork, which follows, reports the fork with these flags.
    let _ = PENDING_CLONE.insert(&child_tid, &flags, 0);
    0
}
