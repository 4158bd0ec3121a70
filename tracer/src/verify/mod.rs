//! Checks a trace against ground truth: a workload's own arithmetic (expected fault counts in
//! its region), the kernel's taskstats (COW copies per task) and `/proc/PID/pagemap` (the frame
//! behind every page). Pure: takes the workload's report and the records, returns verdicts.

use cowtrace_common::FaultKind;
use cowtrace_workloads::report::{ProcessReport, WorkloadReport};

use crate::{
    model::frames::{Region, agreement, region_frames},
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
    let frames = region_frames(records, region);
    let mut checks = Vec::new();
    for process in &report.processes {
        let label = format!("{:?} {}", process.role, process.pid).to_lowercase();
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
        let reconstructed = frames
            .get(&process.pid)
            .cloned()
            .unwrap_or_else(|| vec![None; region.pages as usize]);
        let (agree, total) = agreement(&reconstructed, &process.region_pfns);
        checks.push(Check {
            process: label,
            what: "frames agree with /proc/PID/pagemap".into(),
            expected: format!("{total} pages"),
            traced: format!("{agree} pages"),
            ok: agree == total,
        });
    }
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
