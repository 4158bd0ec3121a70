//! The command line under real conditions: attaching to a running process, detaching cleanly
//! on SIGTERM, and one clear message for bad input.

mod support;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cowtrace::{probes::PROGRAM_NAMES, records::json::JsonLine};
use support::*;

/// Names of cowtrace's programs currently loaded in the kernel, per bpftool.
fn loaded_cowtrace_programs() -> Vec<String> {
    let output = Command::new("bpftool")
        .args(["-j", "prog", "list"])
        .output()
        .expect("bpftool is installed (cargo xtask setup)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let programs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    programs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|program| program["name"].as_str())
        .filter(|name| PROGRAM_NAMES.contains(name))
        .map(str::to_string)
        .collect()
}

/// cowtrace's programs still loaded once the kernel has had time to free them. A raw
/// tracepoint's link is freed after an RCU grace period, so a program can outlive the process
/// that closed it by a moment: wait for that, but not for a leak.
fn cowtrace_programs_left_behind() -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let loaded = loaded_cowtrace_programs();
        if loaded.is_empty() || Instant::now() > deadline {
            return loaded;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads the tracer's standard output until its banner says the probes are attached.
fn wait_for_banner(stdout: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("Tracing page faults of"),
        "banner: {line:?}"
    );
    line
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn trace_pid_follows_a_running_process_and_its_children_until_they_exit() {
    require_root();
    let _delay_accounting = delay_accounting();
    let scratch = Scratch::new();
    let (json, report_path) = (scratch.path("trace.jsonl"), scratch.path("report.json"));
    // A process that exists before the tracer, and starts the workload (same pid, via exec)
    // only once told to: everything the workload does happens after attach.
    let script = format!(
        "read go; exec {} __workload fork-cow --report {}",
        cowtrace_bin(),
        report_path.display()
    );
    let mut target = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = target.id().to_string();
    let mut tracer = Command::new(cowtrace_bin())
        .args(["trace", "-p", &pid, "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(tracer.stdout.take().unwrap());
    let banner = wait_for_banner(&mut stdout);
    assert!(banner.contains(&format!("pid {pid}")), "{banner}");
    target.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(target.wait().unwrap().success());
    // The tracer ends by itself once every traced process has exited.
    let status = tracer.wait().unwrap();
    assert!(status.success(), "tracer exit: {status:?}");

    let lines = read_json_lines(&json);
    let report = read_report(&report_path);
    let JsonLine::Start(start) = &lines[0] else {
        panic!("no start line")
    };
    assert_eq!(start.mode, "pid");
    assert_eq!(start.pids, vec![target.id()]);
    assert_nothing_lost(&lines);
    for process in &report.processes {
        assert_eq!(
            region_counts(&lines, &report, process),
            process.expected,
            "{:?}",
            process.role
        );
    }
    assert!(
        faults(&lines)
            .iter()
            .all(|f| f.pid == report.processes[0].pid || f.pid == report.processes[1].pid)
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn sigterm_detaches_every_program_and_prints_the_summary() {
    require_root();
    assert_eq!(
        cowtrace_programs_left_behind(),
        Vec::<String>::new(),
        "no cowtrace programs before the test"
    );
    let mut tracer = Command::new(cowtrace_bin())
        .args(["trace", "-a"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(tracer.stdout.take().unwrap());
    wait_for_banner(&mut stdout);
    let mut loaded = loaded_cowtrace_programs();
    loaded.sort();
    let mut expected: Vec<String> = PROGRAM_NAMES.iter().map(|name| name.to_string()).collect();
    expected.sort();
    assert_eq!(loaded, expected, "every program is loaded while tracing");

    unsafe { libc::kill(tracer.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = tracer.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "tracer did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(tracer.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("cowtrace summary:"), "{stderr}");
    assert!(stderr.contains(" dropped"), "{stderr}");
    assert_eq!(
        cowtrace_programs_left_behind(),
        Vec::<String>::new(),
        "programs left behind after SIGTERM"
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn bad_input_gets_one_clear_message_and_a_nonzero_exit() {
    require_root();
    // A pid that does not exist.
    let free_pid = (2..4_194_304u32)
        .rev()
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .unwrap();
    let output = cowtrace(&["trace", "-p", &free_pid.to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        format!("cowtrace: error: no such process: {free_pid}")
    );

    // Not root: the message names the fix.
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            cowtrace_bin(),
            "trace",
            "-a",
        ])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");

    // A command that does not exist.
    let output = cowtrace(&["trace", "--", "/nonexistent/command"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot run `/nonexistent/command`"),
        "{stderr}"
    );
    assert_eq!(
        cowtrace_programs_left_behind(),
        Vec::<String>::new(),
        "programs left behind after an error"
    );

    // Nothing to trace, and an unknown workload.
    let output = cowtrace(&["trace"]);
    assert_eq!(output.status.code(), Some(2));
    let output = cowtrace(&["run", "no-such-workload"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("available: fork-cow"));
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn json_to_stdout_stays_parseable_while_the_command_prints() {
    require_root();
    let scratch = Scratch::new();
    let report_path = scratch.path("report.json");
    // The workload prints a summary on its standard output: it must not mix into the JSON.
    let output = cowtrace(&[
        "trace",
        "--json",
        "-",
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
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<JsonLine> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("fork-cow: parent pid"),
        "command output on stderr"
    );
    assert_nothing_lost(&lines);
    let report = read_report(&report_path);
    for process in &report.processes {
        assert_eq!(
            region_counts(&lines, &report, process),
            process.expected,
            "{:?}",
            process.role
        );
    }
}
