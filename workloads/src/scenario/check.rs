//! Runs a scenario, compares what the kernel shows with the model page by page, and writes
//! the report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use super::model::{self, Model, Outcome, PredictedPage};
use super::region::Region;
use super::runner::{self, RunFacts};
use super::{ROOT, Scenario};
use crate::oracle::pagemap::PageEntry;
use crate::oracle::taskstats::{TaskstatsClient, TaskstatsError};
use crate::report::{
    PagemapCheck, ProcessReport, Role, SCHEMA_VERSION, TaskstatsSample, WorkloadReport,
};
use crate::sys;

/// One view compared: a task at the checkpoint, or a snapshot.
pub(crate) struct ViewPair<'a> {
    pub(crate) name: String,
    pub(crate) predicted: &'a [Option<PredictedPage>],
    pub(crate) actual: &'a [PageEntry],
}

/// Compares every view with the model, page by page.
///
/// A page is *misplaced* when, in some view, it is present but predicted absent or the
/// reverse, when it is a page-cache page but predicted private (or the reverse), or when two
/// views map the same frame where the model has different ones (or the reverse). Counts:
/// *not present* = absent from at least one view; *shared* = present in all with one frame;
/// *copied* = present in all with at least two frames.
pub(crate) fn compare_views(views: &[ViewPair<'_>], region_pages: usize) -> PagemapCheck {
    let mut check = PagemapCheck {
        shared_pages: 0,
        copied_pages: 0,
        not_present_pages: 0,
        misplaced_pages: 0,
        expected_shared: 0,
        expected_copied: 0,
        expected_not_present: 0,
        views: views.iter().map(|view| view.name.clone()).collect(),
        ok: false,
        note: None,
    };
    let short: Vec<&str> = views
        .iter()
        .filter(|view| view.actual.len() != region_pages || view.predicted.len() != region_pages)
        .map(|view| view.name.as_str())
        .collect();
    if !short.is_empty() {
        check.note = Some(format!(
            "pagemap of {} does not cover the region's {region_pages} pages",
            short.join(", ")
        ));
        return check;
    }
    let mut hidden_pfns = false;
    for page in 0..region_pages {
        let predicted: Vec<Option<PredictedPage>> =
            views.iter().map(|view| view.predicted[page]).collect();
        let actual: Vec<Option<PageEntry>> = views
            .iter()
            .map(|view| Some(view.actual[page]).filter(|entry| entry.present))
            .collect();
        hidden_pfns |= actual.iter().flatten().any(|entry| entry.pfn == 0);
        tally(
            predicted.iter().map(|p| p.map(|p| p.frame)),
            &mut check.expected_shared,
            &mut check.expected_copied,
            &mut check.expected_not_present,
        );
        tally(
            actual.iter().map(|a| a.map(|a| a.pfn)),
            &mut check.shared_pages,
            &mut check.copied_pages,
            &mut check.not_present_pages,
        );
        let mut misplaced = false;
        for (i, (p, a)) in predicted.iter().zip(&actual).enumerate() {
            match (p, a) {
                (Some(p), Some(a)) => misplaced |= p.page_cache != a.file_or_shared,
                (None, None) => {}
                _ => misplaced = true,
            }
            for (q, b) in predicted.iter().zip(&actual).skip(i + 1) {
                if let (Some(p), Some(a), Some(q), Some(b)) = (p, a, q, b) {
                    misplaced |= (p.frame == q.frame) != (a.pfn == b.pfn);
                }
            }
        }
        check.misplaced_pages += misplaced as u64;
    }
    if hidden_pfns {
        check.note = Some("PFNs read as 0: reading pagemap needs CAP_SYS_ADMIN".to_string());
    }
    check.ok = check.note.is_none()
        && check.misplaced_pages == 0
        && check.shared_pages == check.expected_shared
        && check.copied_pages == check.expected_copied
        && check.not_present_pages == check.expected_not_present;
    check
}

/// Adds one page to the shared / copied / not-present counts.
fn tally<F: PartialEq>(
    frames: impl Iterator<Item = Option<F>>,
    shared: &mut u64,
    copied: &mut u64,
    not_present: &mut u64,
) {
    let frames: Vec<Option<F>> = frames.collect();
    if frames.is_empty() {
        return;
    }
    if frames.iter().any(Option::is_none) {
        *not_present += 1;
    } else if frames.iter().all(|frame| *frame == frames[0]) {
        *shared += 1;
    } else {
        *copied += 1;
    }
}

/// Taskstats of each `(tid, made_copies)`, each timestamped right after its query: a failure, or a count that
/// cannot be trusted, becomes the error text the report carries instead.
pub(crate) fn sample_taskstats(tasks: &[(u32, bool)]) -> Vec<Result<TaskstatsSample, String>> {
    let client = match TaskstatsClient::connect() {
        Ok(client) => client,
        Err(err) => return tasks.iter().map(|_| Err(err.to_string())).collect(),
    };
    tasks
        .iter()
        .map(|&(tid, made_copies)| {
            let stats = client.query(tid);
            let measured_at_ns = sys::monotonic_ns();
            let stats = stats.map_err(|err| err.to_string())?;
            let wpcopy_count = if made_copies {
                stats.wpcopy_count_of_copier()
            } else {
                stats.wpcopy_count()
            };
            let wpcopy_count = wpcopy_count.map_err(|err: TaskstatsError| err.to_string())?;
            Ok(TaskstatsSample {
                version: stats.version,
                wpcopy_count,
                wpcopy_delay_total_ns: stats.wpcopy_delay_total_ns,
                minor_faults: stats.minor_faults,
                major_faults: stats.major_faults,
                measured_at_ns,
            })
        })
        .collect()
}

/// Frame identities of a pagemap: the PFN of each present page.
fn pfn_view(entries: &[PageEntry]) -> Vec<Option<u64>> {
    entries
        .iter()
        .map(|entry| (entry.present && entry.pfn != 0).then_some(entry.pfn))
        .collect()
}

fn frame_view(view: &[Option<PredictedPage>]) -> Vec<Option<model::FrameId>> {
    view.iter()
        .map(|page| page.map(|page| page.frame))
        .collect()
}

/// Assembles the report from the model's prediction and the run's observations.
pub(crate) fn build_report(
    scenario: &Scenario,
    outcome: &Outcome,
    facts: &RunFacts,
    taskstats: Vec<Option<Result<TaskstatsSample, String>>>,
    baseline: Option<TaskstatsSample>,
    page_size: usize,
) -> WorkloadReport {
    let region_pages = scenario.region_pages();
    let tasks = scenario.tasks.len();
    let roles: Vec<Role> = scenario.tasks.iter().map(|task| task.role).collect();
    let actual_entries: Vec<Option<&[PageEntry]>> = (0..tasks)
        .map(|task| {
            outcome.views[task].as_ref()?;
            facts.checkpoint[task]
                .as_ref()
                .map(|(entries, _)| entries.as_slice())
        })
        .collect();

    // Page by page, across every view.
    let mut pairs = Vec::new();
    for ((spec, predicted), actual) in scenario
        .tasks
        .iter()
        .zip(&outcome.views)
        .zip(&actual_entries)
    {
        if let (Some(predicted), Some(actual)) = (predicted, actual) {
            pairs.push(ViewPair {
                name: spec.name.to_string(),
                predicted,
                actual,
            });
        }
    }
    for (snapshot, actual) in outcome.snapshots.iter().zip(&facts.snapshots) {
        pairs.push(ViewPair {
            name: format!("{} {}", scenario.tasks[snapshot.task].name, snapshot.label),
            predicted: &snapshot.view,
            actual,
        });
    }
    let mut check = compare_views(&pairs, region_pages);

    // Sharing with relatives, and exclusive pages, per process.
    let expected_sharing = model::sharing(
        &outcome
            .views
            .iter()
            .map(|view| view.as_deref().map(frame_view))
            .collect::<Vec<_>>(),
        &outcome.parents,
        &roles,
    );
    let actual_sharing = model::sharing(
        &actual_entries
            .iter()
            .map(|entries| entries.map(pfn_view))
            .collect::<Vec<_>>(),
        &outcome.parents,
        &roles,
    );
    let mut problems = Vec::new();
    for task in 0..tasks {
        let name = scenario.tasks[task].name;
        if expected_sharing[task] != actual_sharing[task] {
            problems.push(format!(
                "{name} shares {:?}, expected {:?}",
                actual_sharing[task], expected_sharing[task]
            ));
        }
        if let (Some(expected), Some(entries)) =
            (outcome.exclusive_pages(task), actual_entries[task])
        {
            let actual = entries.iter().filter(|entry| entry.exclusive).count() as u64;
            if actual != expected {
                problems.push(format!(
                    "{name} maps {actual} pages exclusively, expected {expected}"
                ));
            }
        }
        if facts.anomalies[task] {
            problems.push(format!(
                "{name}: {}",
                facts.notes[task].as_deref().unwrap_or("unexpected state")
            ));
        }
    }
    if !problems.is_empty() {
        let note = problems.join("; ");
        check.note = Some(match check.note.take() {
            Some(earlier) => format!("{earlier}; {note}"),
            None => note,
        });
        check.ok = false;
    }

    let file_kinds = scenario.has_file_segments();
    let mut taskstats = taskstats;
    let processes: Vec<ProcessReport> = (0..tasks)
        .map(|task| {
            let run = &facts.tasks[task];
            let entries = actual_entries[task].unwrap_or(&[]);
            let (taskstats, taskstats_error) = match taskstats[task].take() {
                Some(Ok(sample)) => (Some(sample), None),
                Some(Err(err)) => (None, Some(err)),
                None => (
                    None,
                    Some(
                        "exited before the checkpoint: taskstats are read from live tasks"
                            .to_string(),
                    ),
                ),
            };
            ProcessReport {
                role: scenario.tasks[task].role,
                pid: run.pid,
                tid: run.tid,
                expected: outcome.counts[task].to_map(file_kinds),
                taskstats_baseline: if task == ROOT { baseline.clone() } else { None },
                taskstats,
                taskstats_error,
                region_pfns: entries.iter().map(|entry| entry.pfn).collect(),
                region_exclusive_pages: entries.iter().filter(|entry| entry.exclusive).count()
                    as u64,
                name: scenario.tasks[task].name.to_string(),
                parent_pid: outcome.parents[task].map(|parent| facts.tasks[parent].pid),
                checkpoint_ns: facts.checkpoint[task].as_ref().map(|(_, at)| *at),
                expected_shared_pages: expected_sharing[task].clone(),
                shared_pages: actual_sharing[task].clone(),
                expected_exclusive_pages: outcome.exclusive_pages(task),
                region_file_pages: entries
                    .iter()
                    .enumerate()
                    .filter(|(_, entry)| entry.present && entry.file_or_shared)
                    .map(|(page, _)| page as u64)
                    .collect(),
                note: facts.notes[task].clone(),
            }
        })
        .collect();

    let ended: Vec<String> = (0..tasks)
        .filter_map(|task| {
            let run = &facts.tasks[task];
            let exit = run.exit.as_deref()?;
            Some(format!(
                "{} (pid {}): {exit}",
                scenario.tasks[task].name, run.pid
            ))
        })
        .collect();
    let exits_ok = (0..tasks).all(|task| {
        let run = &facts.tasks[task];
        run.exit.is_none() || run.exit_ok
    });
    let child_exit = if ended.is_empty() {
        "no child processes (threads joined)".to_string()
    } else {
        ended.join(", ")
    };
    WorkloadReport {
        schema_version: SCHEMA_VERSION,
        workload: scenario.name.to_string(),
        page_size: page_size as u64,
        region_start: facts.region_start,
        region_pages: region_pages as u64,
        processes,
        ok: check.ok && exits_ok,
        pagemap_check: check,
        child_exit,
        timeline: facts.timeline.clone(),
        mappings: Vec::new(),
    }
}

/// Runs `scenario` in this process: maps the region, performs the steps, checks the
/// checkpoint against the model, writes the report (before failing, if a check failed).
pub(crate) fn run(scenario: &Scenario, report_path: Option<&Path>) -> anyhow::Result<()> {
    let checked = execute_and_check(scenario)?;
    if let Some(path) = report_path {
        write_report(&checked.report, path)?;
    }
    print!("{}", summary(scenario, &checked.report, checked.cpu));
    drop(checked.region);
    verdict(&checked.report)
}

/// A run, checked. It holds the region mapped: writing and printing the report allocate, and
/// an allocation placed where the region was would take first-touch faults at the region's
/// addresses, which a tracer would count as the workload's.
pub(crate) struct CheckedRun {
    pub(crate) report: WorkloadReport,
    /// The CPU the workload was pinned to.
    pub(crate) cpu: Option<usize>,
    /// Drop it once the report is written and printed.
    pub(crate) region: Region,
}

/// Runs the scenario and compares what the kernel shows with the model. For workloads that
/// add to the report before writing it; [`run`] does the rest for the others.
pub(crate) fn execute_and_check(scenario: &Scenario) -> anyhow::Result<CheckedRun> {
    let outcome =
        Model::outcome(scenario).map_err(|err| anyhow!("workload {}: {err}", scenario.name))?;
    let page_size = sys::page_size();
    // Before anything else, as fork-cow does: copies between this sample and the
    // checkpoint's are the workload's.
    let baseline = sample_taskstats(&[(sys::gettid(), false)])
        .pop()
        .and_then(Result::ok);
    let region =
        Region::map(&scenario.segments, page_size, scenario.name).context("mapping the region")?;
    let mut facts = runner::execute(scenario, &region, |facts| {
        let tids: Vec<(u32, bool)> = facts
            .iter()
            .enumerate()
            .filter(|(task, _)| outcome.alive[*task])
            .map(|(task, run)| (run.tid, outcome.counts[task].cow_copy > 0))
            .collect();
        let mut samples = sample_taskstats(&tids).into_iter();
        (0..facts.len())
            .map(|task| outcome.alive[task].then(|| samples.next().unwrap()))
            .collect()
    })?;
    let taskstats = std::mem::take(&mut facts.taskstats);
    let report = build_report(scenario, &outcome, &facts, taskstats, baseline, page_size);
    Ok(CheckedRun {
        report,
        cpu: facts.cpu,
        region,
    })
}

/// Writes a report (a [`WorkloadReport`], or one that extends it) as pretty JSON.
pub(crate) fn write_report(report: &impl serde::Serialize, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("writing the report to {}", path.display()))
}

/// The run's verdict: an error when the pagemap check or a process failed.
pub(crate) fn verdict(report: &WorkloadReport) -> anyhow::Result<()> {
    if !report.pagemap_check.ok {
        bail!("pagemap check failed: {:?}", report.pagemap_check);
    }
    if !report.ok {
        bail!("a process of the workload failed: {}", report.child_exit);
    }
    Ok(())
}

/// The human-readable account printed after a run.
pub(crate) fn summary(scenario: &Scenario, report: &WorkloadReport, cpu: Option<usize>) -> String {
    let mut out = String::new();
    let pinned = cpu.map_or(String::new(), |cpu| format!("; pinned to CPU {cpu}"));
    let _ = writeln!(
        out,
        "{}: region {:#x}, {} pages of {} bytes{pinned}",
        scenario.name, report.region_start, report.region_pages, report.page_size
    );
    for process in &report.processes {
        let expected: Vec<String> = process
            .expected
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(kind, count)| format!("{count} {kind}"))
            .collect();
        let expected = if expected.is_empty() {
            "no faults".to_string()
        } else {
            expected.join(", ")
        };
        let _ = write!(
            out,
            "  {:<14} pid {:<7} tid {:<7} expected in region: {expected}",
            process.name, process.pid, process.tid
        );
        if let Some(shared) = &process.shared_pages {
            let shared: Vec<String> = shared
                .iter()
                .map(|(with, count)| {
                    let expected = process
                        .expected_shared_pages
                        .as_ref()
                        .and_then(|map| map.get(with))
                        .map_or("?".to_string(), u64::to_string);
                    format!("{with} {count} (expected {expected})")
                })
                .collect();
            let _ = write!(out, "; shared {}", shared.join(", "));
        }
        if let Some(expected) = process.expected_exclusive_pages {
            let _ = write!(
                out,
                "; exclusive {} (expected {expected})",
                process.region_exclusive_pages
            );
        }
        let _ = writeln!(out);
        if let Some(note) = &process.note {
            let _ = writeln!(out, "  {:<14} {note}", "");
        }
    }
    let check = &report.pagemap_check;
    let _ = writeln!(
        out,
        "  pagemap over {}: {} shared, {} copied, {} not present, {} misplaced \
         (expected {} / {} / {}): {}",
        check.views.join(", "),
        check.shared_pages,
        check.copied_pages,
        check.not_present_pages,
        check.misplaced_pages,
        check.expected_shared,
        check.expected_copied,
        check.expected_not_present,
        if check.ok { "ok" } else { "MISMATCH" }
    );
    if let Some(note) = &check.note {
        let _ = writeln!(out, "  note: {note}");
    }
    // One line per reason taskstats are missing, naming every process it applies to.
    let mut unavailable: Vec<(&str, Vec<&str>)> = Vec::new();
    for process in &report.processes {
        let before = process
            .taskstats_baseline
            .as_ref()
            .map_or(0, |base| base.wpcopy_count);
        match (&process.taskstats, &process.taskstats_error) {
            (Some(sample), _) => {
                let _ = writeln!(
                    out,
                    "  taskstats {}: {} COW copies during the workload",
                    process.name,
                    sample.wpcopy_count.saturating_sub(before)
                );
            }
            (None, Some(err)) => match unavailable.iter_mut().find(|(e, _)| e == err) {
                Some((_, names)) => names.push(&process.name),
                None => unavailable.push((err, vec![&process.name])),
            },
            (None, None) => {}
        }
    }
    for (err, names) in unavailable {
        let _ = writeln!(out, "  taskstats {}: unavailable: {err}", names.join(", "));
    }
    let _ = writeln!(out, "  exits: {}", report.child_exit);
    out
}

/// The names of every task and its expected counts, for tests.
#[cfg(test)]
pub(crate) fn expected_counts(
    scenario: &Scenario,
) -> std::collections::BTreeMap<&'static str, model::FaultCounts> {
    let outcome = Model::outcome(scenario).unwrap();
    scenario
        .tasks
        .iter()
        .zip(&outcome.counts)
        .map(|(task, counts)| (task.name, *counts))
        .collect()
}

/// What the pagemaps would be if the model were right: PFN `1_000_000 + frame`, the zero
/// page's frame included; for tests of the checks.
#[cfg(test)]
pub(crate) fn predicted_pagemap(view: &[Option<PredictedPage>]) -> Vec<PageEntry> {
    view.iter()
        .map(|page| match page {
            Some(page) => PageEntry {
                present: true,
                pfn: 1_000_000 + page.frame as u64,
                exclusive: page.exclusive,
                file_or_shared: page.page_cache,
            },
            None => PageEntry::default(),
        })
        .collect()
}

/// The report the checks produce for a run in which the kernel did exactly what the model
/// says, and the task it would hold; for tests.
#[cfg(test)]
pub(crate) fn simulated_report(scenario: &Scenario) -> WorkloadReport {
    use super::runner::TaskRun;
    let outcome = Model::outcome(scenario).unwrap();
    let tasks = scenario.tasks.len();
    let facts = RunFacts {
        tasks: (0..tasks)
            .map(|task| TaskRun {
                pid: 100 + task as u32,
                tid: 100 + task as u32,
                exit: (task != ROOT && scenario.tasks[task].role != Role::Thread)
                    .then(|| "exit status 0".to_string()),
                exit_ok: true,
                ended_ns: None,
            })
            .collect(),
        checkpoint: outcome
            .views
            .iter()
            .map(|view| view.as_ref().map(|view| (predicted_pagemap(view), 1)))
            .collect(),
        notes: vec![None; tasks],
        anomalies: vec![false; tasks],
        snapshots: outcome
            .snapshots
            .iter()
            .map(|snapshot| predicted_pagemap(&snapshot.view))
            .collect(),
        timeline: Vec::new(),
        region_start: 0x10_0000,
        cpu: Some(0),
        taskstats: Vec::new(),
    };
    build_report(scenario, &outcome, &facts, vec![None; tasks], None, 4096)
}

/// Looks a task's entry up by name in a report; for tests.
#[cfg(test)]
pub(crate) fn process<'r>(report: &'r WorkloadReport, name: &str) -> &'r ProcessReport {
    report
        .processes
        .iter()
        .find(|process| process.name == name)
        .unwrap_or_else(|| panic!("no process {name:?}"))
}

/// A task's expected sharing as plain pairs; for tests.
#[cfg(test)]
pub(crate) fn shared(report: &WorkloadReport, name: &str) -> Vec<(String, u64)> {
    process(report, name)
        .expected_shared_pages
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Backing, PageSet, Segment, Step, TaskSpec};
    use super::*;

    fn small() -> Scenario {
        Scenario {
            name: "small",
            segments: vec![Segment {
                label: "anon",
                pages: 6,
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
                    pages: PageSet::range(0..6),
                },
                Step::Snapshot {
                    task: ROOT,
                    label: "before fork",
                },
                Step::Fork {
                    task: ROOT,
                    child: 1,
                },
                Step::Write {
                    task: 1,
                    pages: PageSet::range(0..2),
                },
                Step::Write {
                    task: ROOT,
                    pages: PageSet::range(1..3),
                },
            ],
        }
    }

    #[test]
    fn a_faithful_kernel_passes() {
        let report = simulated_report(&small());
        let check = &report.pagemap_check;
        assert!(report.ok && check.ok, "{check:?}");
        // Views: parent, child, parent before fork. Page 0: child copied; 1: both wrote
        // (parent reused); 2: parent copied; 3-5 shared by all.
        assert_eq!(check.views, ["parent", "child", "parent before fork"]);
        assert_eq!((check.shared_pages, check.copied_pages), (3, 3));
        assert_eq!(shared(&report, "child"), [("with_parent".to_string(), 3)]);
        assert_eq!(process(&report, "parent").expected_exclusive_pages, Some(3));
    }

    #[test]
    fn a_misplaced_copy_is_caught_even_when_counts_agree() {
        let scenario = small();
        let outcome = Model::outcome(&scenario).unwrap();
        let parent = predicted_pagemap(outcome.views[0].as_ref().unwrap());
        let mut child = predicted_pagemap(outcome.views[1].as_ref().unwrap());
        // Swap: page 0 shared (child never copied it), page 5 copied instead.
        child[0] = parent[0];
        child[5].pfn = 1;
        let views = [
            ViewPair {
                name: "parent".into(),
                predicted: outcome.views[0].as_ref().unwrap(),
                actual: &parent,
            },
            ViewPair {
                name: "child".into(),
                predicted: outcome.views[1].as_ref().unwrap(),
                actual: &child,
            },
        ];
        let check = compare_views(&views, 6);
        assert_eq!(check.misplaced_pages, 2);
        assert!(!check.ok);
    }

    #[test]
    fn missing_pages_hidden_pfns_and_page_cache_pages_are_caught() {
        let scenario = small();
        let outcome = Model::outcome(&scenario).unwrap();
        let predicted = outcome.views[0].as_ref().unwrap();
        let mut actual = predicted_pagemap(predicted);
        actual[4] = PageEntry::default();
        let one = |actual: &[PageEntry]| {
            compare_views(
                &[ViewPair {
                    name: "parent".into(),
                    predicted,
                    actual,
                }],
                6,
            )
        };
        let check = one(&actual);
        assert_eq!((check.not_present_pages, check.misplaced_pages), (1, 1));
        let mut file = predicted_pagemap(predicted);
        file[2].file_or_shared = true;
        assert_eq!(one(&file).misplaced_pages, 1);
        let hidden: Vec<PageEntry> = predicted_pagemap(predicted)
            .into_iter()
            .map(|entry| PageEntry { pfn: 0, ..entry })
            .collect();
        assert!(one(&hidden).note.unwrap().contains("CAP_SYS_ADMIN"));
        assert!(one(&actual[..5]).note.unwrap().contains("does not cover"));
    }

    #[test]
    fn wrong_sharing_or_exclusivity_fails_the_report() {
        let scenario = small();
        let outcome = Model::outcome(&scenario).unwrap();
        let mut facts = RunFacts {
            tasks: vec![
                runner::TaskRun {
                    pid: 1,
                    tid: 1,
                    ..Default::default()
                },
                runner::TaskRun {
                    pid: 2,
                    tid: 2,
                    exit: Some("exit status 0".into()),
                    exit_ok: true,
                    ended_ns: None,
                },
            ],
            checkpoint: outcome
                .views
                .iter()
                .map(|view| view.as_ref().map(|view| (predicted_pagemap(view), 1)))
                .collect(),
            notes: vec![None; 2],
            anomalies: vec![false; 2],
            snapshots: outcome
                .snapshots
                .iter()
                .map(|snapshot| predicted_pagemap(&snapshot.view))
                .collect(),
            timeline: Vec::new(),
            region_start: 0,
            cpu: None,
            taskstats: Vec::new(),
        };
        // The child's page 5 is shared with the parent: mark it exclusive anyway.
        facts.checkpoint[1].as_mut().unwrap().0[5].exclusive = true;
        let report = build_report(&scenario, &outcome, &facts, vec![None, None], None, 4096);
        assert!(!report.ok);
        assert!(
            report
                .pagemap_check
                .note
                .as_ref()
                .unwrap()
                .contains("child maps 4 pages exclusively, expected 3"),
            "{:?}",
            report.pagemap_check.note
        );
    }
}
