//! `cargo xtask`: the single entry point for setting up, building, testing, demonstrating and
//! benchmarking cowtrace. Every task runs `setup` first, which is idempotent and quick once done.

mod bench;
mod cargo;
mod process;
mod report;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Result, anyhow, bail};
use clap::{Parser, Subcommand};

use crate::cargo::Cargo;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Set up, build, test, demonstrate and benchmark cowtrace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install prerequisites: rust-src, bpf-linker, bpftool, jq, chromium, perf, bpftrace
    /// (idempotent)
    Setup,
    /// Set up, then build the workspace (release unless --debug)
    Build {
        /// Build the debug profile instead of release
        #[arg(long)]
        debug: bool,
    },
    /// Set up, then run the tests: unprivileged ones as you, root-only (#[ignore]) ones as root
    Test {
        /// Passed to the test harness of both phases, e.g. a test-name filter
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build, then trace the fork-cow workload as root
    Demo,
    /// Set up, build, then regenerate the example report of every bundled workload in reports/
    /// (runs each as root)
    Report,
    /// Set up, build, then measure tracing overhead against peers into reports/performance.md
    Bench {
        /// Runs of each configuration (the figures are medians over them)
        #[arg(long, default_value_t = 7)]
        repetitions: usize,
        /// Pages of the fault-storm workload (three faults each)
        #[arg(long, default_value_t = bench::STORM_PAGES)]
        pages: usize,
        /// Do not profile when a target is missed
        #[arg(long)]
        no_profile: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line, without a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<ExitCode> {
    let root = workspace_root()?;
    match task {
        Task::Setup => {
            setup::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Build { debug } => {
            build(&root, debug)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Test { args } => test(&root, &args),
        Task::Demo => demo(&root),
        Task::Report => report::run(&root, &build(&root, false)?),
        Task::Bench {
            repetitions,
            pages,
            no_profile,
        } => {
            bench::run(
                &root,
                &bench::Options {
                    repetitions,
                    pages,
                    profile: !no_profile,
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The workspace root: xtask lives in its `xtask/` directory.
fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| anyhow!("xtask's manifest directory has no parent"))
}

/// Builds the default members (not `--workspace`: that would also build the eBPF crate for the
/// host, where it cannot build; `tracer/build.rs` builds it for the BPF target). Returns the
/// path of the `cowtrace` binary.
fn build(root: &Path, debug: bool) -> Result<PathBuf> {
    let tools = setup::run()?;
    let cargo = Cargo::new(root, &tools)?;
    let (profile_args, profile_dir): (&[&str], _) = if debug {
        (&[], "debug")
    } else {
        (&["--release"], "release")
    };
    let mut cmd = cargo.command(["build"].iter().chain(profile_args));
    println!("build: {}", process::display(&cmd));
    process::run(&mut cmd)?;
    let binary = cargo.target_dir().join(profile_dir).join("cowtrace");
    if !binary.exists() {
        bail!("the build succeeded but {} is missing", binary.display());
    }
    println!("build: cowtrace is at {}", shown(root, &binary).display());
    Ok(binary)
}

/// Two phases: the unprivileged tests as the invoking user, then the `#[ignore]`d ones, which
/// load real BPF programs, as root and one at a time (they share kernel state). Everything is
/// compiled first, as the invoking user, so a compile error shows once and root only runs
/// tests (and leaves no root-owned build output behind). `--no-fail-fast`: one failing test
/// binary must not hide the results of the others.
fn test(root: &Path, harness_args: &[String]) -> Result<ExitCode> {
    let tools = setup::run()?;
    let cargo = Cargo::new(root, &tools)?;

    // Prepared before anything runs, so that a missing sudo is reported without a wait.
    let mut privileged = cargo.root_command([
        "test",
        "--release",
        "--no-fail-fast",
        "--",
        "--ignored",
        "--test-threads=1",
    ])?;
    privileged.args(harness_args);

    let mut compile = cargo.command(["test", "--release", "--no-run"]);
    println!("test: {}", process::display(&compile));
    if let Err(err) = process::run(&mut compile) {
        println!("test: build FAILED; no tests ran");
        return Err(err);
    }

    let mut unprivileged = cargo.command(["test", "--release", "--no-fail-fast", "--"]);
    unprivileged.args(harness_args);
    println!("test: unprivileged: {}", process::display(&unprivileged));
    let (status, unprivileged_tally) = process::run_tests(&mut unprivileged)?;
    let unprivileged_passed = status.success();

    println!("test: privileged (root): {}", process::display(&privileged));
    let (status, privileged_tally) = process::run_tests(&mut privileged)?;
    let privileged_passed = status.success();

    let verdict = |passed| if passed { "passed" } else { "FAILED" };
    println!(
        "test: unprivileged {}, privileged (root) {}",
        verdict(unprivileged_passed),
        verdict(privileged_passed)
    );
    // One plain closing line over both phases (cargo's own last line is often a doc-test
    // run with nothing in it).
    let total = unprivileged_tally.merge(privileged_tally);
    println!("tests: {} passed, {} failed", total.passed, total.failed);
    Ok(if unprivileged_passed && privileged_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds, then traces the fork-cow workload as root, streaming the tracer's output; exits with
/// the tracer's exit code.
fn demo(root: &Path) -> Result<ExitCode> {
    let binary = build(root, false)?;
    let mut cmd = process::as_root(&binary, &[])?;
    cmd.args(["run", "fork-cow"]).current_dir(root);
    println!("demo: {}", process::display(&cmd));
    let status = process::status_through_interrupts(&mut cmd)?;
    let code = process::exit_code(status);
    if code != 0 {
        eprintln!("demo: cowtrace exited with {status}");
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `path` relative to the workspace root when it is inside it, for shorter messages.
fn shown<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}
