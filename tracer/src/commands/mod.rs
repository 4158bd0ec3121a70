//! The subcommands.

pub mod report;
pub mod run;
pub mod trace;

use anyhow::{Result, bail};

/// Loading BPF programs needs root (CAP_BPF and CAP_PERFMON at least); say exactly what to do.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let args: Vec<String> = std::env::args().collect();
        bail!(
            "cowtrace needs root to load its eBPF programs; run it with sudo: `sudo {}`",
            args.join(" ")
        );
    }
    Ok(())
}
