//! Checks a trace against ground truth: a workload's own arithmetic (expected fault counts in
//! its region), the kernel's taskstats (COW copies per task) and `/proc/PID/pagemap` (the frame
//! behind every page). Pure: takes the workload's report and the records, returns verdicts.

pub mod live;
pub mod mappings;

use cowtrace_common::FaultKind;
use cowtrace_workloads::report::{ProcessReport, WorkloadReport};

use crate::{
    model::frames::{Region, agreement, region_frames_at},
    records::Record,
};

/// One comparison of a traced figure with a known one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub process: String,
    pub what: String,
    pub expected: String,
    pub traced: String,
    pub ok: bool,
}

/// Compares the trace with everything the workload's report knows.
pub fn check_workload(report: &WorkloadReport, records: &[Record]) -> Vec<Check> {
    let region = Region {
        start: report.region_start,
        pages: report.region_pages,
        page_size: report.page_size,
    };
    let mut checks = Vec::new();
    for process in &report.processes {
        let label = label(process);
        for (kind_name, &expected) in &process.expected {
            let traced = match FaultKind::from_name(kind_name) {
                Some(kind) => count_in_region(records, process, region, kind),
                None => {
                    checks.push(Check {
                        process: label.clone(),
                        what: format!("{kind_name} in region"),
                        expected: expected.to_string(),
                        traced: "unknown kind".into(),
                        ok: false,
                    });
                    continue;
                }
            };
            checks.push(Check {
                process: label.clone(),
                what: format!("{kind_name} in region"),
                expected: expected.to_string(),
                traced: traced.to_string(),
                ok: traced == expected,
            });
        }
        if let Some(taskstats) = &process.taskstats {
            // taskstats counts every wp_page_copy of the task, anywhere, since it started; the
            // trace followed the task from its creation, so all its copies up to the moment of
            // the query must be there.
            let traced = records
                .iter()
                .filter(|record| match record {
                    Record::Fault(fault) => {
                        fault.header.tid == process.tid
                            && fault.header.time_ns <= taskstats.measured_at_ns
                            && FaultKind::from_u32(fault.kind) == Some(FaultKind::CowCopy)
                    }
                    _ => false,
                })
                .count() as u64;
            checks.push(Check {
                process: label.clone(),
                what: "cow_copy, whole task (taskstats WPCOPY)".into(),
                expected: taskstats.wpcopy_count.to_string(),
                traced: traced.to_string(),
                ok: traced == taskstats.wpcopy_count,
            });
        }
    }
    checks.extend(check_frames_and_sharing(report, records, region));
    checks.push(Check {
        process: "all".into(),
        what: "pagemap: shared / copied pages".into(),
        expected: format!(
            "{} / {}",
            report.pagemap_check.expected_shared, report.pagemap_check.expected_copied
        ),
        traced: format!(
            "{} / {}",
            report.pagemap_check.shared_pages, report.pagemap_check.copied_pages
        ),
        ok: report.pagemap_check.ok,
    });
    checks
}

/// How tables name a process of the workload: its name in the report ("child 2"), and pid.
fn label(process: &ProcessReport) -> String {
    let name = if process.name.is_empty() {
        format!("{:?}", process.role).to_lowercase()
    } else {
        process.name.clone()
    };
    format!("{name} {}", process.pid)
}

/// The page model at each process's checkpoint against what the workload read then: the frame
/// behind every region page (/proc/PID/pagemap), and how many pages it shares with its parent,
/// children and siblings.
fn check_frames_and_sharing(
    report: &WorkloadReport,
    records: &[Record],
    region: Region,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for process in &report.processes {
        // Exited (or exec'd away) before the checkpoint: nothing was read to compare with.
        let Some(checkpoint) = process
            .checkpoint_ns
            .or(process.taskstats.as_ref().map(|t| t.measured_at_ns))
        else {
            continue;
        };
        if process.region_pfns.is_empty() {
            continue;
        }
        let frames = region_frames_at(records, region, checkpoint);
        let frames_of = |pid: u32| {
            frames
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| vec![None; region.pages as usize])
        };
        let own = frames_of(process.pid);
        // Page cache frames are not private pages: the model does not follow them.
        let private: Vec<usize> = (0..region.pages as usize)
            .filter(|page| !process.region_file_pages.contains(&(*page as u64)))
            .collect();
        let (agree, _) = agreement(
            &private.iter().map(|&page| own[page]).collect::<Vec<_>>(),
            &private
                .iter()
                .map(|&page| process.region_pfns[page])
                .collect::<Vec<_>>(),
        );
        checks.push(Check {
            process: label(process),
            what: "frames agree with /proc/PID/pagemap".into(),
            expected: format!("{} pages", private.len()),
            traced: format!("{agree} pages"),
            ok: agree == private.len(),
        });
        let Some(expected) = &process.expected_shared_pages else {
            continue;
        };
        let relatives = |relation: &str| -> Vec<u32> {
            report
                .processes
                .iter()
                .filter(|other| other.pid != process.pid && other.checkpoint_ns.is_some())
                .filter(|other| match relation {
                    "with_parent" => Some(other.pid) == process.parent_pid,
                    "with_children" => other.parent_pid == Some(process.pid),
                    "with_siblings" => {
                        process.parent_pid.is_some() && other.parent_pid == process.parent_pid
                    }
                    _ => false,
                })
                .map(|other| other.pid)
                .collect()
        };
        for (relation, &count) in expected {
            let relatives = relatives(relation);
            let others: Vec<Vec<Option<u64>>> =
                relatives.iter().map(|&pid| frames_of(pid)).collect();
            let shared = (0..region.pages as usize)
                .filter(|&page| {
                    own[page].is_some() && others.iter().any(|other| other[page] == own[page])
                })
                .count() as u64;
            // The workload's count includes page cache frames both map (pagemap shows them);
            // the model follows private frames only, so those are taken out of the expectation.
            let file_shared = process
                .region_file_pages
                .iter()
                .filter(|&&page| {
                    report
                        .processes
                        .iter()
                        .filter(|other| relatives.contains(&other.pid))
                        .any(|other| {
                            other.region_file_pages.contains(&page)
                                && other.region_pfns.get(page as usize)
                                    == process.region_pfns.get(page as usize)
                        })
                })
                .count() as u64;
            let private = count.saturating_sub(file_shared);
            checks.push(Check {
                process: label(process),
                what: format!("private pages shared {}", relation.replace('_', " ")),
                expected: private.to_string(),
                traced: shared.to_string(),
                ok: shared == private,
            });
        }
    }
    checks
}

fn count_in_region(
    records: &[Record],
    process: &ProcessReport,
    region: Region,
    kind: FaultKind,
) -> u64 {
    records
        .iter()
        .filter(|record| match record {
            Record::Fault(fault) => {
                fault.header.tid == process.tid
                    && region.page_of(fault.address).is_some()
                    && FaultKind::from_u32(fault.kind) == Some(kind)
            }
            _ => false,
        })
        .count() as u64
}

/// The checks as an aligned table.
pub fn render(checks: &[Check]) -> String {
    let mut out = format!(
        "{:<14} {:<42} {:>12} {:>12}  {}\n",
        "PROCESS", "CHECK", "EXPECTED", "TRACED", ""
    );
    for check in checks {
        out.push_str(&format!(
            "{:<14} {:<42} {:>12} {:>12}  {}\n",
            check.process,
            check.what,
            check.expected,
            check.traced,
            if check.ok { "ok" } else { "MISMATCH" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cowtrace_common::{FaultRecord, ForkRecord, RecordHeader, RecordType};
    use cowtrace_workloads::report::{PagemapCheck, ProcessReport, Role, TaskstatsSample};

    use super::*;

    const START: u64 = 0x40_0000;

    fn fault(time: u64, pid: u32, page: u64, kind: FaultKind, pfn: u64) -> Record {
        Record::Fault(FaultRecord {
            header: RecordHeader::fault(time, 0, pid, pid),
            address: START + page * 4096,
            kind: kind as u32,
            new_pfn: pfn,
            alloc_count: (pfn != 0) as u32,
            ..Default::default()
        })
    }

    fn process(
        role: Role,
        pid: u32,
        expected: &[(&str, u64)],
        wpcopy: u64,
        pfns: Vec<u64>,
    ) -> ProcessReport {
        ProcessReport {
            role,
            pid,
            tid: pid,
            expected: expected
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            taskstats_baseline: None,
            taskstats: Some(TaskstatsSample {
                version: 16,
                wpcopy_count: wpcopy,
                wpcopy_delay_total_ns: 0,
                minor_faults: 0,
                major_faults: 0,
                measured_at_ns: 100,
            }),
            taskstats_error: None,
            region_pfns: pfns,
            region_exclusive_pages: 0,
            ..Default::default()
        }
    }

    fn report(child_expected_copies: u64) -> WorkloadReport {
        WorkloadReport {
            schema_version: 1,
            workload: "test".into(),
            page_size: 4096,
            region_start: START,
            region_pages: 2,
            processes: vec![
                process(
                    Role::Parent,
                    10,
                    &[("anon_first_touch", 2), ("cow_reuse", 1)],
                    0,
                    vec![100, 101],
                ),
                process(
                    Role::Child,
                    11,
                    &[("cow_copy", child_expected_copies)],
                    1,
                    vec![200, 101],
                ),
            ],
            pagemap_check: PagemapCheck {
                shared_pages: 1,
                copied_pages: 1,
                not_present_pages: 0,
                misplaced_pages: 0,
                expected_shared: 1,
                expected_copied: 1,
                ok: true,
                note: None,
                ..Default::default()
            },
            child_exit: "exit status 0".into(),
            ok: true,
            ..Default::default()
        }
    }

    fn records() -> Vec<Record> {
        vec![
            fault(1, 10, 0, FaultKind::AnonFirstTouch, 100),
            fault(2, 10, 1, FaultKind::AnonFirstTouch, 101),
            Record::Fork(ForkRecord {
                header: RecordHeader {
                    record_type: RecordType::Fork as u32,
                    pid: 10,
                    tid: 10,
                    time_ns: 3,
                    cpu: 0,
                },
                clone_flags: 0x11,
                child_pid: 11,
                child_tid: 11,
                comm: [0; 16],
            }),
            fault(4, 11, 0, FaultKind::CowCopy, 200),
            fault(5, 10, 0, FaultKind::CowReuse, 0),
            // After the taskstats query: not part of the WPCOPY comparison.
            fault(500, 11, 7, FaultKind::CowCopy, 300),
        ]
    }

    #[test]
    fn a_faithful_trace_passes_every_check() {
        let checks = check_workload(&report(1), &records());
        assert!(checks.iter().all(|check| check.ok), "{}", render(&checks));
        // Counts, taskstats and frames for both processes, plus the pagemap check.
        assert_eq!(checks.len(), 2 + 2 + 1 + 2 + 1);
    }

    #[test]
    fn a_wrong_count_or_frame_is_a_mismatch() {
        let checks = check_workload(&report(2), &records());
        let failed: Vec<_> = checks.iter().filter(|check| !check.ok).collect();
        assert_eq!(failed.len(), 1, "{}", render(&checks));
        assert_eq!(failed[0].what, "cow_copy in region");
        assert!(render(&checks).contains("MISMATCH"));

        let mut wrong_frame = records();
        wrong_frame[3] = fault(4, 11, 0, FaultKind::CowCopy, 999);
        let checks = check_workload(&report(1), &wrong_frame);
        let failed: Vec<_> = checks
            .iter()
            .filter(|check| !check.ok)
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(failed, ["frames agree with /proc/PID/pagemap"]);
    }
}
