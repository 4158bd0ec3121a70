//! Command line: `cowtrace trace`, `cowtrace run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const TRACE_EXAMPLES: &str = "\
EXAMPLES:
    sudo cowtrace trace -- ./server --port 8080   # trace a command and every child it forks
    sudo cowtrace trace -p 1234                   # trace a running process until it exits
    sudo cowtrace trace -p 1234 5 3               # print the table every 5 s, 3 times
    sudo cowtrace trace -a 1 10                   # system-wide, 10 one-second tables
    sudo cowtrace trace --json faults.jsonl -- make -j2
    sudo cowtrace trace --json - -- ./app | jq 'select(.kind==\"cow_copy\")'";

const RUN_EXAMPLES: &str = "\
EXAMPLES:
    cowtrace run --list                  # the bundled workloads and what they check
    sudo cowtrace run fork-cow           # trace it and check the trace against its known answer
    sudo cowtrace run fork-cow --json fork-cow.jsonl --workload-report fork-cow.report.json";

#[derive(Debug, Parser)]
#[command(
    name = "cowtrace",
    version,
    about = "Shows what really happens to memory after fork() and mmap(): which pages were \
             copied, which were reused, which were first touched, from live kernel tracepoints.",
    after_help = "Run `cowtrace trace --help` or `cowtrace run --help` for examples."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace the page faults of a command, of running processes, or of the whole system.
    #[command(after_help = TRACE_EXAMPLES)]
    Trace(TraceArgs),
    /// Run a bundled workload under the tracer and check the trace against its known answer.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Render a recorded trace (`--json FILE`) as an HTML and a Markdown report with charts.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Internal, for `cargo xtask bench`: runs a command with a do-nothing program on each
    /// per-fault tracepoint cowtrace uses, to measure the floor under cowtrace's own work.
    #[command(name = "__probe-floor", hide = true)]
    ProbeFloor {
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Internal: executes a bundled workload in this process (what `run` traces).
    #[command(name = "__workload", hide = true)]
    Workload {
        name: String,
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct TraceArgs {
    /// Trace this running process and the children it forks from now on (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Trace every process on the system (except cowtrace itself).
    #[arg(short = 'a', long = "all", conflicts_with = "pids")]
    pub all: bool,
    /// At the end, compare the page model with /proc/PID/pagemap, page by page, for every
    /// traced process still alive (send SIGUSR1 to do it while tracing).
    #[arg(long)]
    pub verify: bool,
    /// Write every record as one JSON object per line to FILE (`-` for standard output);
    /// schema in docs/json-schema.md.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Print the table every INTERVAL seconds (default: a live table on a terminal).
    #[arg(value_name = "INTERVAL")]
    pub interval: Option<u64>,
    /// Stop after COUNT tables.
    #[arg(value_name = "COUNT", requires = "interval")]
    pub count: Option<u64>,
    /// The command to run and trace from its first instruction.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Ring buffer size in MiB (a power of two); raise it if records are reported dropped.
    #[arg(long = "ringbuf-mb", default_value_t = 16, value_parser = parse_ring_buffer_mb)]
    pub ring_buffer_mb: u32,
    /// No banner, no live table: only the summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Workload to run (see --list).
    #[arg(value_name = "WORKLOAD", required_unless_present = "list")]
    pub workload: Option<String>,
    /// List the bundled workloads.
    #[arg(long)]
    pub list: bool,
    /// Also write the trace as JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep the workload's own report (its expectations and ground truth) in FILE.
    #[arg(long, value_name = "FILE")]
    pub workload_report: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Also render a report (charts, HTML, Markdown) into DIR, with the trace and the
    /// workload's report beside it (default DIR: WORKLOAD-report).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub report: Option<Option<PathBuf>>,
}

const REPORT_EXAMPLES: &str = "\
EXAMPLES:
    cowtrace report faults.jsonl                 # writes faults-report/report.html, report.md, charts
    cowtrace report faults.jsonl -o out          # into out/
    cowtrace report cut.jsonl --partial          # a trace without its end line, with a warning
    sudo cowtrace run fork-cow --report          # run, check and render in one go";

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    /// The trace: JSON lines written by `cowtrace trace --json FILE` or `cowtrace run --json`.
    #[arg(value_name = "FILE")]
    pub trace: PathBuf,
    /// Directory for report.html, report.md and the charts (SVG and PNG); default: the
    /// trace's name with `-report`, beside it.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The workload's own report (`cowtrace run --workload-report`): the seed diagram then
    /// uses the workload's region and is checked against its pagemap.
    #[arg(long, value_name = "FILE")]
    pub workload_report: Option<PathBuf>,
    /// Render a truncated trace (no `end` line) instead of refusing it; the report says so.
    #[arg(long)]
    pub partial: bool,
}

fn parse_ring_buffer_mb(text: &str) -> Result<u32, String> {
    let mb: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of MiB"))?;
    if !mb.is_power_of_two() || !(1..=1024).contains(&mb) {
        return Err(format!(
            "{mb} MiB: the ring buffer size must be a power of two from 1 to 1024"
        ));
    }
    Ok(mb)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_interval_count_and_command() {
        let cli = Cli::try_parse_from(["cowtrace", "trace", "2", "5", "--", "ls", "-l"]).unwrap();
        let Command::Trace(args) = cli.command else {
            panic!()
        };
        assert_eq!((args.interval, args.count), (Some(2), Some(5)));
        assert_eq!(args.command, ["ls", "-l"]);
    }

    #[test]
    fn rejects_pid_with_all_and_bad_ring_sizes() {
        assert!(Cli::try_parse_from(["cowtrace", "trace", "-a", "-p", "1"]).is_err());
        assert!(Cli::try_parse_from(["cowtrace", "trace", "--ringbuf-mb", "3", "-a"]).is_err());
        assert!(Cli::try_parse_from(["cowtrace", "trace", "--ringbuf-mb", "64", "-a"]).is_ok());
    }
}
