//! `cowtrace report FILE [-o DIR]`: renders a recorded trace as charts, an HTML report and a
//! Markdown report. Needs no privileges. Also the end of `cowtrace run WORKLOAD --report`.

use std::{
    io::{IsTerminal as _, stderr},
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    cli::{ReportArgs, RunArgs},
    report::{self, HTML_FILE, MARKDOWN_FILE, Report, trace_file::Partial},
};

/// Names of the trace and of the workload's report in a `run --report` directory.
pub const TRACE_FILE: &str = "trace.jsonl";
pub const WORKLOAD_REPORT_FILE: &str = "workload-report.json";

pub fn report_command(args: ReportArgs) -> Result<i32> {
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| default_dir(&args.trace));
    let partial = if args.partial {
        Partial::Allow
    } else {
        Partial::Refuse
    };
    render_into(&args.trace, args.workload_report.as_deref(), partial, &dir)?;
    Ok(0)
}

/// `faults.jsonl` → `faults-report`, beside it.
fn default_dir(trace: &Path) -> PathBuf {
    let stem = trace.file_stem().map_or_else(
        || "trace".into(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    trace.with_file_name(format!("{stem}-report"))
}

/// Renders `trace` into `dir`, with a progress bar on a terminal, and says where it went.
pub fn render_into(
    trace: &Path,
    workload_report: Option<&Path>,
    partial: Partial,
    dir: &Path,
) -> Result<Report> {
    let progress = if stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg:<20} [{bar:40}] {percent:>3}%")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let rendered = report::render_file(trace, workload_report, partial, &progress);
    progress.finish_and_clear();
    let rendered = rendered?;
    rendered.write_to(dir)?;
    if let Some(truncation) = &rendered.data.truncation {
        eprintln!("cowtrace: warning: {}", truncation.describe());
    }
    println!(
        "report: {} (and {MARKDOWN_FILE}; {} charts as SVG and PNG beside it)",
        dir.join(HTML_FILE).display(),
        rendered.charts.len()
    );
    Ok(rendered)
}

/// For `run --report [DIR]`: the report directory, created; `None` without `--report`.
pub fn run_report_dir(args: &RunArgs, workload: &str) -> Result<Option<PathBuf>> {
    let Some(dir) = &args.report else {
        return Ok(None);
    };
    if args.json.as_deref() == Some(Path::new("-")) {
        bail!("--report renders from a trace file: leave out `--json -` or give a file");
    }
    let dir = dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{workload}-report")));
    std::fs::create_dir_all(&dir)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
    Ok(Some(dir))
}

/// After `run --report`: keeps the trace and the workload's report in `dir` (copied there when
/// `--json`/`--workload-report` put them elsewhere), then renders from them.
pub fn render_run_report(dir: &Path, trace: &Path, workload_report: &Path) -> Result<()> {
    let keep = |from: &Path, name: &str| -> Result<PathBuf> {
        let to = dir.join(name);
        if from != to {
            std::fs::copy(from, &to).map_err(|error| {
                anyhow::anyhow!(
                    "cannot copy {} to {}: {error}",
                    from.display(),
                    to.display()
                )
            })?;
        }
        Ok(to)
    };
    let trace = keep(trace, TRACE_FILE)?;
    let workload_report = keep(workload_report, WORKLOAD_REPORT_FILE)?;
    render_into(&trace, Some(&workload_report), Partial::Refuse, dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn run_report_takes_an_optional_directory() {
        let report_of = |args: &[&str]| {
            let Command::Run(run) = Cli::try_parse_from(args).unwrap().command else {
                panic!("not run: {args:?}")
            };
            run.report
        };
        assert_eq!(report_of(&["cowtrace", "run", "fork-cow"]), None);
        assert_eq!(
            report_of(&["cowtrace", "run", "fork-cow", "--report"]),
            Some(None)
        );
        assert_eq!(
            report_of(&["cowtrace", "run", "fork-cow", "--report", "out"]),
            Some(Some(PathBuf::from("out")))
        );
        let Command::Report(report) =
            Cli::try_parse_from(["cowtrace", "report", "t.jsonl", "-o", "d", "--partial"])
                .unwrap()
                .command
        else {
            panic!("not report")
        };
        assert_eq!(report.output, Some(PathBuf::from("d")));
        assert!(report.partial);
    }

    #[test]
    fn default_directory_is_beside_the_trace() {
        assert_eq!(
            default_dir(Path::new("/tmp/x/faults.jsonl")),
            Path::new("/tmp/x/faults-report")
        );
        assert_eq!(default_dir(Path::new("t")), Path::new("t-report"));
    }
}
