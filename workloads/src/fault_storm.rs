//! `fault-storm`: the benchmark's workload. Three phases, each one process writing every page
//! of an N-page region once, so that every write is one fault of one known kind:
//!
//! 1. first touch: the parent writes every page of a fresh anonymous region (THP off), and
//!    notes its frames (snapshot "before fork");
//! 2. COW copy: it forks; the child writes every page, each still mapped by the parent, so
//!    each write copies; then the child exits and the parent reaps it;
//! 3. COW reuse: the parent writes every page again; it is now the only mapper of each, so
//!    the kernel makes the page writable in place, and every frame is the one from before the
//!    fork.
//!
//! It runs on the scenario engine ([`crate::scenario`]), which pins it to one CPU (a reuse
//! can otherwise turn into a copy, see there), waits after the child's exit until the kernel
//! has released the child's pages, and checks every page against the model. The engine times
//! every step with CLOCK_MONOTONIC right around its writes, in the process that writes, so a
//! tracer's start-up and shut-down fall outside the phases; the report
//! ([`FaultStormReport`]) adds each phase's ns per fault.
//!
//! N is prime, [`DEFAULT_PAGES`] unless `COWTRACE_FAULT_STORM_PAGES` says otherwise: small by
//! default, so that `cowtrace run fault-storm` and the example reports stay light;
//! `cargo xtask bench` sets a storm of its own size.

use std::ffi::OsStr;
use std::path::Path;

use anyhow::{anyhow, bail};

use crate::report::{FaultStormReport, PhaseTiming, Role, TimelineEvent, fault_kind};
use crate::scenario::check::{self, CheckedRun};
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "fault-storm",
    summary: "parent touches N pages (2003, or $COWTRACE_FAULT_STORM_PAGES) and forks; child \
              writes all N (COW copies) and exits; parent writes all N (COW reuses); ns per \
              fault of each phase in the report",
};

/// The environment variable that sets the region's size in pages.
pub const PAGES_VAR: &str = "COWTRACE_FAULT_STORM_PAGES";

/// The default region: a prime number of pages.
pub const DEFAULT_PAGES: usize = 2003;

const CHILD: usize = 1;

/// The kind of fault each timed phase takes, and who takes it, in the order they run.
const PHASES: [(&str, Role); 3] = [
    (fault_kind::ANON_FIRST_TOUCH, Role::Parent),
    (fault_kind::COW_COPY, Role::Child),
    (fault_kind::COW_REUSE, Role::Parent),
];

/// The region's size: `setting` is the value of [`PAGES_VAR`], if set.
fn region_pages(setting: Option<&OsStr>) -> anyhow::Result<usize> {
    let Some(value) = setting else {
        return Ok(DEFAULT_PAGES);
    };
    let text = value
        .to_str()
        .ok_or_else(|| anyhow!("{PAGES_VAR} is not valid UTF-8"))?;
    let pages: usize = text
        .trim()
        .parse()
        .map_err(|_| anyhow!("{PAGES_VAR}={text:?} is not a number of pages"))?;
    if pages == 0 {
        bail!("{PAGES_VAR} must be at least 1");
    }
    Ok(pages)
}

fn scenario(pages: usize) -> Scenario {
    let all = PageSet::range(0..pages);
    Scenario {
        name: INFO.name,
        segments: vec![Segment {
            label: "anonymous",
            pages,
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
                pages: all,
            },
            Step::Snapshot {
                task: ROOT,
                label: "before fork",
            },
            Step::Fork {
                task: ROOT,
                child: CHILD,
            },
            Step::Write {
                task: CHILD,
                pages: all,
            },
            Step::Exit { task: CHILD },
            Step::Write {
                task: ROOT,
                pages: all,
            },
        ],
    }
}

/// The phases, from the timeline's write steps (the engine records one event per step, in
/// order).
fn phases(timeline: &[TimelineEvent]) -> anyhow::Result<Vec<PhaseTiming>> {
    let writes: Vec<&TimelineEvent> = timeline
        .iter()
        .filter(|event| event.action.starts_with("write "))
        .collect();
    if writes.len() != PHASES.len() {
        bail!(
            "the timeline has {} write steps, not {}",
            writes.len(),
            PHASES.len()
        );
    }
    Ok(PHASES
        .iter()
        .zip(writes)
        .map(|(&(kind, role), event)| {
            PhaseTiming::new(kind, role, event.pages, event.start_ns, event.end_ns)
        })
        .collect())
}

pub(crate) fn run(report_path: Option<&Path>) -> anyhow::Result<()> {
    let pages = region_pages(std::env::var_os(PAGES_VAR).as_deref())?;
    let scenario = scenario(pages);
    let CheckedRun {
        report: common,
        cpu,
        region,
    } = check::execute_and_check(&scenario)?;
    let report = FaultStormReport {
        phases: phases(&common.timeline)?,
        common,
    };
    if let Some(path) = report_path {
        check::write_report(&report, path)?;
    }
    print!("{}", check::summary(&scenario, &report.common, cpu));
    for phase in &report.phases {
        println!(
            "  {:<16} by the {:?}: {} faults, {:.0} ns per fault",
            phase.kind, phase.role, phase.faults, phase.ns_per_fault
        );
    }
    // Only now: see CheckedRun.
    drop(region);
    check::verdict(&report.common)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    #[test]
    fn region_size_defaults_to_a_prime() {
        assert_eq!(region_pages(None).unwrap(), DEFAULT_PAGES);
        assert!((2..DEFAULT_PAGES).all(|d| !DEFAULT_PAGES.is_multiple_of(d)));
    }

    #[test]
    fn region_size_from_the_environment() {
        assert_eq!(region_pages(Some(OsStr::new("25013"))).unwrap(), 25013);
        assert_eq!(region_pages(Some(OsStr::new(" 7\n"))).unwrap(), 7);
        for bad in ["0", "-3", "many", ""] {
            let err = region_pages(Some(OsStr::new(bad))).unwrap_err().to_string();
            assert!(err.contains(PAGES_VAR), "{err}");
        }
        use std::os::unix::ffi::OsStringExt as _;
        let not_utf8 = OsString::from_vec(vec![0xff, b'1']);
        assert!(region_pages(Some(&not_utf8)).is_err());
    }

    #[test]
    fn every_write_is_one_fault_of_its_phase_kind() {
        let counts = check::expected_counts(&scenario(101));
        let parent = counts["parent"];
        assert_eq!(
            (parent.anon_first_touch, parent.cow_copy, parent.cow_reuse),
            (101, 0, 101)
        );
        let child = counts["child"];
        assert_eq!(
            (child.anon_first_touch, child.cow_copy, child.cow_reuse),
            (0, 101, 0)
        );
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = check::simulated_report(&scenario(101));
        assert!(report.ok, "{:?}", report.pagemap_check);
        // The reuses kept every frame: the parent now maps what it mapped before the fork.
        assert_eq!(report.pagemap_check.views, ["parent", "parent before fork"]);
        assert_eq!(report.pagemap_check.shared_pages, 101);
        assert_eq!(
            check::process(&report, "parent").expected_exclusive_pages,
            Some(101)
        );
    }

    fn event(process: &str, action: &str, pages: u64, start_ns: u64, end_ns: u64) -> TimelineEvent {
        TimelineEvent {
            process: process.into(),
            pid: 1,
            tid: 1,
            action: action.into(),
            pages,
            start_ns,
            end_ns,
        }
    }

    #[test]
    fn phases_come_from_the_three_write_steps() {
        let timeline = [
            event("parent", "write 10 pages", 10, 100, 200),
            event(
                "parent",
                "read pagemap of parent (before fork)",
                0,
                200,
                210,
            ),
            event("parent", "fork child", 0, 210, 300),
            event("child", "write 10 pages", 10, 310, 610),
            event("child", "exit", 0, 610, 700),
            event("parent", "write 10 pages", 10, 700, 750),
        ];
        let timed = phases(&timeline).unwrap();
        let summary: Vec<(&str, Role, f64)> = timed
            .iter()
            .map(|phase| (phase.kind.as_str(), phase.role, phase.ns_per_fault))
            .collect();
        assert_eq!(
            summary,
            [
                (fault_kind::ANON_FIRST_TOUCH, Role::Parent, 10.0),
                (fault_kind::COW_COPY, Role::Child, 30.0),
                (fault_kind::COW_REUSE, Role::Parent, 5.0),
            ]
        );
        assert!(phases(&timeline[..3]).is_err());
    }

    #[test]
    #[ignore = "needs root (pagemap PFNs): run with cargo xtask test"]
    fn storm_times_three_phases_and_the_kernel_agrees() {
        let _alone = crate::exclusive_forks();
        let report = check::execute_and_check(&scenario(101)).unwrap().report;
        assert!(report.ok, "{:?}", report.pagemap_check);
        let timed = phases(&report.timeline).unwrap();
        for phase in &timed {
            assert_eq!(phase.faults, 101);
            assert!(phase.end_ns > phase.start_ns, "{phase:?}");
        }
        // The child's phase lies between the parent's two.
        assert!(timed[0].end_ns <= timed[1].start_ns && timed[1].end_ns <= timed[2].start_ns);
    }
}
