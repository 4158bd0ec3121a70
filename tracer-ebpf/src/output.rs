//! What every program shares: the traced-process filter, counters, record output.

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
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

/// When a record should wake the reader.
#[derive(Clone, Copy)]
pub enum Wakeup {
    /// At once: rare records (forks, execs, exits, syscalls) whose processing reads /proc
    /// while the process still looks as the record says.
    Now,
    /// Only once the ring buffer is filling up: fault records, which come by the million. The
    /// wakeup is an interrupt on the faulting CPU; the reader's timer drains the rest.
    WhenFilling,
}

/// Writes one record to the ring buffer, counting it as produced, and as dropped when the ring
/// buffer is full: user space checks received + dropped = produced.
#[inline(always)]
pub fn emit<T: Copy + 'static>(record: &T, wakeup: Wakeup) {
    bump(Counter::RecordsProduced);
    let flags = match wakeup {
        Wakeup::Now => 0,
        Wakeup::WhenFilling => {
            if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= setting(|c| &c.wakeup_bytes) as u64 {
                BPF_RB_FORCE_WAKEUP as u64
            } else {
                BPF_RB_NO_WAKEUP as u64
            }
        }
    };
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(*record);
            entry.submit(flags);
        }
        None => bump(Counter::RecordsDropped),
    }
}
