//! The self-report a workload writes (`--report FILE`): what it did, what it expects the
//! tracer to see, and the kernel ground truth it read at its checkpoint.
//!
//! When delay accounting is off, `taskstats` is `null` and `taskstats_error` says
//! `"delay accounting is off (kernel.task_delayacct = 0): ..."`.
//!
//! Example (`fork-cow`, delay accounting on, PFN lists shortened):
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "workload": "fork-cow",
//!   "page_size": 4096,
//!   "region_start": 140234567680000,
//!   "region_pages": 1009,
//!   "processes": [
//!     {
//!       "role": "parent", "pid": 123, "tid": 123,
//!       "expected": {"anon_first_touch": 1009, "cow_copy": 251, "cow_reuse": 257, "zero_page": 0},
//!       "taskstats_baseline": {"version": 16, "wpcopy_count": 9, "wpcopy_delay_total_ns": 20480,
//!                              "minor_faults": 120, "major_faults": 0, "measured_at_ns": 5120000000},
//!       "taskstats": {"version": 16, "wpcopy_count": 265, "wpcopy_delay_total_ns": 812345,
//!                     "minor_faults": 1301, "major_faults": 0, "measured_at_ns": 5123456789},
//!       "taskstats_error": null,
//!       "region_pfns": [1234567, "..."],
//!       "region_exclusive_pages": 754
//!     },
//!     {
//!       "role": "child", "pid": 124, "tid": 124,
//!       "expected": {"anon_first_touch": 0, "cow_copy": 503, "cow_reuse": 0, "zero_page": 0},
//!       "taskstats_baseline": null,
//!       "taskstats": {"version": 16, "wpcopy_count": 508, "wpcopy_delay_total_ns": 1002078,
//!                     "minor_faults": 517, "major_faults": 0, "measured_at_ns": 5123500000},
//!       "taskstats_error": null,
//!       "region_pfns": ["..."],
//!       "region_exclusive_pages": 754
//!     }
//!   ],
//!   "pagemap_check": {"shared_pages": 255, "copied_pages": 754, "not_present_pages": 0,
//!                     "misplaced_pages": 0, "expected_shared": 255, "expected_copied": 754,
//!                     "ok": true, "note": null},
//!   "child_exit": "exit status 0",
//!   "ok": true
//! }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of this schema; bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// Names of the fault kinds used as keys of [`ProcessReport::expected`].
pub mod fault_kind {
    /// Write to a never-touched anonymous page: a fresh zeroed page is allocated.
    pub const ANON_FIRST_TOUCH: &str = "anon_first_touch";
    /// Read of a never-touched anonymous page: the shared zero page is mapped.
    pub const ZERO_PAGE: &str = "zero_page";
    /// Write to a page shared copy-on-write with another process: the page is copied.
    pub const COW_COPY: &str = "cow_copy";
    /// Write to a copy-on-write page this process is the last mapper of: the page is
    /// made writable in place, no copy.
    pub const COW_REUSE: &str = "cow_reuse";

    /// Every kind, in the order reports list them.
    pub const ALL: [&str; 4] = [ANON_FIRST_TOUCH, ZERO_PAGE, COW_COPY, COW_REUSE];
}

/// Everything a workload says about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The workload's name, as given to `run`.
    pub workload: String,
    /// Base page size in bytes.
    pub page_size: u64,
    /// Virtual address of the first byte of the workload's region (page aligned); the
    /// region is at the same address in every process of the run (fork keeps it).
    pub region_start: u64,
    /// Length of the region in pages.
    pub region_pages: u64,
    /// Each process of the run, the one that called `run` (role `parent`) first.
    pub processes: Vec<ProcessReport>,
    /// The workload's own arithmetic, checked against `/proc/PID/pagemap`.
    pub pagemap_check: PagemapCheck,
    /// How the child ended, e.g. `exit status 0`.
    pub child_exit: String,
    /// True when every check passed (pagemap check, child exit status 0). The workload
    /// exits non-zero exactly when this is false.
    pub ok: bool,
}

/// What a process of the workload does in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The process that called `run`, and that forked the others.
    Parent,
    /// A process forked by the parent.
    Child,
}

/// One process of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub role: Role,
    /// Process id (thread group id).
    pub pid: u32,
    /// The thread that performed the workload's writes (equal to `pid` unless the
    /// workload ran on a secondary thread, as under a test harness). Faults and taskstats
    /// are per thread.
    pub tid: u32,
    /// Expected number of faults of each kind (keys from [`fault_kind`]) whose address lies
    /// inside the region and that this thread takes. Faults elsewhere (stack, libc, heap)
    /// are not counted here.
    pub expected: BTreeMap<String, u64>,
    /// Delay-accounting counters of `tid` when the workload started (before its region was
    /// mapped). `None` for a forked child, whose counters start at zero, or when
    /// unavailable. Subtract from `taskstats` for the workload's own share.
    pub taskstats_baseline: Option<TaskstatsSample>,
    /// Delay-accounting counters of `tid` at the checkpoint; `None` when they could not be
    /// read or cannot be trusted (see `taskstats_error`).
    pub taskstats: Option<TaskstatsSample>,
    /// Why `taskstats` is `None`: delay accounting off, or on but switched on after the
    /// task was created (such a task is never counted), or the query failed.
    pub taskstats_error: Option<String>,
    /// PFN behind each region page in this process at the checkpoint, from
    /// `/proc/PID/pagemap`; 0 for a page not present (or when PFNs are hidden, non-root).
    pub region_pfns: Vec<u64>,
    /// Region pages whose pagemap entry has the "exclusively mapped" bit set at the
    /// checkpoint.
    pub region_exclusive_pages: u64,
}

/// Taskstats of one thread, read over netlink at the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskstatsSample {
    /// `struct taskstats` version the kernel replied with.
    pub version: u16,
    /// Copy-on-write copies (`wp_page_copy`) the thread has made since it started,
    /// anywhere in its address space, including before the workload's region existed.
    pub wpcopy_count: u64,
    /// Total time spent in those copies, in nanoseconds.
    pub wpcopy_delay_total_ns: u64,
    /// The thread's minor page faults (all kinds, all addresses).
    pub minor_faults: u64,
    /// The thread's major page faults.
    pub major_faults: u64,
    /// CLOCK_MONOTONIC (the clock of `bpf_ktime_get_ns`) right after the query returned:
    /// events the tracer saw before this instant are included in the counts.
    pub measured_at_ns: u64,
}

/// Outcome of comparing parent's and child's pagemaps over the region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagemapCheck {
    /// Pages present in both with the same PFN.
    pub shared_pages: u64,
    /// Pages present in both with different PFNs.
    pub copied_pages: u64,
    /// Pages missing from either process (neither shared nor copied).
    pub not_present_pages: u64,
    /// Pages whose shared/copied state differs from what the workload predicts for that
    /// page (counts can agree while the wrong pages were copied).
    pub misplaced_pages: u64,
    pub expected_shared: u64,
    pub expected_copied: u64,
    /// All counts as predicted, nothing missing, nothing misplaced.
    pub ok: bool,
    /// A hint when the check could not be meaningful (e.g. PFNs hidden without root).
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_serializes_lowercase() {
        assert_eq!(serde_json::to_string(&Role::Parent).unwrap(), "\"parent\"");
        assert_eq!(serde_json::to_string(&Role::Child).unwrap(), "\"child\"");
    }

    #[test]
    fn fault_kind_names_are_distinct() {
        let mut names = fault_kind::ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), fault_kind::ALL.len());
    }
}
