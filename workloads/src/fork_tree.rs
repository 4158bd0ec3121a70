//! `fork-tree`: three generations writing distinct page sets at known times; at the
//! checkpoint all four are alive, and who shares which page with whom follows page by page.
//!
//! Region: 1031 anonymous pages (THP off). Pages written, in this order (`a + b·k` for
//! `k < n`, all sets of prime size):
//!
//! | step | who | pages | faults |
//! |---|---|---|---|
//! | 1 | parent P | all 1031 | 1031 first touches |
//! | 2 | P forks child 1 (C1) | | |
//! | 3 | C1 | `2 + 5k`, 199 pages (2..=992) | 199 copies: every page still P's |
//! | 4 | C1 forks the grandchild (G) | | G gets C1's view: C1's copies, P's originals elsewhere |
//! | 5 | G | `7k`, 113 pages (0..=784) | 113 copies: each page mapped by C1 too (23 of them C1's copies, shared by C1 and G; the rest P's originals, shared by all three) |
//! | 6 | C1 | `2 + 10k`, 71 pages (2..=702, all among its step-3 pages) | the 10 that G also wrote (`42 + 70j`): C1 is the last mapper of its copy, **10 reuses**; the other 61 are shared with G: 61 copies |
//! | 7 | P forks child 2 (C2) | | C2 gets P's originals |
//! | 8 | C2 | `1 + 3k`, 167 pages (1..=499) | 167 copies |
//! | 9 | P | `3 + 4k`, 127 pages (3..=507) | reuse exactly where nobody else maps P's original: C1 copied it (step 3) and C2 copied it (step 8), i.e. `7 + 60j`, **9 reuses**; 118 copies |
//!
//! Totals: P 1031 first touches, 118 copies, 9 reuses; C1 260 copies, 10 reuses; G 113
//! copies; C2 167 copies. At the checkpoint (pages whose frame is also mapped by): P with
//! its children 880; C1 with P 731, with G 857, with its sibling C2 698; C2 with P 779,
//! with C1 698; G with C1 857. Exclusive pages: P 151, C1 88, C2 184, G 174. Over the four
//! views, 569 pages have one frame in all, 462 more than one.
//!
//! Two snapshots make the pagemap check prove each reuse: the parent's PFNs right after its
//! first touches, child 1's right after its step-3 copies. A page reused at step 6 or 9
//! keeps the PFN of the snapshot; a page copied there gets a new one; the check compares
//! every pair of views page by page, so it tells the two apart (the counts above are the
//! same with or without these views).

use std::path::Path;

use crate::report::Role;
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "fork-tree",
    summary: "three generations on 1031 pages: child 1 copies 260 and reuses 10, its child \
              copies 113, child 2 copies 167, parent copies 118 and reuses 9; all four \
              alive at the checkpoint, sharing checked per relative",
};

const REGION_PAGES: usize = 1031;
const CHILD_1: usize = 1;
const GRANDCHILD: usize = 2;
const CHILD_2: usize = 3;

const CHILD_1_FIRST: PageSet = PageSet::Stride {
    start: 2,
    step: 5,
    count: 199,
};
const GRANDCHILD_WRITES: PageSet = PageSet::Stride {
    start: 0,
    step: 7,
    count: 113,
};
const CHILD_1_SECOND: PageSet = PageSet::Stride {
    start: 2,
    step: 10,
    count: 71,
};
const CHILD_2_WRITES: PageSet = PageSet::Stride {
    start: 1,
    step: 3,
    count: 167,
};
const PARENT_WRITES: PageSet = PageSet::Stride {
    start: 3,
    step: 4,
    count: 127,
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
                name: "child 1",
                role: Role::Child,
            },
            TaskSpec {
                name: "grandchild",
                role: Role::Grandchild,
            },
            TaskSpec {
                name: "child 2",
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
                child: CHILD_1,
            },
            Step::Write {
                task: CHILD_1,
                pages: CHILD_1_FIRST,
            },
            Step::Snapshot {
                task: CHILD_1,
                label: "before forking",
            },
            Step::Fork {
                task: CHILD_1,
                child: GRANDCHILD,
            },
            Step::Write {
                task: GRANDCHILD,
                pages: GRANDCHILD_WRITES,
            },
            Step::Write {
                task: CHILD_1,
                pages: CHILD_1_SECOND,
            },
            Step::Fork {
                task: ROOT,
                child: CHILD_2,
            },
            Step::Write {
                task: CHILD_2,
                pages: CHILD_2_WRITES,
            },
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
    use crate::scenario::check::{expected_counts, process, shared, simulated_report};

    /// The reuse sets of the table, by modular arithmetic rather than by the model.
    #[test]
    fn reuse_sets_follow_from_the_strides() {
        let c1_reuses: Vec<usize> = CHILD_1_SECOND
            .iter()
            .filter(|&p| GRANDCHILD_WRITES.contains(p))
            .collect();
        assert_eq!(c1_reuses, (0..10).map(|j| 42 + 70 * j).collect::<Vec<_>>());
        let p_reuses: Vec<usize> = PARENT_WRITES
            .iter()
            .filter(|&p| CHILD_1_FIRST.contains(p) && CHILD_2_WRITES.contains(p))
            .collect();
        assert_eq!(p_reuses, (0..9).map(|j| 7 + 60 * j).collect::<Vec<_>>());
        assert!(CHILD_1_SECOND.iter().all(|p| CHILD_1_FIRST.contains(p)));
    }

    #[test]
    fn expectations_match_the_hand_counted_numbers() {
        let counts = expected_counts(&scenario());
        let triple = |name: &str| {
            let c = counts[name];
            (c.anon_first_touch, c.cow_copy, c.cow_reuse)
        };
        assert_eq!(triple("parent"), (1031, 118, 9));
        assert_eq!(triple("child 1"), (0, 260, 10));
        assert_eq!(triple("grandchild"), (0, 113, 0));
        assert_eq!(triple("child 2"), (0, 167, 0));
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = simulated_report(&scenario());
        let check = &report.pagemap_check;
        assert!(report.ok, "{check:?}");
        assert_eq!(
            check.views,
            [
                "parent",
                "child 1",
                "grandchild",
                "child 2",
                "parent before fork",
                "child 1 before forking"
            ]
        );
        assert_eq!((check.shared_pages, check.copied_pages), (569, 462));
        let pairs = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
            list.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        assert_eq!(shared(&report, "parent"), pairs(&[("with_children", 880)]));
        assert_eq!(
            shared(&report, "child 1"),
            pairs(&[
                ("with_children", 857),
                ("with_parent", 731),
                ("with_siblings", 698)
            ])
        );
        assert_eq!(
            shared(&report, "child 2"),
            pairs(&[("with_parent", 779), ("with_siblings", 698)])
        );
        assert_eq!(
            shared(&report, "grandchild"),
            pairs(&[("with_parent", 857)])
        );
        for (name, exclusive) in [
            ("parent", 151),
            ("child 1", 88),
            ("child 2", 184),
            ("grandchild", 174),
        ] {
            assert_eq!(
                process(&report, name).expected_exclusive_pages,
                Some(exclusive),
                "{name}"
            );
        }
        // The grandchild's parent is child 1.
        let child_1 = process(&report, "child 1").pid;
        assert_eq!(process(&report, "grandchild").parent_pid, Some(child_1));
    }

    /// In a multi-threaded process (the test harness), on a thread other than the main one:
    /// the forked children must get by without allocating, and the report must name the
    /// thread that worked.
    #[test]
    #[ignore = "needs root: run with cargo xtask test"]
    fn runs_in_process_on_a_secondary_thread() {
        use crate::oracle::taskstats::DelayAccountingGuard;
        use crate::report::WorkloadReport;
        let _accounting = DelayAccountingGuard::enable().unwrap();
        let path = std::env::temp_dir().join(format!(
            "fork-tree-in-process-{}.json",
            crate::sys::getpid()
        ));
        let run_path = path.clone();
        let worker_tid = std::thread::spawn(move || {
            crate::run("fork-tree", Some(&run_path)).unwrap();
            crate::sys::gettid()
        })
        .join()
        .unwrap();
        let report: WorkloadReport =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(report.ok, "{:?}", report.pagemap_check);
        let parent = &report.processes[0];
        assert_eq!(parent.tid, worker_tid);
        assert_ne!(parent.tid, parent.pid);
        for process in &report.processes {
            assert!(
                process.taskstats.is_some(),
                "{}: {:?}",
                process.name,
                process.taskstats_error
            );
        }
    }
}
