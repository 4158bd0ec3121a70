//! `cargo xtask report`: regenerates `reports/<workload>/` for every bundled workload: runs it
//! under the tracer as root with `cowtrace run WORKLOAD --report DIR`, which keeps the trace
//! (`trace.jsonl`) and the workload's own report beside the rendered report. A test renders the
//! committed traces again and compares the files byte for byte, so what is committed is what
//! the code makes.

use std::{
    fs,
    path::Path,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};

use crate::process;

pub fn run(root: &Path, cowtrace: &Path) -> Result<ExitCode> {
    let workloads = bundled_workloads(cowtrace)?;
    let mut failed = Vec::new();
    for workload in &workloads {
        // Relative, so the command line recorded in the trace names no home directory.
        let dir = Path::new("reports").join(workload);
        let absolute = root.join(&dir);
        // From scratch: a chart the code no longer draws must not linger.
        if absolute.exists() {
            fs::remove_dir_all(&absolute)
                .with_context(|| format!("cannot remove {}", absolute.display()))?;
        }
        let mut cmd = process::as_root(cowtrace, &[])?;
        cmd.args(["run", workload, "--report"])
            .arg(&dir)
            .current_dir(root);
        println!("report: {}", process::display(&cmd));
        let status = process::status_through_interrupts(&mut cmd)?;
        if !process::is_root() {
            give_back(&absolute)?;
        }
        if !status.success() {
            // The report is still written (it shows what went wrong), but say so.
            eprintln!("report: `cowtrace run {workload}` failed ({status})");
            failed.push(workload.as_str());
        }
        println!("report: {}", dir.join("report.html").display());
    }
    if !failed.is_empty() {
        bail!(
            "the trace disagreed with the workload's answer for: {}",
            failed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The workloads `cowtrace run --list` names (first column, after the header line).
fn bundled_workloads(cowtrace: &Path) -> Result<Vec<String>> {
    let listing = process::stdout(Command::new(cowtrace).args(["run", "--list"]))?;
    let workloads: Vec<String> = listing
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    if workloads.is_empty() {
        bail!("`cowtrace run --list` named no workload");
    }
    Ok(workloads)
}

/// Files written by root through sudo go back to the invoking user, who commits them.
fn give_back(dir: &Path) -> Result<()> {
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    let owner = unsafe { format!("{}:{}", libc::getuid(), libc::getgid()) };
    process::run(
        process::as_root("chown", &[])?
            .args(["-R", &owner])
            .arg(dir),
    )
    .with_context(|| format!("cannot give {} back to its owner", dir.display()))
}
