//! `cowtrace __probe-floor -- CMD`: the command runs with the `floor` program (it returns at
//! once) on every raw tracepoint cowtrace's fault path uses. Against the untraced command, it
//! measures what the kernel charges for running any program there: the part of cowtrace's
//! overhead that no change to its own programs can remove.

use std::process::Command;

use anyhow::{Context as _, Result};
use aya::{EbpfLoader, programs::RawTracePoint};

use super::{ATTACHMENTS, EBPF_OBJECT, Probe};

pub fn run_under_floor(command: &[String]) -> Result<i32> {
    let mut ebpf = EbpfLoader::new()
        .allow_unsupported_maps()
        .load(EBPF_OBJECT)
        .context("loading the eBPF programs into the kernel")?;
    let program: &mut RawTracePoint = ebpf
        .program_mut("floor")
        .context("program floor missing from the object")?
        .try_into()?;
    program.load().context("the kernel refused program floor")?;
    for attachment in &ATTACHMENTS {
        if matches!(attachment.probe, Probe::Raw(_)) {
            program
                .attach(attachment.event)
                .with_context(|| format!("attaching floor to {}", attachment.event))?;
        }
    }
    let status = Command::new(&command[0])
        .args(&command[1..])
        .status()
        .with_context(|| format!("cannot run `{}`", command[0]))?;
    Ok(status.code().unwrap_or(1))
}
