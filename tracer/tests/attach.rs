//! Attaching to a family whose fork happened before tracing began: the page model starts from
//! /proc (descendants, mappings, pagemap frames) and must still be exact.

mod support;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
};

use support::*;

/// Reads lines until one contains `needle`; returns everything read.
fn read_until(reader: &mut impl std::io::BufRead, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert_ne!(
            reader.read_line(&mut line).unwrap(),
            0,
            "ended before `{needle}`: {seen}"
        );
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn trace_pid_after_the_fork_counts_copies_and_matches_pagemap() {
    require_root();
    let scratch = Scratch::new();
    let (json, report_path) = (scratch.path("trace.jsonl"), scratch.path("report.json"));
    // fork-partial's steps: 0 parent touches 1013 pages, 1 fork, 2 child writes 331 pages.
    // Hold before step 2 (the fork is done, nothing written yet) and before the checkpoint.
    let mut workload = Command::new(cowtrace_bin())
        .args([
            "__workload",
            "fork-partial",
            "--report",
            report_path.to_str().unwrap(),
        ])
        .env("COWTRACE_WORKLOAD_HOLD_BEFORE_STEP", "2,3")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut workload_in = workload.stdin.take().unwrap();
    let mut workload_err = BufReader::new(workload.stderr.take().unwrap());
    read_until(&mut workload_err, "holding before step 2");

    let pid = workload.id().to_string();
    let mut tracer = Command::new(cowtrace_bin())
        .args(["trace", "-p", &pid, "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tracer_out = BufReader::new(tracer.stdout.take().unwrap());
    let mut banner = String::new();
    tracer_out.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("Tracing page faults of pid"), "{banner}");

    writeln!(workload_in, "go").unwrap();
    read_until(&mut workload_err, "holding before step 3");
    // Both processes are alive and blocked: the model against the kernel, page by page.
    let mut tracer_err = BufReader::new(tracer.stderr.take().unwrap());
    // The reorder window must pass before the last records are applied.
    std::thread::sleep(std::time::Duration::from_millis(200));
    unsafe { libc::kill(tracer.id() as i32, libc::SIGUSR1) };
    read_until(&mut tracer_err, "verify: page model vs /proc/PID/pagemap");
    read_until(&mut tracer_err, "PID");
    let mut rows = Vec::new();
    for _ in 0..2 {
        let mut row = String::new();
        tracer_err.read_line(&mut row).unwrap();
        rows.push(row);
    }
    for row in &rows {
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(columns.len(), 6, "{row}");
        assert_eq!(columns[5], "exact", "{rows:?}");
        assert!(
            columns[1].parse::<u64>().unwrap() >= 1013,
            "every region page agrees: {row}"
        );
    }

    writeln!(workload_in, "go").unwrap();
    assert!(workload.wait().unwrap().success());
    assert!(
        tracer.wait().unwrap().success(),
        "the tracer ends when the family has exited"
    );

    let lines = read_json_lines(&json);
    let report = read_report(&report_path);
    assert_nothing_lost(&lines);
    let (parent, child) = (&report.processes[0], &report.processes[1]);
    assert!(
        rows.iter()
            .any(|row| row.split_whitespace().next() == Some(&parent.pid.to_string()))
    );
    assert!(
        rows.iter()
            .any(|row| row.split_whitespace().next() == Some(&child.pid.to_string()))
    );
    // The child, forked before the trace began, was followed: all its copies are there.
    assert_eq!(child.expected["cow_copy"], 331);
    assert_eq!(region_counts(&lines, &report, child), child.expected);
    // The parent's first touches happened before attach: none of its region faults is traced.
    let parent_counts = region_counts(&lines, &report, parent);
    assert!(
        parent_counts.values().all(|&count| count == 0),
        "{parent_counts:?}"
    );
}
