//! Workloads whose page faults are known in advance, for checking cowtrace against reality.
//!
//! Each workload runs in the calling process (it may fork), performs a fixed sequence of
//! memory writes whose fault classification follows from the sequence alone, cross-checks
//! what it can against kernel ground truth ([`oracle`]), and writes a self-report
//! ([`report::WorkloadReport`]) that the tracer compares with what it observed.
//!
//! Reading PFNs from pagemap needs root (`CAP_SYS_ADMIN`); without it the pagemap check
//! fails with a note. The taskstats COW counts need `kernel.task_delayacct=1` switched on
//! *before* the process that calls [`run`] is created (the kernel only accounts tasks
//! created while it is on; see [`oracle::taskstats`]); without it the report carries
//! `taskstats: null` and the reason, and the run still succeeds.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::bail;

pub mod fault_storm;
mod fork_cow;
mod fork_exec;
mod fork_file_private;
mod fork_parent_after_exit;
mod fork_partial;
mod fork_siblings_read;
mod fork_tree;
mod mmap;
pub mod oracle;
mod process;
pub mod report;
mod scenario;
mod sys;
mod threads;
mod vfork;

/// A workload's name, as passed to [`run`], and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadInfo {
    pub name: &'static str,
    pub summary: &'static str,
}

type WorkloadFn = fn(Option<&Path>) -> anyhow::Result<()>;

/// The registry: one entry per workload, `INFOS[i]` describing `ENTRY_POINTS[i]`.
/// Two arrays rather than one array of pairs because [`list`] must hand out
/// `&'static [WorkloadInfo]` without the function pointers.
const INFOS: &[WorkloadInfo] = &[
    fork_cow::INFO,
    fork_partial::INFO,
    fork_parent_after_exit::INFO,
    fork_tree::INFO,
    fork_siblings_read::INFO,
    fork_exec::INFO,
    vfork::INFO,
    threads::INFO,
    fork_file_private::INFO,
    mmap::RANDOM.info,
    mmap::SEQUENTIAL.info,
    mmap::FAULT_AROUND.info,
    mmap::POPULATE.info,
    mmap::PRIVATE_WRITE.info,
    mmap::SHARED_WRITE.info,
    mmap::ANON_ZERO.info,
    mmap::HUGEPAGE.info,
    mmap::SHARED_ANON.info,
    fault_storm::INFO,
];
const ENTRY_POINTS: &[WorkloadFn] = &[
    fork_cow::run,
    fork_partial::run,
    fork_parent_after_exit::run,
    fork_tree::run,
    fork_siblings_read::run,
    fork_exec::run,
    vfork::run,
    threads::run,
    fork_file_private::run,
    mmap::RANDOM.run,
    mmap::SEQUENTIAL.run,
    mmap::FAULT_AROUND.run,
    mmap::POPULATE.run,
    mmap::PRIVATE_WRITE.run,
    mmap::SHARED_WRITE.run,
    mmap::ANON_ZERO.run,
    mmap::HUGEPAGE.run,
    mmap::SHARED_ANON.run,
    fault_storm::run,
];

/// Held by every [`run`], and by tests that fork: when another thread of the process forks
/// while a workload runs (parallel tests, in-process runs), its child gets a copy of the
/// workload's region too, maps the workload's frames while it lives, and turns reuses into
/// copies and exclusive pages into shared ones. Measured: fork-tree run in-process beside
/// the other root tests lost 24, 4 and 17 exclusive pages in three of its processes.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Takes [`FORK_LOCK`] (a panic while holding it does not matter to the next holder).
pub(crate) fn exclusive_forks() -> MutexGuard<'static, ()> {
    FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// All workloads, in a stable order.
pub fn list() -> &'static [WorkloadInfo] {
    INFOS
}

/// Runs the workload in this process (it may fork). Writes its self-report as JSON to
/// `report_path` if given.
///
/// Fails for an unknown name (the error lists the available ones), when the workload
/// cannot run, or when one of its own ground-truth checks failed; in the last case the
/// report is still written first, so it can be inspected.
pub fn run(name: &str, report_path: Option<&Path>) -> anyhow::Result<()> {
    match INFOS.iter().position(|info| info.name == name) {
        Some(index) => {
            let _alone = exclusive_forks();
            ENTRY_POINTS[index](report_path)
        }
        None => {
            let available: Vec<&str> = INFOS.iter().map(|info| info.name).collect();
            bail!(
                "unknown workload {name:?}; available: {}",
                available.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_arrays_line_up() {
        assert_eq!(INFOS.len(), ENTRY_POINTS.len());
        let mut names: Vec<&str> = list().iter().map(|info| info.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), INFOS.len(), "workload names must be unique");
    }

    #[test]
    fn fork_cow_is_listed() {
        assert!(list().iter().any(|info| info.name == "fork-cow"));
    }

    #[test]
    fn unknown_name_lists_available_workloads() {
        let err = run("no-such-workload", None).unwrap_err().to_string();
        assert!(err.contains("no-such-workload"), "{err}");
        for info in list() {
            assert!(err.contains(info.name), "{err}");
        }
    }
}
