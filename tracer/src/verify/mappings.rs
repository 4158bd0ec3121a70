//! Checks the trace of an mmap workload against what the workload states per mapping: faults by
//! kind (as cowtrace refines them with the mapping), all faults, pages read from disk, pages
//! fault-around scanned, huge-page faults; that every fault was attributed to the mapping the
//! workload made; and the ground truth the workload read itself. Pure: report and faults in,
//! verdicts out.

use cowtrace_common::FaultKind;
use cowtrace_workloads::report::{Expected, MappingReport, WorkloadReport};

use super::Check;
use crate::model::{fault_attribution::AttributedFault, mapping_stats::PMD_ORDER};

/// One check per expectation of every mapping of the report.
pub fn check_mappings(report: &WorkloadReport, faults: &[AttributedFault]) -> Vec<Check> {
    let mut checks = Vec::new();
    for mapping in &report.mappings {
        let inside: Vec<&AttributedFault> = faults
            .iter()
            .filter(|fault| in_mapping(fault, mapping, report.page_size))
            .collect();
        let check = |what: String, expected: Expected, traced: u64| Check {
            process: mapping.label.clone(),
            what,
            expected: expected.to_string(),
            traced: traced.to_string(),
            ok: expected.admits(traced),
        };
        for (kind_name, &expected) in &mapping.faults {
            match FaultKind::from_name(kind_name) {
                Some(kind) => {
                    let traced = inside
                        .iter()
                        .filter(|fault| fault.attribution.kind == Some(kind))
                        .count() as u64;
                    checks.push(check(kind_name.clone(), expected, traced));
                }
                None => checks.push(Check {
                    process: mapping.label.clone(),
                    what: kind_name.clone(),
                    expected: expected.to_string(),
                    traced: "unknown kind".into(),
                    ok: false,
                }),
            }
        }
        checks.push(check(
            "all faults".into(),
            mapping.total_faults,
            inside.len() as u64,
        ));
        let sum = |pages: fn(&AttributedFault) -> u32| {
            inside
                .iter()
                .map(|fault| u64::from(pages(fault)))
                .sum::<u64>()
        };
        if let Some(expected) = mapping.cache_fill_pages {
            let traced = sum(|fault| fault.record.cache_fill_pages);
            checks.push(check("pages read (cache fills)".into(), expected, traced));
        }
        if let Some(expected) = mapping.fault_around_window_pages {
            let traced = sum(|fault| fault.record.fault_around_window_pages);
            checks.push(check("pages fault-around scanned".into(), expected, traced));
        }
        if let Some(expected) = mapping.huge_page_faults {
            let traced = inside
                .iter()
                .filter(|fault| {
                    fault.record.alloc_count > 0 && fault.record.alloc_order == PMD_ORDER
                })
                .count() as u64;
            checks.push(check("huge-page faults (order 9)".into(), expected, traced));
        }
        let attributed = inside
            .iter()
            .filter(|fault| {
                fault
                    .attribution
                    .mapping
                    .as_ref()
                    .is_some_and(|hit| hit.name == mapping.name)
            })
            .count() as u64;
        checks.push(Check {
            process: mapping.label.clone(),
            what: "faults attributed to this mapping".into(),
            expected: inside.len().to_string(),
            traced: attributed.to_string(),
            ok: attributed == inside.len() as u64,
        });
        for measurement in &mapping.ground_truth {
            checks.push(Check {
                process: mapping.label.clone(),
                what: format!("workload: {}", measurement.what),
                expected: measurement.expected.to_string(),
                traced: measurement.measured.to_string(),
                ok: measurement.ok(),
            });
        }
    }
    checks
}

/// A fault of the mapping's thread at an address inside it.
fn in_mapping(fault: &AttributedFault, mapping: &MappingReport, page_size: u64) -> bool {
    let end = mapping.start + mapping.pages * page_size;
    fault.record.header.tid == mapping.tid && (mapping.start..end).contains(&fault.record.address)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cowtrace_common::{FaultRecord, RecordHeader};
    use cowtrace_workloads::report::Measurement;

    use super::*;
    use crate::model::fault_attribution::{FaultAttribution, FaultMapping};

    const START: u64 = 0x7f00_0000_0000;
    const FILE: &str = "/var/tmp/cowtrace-mmap-test-1.dat";

    fn report(total: Expected) -> WorkloadReport {
        let mut faults = BTreeMap::new();
        faults.insert("file_major".to_string(), Expected::Exactly(2));
        faults.insert("file_minor".to_string(), Expected::Exactly(0));
        let mapping = MappingReport {
            label: "random".into(),
            description: String::new(),
            name: FILE.into(),
            pid: 10,
            tid: 11,
            start: START,
            pages: 4,
            faults,
            total_faults: total,
            cache_fill_pages: Some(Expected::Exactly(2)),
            fault_around_window_pages: Some(Expected::Between {
                at_least: 16,
                at_most: 64,
            }),
            huge_page_faults: None,
            ground_truth: vec![Measurement::new("pages present", 2, 2)],
        };
        WorkloadReport::of_mappings("mmap-test", 4096, 10, 11, vec![mapping])
    }

    fn fault(tid: u32, page: u64, kind: FaultKind, mapping: Option<&str>) -> AttributedFault {
        AttributedFault {
            record: FaultRecord {
                header: RecordHeader::fault(1, 0, 10, tid),
                address: START + page * 4096 + 100,
                cache_fill_pages: 1,
                fault_around_window_pages: 16,
                ..Default::default()
            },
            attribution: FaultAttribution {
                kind: Some(kind),
                mapping: mapping.map(|name| FaultMapping {
                    name: name.into(),
                    file_offset: Some(page * 4096),
                }),
            },
        }
    }

    fn faults() -> Vec<AttributedFault> {
        vec![
            fault(11, 0, FaultKind::FileMajor, Some(FILE)),
            fault(11, 3, FaultKind::FileMajor, Some(FILE)),
            // Another thread, and an address past the mapping: not counted.
            fault(12, 1, FaultKind::FileMinor, Some(FILE)),
            fault(11, 4, FaultKind::FileMinor, Some("[heap]")),
        ]
    }

    #[test]
    fn counts_the_thread_s_faults_inside_the_mapping() {
        let checks = check_mappings(&report(Expected::Exactly(2)), &faults());
        let failed: Vec<&Check> = checks.iter().filter(|check| !check.ok).collect();
        assert!(failed.is_empty(), "{}", super::super::render(&checks));
        let whats: Vec<&str> = checks.iter().map(|check| check.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "file_major",
                "file_minor",
                "all faults",
                "pages read (cache fills)",
                "pages fault-around scanned",
                "faults attributed to this mapping",
                "workload: pages present"
            ]
        );
    }

    #[test]
    fn a_count_outside_the_bounds_or_a_fault_in_another_mapping_fails() {
        let checks = check_mappings(
            &report(Expected::Between {
                at_least: 3,
                at_most: 9,
            }),
            &faults(),
        );
        let failed: Vec<&str> = checks
            .iter()
            .filter(|check| !check.ok)
            .map(|check| check.what.as_str())
            .collect();
        assert_eq!(failed, ["all faults"]);

        let mut misattributed = faults();
        misattributed[1].attribution.mapping = None;
        let checks = check_mappings(&report(Expected::Exactly(2)), &misattributed);
        let failed: Vec<&Check> = checks.iter().filter(|check| !check.ok).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(
            (failed[0].expected.as_str(), failed[0].traced.as_str()),
            ("2", "1")
        );
    }
}
