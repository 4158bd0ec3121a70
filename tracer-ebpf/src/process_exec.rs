//! `sched:sched_process_exec`: a traced process replaced its memory image.

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use cowtrace_common::{ExecRecord, RecordType};

use crate::{
    config::setting,
    output::{Wakeup, current_task, emit, header, is_traced, now_ns},
};

#[tracepoint]
pub fn process_exec(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_task();
    if !is_traced(tgid) {
        return 0;
    }
    let old_tid = unsafe { ctx.read_at::<i32>(setting(|c| &c.exec_old_pid) as usize) }
        .map(|t| t as u32)
        .unwrap_or(tid);
    emit(
        &ExecRecord {
            header: header(RecordType::Exec, tgid, tid, now_ns()),
            old_tid,
            reserved: 0,
            // The exec has already set the new command name.
            comm: bpf_get_current_comm().unwrap_or_default(),
        },
        Wakeup::Now,
    );
    0
}
