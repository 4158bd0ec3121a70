//! Shared by the privileged integration tests: running the real binary and reading its output.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use cowtrace::records::json::{EndLine, FaultLine, JsonLine};
use cowtrace_workloads::report::{ProcessReport, WorkloadReport};

pub const IGNORE_REASON: &str = "needs root and loads BPF programs: run with `cargo xtask test`";

pub fn cowtrace_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cowtrace")
}

pub fn cowtrace(args: &[&str]) -> Output {
    let output = Command::new(cowtrace_bin())
        .args(args)
        .output()
        .expect("cowtrace runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "cowtrace panicked: {stderr}");
    output
}

pub fn require_root() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "{IGNORE_REASON}");
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn read_json_lines(path: &Path) -> Vec<JsonLine> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1))
        })
        .collect()
}

pub fn read_report(path: &Path) -> WorkloadReport {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn faults(lines: &[JsonLine]) -> Vec<&FaultLine> {
    lines
        .iter()
        .filter_map(|line| {
            if let JsonLine::Fault(f) = line {
                Some(f)
            } else {
                None
            }
        })
        .collect()
}

pub fn end_line(lines: &[JsonLine]) -> &EndLine {
    match lines.last() {
        Some(JsonLine::End(end)) => end,
        other => panic!("last line is not the end line: {other:?}"),
    }
}

/// Faults of one task inside the workload's region, counted by kind name.
pub fn region_counts(
    lines: &[JsonLine],
    report: &WorkloadReport,
    process: &ProcessReport,
) -> BTreeMap<String, u64> {
    let end = report.region_start + report.region_pages * report.page_size;
    let mut counts = BTreeMap::new();
    for kind in process.expected.keys() {
        counts.insert(kind.clone(), 0);
    }
    for fault in faults(lines) {
        if fault.tid == process.tid && (report.region_start..end).contains(&fault.address) {
            *counts.entry(fault.kind.clone()).or_insert(0) += 1;
        }
    }
    counts.retain(|kind, count| process.expected.contains_key(kind) || *count > 0);
    counts
}

/// Every record the kernel produced reached user space, and none was dropped.
pub fn assert_nothing_lost(lines: &[JsonLine]) {
    let end = end_line(lines);
    assert_eq!(end.records_dropped, 0, "{end:?}");
    assert_eq!(
        end.records_received + end.records_dropped,
        end.records_produced,
        "{end:?}"
    );
    assert!(
        matches!(lines.first(), Some(JsonLine::Start(_))),
        "first line is the start line"
    );
}

/// Turns on delay accounting for the guard's life, so taskstats counts COW copies.
pub fn delay_accounting() -> cowtrace_workloads::oracle::taskstats::DelayAccountingGuard {
    cowtrace_workloads::oracle::taskstats::DelayAccountingGuard::enable()
        .expect("kernel.task_delayacct")
}
