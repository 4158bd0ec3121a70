//! The `cowtrace-workload` binary end to end, checked against the kernel's own counts.

use std::path::PathBuf;
use std::process::Command;

use cowtrace_workloads::oracle::taskstats::DelayAccountingGuard;
use cowtrace_workloads::report::{Role, WorkloadReport, fault_kind};

const BINARY: &str = env!("CARGO_BIN_EXE_cowtrace-workload");

fn report_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "cowtrace-workload-{tag}-{}.json",
        std::process::id()
    ))
}

#[test]
fn list_names_fork_cow() {
    let output = Command::new(BINARY).arg("--list").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.lines().any(|line| line.starts_with("fork-cow ")),
        "{stdout}"
    );
}

#[test]
fn unknown_workload_fails_and_names_the_available_ones() {
    let output = Command::new(BINARY)
        .arg("no-such-workload")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("available: fork-cow"), "{stderr}");
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn fork_cow_agrees_with_pagemap_and_taskstats() {
    let _accounting = DelayAccountingGuard::enable().unwrap();
    let path = report_path("fork-cow");
    let output = Command::new(BINARY)
        .args(["fork-cow", "--report"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("fork-cow: parent pid"), "{stdout}");

    let report: WorkloadReport =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();

    assert!(report.ok);
    assert_eq!(report.workload, "fork-cow");
    assert_eq!(report.region_start % report.page_size, 0);
    let check = &report.pagemap_check;
    assert!(check.ok, "{check:?}");
    assert_eq!(check.shared_pages, 255);
    assert_eq!(check.copied_pages, 754);
    assert_eq!(check.not_present_pages, 0);

    let [parent, child] = [&report.processes[0], &report.processes[1]];
    assert_eq!((parent.role, child.role), (Role::Parent, Role::Child));
    // A binary runs the workload on its main thread.
    assert_eq!(parent.tid, parent.pid);
    assert_ne!(parent.pid, child.pid);
    assert_eq!(parent.expected[fault_kind::ANON_FIRST_TOUCH], 1009);
    assert_eq!(child.expected[fault_kind::COW_COPY], 503);
    for process in [parent, child] {
        assert_eq!(process.region_pfns.len(), 1009);
        // Every written page is private to its writer; the 255 untouched ones are shared.
        assert_eq!(process.region_exclusive_pages, 754, "{:?}", process.role);
    }

    let parent_stats = parent.taskstats.as_ref().expect("parent taskstats");
    let child_stats = child.taskstats.as_ref().expect("child taskstats");
    assert!(parent_stats.measured_at_ns <= child_stats.measured_at_ns);
    // Taskstats counts copies anywhere in the address space (stack, libc data after the
    // fork), so it may exceed the region's count by a little, never fall short of it.
    let child_copies = child_stats.wpcopy_count;
    assert!(
        (503..503 + 64).contains(&child_copies),
        "child wpcopy_count {child_copies}"
    );
    let parent_baseline = parent.taskstats_baseline.as_ref().expect("parent baseline");
    assert!(parent_baseline.measured_at_ns < parent_stats.measured_at_ns);
    assert!(child.taskstats_baseline.is_none());
    let parent_copies = parent_stats.wpcopy_count - parent_baseline.wpcopy_count;
    assert!(
        (251..251 + 64).contains(&parent_copies),
        "parent wpcopy_count grew by {parent_copies} during the workload"
    );
}
