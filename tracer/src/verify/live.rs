//! `--verify`: the page model against the kernel's page tables, page by page, for every traced
//! process still alive. For each private mapping the model knows, `/proc/PID/pagemap` says
//! which private pages are present and their frames.

use std::fmt::Write as _;

use crate::{
    attach::private_pages,
    model::{TraceModel, page_table::Vpn},
};

/// Agreement of the model with the kernel for one process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCheck {
    pub pid: u32,
    /// Pages present in both with the same frame.
    pub agree: u64,
    /// Pages present in both with different frames.
    pub differ: u64,
    /// Pages the model has that the kernel does not map (the model missed their removal).
    pub stale: u64,
    /// Private pages the kernel maps that the model does not know (it missed their fault).
    pub untracked: u64,
}

impl LiveCheck {
    pub fn is_exact(&self) -> bool {
        self.differ == 0 && self.stale == 0 && self.untracked == 0
    }
}

/// Compares the model's frames with the kernel's for every live process in the model.
pub fn check_live(model: &TraceModel, page_size: u64) -> Vec<LiveCheck> {
    let mut checks = Vec::new();
    let mut pids: Vec<u32> = model
        .pages
        .processes()
        .filter(|p| p.alive)
        .map(|p| p.pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        let (Some(space), Some(process)) =
            (model.address_spaces.get(pid), model.pages.process(pid))
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue; // exited since its last record
        }
        let kernel: std::collections::HashMap<Vpn, u64> =
            private_pages(pid, space, page_size).into_iter().collect();
        let mut check = LiveCheck {
            pid,
            ..Default::default()
        };
        for (vpn, pfn) in process.pages.iter() {
            match kernel.get(&vpn) {
                Some(&actual) if actual == pfn => check.agree += 1,
                Some(_) => check.differ += 1,
                None => check.stale += 1,
            }
        }
        check.untracked = kernel
            .keys()
            .filter(|vpn| process.pages.get(**vpn).is_none())
            .count() as u64;
        checks.push(check);
    }
    checks
}

pub fn render(checks: &[LiveCheck]) -> String {
    let mut out = String::from("verify: page model vs /proc/PID/pagemap\n");
    let _ = writeln!(
        out,
        "{:>8} {:>9} {:>7} {:>7} {:>9}  ",
        "PID", "AGREE", "DIFFER", "STALE", "UNTRACKED"
    );
    for check in checks {
        let verdict = if check.is_exact() {
            "exact"
        } else {
            "MISMATCH"
        };
        let _ = writeln!(
            out,
            "{:>8} {:>9} {:>7} {:>7} {:>9}  {verdict}",
            check.pid, check.agree, check.differ, check.stale, check.untracked
        );
    }
    if checks.is_empty() {
        out.push_str("  (no traced process is alive)\n");
    }
    out
}
