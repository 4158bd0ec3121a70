//! The fork workload under the real probes: exact counts against the workload's arithmetic,
//! the kernel's taskstats WPCOPY count and the frames in /proc/PID/pagemap.

mod support;

use std::process::Command;

use cowtrace::records::json::JsonLine;
use cowtrace_workloads::report::{Role, WorkloadReport};
use support::*;

/// In-region counts per task equal the workload's arithmetic (prime page counts: 1009 touched,
/// child copies 503, parent reuses 257 and copies 251).
fn assert_region_counts(lines: &[JsonLine], report: &WorkloadReport) {
    assert_eq!(report.region_pages, 1009);
    for process in &report.processes {
        let counts = region_counts(lines, report, process);
        assert_eq!(
            counts, process.expected,
            "{:?} {}: traced vs expected",
            process.role, process.pid
        );
    }
    let parent = &report.processes[0];
    assert_eq!(parent.role, Role::Parent);
    assert_eq!(parent.expected["anon_first_touch"], 1009);
    assert_eq!(parent.expected["cow_copy"], 251);
    assert_eq!(parent.expected["cow_reuse"], 257);
    let child = &report.processes[1];
    assert_eq!(child.expected["cow_copy"], 503);
}

/// Every COW copy the kernel counted for a task (taskstats WPCOPY) is a traced cow_copy record
/// of that task, and vice versa, up to the moment of the query.
fn assert_copies_match_taskstats(lines: &[JsonLine], report: &WorkloadReport) {
    for process in &report.processes {
        let taskstats = process.taskstats.as_ref().unwrap_or_else(|| {
            panic!(
                "{:?}: no taskstats: {:?}",
                process.role, process.taskstats_error
            )
        });
        let traced = faults(lines)
            .iter()
            .filter(|f| {
                f.tid == process.tid
                    && f.kind == "cow_copy"
                    && f.time_ns <= taskstats.measured_at_ns
            })
            .count() as u64;
        assert_eq!(
            traced, taskstats.wpcopy_count,
            "{:?}: traced copies vs taskstats WPCOPY",
            process.role
        );
    }
}

/// The frame each copy or first touch allocated is the frame the kernel's page table holds at
/// the checkpoint, for every page the process did not fault again afterwards.
fn assert_new_frames_match_pagemap(lines: &[JsonLine], report: &WorkloadReport) {
    let page_of = |address: u64| {
        let offset = address.checked_sub(report.region_start)?;
        let page = offset / report.page_size;
        (page < report.region_pages).then_some(page as usize)
    };
    for process in &report.processes {
        let mut last_frame = vec![None; report.region_pages as usize];
        for fault in faults(lines).iter().filter(|f| f.tid == process.tid) {
            if let (Some(page), Some(pfn)) = (page_of(fault.address), fault.new_pfn) {
                last_frame[page] = Some(pfn);
            }
        }
        let mut checked = 0;
        for (page, frame) in last_frame.iter().enumerate() {
            if let Some(pfn) = frame {
                assert_eq!(
                    *pfn, process.region_pfns[page],
                    "{:?} page {page}",
                    process.role
                );
                checked += 1;
            }
        }
        let expected_allocating = match process.role {
            Role::Parent => 1009,
            Role::Child => 503,
            other => panic!("fork-cow has no {other:?}"),
        };
        assert_eq!(
            checked, expected_allocating,
            "{:?}: pages with a traced frame",
            process.role
        );
    }
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn run_fork_cow_matches_workload_taskstats_and_pagemap() {
    require_root();
    let scratch = Scratch::new();
    let (json, report_path) = (scratch.path("trace.jsonl"), scratch.path("report.json"));
    let output = cowtrace(&[
        "run",
        "fork-cow",
        "--json",
        json.to_str().unwrap(),
        "--workload-report",
        report_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("RESULT: PASS"), "{stdout}");

    let lines = read_json_lines(&json);
    let report = read_report(&report_path);
    assert!(
        report.ok,
        "workload's own pagemap check: {:?}",
        report.pagemap_check
    );
    assert_eq!(report.pagemap_check.shared_pages, 255);
    assert_eq!(report.pagemap_check.copied_pages, 754);
    assert_nothing_lost(&lines);
    assert_region_counts(&lines, &report);
    assert_copies_match_taskstats(&lines, &report);
    assert_new_frames_match_pagemap(&lines, &report);

    // The JSON lines parse with jq, one object per line.
    let jq = Command::new("jq")
        .args(["-c", "select(.type == \"fault\") | .kind"])
        .arg(&json)
        .output();
    let jq = jq.expect("jq is installed (cargo xtask setup)");
    assert!(
        jq.status.success(),
        "{}",
        String::from_utf8_lossy(&jq.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&jq.stdout).lines().count(),
        faults(&lines).len()
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn trace_command_follows_the_fork_from_the_first_instruction() {
    require_root();
    let _delay_accounting = delay_accounting();
    let scratch = Scratch::new();
    let (json, report_path) = (scratch.path("trace.jsonl"), scratch.path("report.json"));
    let output = cowtrace(&[
        "trace",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--",
        cowtrace_bin(),
        "__workload",
        "fork-cow",
        "--report",
        report_path.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains("cowtrace summary: 2 processes"),
        "{summary}"
    );

    let lines = read_json_lines(&json);
    let report = read_report(&report_path);
    let (parent, child) = (&report.processes[0], &report.processes[1]);
    let JsonLine::Start(start) = &lines[0] else {
        panic!("no start line")
    };
    assert_eq!(
        (start.mode.as_str(), start.pids.as_slice()),
        ("command", &[parent.pid][..])
    );
    // Followed from the first instruction: the exec of the command itself is in the trace.
    assert!(
        lines
            .iter()
            .any(|l| matches!(l, JsonLine::Exec(e) if e.pid == parent.pid)),
        "exec seen"
    );
    // The workload's netlink client starts threads; those are reported as `thread`, not forks.
    let forks: Vec<_> = lines
        .iter()
        .filter_map(|l| {
            if let JsonLine::Fork(f) = l {
                Some(f)
            } else {
                None
            }
        })
        .filter(|f| f.fork_kind != "thread")
        .collect();
    assert_eq!(forks.len(), 1, "{forks:?}");
    assert_eq!(
        (
            forks[0].pid,
            forks[0].child_pid,
            forks[0].fork_kind.as_str()
        ),
        (parent.pid, child.pid, "fork")
    );
    for process in [parent, child] {
        assert!(
            lines
                .iter()
                .any(|l| matches!(l, JsonLine::Exit(e) if e.pid == process.pid && e.group_dead)),
            "exit of {} seen",
            process.pid
        );
    }
    assert_nothing_lost(&lines);
    assert_eq!(end_line(&lines).command_exit_code, Some(0));
    assert_region_counts(&lines, &report);
    assert_copies_match_taskstats(&lines, &report);
    assert_new_frames_match_pagemap(&lines, &report);
}
