//! `fork-partial`: a child writes a third of its parent's memory, scattered over all of it.
//!
//! 1. The parent maps 1013 anonymous pages (THP off) and writes each: 1013 first touches.
//! 2. It forks. The child writes 331 pages spread evenly over the whole region (page
//!    `k * 1013 / 331` for `k < 331`: every third or fourth page, first page 0, last 1009),
//!    each still mapped by both: 331 COW copies, 32.7 % of the region.
//! 3. The parent writes nothing after the fork.
//! 4. Checkpoint, both alive: the 682 pages the child left alone are shared (same PFN in
//!    both); the 331 it wrote are the child's own, and the parent is the only mapper of
//!    the originals, so each process maps exactly 331 pages exclusively.

use std::path::Path;

use crate::report::Role;
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "fork-partial",
    summary: "parent touches 1013 pages and forks; child writes 331 pages spread over the \
              whole region (331 COW copies); parent writes nothing: 682 stay shared",
};

const REGION_PAGES: usize = 1013;
const CHILD: usize = 1;
/// 331 of 1013 pages, evenly spread: not a prefix, so a tracer that only gets ranges right
/// shows it.
const CHILD_WRITES: PageSet = PageSet::Spread {
    start: 0,
    len: REGION_PAGES,
    count: 331,
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
            Step::Fork {
                task: ROOT,
                child: CHILD,
            },
            Step::Write {
                task: CHILD,
                pages: CHILD_WRITES,
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
    use crate::scenario::check::{expected_counts, process, shared, simulated_report};

    #[test]
    fn child_writes_are_scattered_over_the_whole_region() {
        let pages: Vec<usize> = CHILD_WRITES.iter().collect();
        assert_eq!(pages.len(), 331);
        assert_eq!((pages[0], pages[1], pages[2], pages[330]), (0, 3, 6, 1009));
        assert!(pages.windows(2).all(|w| (3..=4).contains(&(w[1] - w[0]))));
        CHILD_WRITES.validate(REGION_PAGES).unwrap();
    }

    #[test]
    fn expectations_match_the_hand_counted_numbers() {
        let counts = expected_counts(&scenario());
        assert_eq!(counts["parent"].anon_first_touch, 1013);
        assert_eq!(
            (counts["parent"].cow_copy, counts["parent"].cow_reuse),
            (0, 0)
        );
        assert_eq!(counts["child"].cow_copy, 331);
        assert_eq!(
            (counts["child"].anon_first_touch, counts["child"].cow_reuse),
            (0, 0)
        );
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = simulated_report(&scenario());
        let check = &report.pagemap_check;
        assert!(report.ok, "{check:?}");
        assert_eq!(
            (
                check.shared_pages,
                check.copied_pages,
                check.not_present_pages
            ),
            (682, 331, 0)
        );
        assert_eq!(shared(&report, "parent"), [("with_children".into(), 682)]);
        assert_eq!(shared(&report, "child"), [("with_parent".into(), 682)]);
        for name in ["parent", "child"] {
            assert_eq!(process(&report, name).expected_exclusive_pages, Some(331));
        }
    }
}
