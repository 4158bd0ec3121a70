//! The `cowtrace` command: parses the command line, runs it, turns errors into one message
//! and a non-zero exit.

use std::process::ExitCode;

use clap::Parser as _;
use cowtrace::{
    cli::{Cli, Command},
    commands,
};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    // The workload runs before any runtime starts: it forks, and a forked child of a
    // multi-threaded runtime could deadlock.
    if let Command::Workload { name, report } = &cli.command {
        return match cowtrace_workloads::run(name, report.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        };
    }
    if let Command::ProbeFloor { command } = &cli.command {
        return match cowtrace::probes::floor::run_under_floor(command) {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(error) => fail(&error),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error.into()),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Trace(args) => commands::trace::trace_command(args).await,
            Command::Run(args) => commands::run::run_command(args).await,
            Command::Report(args) => commands::report::report_command(args),
            Command::Workload { .. } | Command::ProbeFloor { .. } => {
                unreachable!("handled above")
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => fail(&error),
    }
}

/// One clear message, with its causes, and a non-zero exit.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("cowtrace: error: {error:#}");
    ExitCode::from(2)
}
