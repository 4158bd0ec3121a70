//! `threads`: four threads (`CLONE_VM | CLONE_THREAD`) writing disjoint parts of the
//! region: one memory, so no copy-on-write at all; a write faults only where the page was
//! never touched.
//!
//! 1. The main thread maps 1049 anonymous pages (THP off) and writes pages 0..1009: 1009
//!    first touches. Pages 1009..1049 are untouched.
//! 2. It starts threads 1 to 4. Thread `t` writes pages `(t - 1) + 4k` of the touched part
//!    (101, 103, 107 and 109 pages: disjoint residues modulo 4): present and writable, **no
//!    fault**. Then it writes its own slice of the untouched tail: 3, 7, 13 and 17 pages
//!    (1009..1012, 1012..1019, 1019..1032, 1032..1049): one **first touch** each, taken by
//!    that thread.
//! 3. Checkpoint, all five threads alive: each thread's `/proc/PID/task/TID/pagemap` is the
//!    same page table: 1049 pages present, identical PFNs, all exclusive (one mapper). No
//!    COW copy, no reuse, no zero page, in any thread.

use std::path::Path;

use crate::report::Role;
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "threads",
    summary: "main thread touches 1009 of 1049 pages; 4 threads write 101/103/107/109 \
              touched pages (no fault) and 3/7/13/17 fresh ones (first touches): no COW",
};

const REGION_PAGES: usize = 1049;
const MAIN_TOUCHES: usize = 1009;
const THREADS: [&str; 4] = ["thread 1", "thread 2", "thread 3", "thread 4"];
/// Per thread: pages it writes in the touched part, and its slice of the untouched tail.
const PLAN: [(PageSet, PageSet); 4] = [
    (
        PageSet::Stride {
            start: 0,
            step: 4,
            count: 101,
        },
        PageSet::range(1009..1012),
    ),
    (
        PageSet::Stride {
            start: 1,
            step: 4,
            count: 103,
        },
        PageSet::range(1012..1019),
    ),
    (
        PageSet::Stride {
            start: 2,
            step: 4,
            count: 107,
        },
        PageSet::range(1019..1032),
    ),
    (
        PageSet::Stride {
            start: 3,
            step: 4,
            count: 109,
        },
        PageSet::range(1032..1049),
    ),
];

pub(crate) fn scenario() -> Scenario {
    let mut tasks = vec![TaskSpec {
        name: "main thread",
        role: Role::Parent,
    }];
    tasks.extend(THREADS.iter().map(|&name| TaskSpec {
        name,
        role: Role::Thread,
    }));
    let mut steps = vec![Step::Write {
        task: ROOT,
        pages: PageSet::range(0..MAIN_TOUCHES),
    }];
    for thread in 1..=THREADS.len() {
        steps.push(Step::SpawnThread { thread });
    }
    for (thread, (touched, fresh)) in (1..).zip(PLAN) {
        steps.push(Step::Write {
            task: thread,
            pages: touched,
        });
        steps.push(Step::Write {
            task: thread,
            pages: fresh,
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
    use crate::scenario::check::{expected_counts, process, simulated_report};
    use crate::scenario::model::FaultCounts;

    #[test]
    fn threads_write_disjoint_pages() {
        let mut seen = vec![false; REGION_PAGES];
        for (touched, fresh) in PLAN {
            assert!(touched.iter().all(|page| page < MAIN_TOUCHES));
            assert!(fresh.iter().all(|page| page >= MAIN_TOUCHES));
            for page in touched.iter().chain(fresh.iter()) {
                assert!(!seen[page], "page {page} written twice");
                seen[page] = true;
            }
        }
        // The fresh slices cover the untouched tail exactly.
        assert!(seen[MAIN_TOUCHES..].iter().all(|&written| written));
    }

    #[test]
    fn expectations_match_the_hand_counted_numbers() {
        let counts = expected_counts(&scenario());
        assert_eq!(
            counts["main thread"],
            FaultCounts {
                anon_first_touch: 1009,
                ..FaultCounts::default()
            }
        );
        for (name, first_touches) in THREADS.into_iter().zip([3, 7, 13, 17]) {
            assert_eq!(
                counts[name],
                FaultCounts {
                    anon_first_touch: first_touches,
                    ..FaultCounts::default()
                },
                "{name}"
            );
        }
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = simulated_report(&scenario());
        let check = &report.pagemap_check;
        assert!(report.ok, "{check:?}");
        assert_eq!(check.views.len(), 5);
        assert_eq!((check.shared_pages, check.copied_pages), (1049, 0));
        for name in THREADS {
            let thread = process(&report, name);
            assert_eq!(thread.role, Role::Thread);
            assert_eq!(thread.expected_exclusive_pages, Some(1049));
            assert_eq!(thread.expected_shared_pages, None);
            assert_eq!(thread.parent_pid, None);
        }
    }
}
