//! Joining processes that already run: their descendants (from /proc), and the private pages
//! each maps now (from /proc/PID/pagemap), so the page model starts from the real state even
//! though the forks happened before tracing began.

use anyhow::{Context as _, Result};
use cowtrace_workloads::oracle::pagemap;

use crate::model::{
    mappings::AddressSpace,
    page_table::{Pfn, Vpn},
};

/// A running process to adopt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingProcess {
    pub pid: u32,
    /// Its parent, when the parent is adopted too.
    pub parent: Option<u32>,
    pub comm: String,
}

/// The given processes and all their descendants, parents before children.
pub fn existing_family(roots: &[u32]) -> Result<Vec<ExistingProcess>> {
    let mut all = Vec::new();
    for process in procfs::process::all_processes().context("listing /proc")? {
        // Processes come and go while we list them: skip the ones that vanished.
        let Ok(process) = process else { continue };
        let Ok(stat) = process.stat() else { continue };
        all.push((stat.pid as u32, stat.ppid as u32, stat.comm));
    }
    Ok(family_of(roots, &all))
}

/// `roots` and their descendants among `(pid, ppid, comm)` rows, breadth first.
fn family_of(roots: &[u32], all: &[(u32, u32, String)]) -> Vec<ExistingProcess> {
    let comm_of = |pid: u32| {
        all.iter()
            .find(|row| row.0 == pid)
            .map_or_else(|| "?".to_string(), |row| row.2.clone())
    };
    let mut family: Vec<ExistingProcess> = roots
        .iter()
        .map(|&pid| ExistingProcess {
            pid,
            parent: None,
            comm: comm_of(pid),
        })
        .collect();
    let mut next = 0;
    while next < family.len() {
        let parent = family[next].pid;
        for (pid, ppid, comm) in all {
            if *ppid == parent && !family.iter().any(|member| member.pid == *pid) {
                family.push(ExistingProcess {
                    pid: *pid,
                    parent: Some(parent),
                    comm: comm.clone(),
                });
            }
        }
        next += 1;
    }
    family
}

/// The private anonymous pages `pid` maps now, with their frames: present pages of private
/// mappings that are not page cache pages.
pub fn private_pages(pid: u32, space: &AddressSpace, page_size: u64) -> Vec<(Vpn, Pfn)> {
    let mut pages = Vec::new();
    for mapping in space.mappings().filter(|m| !m.shared) {
        let count = ((mapping.end - mapping.start) / page_size) as usize;
        // [vsyscall] and the like cannot be read; a vanished process reads nothing.
        let Ok(entries) = pagemap::read_range(pid, mapping.start, count) else {
            continue;
        };
        for (index, entry) in entries.iter().enumerate() {
            if entry.present && !entry.file_or_shared && entry.pfn != 0 {
                pages.push((mapping.start / page_size + index as u64, entry.pfn));
            }
        }
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_follow_their_roots_parents_first() {
        let rows = vec![
            (1, 0, "init".to_string()),
            (50, 1, "shell".to_string()),
            (60, 50, "server".to_string()),
            (61, 60, "worker".to_string()),
            (62, 60, "worker".to_string()),
            (70, 1, "other".to_string()),
            (71, 61, "helper".to_string()),
        ];
        let family = family_of(&[60], &rows);
        let pids: Vec<u32> = family.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [60, 61, 62, 71]);
        assert_eq!(
            family[0].parent, None,
            "the root's own parent is not adopted"
        );
        assert_eq!(family[3].parent, Some(61));
        assert_eq!(family[1].comm, "worker");
    }
}
