//! `fork-cow`: first-touch faults, then copy-on-write copies and reuses on both sides of a
//! fork, in counts that are distinct primes (1009, 503, 257, 251), so off-by-one errors and
//! swapped kinds show.
//!
//! 1. The parent maps [`PLAN`]`.region_pages` anonymous pages (THP off) and writes each once:
//!    one first-touch fault per page.
//! 2. It forks. The child writes `child_writes`: every page is still mapped by both, so each
//!    write copies. The child then reports and blocks.
//! 3. The parent writes `parent_writes`. Where the child already wrote, the child has its own
//!    copy and the parent is the last mapper of the original: the kernel reuses the page.
//!    Elsewhere the page is still shared with the live child: it is copied.
//! 4. Checkpoint, child still alive: pagemap and taskstats of both; the pagemap must show
//!    different PFNs exactly where either process wrote.
//! 5. The parent releases and reaps the child, writes the report.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::oracle::pagemap::{self, PageEntry};
use crate::process::BlockedChild;
use crate::report::{
    PagemapCheck, ProcessReport, Role, SCHEMA_VERSION, TaskstatsSample, WorkloadReport, fault_kind,
};
use crate::sys::{self, AnonRegion};

/// The summary spells out the plan's numbers (a `const` string cannot be formatted); a test
/// keeps it equal to [`Plan::summary`].
pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "fork-cow",
    summary: "parent touches 1009 pages and forks; child writes [0,503) (503 COW copies), \
              then parent writes [246,754) (257 COW reuses, 251 COW copies); 255 stay shared",
};

/// What the workload does to its region. Everything it expects is derived from this.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    region_pages: usize,
    /// Pages the child writes right after the fork.
    child_writes: Range<usize>,
    /// Pages the parent writes after the child has written its pages.
    parent_writes: Range<usize>,
}

/// Prime sizes: 1009 pages, 503 child writes, 257 reuses, 251 parent copies.
const PLAN: Plan = Plan {
    region_pages: 1009,
    child_writes: 0..503,
    parent_writes: 246..754,
};

/// Byte values written at each step (any value faults; distinct ones aid debugging).
const FIRST_TOUCH_BYTE: u8 = 0x11;
const CHILD_BYTE: u8 = 0xc1;
const PARENT_BYTE: u8 = 0xb1;

/// Fault counts of one process inside the region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FaultCounts {
    anon_first_touch: u64,
    zero_page: u64,
    cow_copy: u64,
    cow_reuse: u64,
}

impl FaultCounts {
    fn to_map(self) -> BTreeMap<String, u64> {
        [
            (fault_kind::ANON_FIRST_TOUCH, self.anon_first_touch),
            (fault_kind::ZERO_PAGE, self.zero_page),
            (fault_kind::COW_COPY, self.cow_copy),
            (fault_kind::COW_REUSE, self.cow_reuse),
        ]
        .into_iter()
        .map(|(kind, count)| (kind.to_string(), count))
        .collect()
    }
}

/// Everything the plan predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expectations {
    parent: FaultCounts,
    child: FaultCounts,
    /// Pages with the same PFN in both processes at the checkpoint.
    shared_pages: u64,
    /// Pages with different PFNs at the checkpoint.
    copied_pages: u64,
}

impl Plan {
    fn validate(&self) -> anyhow::Result<()> {
        for (who, range) in [
            ("child", &self.child_writes),
            ("parent", &self.parent_writes),
        ] {
            if range.start > range.end || range.end > self.region_pages {
                bail!(
                    "{who} writes {range:?} outside the region of {} pages",
                    self.region_pages
                );
            }
        }
        Ok(())
    }

    /// One-line description with the numbers derived from the plan.
    #[cfg(test)]
    fn summary(&self) -> String {
        let expectations = self.expectations();
        let Range { start, end } = self.child_writes;
        let parent = &self.parent_writes;
        format!(
            "parent touches {} pages and forks; child writes [{start},{end}) ({} COW copies), \
             then parent writes [{},{}) ({} COW reuses, {} COW copies); {} stay shared",
            self.region_pages,
            expectations.child.cow_copy,
            parent.start,
            parent.end,
            expectations.parent.cow_reuse,
            expectations.parent.cow_copy,
            expectations.shared_pages
        )
    }

    /// Whether a page ends up with different PFNs in parent and child: any write after the
    /// fork gives the writer a page of its own.
    fn page_is_copied(&self, page: usize) -> bool {
        self.child_writes.contains(&page) || self.parent_writes.contains(&page)
    }

    /// Counted page by page, following the order of events, rather than by closed-form
    /// range arithmetic, so the expectations cannot share an off-by-one with it.
    fn expectations(&self) -> Expectations {
        let mut parent = FaultCounts::default();
        let mut child = FaultCounts::default();
        let mut shared_pages = 0;
        let mut copied_pages = 0;
        for page in 0..self.region_pages {
            // Before the fork the parent writes every page of the fresh region.
            parent.anon_first_touch += 1;
            // The child writes first, while every page is mapped by both: always a copy.
            let child_wrote = self.child_writes.contains(&page);
            if child_wrote {
                child.cow_copy += 1;
            }
            // The parent writes second. If the child already took its copy, the parent is
            // the original's last mapper; otherwise the live child still maps it.
            if self.parent_writes.contains(&page) {
                if child_wrote {
                    parent.cow_reuse += 1;
                } else {
                    parent.cow_copy += 1;
                }
            }
            if self.page_is_copied(page) {
                copied_pages += 1;
            } else {
                shared_pages += 1;
            }
        }
        Expectations {
            parent,
            child,
            shared_pages,
            copied_pages,
        }
    }

    /// Compares the two pagemaps with the plan, page by page.
    fn check_pagemap(&self, parent: &[PageEntry], child: &[PageEntry]) -> PagemapCheck {
        let expectations = self.expectations();
        let mut check = PagemapCheck {
            shared_pages: 0,
            copied_pages: 0,
            not_present_pages: 0,
            misplaced_pages: 0,
            expected_shared: expectations.shared_pages,
            expected_copied: expectations.copied_pages,
            expected_not_present: 0,
            views: Vec::new(),
            ok: false,
            note: None,
        };
        let mut hidden_pfns = false;
        for (page, (p, c)) in parent.iter().zip(child).enumerate() {
            if !(p.present && c.present) {
                check.not_present_pages += 1;
                continue;
            }
            hidden_pfns |= p.pfn == 0 || c.pfn == 0;
            let copied = p.pfn != c.pfn;
            if copied {
                check.copied_pages += 1;
            } else {
                check.shared_pages += 1;
            }
            if copied != self.page_is_copied(page) {
                check.misplaced_pages += 1;
            }
        }
        if parent.len() != self.region_pages || child.len() != self.region_pages {
            check.note = Some(format!(
                "pagemap covered {} (parent) and {} (child) pages, not {}",
                parent.len(),
                child.len(),
                self.region_pages
            ));
        } else if hidden_pfns {
            check.note = Some("PFNs read as 0: reading pagemap needs CAP_SYS_ADMIN".to_string());
        }
        check.ok = check.note.is_none()
            && check.not_present_pages == 0
            && check.misplaced_pages == 0
            && check.shared_pages == check.expected_shared
            && check.copied_pages == check.expected_copied;
        check
    }
}

struct ProcessFacts<'a> {
    role: Role,
    pid: u32,
    parent_pid: Option<u32>,
    checkpoint_ns: u64,
    tid: u32,
    expected: FaultCounts,
    taskstats_baseline: Option<TaskstatsSample>,
    taskstats: Result<TaskstatsSample, String>,
    entries: &'a [PageEntry],
}

fn process_report(facts: ProcessFacts<'_>) -> ProcessReport {
    let ProcessFacts {
        role,
        pid,
        parent_pid,
        checkpoint_ns,
        tid,
        expected,
        taskstats_baseline,
        taskstats,
        entries,
    } = facts;
    let (taskstats, taskstats_error) = match taskstats {
        Ok(sample) => (Some(sample), None),
        Err(err) => (None, Some(err)),
    };
    ProcessReport {
        role,
        pid,
        tid,
        expected: expected.to_map(),
        taskstats_baseline,
        taskstats,
        taskstats_error,
        region_pfns: entries.iter().map(|entry| entry.pfn).collect(),
        region_exclusive_pages: entries.iter().filter(|entry| entry.exclusive).count() as u64,
        name: format!("{role:?}").to_lowercase(),
        parent_pid,
        checkpoint_ns: Some(checkpoint_ns),
        expected_shared_pages: None,
        shared_pages: None,
        expected_exclusive_pages: None,
        region_file_pages: Vec::new(),
        note: None,
    }
}

pub(crate) fn run(report_path: Option<&Path>) -> anyhow::Result<()> {
    let plan = PLAN;
    plan.validate()?;
    let expectations = plan.expectations();
    let page_size = sys::page_size();
    let (parent_pid, parent_tid) = (sys::getpid(), sys::gettid());
    // Before anything else: the tracer can then compare the copies between this sample and
    // the checkpoint's with the ones it saw in that window, excluding the process's past
    // (e.g. a shell's fork before exec, which taskstats counts too).
    let parent_baseline = crate::scenario::check::sample_taskstats(&[(parent_tid, false)])
        .pop()
        .unwrap()
        .ok();

    let region = AnonRegion::map(plan.region_pages, page_size).context("mapping the region")?;
    region.write_pages(0..plan.region_pages, FIRST_TOUCH_BYTE);

    let child_writes = plan.child_writes.clone();
    let region_ref = &region;
    // SAFETY: the child only performs volatile stores into the region (allocation-free;
    // the range was validated above, so the bounds assertion cannot fire).
    let mut child =
        unsafe { BlockedChild::fork(move || region_ref.write_pages(child_writes, CHILD_BYTE)) }
            .context("forking")?;
    child
        .wait_ready()
        .context("waiting for the child's writes")?;

    region.write_pages(plan.parent_writes.clone(), PARENT_BYTE);

    // Checkpoint: both alive, child blocked.
    let child_pid = child.pid();
    let start = region.start_addr();
    let parent_entries = pagemap::read_range(parent_pid, start, region.pages())
        .context("reading the parent's pagemap")?;
    let parent_checkpoint_ns = sys::monotonic_ns();
    let child_entries = pagemap::read_range(child_pid, start, region.pages())
        .context("reading the child's pagemap")?;
    let child_checkpoint_ns = sys::monotonic_ns();
    let mut samples = crate::scenario::check::sample_taskstats(&[
        (parent_tid, expectations.parent.cow_copy > 0),
        (child_pid, expectations.child.cow_copy > 0),
    ])
    .into_iter();
    let (parent_sample, child_sample) = (samples.next().unwrap(), samples.next().unwrap());
    let check = plan.check_pagemap(&parent_entries, &child_entries);

    let child_exit = child.release_and_wait().context("reaping the child")?;

    let report = WorkloadReport {
        schema_version: SCHEMA_VERSION,
        workload: INFO.name.to_string(),
        page_size: page_size as u64,
        region_start: start,
        region_pages: plan.region_pages as u64,
        processes: vec![
            process_report(ProcessFacts {
                role: Role::Parent,
                pid: parent_pid,
                parent_pid: None,
                checkpoint_ns: parent_checkpoint_ns,
                tid: parent_tid,
                expected: expectations.parent,
                taskstats_baseline: parent_baseline,
                taskstats: parent_sample,
                entries: &parent_entries,
            }),
            process_report(ProcessFacts {
                role: Role::Child,
                pid: child_pid,
                parent_pid: Some(parent_pid),
                checkpoint_ns: child_checkpoint_ns,
                tid: child_pid,
                expected: expectations.child,
                // A forked task's counters start from zero.
                taskstats_baseline: None,
                taskstats: child_sample,
                entries: &child_entries,
            }),
        ],
        ok: check.ok && child_exit.success(),
        pagemap_check: check,
        child_exit: child_exit.to_string(),
        timeline: Vec::new(),
        mappings: Vec::new(),
    };
    if let Some(path) = report_path {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    print_summary(&report, &expectations);

    if !report.pagemap_check.ok {
        bail!("pagemap check failed: {:?}", report.pagemap_check);
    }
    if !child_exit.success() {
        bail!("child {child_pid} ended with {child_exit}");
    }
    Ok(())
}

fn print_summary(report: &WorkloadReport, expectations: &Expectations) {
    let [parent, child] = [&report.processes[0], &report.processes[1]];
    let check = &report.pagemap_check;
    println!(
        "fork-cow: parent pid {} (tid {}), child pid {}; region {:#x}, {} pages of {} bytes",
        parent.pid,
        parent.tid,
        child.pid,
        report.region_start,
        report.region_pages,
        report.page_size
    );
    println!(
        "  expected in region: parent {} first-touch, {} COW copies, {} COW reuses; \
         child {} COW copies",
        expectations.parent.anon_first_touch,
        expectations.parent.cow_copy,
        expectations.parent.cow_reuse,
        expectations.child.cow_copy
    );
    println!(
        "  pagemap: {} shared, {} copied, {} not present, {} misplaced (expected {} / {}): {}",
        check.shared_pages,
        check.copied_pages,
        check.not_present_pages,
        check.misplaced_pages,
        check.expected_shared,
        check.expected_copied,
        if check.ok { "ok" } else { "MISMATCH" }
    );
    for process in [parent, child] {
        let before = process
            .taskstats_baseline
            .as_ref()
            .map_or(0, |base| base.wpcopy_count);
        match (&process.taskstats, &process.taskstats_error) {
            (Some(sample), _) => println!(
                "  taskstats {:?}: {} COW copies during the workload",
                process.role,
                sample.wpcopy_count.saturating_sub(before)
            ),
            (None, Some(err)) => println!("  taskstats {:?}: unavailable: {err}", process.role),
            (None, None) => {}
        }
    }
    println!("  child: {}", report.child_exit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_valid() {
        PLAN.validate().unwrap();
    }

    #[test]
    fn expectations_match_the_hand_counted_numbers() {
        let expectations = PLAN.expectations();
        assert_eq!(
            expectations.parent,
            FaultCounts {
                anon_first_touch: 1009,
                zero_page: 0,
                cow_copy: 251,
                cow_reuse: 257
            }
        );
        assert_eq!(
            expectations.child,
            FaultCounts {
                anon_first_touch: 0,
                zero_page: 0,
                cow_copy: 503,
                cow_reuse: 0
            }
        );
        assert_eq!(expectations.shared_pages, 255);
        assert_eq!(expectations.copied_pages, 754);
    }

    #[test]
    fn listed_summary_matches_the_plan() {
        assert_eq!(INFO.summary, PLAN.summary());
    }

    #[test]
    fn expectations_of_disjoint_writes() {
        let plan = Plan {
            region_pages: 10,
            child_writes: 0..3,
            parent_writes: 5..7,
        };
        let expectations = plan.expectations();
        assert_eq!(expectations.child.cow_copy, 3);
        assert_eq!(expectations.parent.cow_copy, 2);
        assert_eq!(expectations.parent.cow_reuse, 0);
        assert_eq!(expectations.shared_pages, 5);
    }

    #[test]
    fn boundary_pages_fall_on_the_right_side() {
        // Ranges are half-open: 502 is the child's last page, 503 the first it leaves alone.
        assert!(PLAN.child_writes.contains(&502) && !PLAN.child_writes.contains(&503));
        assert!(!PLAN.parent_writes.contains(&245) && PLAN.parent_writes.contains(&246));
        assert!(PLAN.page_is_copied(753) && !PLAN.page_is_copied(754));
        assert!(!PLAN.page_is_copied(PLAN.region_pages - 1));
    }

    #[test]
    fn validate_rejects_writes_past_the_region() {
        let plan = Plan {
            region_pages: 10,
            child_writes: 0..11,
            parent_writes: 0..1,
        };
        assert!(plan.validate().is_err());
    }

    #[test]
    fn expected_map_has_every_fault_kind() {
        let map = PLAN.expectations().parent.to_map();
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut all = fault_kind::ALL.to_vec();
        all.sort_unstable();
        assert_eq!(keys, all);
        assert_eq!(map[fault_kind::COW_REUSE], 257);
    }

    fn present(pfn: u64) -> PageEntry {
        PageEntry {
            present: true,
            pfn,
            exclusive: false,
            file_or_shared: false,
        }
    }

    /// Pagemaps as the plan predicts them: child PFNs differ exactly on copied pages.
    fn predicted_pagemaps(plan: &Plan) -> (Vec<PageEntry>, Vec<PageEntry>) {
        let parent: Vec<PageEntry> = (0..plan.region_pages as u64)
            .map(|i| present(1000 + i))
            .collect();
        let child = (0..plan.region_pages)
            .map(|page| {
                if plan.page_is_copied(page) {
                    present(900_000 + page as u64)
                } else {
                    parent[page]
                }
            })
            .collect();
        (parent, child)
    }

    #[test]
    fn pagemap_check_accepts_the_predicted_sharing() {
        let (parent, child) = predicted_pagemaps(&PLAN);
        let check = PLAN.check_pagemap(&parent, &child);
        assert!(check.ok, "{check:?}");
        assert_eq!((check.shared_pages, check.copied_pages), (255, 754));
    }

    #[test]
    fn pagemap_check_flags_a_misplaced_copy_with_unchanged_counts() {
        let (parent, mut child) = predicted_pagemaps(&PLAN);
        // Swap sharing between a copied page (0) and a shared page (1008).
        child[0] = parent[0];
        child[1008] = present(1);
        let check = PLAN.check_pagemap(&parent, &child);
        assert_eq!((check.shared_pages, check.copied_pages), (255, 754));
        assert_eq!(check.misplaced_pages, 2);
        assert!(!check.ok);
    }

    #[test]
    fn pagemap_check_flags_missing_pages_and_hidden_pfns() {
        let (parent, mut child) = predicted_pagemaps(&PLAN);
        child[1000] = PageEntry::default();
        let check = PLAN.check_pagemap(&parent, &child);
        assert_eq!(check.not_present_pages, 1);
        assert!(!check.ok);

        let hidden = vec![present(0); PLAN.region_pages];
        let check = PLAN.check_pagemap(&hidden, &hidden);
        assert!(!check.ok);
        assert!(check.note.unwrap().contains("CAP_SYS_ADMIN"));
    }

    #[test]
    #[ignore = "needs root: run with cargo xtask test"]
    fn runs_in_process_on_a_secondary_thread() {
        use crate::oracle::taskstats::DelayAccountingGuard;
        let _accounting = DelayAccountingGuard::enable().unwrap();
        let path = std::env::temp_dir().join(format!("fork-cow-in-process-{}.json", sys::getpid()));
        // On a thread created after delay accounting was switched on (older threads are
        // never counted) and other than the main thread: the report must name this thread,
        // whose taskstats hold the parent's copies.
        let run_path = path.clone();
        let worker_tid = std::thread::spawn(move || {
            crate::run("fork-cow", Some(&run_path)).unwrap();
            sys::gettid()
        })
        .join()
        .unwrap();
        let report: WorkloadReport =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(report.ok);
        let parent = &report.processes[0];
        assert_eq!(parent.role, Role::Parent);
        assert_eq!(parent.tid, worker_tid);
        assert_ne!(parent.tid, parent.pid);
        let copies = parent.taskstats.as_ref().unwrap().wpcopy_count
            - parent.taskstats_baseline.as_ref().unwrap().wpcopy_count;
        assert!(copies >= PLAN.expectations().parent.cow_copy, "{copies}");
    }
}
