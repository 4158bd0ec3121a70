//! What every program shares: the traced-process filter, counters, record output.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns};
use cowtrace_common::{Counter, RecordHeader, RecordType};

use crate::{
    config::setting,
    maps::{COUNTERS, EVENTS, TRACED},
};

/// The current task as (process id, thread id).
#[inline(always)]
pub fn current_task() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

/// Whether a process is traced: the first check of every program.
#[inline(always)]
pub fn is_traced(tgid: u32) -> bool {
    if setting(|c| &c.trace_all) != 0 {
        return tgid != setting(|c| &c.tracer_tgid);
    }
    unsafe { TRACED.get(&tgid).is_some() }
}

#[inline(always)]
pub fn bump(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // Per-CPU slot, and tracepoint programs never nest on a CPU (the kernel skips a
        // program that would run while another runs there), so a plain add loses nothing.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn now_ns() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
pub fn header(record_type: RecordType, tgid: u32, tid: u32, time_ns: u64) -> RecordHeader {
    RecordHeader {
        record_type: record_type as u32,
        cpu: unsafe { bpf_get_smp_processor_id() },
        pid: tgid,
        tid,
        time_ns,
    }
}

/// Writes one record to the ring buffer, counting it as produced, and as dropped when the ring
/// buffer is full: user space checks received + dropped = produced.
#[inline(always)]
pub fn emit<T: Copy + 'static>(record: &T) {
    bump(Counter::RecordsProduced);
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(*record);
            entry.submit(0);
        }
        None => bump(Counter::RecordsDropped),
    }
}
