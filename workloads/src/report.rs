//! The self-report a workload writes (`--report FILE`): what it did, what it expects the
//! tracer to see, and the kernel ground truth it read at its checkpoint.
//!
//! `fault-storm` writes a [`FaultStormReport`]: the same object with a `phases` array added
//! (the time of each phase, measured inside the workload).
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

    /// Write to a private file page not mapped yet: the page-cache page is copied into a new
    /// anonymous page (`do_cow_fault`).
    pub const FILE_PRIVATE_COPY: &str = "file_private_copy";
    /// Read of a file page found in the page cache.
    pub const FILE_MINOR: &str = "file_minor";
    /// Read of a file page that had to be read from disk.
    pub const FILE_MAJOR: &str = "file_major";
    /// Write to a shared mapping: the page is dirtied in place, never copied.
    pub const WRITE_SHARED: &str = "write_shared";

    /// The anonymous-memory kinds, which every workload states, in the order reports list
    /// them. Workloads on file mappings state some of the file kinds above as well.
    pub const ALL: [&str; 4] = [ANON_FIRST_TOUCH, ZERO_PAGE, COW_COPY, COW_REUSE];
}

/// Everything a workload says about one run. `Default` lets code that builds reports by
/// hand (tests) write `..Default::default()` and survive additive fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// How the child ended, e.g. `exit status 0`; for workloads with several children,
    /// each one the parent reaped, e.g. `child 1 (pid 812): exit status 0, child 2 (pid
    /// 815): exit status 0` (grandchildren are reaped by their parent, whose status says
    /// whether they ended well).
    pub child_exit: String,
    /// True when every check passed (pagemap check, child exit status 0). The workload
    /// exits non-zero exactly when this is false.
    pub ok: bool,
    /// What each process did to the region and when, in order (CLOCK_MONOTONIC). Empty in
    /// reports of workloads that do not record it (`fork-cow`).
    #[serde(default)]
    pub timeline: Vec<TimelineEvent>,
    /// The mmap workloads: each mapping, what the workload did to it and what the tracer must
    /// see in it. Empty for the fork workloads, whose region and processes say it all.
    #[serde(default)]
    pub mappings: Vec<MappingReport>,
}

/// One step of a workload: a process writing, reading, forking, exiting...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// [`ProcessReport::name`] of the process (or thread) that acted.
    pub process: String,
    pub pid: u32,
    pub tid: u32,
    /// What it did, e.g. `"write 331 pages"`, `"fork child 2"`, `"exit"`.
    pub action: String,
    /// Region pages the step accessed (0 for fork, exit, exec).
    pub pages: u64,
    /// CLOCK_MONOTONIC when the step began and ended.
    pub start_ns: u64,
    pub end_ns: u64,
}

/// What a process of the workload does in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The process that called `run`, and that forked the others.
    #[default]
    Parent,
    /// A process forked by the parent.
    Child,
    /// A process forked by a child.
    Grandchild,
    /// A process created by the parent with `vfork` (`CLONE_VM | CLONE_VFORK`): it runs in
    /// the parent's memory until it exits or execs.
    #[serde(rename = "vfork_child")]
    VforkChild,
    /// A thread of the parent (`CLONE_VM | CLONE_THREAD`): same memory, same pid, own tid.
    Thread,
}

/// One process of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// What the workload calls the process, e.g. `"parent"`, `"child 3"`, `"grandchild"`,
    /// `"thread 2"`; unique within the report. Empty in `fork-cow`'s older reports.
    #[serde(default)]
    pub name: String,
    /// Pid of the process that created this one (fork or vfork); `None` for the process
    /// that called `run`, and for threads, which belong to process `pid`.
    #[serde(default)]
    pub parent_pid: Option<u32>,
    /// CLOCK_MONOTONIC when `region_pfns` were read (for a process that exec'd: when its
    /// maps were checked); `None` for a process that exited before the checkpoint, whose
    /// `region_pfns` are empty and `taskstats` null.
    #[serde(default)]
    pub checkpoint_ns: Option<u64>,
    /// Expected region pages, at the checkpoint, whose frame this process shares with a
    /// relative, keyed `with_parent`, `with_children` or `with_siblings` (children and
    /// siblings: with at least one of them). A key is present only when such a relative
    /// maps the region at the checkpoint; `None` when the workload states no sharing
    /// (threads, one process).
    #[serde(default)]
    pub expected_shared_pages: Option<BTreeMap<String, u64>>,
    /// The same figures measured from the pagemap PFNs at the checkpoint.
    #[serde(default)]
    pub shared_pages: Option<BTreeMap<String, u64>>,
    /// Expected `region_exclusive_pages`, when the workload states it.
    #[serde(default)]
    pub expected_exclusive_pages: Option<u64>,
    /// Indices of the region pages whose frame at the checkpoint is a page-cache page
    /// (pagemap's "file page or shared anonymous" bit) rather than a private anonymous
    /// page: frames no allocation in the trace accounts for. Empty for anonymous regions.
    #[serde(default)]
    pub region_file_pages: Vec<u64>,
    /// Anything else about the process at the checkpoint, e.g. that it exited before it,
    /// or exec'd and no longer maps the region.
    #[serde(default)]
    pub note: Option<String>,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Expected `not_present_pages` (a child that never got the page, a page never touched).
    #[serde(default)]
    pub expected_not_present: u64,
    /// The pagemap views compared, e.g. `["parent", "child 1", "parent before fork"]`: the
    /// processes that map the region at the checkpoint, plus earlier snapshots. With several
    /// views, "shared" means the same frame in every view, "copied" present in every view
    /// with at least two different frames; with one view, every present page is "shared".
    /// Empty in `fork-cow`'s reports, whose views are parent and child.
    #[serde(default)]
    pub views: Vec<String>,
    /// All counts as predicted, nothing missing, nothing misplaced.
    pub ok: bool,
    /// A hint when the check could not be meaningful (e.g. PFNs hidden without root).
    pub note: Option<String>,
}

/// An expected count: exact, or bounds where the kernel's timing decides (readahead).
/// In JSON a number, or `{"at_least": 64, "at_most": 1008}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    Exactly(u64),
    Between { at_least: u64, at_most: u64 },
}

impl Expected {
    pub fn admits(self, count: u64) -> bool {
        match self {
            Expected::Exactly(expected) => count == expected,
            Expected::Between { at_least, at_most } => (at_least..=at_most).contains(&count),
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Exactly(count) => write!(f, "{count}"),
            Expected::Between { at_least, at_most } => write!(f, "{at_least}..={at_most}"),
        }
    }
}

/// One mapping of an mmap workload, touched by one thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingReport {
    /// Short name of its part in the workload, e.g. `random` or `shared`.
    pub label: String,
    /// What the workload did to it, e.g. `cold file, MADV_RANDOM: read 251 of its 503 pages`.
    pub description: String,
    /// How cowtrace names the mapping: the mapped file's path, `[anon]` or `[anon shared]`.
    pub name: String,
    pub pid: u32,
    /// The thread that touched it: the counts below are its faults in the mapping.
    pub tid: u32,
    /// Address of the first byte, and length in pages.
    pub start: u64,
    pub pages: u64,
    /// Faults of each kind (keys from [`fault_kind`], the kinds cowtrace reports once it knows
    /// the mapping) in `[start, start + pages × page_size)`; kinds not listed are not checked.
    pub faults: BTreeMap<String, Expected>,
    /// All faults in the mapping, whatever their kind.
    pub total_faults: Expected,
    /// Pages read into the page cache by those faults, when predictable.
    pub cache_fill_pages: Option<Expected>,
    /// Pages in the ranges fault-around scanned in those faults, when predictable.
    pub fault_around_window_pages: Option<Expected>,
    /// Faults that allocated a PMD-sized (2 MiB) huge page, when predictable.
    pub huge_page_faults: Option<Expected>,
    /// What the workload measured itself (pagemap, mincore, smaps) against its arithmetic.
    pub ground_truth: Vec<Measurement>,
}

/// A figure a workload measured from the kernel, with what its arithmetic predicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub what: String,
    pub expected: u64,
    pub measured: u64,
}

impl Measurement {
    pub fn new(what: &str, expected: u64, measured: u64) -> Measurement {
        Measurement {
            what: what.to_string(),
            expected,
            measured,
        }
    }

    pub fn ok(&self) -> bool {
        self.expected == self.measured
    }
}

impl WorkloadReport {
    /// The report of a one-process workload that states what it expects per mapping; the
    /// fork-specific fields are empty (the region is the first mapping).
    pub fn of_mappings(
        workload: &str,
        page_size: u64,
        pid: u32,
        tid: u32,
        mappings: Vec<MappingReport>,
    ) -> WorkloadReport {
        let (region_start, region_pages) = mappings
            .first()
            .map_or((0, 0), |mapping| (mapping.start, mapping.pages));
        let ok = mappings
            .iter()
            .flat_map(|mapping| &mapping.ground_truth)
            .all(Measurement::ok);
        WorkloadReport {
            schema_version: SCHEMA_VERSION,
            workload: workload.to_string(),
            page_size,
            region_start,
            region_pages,
            processes: vec![ProcessReport::of_task(Role::Parent, pid, tid)],
            pagemap_check: PagemapCheck::not_applicable("one process, no fork: see `mappings`"),
            child_exit: "no child".to_string(),
            ok,
            timeline: Vec::new(),
            mappings,
        }
    }
}

impl ProcessReport {
    /// A task with nothing expected in the region and no ground truth read.
    pub fn of_task(role: Role, pid: u32, tid: u32) -> ProcessReport {
        ProcessReport {
            role,
            pid,
            tid,
            expected: BTreeMap::new(),
            taskstats_baseline: None,
            taskstats: None,
            taskstats_error: Some("not read by this workload".to_string()),
            region_pfns: Vec::new(),
            region_exclusive_pages: 0,
            name: String::new(),
            parent_pid: None,
            checkpoint_ns: None,
            expected_shared_pages: None,
            shared_pages: None,
            expected_exclusive_pages: None,
            region_file_pages: Vec::new(),
            note: None,
        }
    }
}

impl PagemapCheck {
    /// For a workload without a fork: nothing shared or copied to compare.
    pub fn not_applicable(note: &str) -> PagemapCheck {
        PagemapCheck {
            shared_pages: 0,
            copied_pages: 0,
            not_present_pages: 0,
            misplaced_pages: 0,
            expected_shared: 0,
            expected_copied: 0,
            expected_not_present: 0,
            views: Vec::new(),
            ok: true,
            note: Some(note.to_string()),
        }
    }
}

/// The report of `fault-storm`: the common report (so `cowtrace run fault-storm` checks it
/// like any other) plus the time of each phase, measured inside the workload. Readers of
/// [`WorkloadReport`] ignore the extra field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultStormReport {
    #[serde(flatten)]
    pub common: WorkloadReport,
    /// The timed phases in the order they ran: first touch, COW copy, COW reuse.
    pub phases: Vec<PhaseTiming>,
}

/// One phase of `fault-storm`: one process writing every page of the region once, each write
/// taking one fault of the same kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// The kind every write of the phase takes (a [`fault_kind`] name).
    pub kind: String,
    /// The process that wrote.
    pub role: Role,
    /// Faults taken inside the timed window: one per page written.
    pub faults: u64,
    /// CLOCK_MONOTONIC just before the first write and just after the last.
    pub start_ns: u64,
    pub end_ns: u64,
    /// `(end_ns - start_ns) / faults`: the cost of one fault with everything watching it.
    pub ns_per_fault: f64,
}

impl PhaseTiming {
    pub fn new(kind: &str, role: Role, faults: u64, start_ns: u64, end_ns: u64) -> PhaseTiming {
        PhaseTiming {
            kind: kind.to_string(),
            role,
            faults,
            start_ns,
            end_ns,
            ns_per_fault: end_ns.saturating_sub(start_ns) as f64 / faults.max(1) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_are_numbers_or_bounds() {
        let exact: Expected = serde_json::from_str("251").unwrap();
        assert_eq!(exact, Expected::Exactly(251));
        assert!(exact.admits(251) && !exact.admits(250));
        let bounds: Expected =
            serde_json::from_str(r#"{"at_least": 64, "at_most": 1008}"#).unwrap();
        assert!(bounds.admits(64) && bounds.admits(1008) && !bounds.admits(1009));
        assert_eq!(bounds.to_string(), "64..=1008");
        assert_eq!(serde_json::to_string(&exact).unwrap(), "251");
    }

    #[test]
    fn a_mapping_report_is_ok_when_its_ground_truth_is() {
        let mapping = |measured| MappingReport {
            label: "random".into(),
            description: String::new(),
            name: "/var/tmp/f".into(),
            pid: 1,
            tid: 1,
            start: 0x1000,
            pages: 3,
            faults: BTreeMap::new(),
            total_faults: Expected::Exactly(3),
            cache_fill_pages: None,
            fault_around_window_pages: None,
            huge_page_faults: None,
            ground_truth: vec![Measurement::new("pages present", 3, measured)],
        };
        let report = WorkloadReport::of_mappings("mmap-test", 4096, 1, 1, vec![mapping(3)]);
        assert!(report.ok);
        assert_eq!((report.region_start, report.region_pages), (0x1000, 3));
        let text = serde_json::to_string(&report).unwrap();
        let back: WorkloadReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        assert!(!WorkloadReport::of_mappings("mmap-test", 4096, 1, 1, vec![mapping(2)]).ok);
    }

    #[test]
    fn role_serializes_lowercase() {
        assert_eq!(serde_json::to_string(&Role::Parent).unwrap(), "\"parent\"");
        assert_eq!(serde_json::to_string(&Role::Child).unwrap(), "\"child\"");
        assert_eq!(
            serde_json::to_string(&Role::Grandchild).unwrap(),
            "\"grandchild\""
        );
        assert_eq!(
            serde_json::to_string(&Role::VforkChild).unwrap(),
            "\"vfork_child\""
        );
        assert_eq!(serde_json::to_string(&Role::Thread).unwrap(), "\"thread\"");
    }

    /// A report written before the additive fields existed (fork-cow's, schema 1) still
    /// reads, with the new fields empty.
    #[test]
    fn reports_without_the_newer_fields_still_parse() {
        let json = r#"{
            "schema_version": 1, "workload": "fork-cow", "page_size": 4096,
            "region_start": 4096, "region_pages": 1,
            "processes": [{"role": "parent", "pid": 1, "tid": 1, "expected": {"cow_copy": 0},
                           "taskstats_baseline": null, "taskstats": null,
                           "taskstats_error": "off", "region_pfns": [7],
                           "region_exclusive_pages": 1}],
            "pagemap_check": {"shared_pages": 1, "copied_pages": 0, "not_present_pages": 0,
                              "misplaced_pages": 0, "expected_shared": 1, "expected_copied": 0,
                              "ok": true, "note": null},
            "child_exit": "exit status 0", "ok": true
        }"#;
        let report: WorkloadReport = serde_json::from_str(json).unwrap();
        let process = &report.processes[0];
        assert_eq!(process.name, "");
        assert_eq!(process.parent_pid, None);
        assert_eq!(process.checkpoint_ns, None);
        assert!(process.expected_shared_pages.is_none() && process.region_file_pages.is_empty());
        assert_eq!(report.pagemap_check.expected_not_present, 0);
        assert!(report.pagemap_check.views.is_empty() && report.timeline.is_empty());
    }

    #[test]
    fn phase_timing_divides_by_the_faults() {
        let phase = PhaseTiming::new(fault_kind::COW_COPY, Role::Child, 4, 1_000, 3_000);
        assert_eq!(phase.ns_per_fault, 500.0);
        // A clock that went nowhere, or no faults, gives zero rather than a division by zero.
        assert_eq!(
            PhaseTiming::new("x", Role::Parent, 0, 5, 5).ns_per_fault,
            0.0
        );
    }

    #[test]
    fn fault_storm_report_reads_as_a_plain_workload_report() {
        let common = WorkloadReport {
            schema_version: SCHEMA_VERSION,
            workload: "fault-storm".into(),
            page_size: 4096,
            region_pages: 3,
            ok: true,
            ..Default::default()
        };
        let storm = FaultStormReport {
            common: common.clone(),
            phases: vec![PhaseTiming::new(
                fault_kind::ANON_FIRST_TOUCH,
                Role::Parent,
                3,
                0,
                30,
            )],
        };
        let json = serde_json::to_string(&storm).unwrap();
        // `cowtrace run` reads every report as a WorkloadReport.
        assert_eq!(
            serde_json::from_str::<WorkloadReport>(&json).unwrap(),
            common
        );
        assert_eq!(
            serde_json::from_str::<FaultStormReport>(&json).unwrap(),
            storm
        );
    }

    #[test]
    fn fault_kind_names_are_distinct() {
        let mut names = fault_kind::ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), fault_kind::ALL.len());
    }
}
