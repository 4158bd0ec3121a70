//! `cowtrace run`: runs a bundled workload under the tracer, then checks the trace against the
//! workload's known answer and the kernel's own ground truth.

use std::{
    io::{self, Write as _},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use cowtrace_workloads::{oracle::taskstats::DelayAccountingGuard, report::WorkloadReport};

use crate::{
    cli::RunArgs,
    commands::{
        report, require_root,
        trace::{SessionOptions, Target, run_session},
    },
    ui, verify,
};

pub async fn run_command(args: RunArgs) -> Result<i32> {
    if args.list {
        println!("{:<16} WHAT IT CHECKS", "WORKLOAD");
        for workload in cowtrace_workloads::list() {
            println!("{:<16} {}", workload.name, workload.summary);
        }
        return Ok(0);
    }
    let name = args
        .workload
        .clone()
        .context("name a workload (see --list)")?;
    if !cowtrace_workloads::list()
        .iter()
        .any(|workload| workload.name == name)
    {
        let names: Vec<&str> = cowtrace_workloads::list().iter().map(|w| w.name).collect();
        bail!(
            "no workload named `{name}`; available: {}",
            names.join(", ")
        );
    }
    require_root()?;

    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    // `--report DIR` keeps the trace and the workload's report in DIR, beside the report.
    let rendered_report_dir = report::run_report_dir(&args, &name)?;
    let in_report_dir = |file| rendered_report_dir.as_ref().map(|dir| dir.join(file));
    let report_path = args
        .workload_report
        .clone()
        .or_else(|| in_report_dir(report::WORKLOAD_REPORT_FILE))
        .unwrap_or_else(|| scratch.path().join("report.json"));
    let json_path = args
        .json
        .clone()
        .or_else(|| in_report_dir(report::TRACE_FILE));
    let exe = std::env::current_exe().context("locating the cowtrace binary")?;

    // taskstats counts COW copies per task only while delay accounting is on: switch it on for
    // the run (the workload's tasks are created after this) and restore it afterwards.
    let delay_accounting = DelayAccountingGuard::enable()
        .map_err(|error| eprintln!("cowtrace: taskstats check unavailable: {error}"))
        .ok();
    let outcome = run_session(SessionOptions {
        target: Target::Command(vec![
            exe.to_string_lossy().into_owned(),
            "__workload".into(),
            name.clone(),
            "--report".into(),
            report_path.to_string_lossy().into_owned(),
        ]),
        json: json_path.clone(),
        interval: None::<Duration>,
        count: None,
        output: args.output.clone(),
        keep_records: true,
        verify: false,
    })
    .await?;
    drop(delay_accounting);

    let mut out = io::stdout().lock();
    let _ = write!(
        out,
        "{}",
        ui::session_summary(&outcome.model, &outcome.end, outcome.page_size)
    );
    let text = std::fs::read_to_string(&report_path)
        .with_context(|| format!("the workload wrote no report at {}", report_path.display()))?;
    let report: WorkloadReport = serde_json::from_str(&text)
        .with_context(|| format!("malformed workload report {}", report_path.display()))?;
    // An mmap workload states its answer per mapping; a fork workload per process and region.
    let mut checks = if report.mappings.is_empty() {
        verify::check_workload(&report, &outcome.records)
    } else {
        verify::mappings::check_mappings(&report, &outcome.faults)
    };
    checks.push(verify::Check {
        process: "all".into(),
        what: "records lost (dropped)".into(),
        expected: "0".into(),
        traced: outcome.end.records_dropped.to_string(),
        ok: outcome.end.records_dropped == 0
            && outcome.end.records_received + outcome.end.records_dropped
                == outcome.end.records_produced,
    });
    let workload_ok = outcome.end.command_exit_code == Some(0) && report.ok;
    let oracles = if report.mappings.is_empty() {
        "taskstats and pagemap"
    } else {
        "and what it read from pagemap, mincore and smaps"
    };
    let _ = writeln!(
        out,
        "\n{name}: trace checked against the workload's arithmetic, {oracles}"
    );
    let _ = write!(out, "{}", verify::render(&checks));
    let passed = workload_ok && checks.iter().all(|check| check.ok);
    if !workload_ok {
        let _ = writeln!(
            out,
            "workload's own checks failed (exit code {:?}, child {})",
            outcome.end.command_exit_code, report.child_exit
        );
    }
    let _ = writeln!(out, "RESULT: {}", if passed { "PASS" } else { "FAIL" });
    drop(out);
    if let (Some(dir), Some(trace)) = (&rendered_report_dir, &json_path) {
        report::render_run_report(dir, trace, &report_path)?;
    }
    Ok(if passed { 0 } else { 1 })
}
