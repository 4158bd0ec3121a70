//! `syscalls:sys_enter_*` of the memory-map and fork syscalls (one program, attached to each):
//! remembers the arguments until the syscall returns.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use cowtrace_common::config::SyscallInFlight;

use crate::{
    config::setting,
    maps::{SYSCALL_ARG_COUNTS, SYSCALL_INFLIGHT},
    output::{current_task, is_traced, now_ns},
};

const MAX_ARGS: usize = 6;

#[tracepoint]
pub fn syscall_enter(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_task();
    if !is_traced(tgid) {
        return 0;
    }
    let Ok(nr) = (unsafe { ctx.read_at::<i32>(setting(|c| &c.syscall_nr) as usize) }) else {
        return 0;
    };
    let nr = nr as u32;
    let Some(&arg_count) = (unsafe { SYSCALL_ARG_COUNTS.get(&nr) }) else {
        return 0;
    };
    let mut call = SyscallInFlight {
        enter_ns: now_ns(),
        args: [0; MAX_ARGS],
        syscall_nr: nr,
        arg_count,
    };
    let first_arg = setting(|c| &c.syscall_args) as usize;
    for (index, arg) in call.args.iter_mut().enumerate() {
        // Only the syscall's own arguments: the record holds nothing past them.
        if index as u32 >= arg_count {
            break;
        }
        *arg = unsafe { ctx.read_at::<u64>(first_arg + index * 8) }.unwrap_or(0);
    }
    let _ = SYSCALL_INFLIGHT.insert(&tid, &call, 0);
    0
}
