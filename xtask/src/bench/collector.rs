//! The collector's side: one long storm of about a million faults traced into a JSON-lines
//! file gives records per second live, the tracer's peak memory, and a file to measure parsing
//! (records per second from a recorded file), page-model memory per tracked page and report
//! rendering on.

use std::{
    fs::{self, File},
    io::{Read as _, Seek as _, SeekFrom},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use cowtrace_workloads::fault_storm::PAGES_VAR;
use serde::Deserialize;

use super::{
    machine,
    outputs::{self, CowtraceSummary, SymbolShare, TraceEnd},
    profile,
    runner::{self, Bench},
};
use crate::process;

/// A prime whose storm (three faults per page) takes a little over a million faults.
pub const MILLION_RECORD_PAGES: usize = 333_337;

/// What `cowtrace-collector-bench` prints.
#[derive(Clone, Debug, Deserialize)]
pub struct CollectorFigures {
    pub lines: u64,
    pub bytes: u64,
    pub parse_seconds: f64,
    pub tracked_pages: u64,
    pub page_table_bytes: f64,
}

impl CollectorFigures {
    pub fn lines_per_second(&self) -> f64 {
        self.lines as f64 / self.parse_seconds.max(f64::MIN_POSITIVE)
    }

    pub fn bytes_per_tracked_page(&self) -> Option<f64> {
        (self.tracked_pages > 0).then(|| self.page_table_bytes / self.tracked_pages as f64)
    }
}

/// `cowtrace report` on the recorded file, or why it was not timed.
#[derive(Clone, Debug)]
pub enum Rendering {
    Measured { seconds: f64, records: u64 },
    Unavailable(String),
}

/// The million-record storm again without JSON, under `perf record`: whether records are
/// still lost without the file, and what the tracer's threads spend their time on.
#[derive(Clone, Debug)]
pub struct CollectorBound {
    pub summary: CowtraceSummary,
    pub tracer_symbols: Vec<SymbolShare>,
}

#[derive(Clone, Debug)]
pub struct CollectorRun {
    pub pages: usize,
    pub end: TraceEnd,
    pub figures: Result<CollectorFigures, String>,
    /// `VmHWM` of the tracer, polled while it ran; `None` when xtask is not root (the pid
    /// spawned is then sudo's).
    pub tracer_peak_rss_kib: Option<u64>,
    pub rendering: Rendering,
    /// Taken only when the run lost records.
    pub bound: Option<Result<CollectorBound, String>>,
}

/// Reads the last few KiB of a trace file, where its `end` line is.
fn trace_file_end(path: &Path) -> Result<TraceEnd> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(4096)))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)?;
    outputs::trace_end(&tail).with_context(|| format!("no `end` line in {}", path.display()))
}

pub fn run(bench: &Bench, collector_bench: &Path) -> Result<CollectorRun> {
    let trace = bench.scratch.join("million.jsonl");
    let report = bench.scratch.join("million-report.json");
    let rendered = bench.scratch.join("million-report");
    let outcome = measure(bench, collector_bench, &trace, &report, &rendered);
    // The trace is a few hundred MB: never leave it behind.
    let _ = fs::remove_file(&trace);
    let _ = fs::remove_dir_all(&rendered);
    outcome
}

fn measure(
    bench: &Bench,
    collector_bench: &Path,
    trace: &Path,
    report: &Path,
    rendered: &Path,
) -> Result<CollectorRun> {
    let pages = MILLION_RECORD_PAGES;
    let vars = [(PAGES_VAR.into(), pages.to_string().into())];
    let mut cmd = process::as_root(&bench.cowtrace, &vars)?;
    cmd.args(["trace", "-q", "--json"])
        .arg(trace)
        .arg("--")
        .arg(&bench.workload)
        .args(["fault-storm", "--report"])
        .arg(report)
        .stdout(File::create(bench.scratch.join("million-stdout.txt"))?)
        .stderr(File::create(bench.scratch.join("million-stderr.txt"))?);
    println!("bench: collector: {}", process::display(&cmd));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{}`", process::display(&cmd)))?;
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_rss_kib = None;
    let status = machine::wait_with_deadline(&mut child, Duration::from_secs(600), || {
        // The high-water mark only grows: the last reading before the exit is the peak.
        if let Some(kib) = fs::read_to_string(&status_path)
            .ok()
            .and_then(|status| outputs::peak_rss_kib(&status))
        {
            peak_rss_kib = Some(kib);
        }
    })?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    let end = trace_file_end(trace)?;
    // The workload's own checks must have passed for the trace to be a storm's.
    runner::read_storm_report(report)?;

    let figures = process::stdout(Command::new(collector_bench).arg(trace))
        .and_then(|json| {
            serde_json::from_str::<CollectorFigures>(&json)
                .context("parsing cowtrace-collector-bench output")
        })
        .map_err(|err| format!("{err:#}"));
    let rendering = render(bench, trace, rendered, end.records_received);
    let bound =
        (end.records_dropped > 0).then(|| collector_bound(bench).map_err(|err| format!("{err:#}")));
    Ok(CollectorRun {
        pages,
        end,
        figures,
        tracer_peak_rss_kib: peak_rss_kib.filter(|_| process::is_root()),
        rendering,
        bound,
    })
}

fn collector_bound(bench: &Bench) -> Result<CollectorBound> {
    let data = bench.scratch.join("perf-collector.data");
    let stderr_path = bench.scratch.join("collector-bound-stderr.txt");
    let vars = [(PAGES_VAR.into(), MILLION_RECORD_PAGES.to_string().into())];
    let mut cmd = profile::perf_record(&data, &vars)?;
    cmd.arg(&bench.cowtrace)
        .args(["trace", "-q", "--"])
        .arg(&bench.workload)
        .args(["fault-storm", "--report"])
        .arg(bench.scratch.join("collector-bound-storm.json"))
        .stdout(File::create(
            bench.scratch.join("collector-bound-stdout.txt"),
        )?)
        .stderr(File::create(&stderr_path)?);
    println!("bench: collector: {}", process::display(&cmd));
    let mut child = cmd.spawn().context("cannot start perf record")?;
    let status = machine::wait_with_deadline(&mut child, Duration::from_secs(600), || {})?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    let summary = outputs::cowtrace_summary(&fs::read_to_string(&stderr_path)?)
        .with_context(|| format!("no `records:` line in {}", stderr_path.display()))?;
    let tracer_symbols = profile::hottest_symbols(&data, profile::TRACER_COMMS);
    let _ = fs::remove_file(&data);
    Ok(CollectorBound {
        summary,
        tracer_symbols: tracer_symbols?,
    })
}

/// Times `cowtrace report TRACE -o DIR`, if this cowtrace has the command.
fn render(bench: &Bench, trace: &Path, rendered: &Path, records: u64) -> Rendering {
    let has_report = process::succeeds(Command::new(&bench.cowtrace).args(["report", "--help"]));
    if !has_report {
        return Rendering::Unavailable("this cowtrace has no `report` command".to_string());
    }
    let log = bench.scratch.join("report-render.txt");
    let outcome = (|| -> Result<f64> {
        let output = File::create(&log)?;
        let mut cmd = Command::new(&bench.cowtrace);
        cmd.arg("report")
            .arg(trace)
            .arg("-o")
            .arg(rendered)
            .stdout(output.try_clone()?)
            .stderr(output);
        let started = Instant::now();
        let mut child = cmd.spawn().context("cannot start `cowtrace report`")?;
        let status = machine::wait_with_deadline(&mut child, Duration::from_secs(600), || {})?;
        if !status.success() {
            bail!("`cowtrace report` failed ({status}); see {}", log.display());
        }
        Ok(started.elapsed().as_secs_f64())
    })();
    match outcome {
        Ok(seconds) => Rendering::Measured { seconds, records },
        Err(err) => Rendering::Unavailable(format!("{err:#}")),
    }
}
