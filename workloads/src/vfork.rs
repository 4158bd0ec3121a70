//! `vfork`: children that run in the parent's memory: no copy-on-write at all, and what a
//! vfork child writes is the parent's.
//!
//! 1. The parent maps 1039 anonymous pages (THP off) and writes pages 0..1009: 1009 first
//!    touches. It notes its PFNs (snapshot "before vfork"). Pages 1009..1039 are untouched.
//! 2. It vforks child 1 (`clone(CLONE_VM | CLONE_VFORK)`, on a stack of its own; the
//!    parent is suspended). Child 1 writes pages 992..1032 and `_exit`s: its 17 writes to
//!    pages the parent had touched find them present and writable (no fault, no copy: the
//!    page table is the parent's); its 23 writes to untouched pages 1009..1032 are first
//!    touches, taken by the child's thread, that allocate pages into the *parent's* memory.
//! 3. It vforks child 2, which execs `/bin/true` at once (exec gives it a memory of its own
//!    and releases the parent): no fault in the region. The parent reaps both.
//! 4. Checkpoint, the parent alone: its pagemap shows the 1009 pages it touched with the
//!    same PFNs as before the vforks, the 23 pages child 1 touched present (exclusive: 1032
//!    exclusive pages), and the last 7 pages never touched. No COW copy or reuse anywhere.
//!
//! A tracer attributing faults by process must count child 1's 23 first touches to child
//! 1's pid and tid, and put the frames in the parent's memory (a `CLONE_VM` child has no
//! memory of its own).

use std::path::Path;

use crate::report::Role;
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec, VforkEnd};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "vfork",
    summary: "parent touches 1009 of 1039 pages; vfork child 1 writes 40 (17 present: no \
              fault; 23 untouched: first touches into the parent's memory) and exits; vfork \
              child 2 execs /bin/true: no COW copy or reuse",
};

const REGION_PAGES: usize = 1039;
const PARENT_TOUCHES: usize = 1009;
const VFORK_1: usize = 1;
const VFORK_2: usize = 2;
/// 17 pages the parent touched (992..1009) and 23 it did not (1009..1032).
const VFORK_1_WRITES: PageSet = PageSet::range(992..1032);

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
                name: "vfork child 1",
                role: Role::VforkChild,
            },
            TaskSpec {
                name: "vfork child 2",
                role: Role::VforkChild,
            },
        ],
        steps: vec![
            Step::Write {
                task: ROOT,
                pages: PageSet::range(0..PARENT_TOUCHES),
            },
            Step::Snapshot {
                task: ROOT,
                label: "before vfork",
            },
            Step::Vfork {
                child: VFORK_1,
                writes: Some(VFORK_1_WRITES),
                then: VforkEnd::Exit,
            },
            Step::Vfork {
                child: VFORK_2,
                writes: None,
                then: VforkEnd::Exec,
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
        assert_eq!(
            counts["parent"],
            FaultCounts {
                anon_first_touch: 1009,
                ..FaultCounts::default()
            }
        );
        assert_eq!(
            counts["vfork child 1"],
            FaultCounts {
                anon_first_touch: 23,
                ..FaultCounts::default()
            }
        );
        assert_eq!(counts["vfork child 2"], FaultCounts::default());
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = simulated_report(&scenario());
        let check = &report.pagemap_check;
        assert!(report.ok, "{check:?}");
        assert_eq!(check.views, ["parent", "parent before vfork"]);
        // 1009 pages with the same frame before and after; 30 absent from at least one
        // view: 23 that child 1 added, 7 never touched.
        assert_eq!(
            (
                check.shared_pages,
                check.copied_pages,
                check.not_present_pages
            ),
            (1009, 0, 30)
        );
        assert_eq!(
            process(&report, "parent").expected_exclusive_pages,
            Some(1032)
        );
        let child = process(&report, "vfork child 1");
        assert_eq!(child.role, Role::VforkChild);
        assert_eq!(child.parent_pid, Some(process(&report, "parent").pid));
    }
}
