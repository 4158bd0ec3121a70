//! Every bundled workload under the real probes, through `cowtrace run`: in-region counts per
//! task against the workload's arithmetic, COW copies against taskstats, the page model's
//! frames and sharing against /proc/PID/pagemap at the workload's checkpoint.

mod support;

use support::*;

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn every_bundled_workload_matches_its_known_answer() {
    require_root();
    let mut failures = Vec::new();
    let workloads = cowtrace_workloads::list();
    assert!(
        workloads.len() >= 9,
        "the fork workloads and fork-cow at least"
    );
    for workload in workloads {
        let scratch = Scratch::new();
        let (json, report) = (scratch.path("trace.jsonl"), scratch.path("report.json"));
        let output = cowtrace(&[
            "run",
            workload.name,
            "--json",
            json.to_str().unwrap(),
            "--workload-report",
            report.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !stdout.contains("RESULT: PASS") {
            let mismatches: Vec<&str> = stdout
                .lines()
                .filter(|line| line.contains("MISMATCH"))
                .collect();
            failures.push(format!(
                "{}: {:?}\n{}\n{}",
                workload.name,
                output.status,
                mismatches.join("\n"),
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        }
        let lines = read_json_lines(&json);
        assert_nothing_lost(&lines);
        let report = read_report(&report);
        assert!(report.ok, "{}: the workload's own checks", workload.name);
    }
    assert!(
        failures.is_empty(),
        "{} workloads failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
