//! `syscalls:sys_exit_*` of the memory-map and fork syscalls: one record with the arguments,
//! the result and the latency. In a fork's child the syscall "returns" without having entered:
//! nothing is recorded there, the parent's record carries the fork's cost.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use cowtrace_common::{RecordType, SyscallRecord};

use crate::{
    config::setting,
    maps::SYSCALL_INFLIGHT,
    output::{Wakeup, current_task, emit, header, now_ns},
};

#[tracepoint]
pub fn syscall_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_task();
    // Only threads that entered a recorded syscall have state: that lookup is the filter.
    let Some(call) = (unsafe { SYSCALL_INFLIGHT.get(&tid) }).copied() else {
        return 0;
    };
    let _ = SYSCALL_INFLIGHT.remove(&tid);
    let ret = unsafe { ctx.read_at::<i64>(setting(|c| &c.syscall_ret) as usize) }.unwrap_or(0);
    let now = now_ns();
    emit(
        &SyscallRecord {
            header: header(RecordType::Syscall, tgid, tid, now),
            args: call.args,
            ret,
            latency_ns: now.saturating_sub(call.enter_ns),
            syscall_nr: call.syscall_nr,
            arg_count: call.arg_count,
        },
        Wakeup::Now,
    );
    0
}
