//! `fork-siblings-read`: seven children that only read: nothing is copied, and all eight
//! processes map every page of the region with one frame.
//!
//! 1. The parent maps 1021 anonymous pages (THP off) and writes each: 1021 first touches.
//! 2. Seven times: the parent forks a child, which reads the first byte of every page.
//!    Fork copied the parent's page table entries (the region has an `anon_vma`), write
//!    protected, and a read of a present page takes no fault: 0 faults of any kind in the
//!    region, in any child. (Reads of *unpopulated* anonymous memory would map the zero
//!    page instead; that is not this workload.)
//! 3. Checkpoint, all eight alive: every PFN identical in all eight pagemaps; each child
//!    shares all 1021 pages with its parent and with its siblings, the parent all 1021 with
//!    its children; no page is mapped exclusively (each is mapped eight times).

use std::path::Path;

use crate::report::Role;
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "fork-siblings-read",
    summary: "parent touches 1021 pages and forks 7 children that read every page: no \
              fault in the region, nothing copied; all 8 map all 1021 pages with one frame",
};

const REGION_PAGES: usize = 1021;
const CHILDREN: [&str; 7] = [
    "child 1", "child 2", "child 3", "child 4", "child 5", "child 6", "child 7",
];

pub(crate) fn scenario() -> Scenario {
    let mut tasks = vec![TaskSpec {
        name: "parent",
        role: Role::Parent,
    }];
    tasks.extend(CHILDREN.iter().map(|&name| TaskSpec {
        name,
        role: Role::Child,
    }));
    let mut steps = vec![Step::Write {
        task: ROOT,
        pages: PageSet::range(0..REGION_PAGES),
    }];
    for child in 1..=CHILDREN.len() {
        steps.push(Step::Fork { task: ROOT, child });
        steps.push(Step::Read {
            task: child,
            pages: PageSet::range(0..REGION_PAGES),
        });
    }
    Scenario {
        name: INFO.name,
        segments: vec![Segment {
            label: "anonymous",
            pages: REGION_PAGES,
            backing: Backing::Anonymous,
        }],
        tasks,
        steps,
    }
}

pub(crate) fn run(report_path: Option<&Path>) -> anyhow::Result<()> {
    crate::scenario::check::run(&scenario(), report_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::check::{expected_counts, process, shared, simulated_report};
    use crate::scenario::model::FaultCounts;

    #[test]
    fn expectations_match_the_hand_counted_numbers() {
        let counts = expected_counts(&scenario());
        assert_eq!(counts["parent"].anon_first_touch, 1021);
        assert_eq!(counts["parent"].cow_copy + counts["parent"].cow_reuse, 0);
        for name in CHILDREN {
            assert_eq!(counts[name], FaultCounts::default(), "{name}");
        }
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = simulated_report(&scenario());
        let check = &report.pagemap_check;
        assert!(report.ok, "{check:?}");
        assert_eq!(check.views.len(), 8);
        assert_eq!((check.shared_pages, check.copied_pages), (1021, 0));
        assert_eq!(shared(&report, "parent"), [("with_children".into(), 1021)]);
        for name in CHILDREN {
            assert_eq!(
                shared(&report, name),
                [("with_parent".into(), 1021), ("with_siblings".into(), 1021)]
            );
            assert_eq!(process(&report, name).expected_exclusive_pages, Some(0));
        }
    }
}
