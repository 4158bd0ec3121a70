//! `fork-exec`: the child execs at once; nothing is copied, and afterwards the parent's
//! memory is its own again, frame for frame.
//!
//! 1. The parent maps 1033 anonymous pages (THP off) and writes each: 1033 first touches.
//!    It notes its PFNs (snapshot "before fork").
//! 2. It forks. The child touches nothing of the region and execs `/bin/cat` with a pipe as
//!    standard input, so it stays alive (blocked reading) until the workload ends. Exec
//!    drops the child's copy of the address space: the region no longer exists in it, and
//!    the parent is again the only mapper of every page. The child takes no fault in the
//!    region, before or after the exec.
//! 3. The parent writes 409 pages spread over the region. Fork left every page
//!    write-protected, so each write faults, but no one else maps the page: 409 COW reuses,
//!    no copy.
//! 4. Checkpoint, both alive (the child as `cat`): the parent's PFNs equal the snapshot's
//!    everywhere and all 1033 pages are exclusive; the child has no region (its
//!    `/proc/PID/maps` has nothing at those addresses), so no PFNs: its report says so.
//!
//! Whole-task counts differ from the region's: between fork and exec the child writes to
//! its stack (COW copies that taskstats counts); the tracer sees those too.

use std::path::Path;

use crate::report::Role;
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "fork-exec",
    summary: "parent touches 1033 pages and forks; child execs /bin/cat (no fault in the \
              region, its copy of the memory is gone); parent then writes 409 pages: 409 COW \
              reuses, no copy, PFNs unchanged",
};

const REGION_PAGES: usize = 1033;
const CHILD: usize = 1;
const PARENT_WRITES: PageSet = PageSet::Spread {
    start: 0,
    len: REGION_PAGES,
    count: 409,
};

pub(crate) fn scenario() -> Scenario {
    Scenario {
        name: INFO.name,
        segments: vec![Segment {
            label: "anonymous",
            pages: REGION_PAGES,
            backing: Backing::Anonymous,
        }],
        tasks: vec![
            TaskSpec {
                name: "parent",
                role: Role::Parent,
            },
            TaskSpec {
                name: "child",
                role: Role::Child,
            },
        ],
        steps: vec![
            Step::Write {
                task: ROOT,
                pages: PageSet::range(0..REGION_PAGES),
            },
            Step::Snapshot {
                task: ROOT,
                label: "before fork",
            },
            Step::Fork {
                task: ROOT,
                child: CHILD,
            },
            Step::Exec { task: CHILD },
            Step::Write {
                task: ROOT,
                pages: PARENT_WRITES,
            },
        ],
    }
}

pub(crate) fn run(report_path: Option<&Path>) -> anyhow::Result<()> {
    crate::scenario::check::run(&scenario(), report_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::check::{expected_counts, process, simulated_report};
    use crate::scenario::model::FaultCounts;

    #[test]
    fn expectations_match_the_hand_counted_numbers() {
        let counts = expected_counts(&scenario());
        let parent = counts["parent"];
        assert_eq!(
            (parent.anon_first_touch, parent.cow_copy, parent.cow_reuse),
            (1033, 0, 409)
        );
        assert_eq!(counts["child"], FaultCounts::default());
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = simulated_report(&scenario());
        let check = &report.pagemap_check;
        assert!(report.ok, "{check:?}");
        assert_eq!(check.views, ["parent", "parent before fork"]);
        assert_eq!((check.shared_pages, check.copied_pages), (1033, 0));
        assert_eq!(
            process(&report, "parent").expected_exclusive_pages,
            Some(1033)
        );
        let child = process(&report, "child");
        // Alive, but without the region.
        assert!(child.region_pfns.is_empty() && child.expected_exclusive_pages.is_none());
    }
}
