//! Runs one of cowtrace's workloads in this process: `cowtrace-workload NAME [--report FILE]`,
//! or lists them: `cowtrace-workload --list`. Exits non-zero when the workload's own
//! ground-truth checks fail.

use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Run a cowtrace workload with known page-fault counts")]
struct Args {
    /// Workload to run (see --list).
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// Write the workload's self-report (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// List the workloads and exit.
    #[arg(long, conflicts_with_all = ["name", "report"])]
    list: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        for workload in cowtrace_workloads::list() {
            println!("{:<24} {}", workload.name, workload.summary);
        }
        return Ok(());
    }
    let Some(name) = args.name else {
        bail!("no workload named; see --list");
    };
    cowtrace_workloads::run(&name, args.report.as_deref())
}
