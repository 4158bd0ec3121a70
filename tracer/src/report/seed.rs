//! The seed diagram's data: for one fork, which frame each page of a region maps in the parent
//! and in the child, as last seen in the trace (rebuilt by [`crate::model::frames`]), and what
//! happened to it: still shared (read-only in both), or copied, and by whom.

use cowtrace_common::{FaultKind, ForkKind};
use cowtrace_workloads::report::{Role, WorkloadReport};

use super::data::{FaultPoint, ForkEvent};
use crate::{
    model::{
        ProcessTable,
        frames::{Region, agreement, region_frames},
    },
    records::Record,
};

/// Pages drawn at most; a larger region is sampled (and the diagram says so).
pub const MAX_PAGES_DRAWN: usize = 16;

/// Pages of a cluster of copy-on-write faults further apart than this start a new cluster.
const CLUSTER_GAP_PAGES: u64 = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedData {
    /// Indexes into the process table.
    pub parent: usize,
    pub child: usize,
    pub fork_time_ns: u64,
    pub region: Region,
    pub region_source: RegionSource,
    /// Every page of the region.
    pub pages: Vec<SeedPage>,
    /// Pages drawn, as indexes into `pages`, in address order.
    pub drawn: Vec<usize>,
    /// Frames checked against `/proc/PID/pagemap`, when the workload's report is at hand.
    pub pagemap: Option<PagemapAgreement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionSource {
    /// The workload's own region, from its report.
    Workload,
    /// The densest cluster of copy-on-write faults of parent and child after the fork.
    Inferred,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedPage {
    pub address: u64,
    pub parent_frame: Option<u64>,
    pub child_frame: Option<u64>,
    pub state: PageState,
    /// The parent wrote the page after the fork without copying it (a COW reuse: the child
    /// had copied it already, so the parent was its last mapper).
    pub parent_reused: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageState {
    /// Both map the same frame, write-protected: the first write will copy it.
    Shared,
    /// The child copied it; the parent kept the original frame.
    CopiedByChild,
    /// The parent copied it; the child kept the original frame.
    CopiedByParent,
    /// Both wrote it while shared: each has a frame of its own, neither the original.
    CopiedByBoth,
    /// The trace never saw the frame in one of them (touched before tracing began).
    Unknown,
}

impl PageState {
    pub const ALL: [PageState; 5] = [
        PageState::Shared,
        PageState::CopiedByChild,
        PageState::CopiedByParent,
        PageState::CopiedByBoth,
        PageState::Unknown,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            PageState::Shared => "shared (read-only)",
            PageState::CopiedByChild => "copied by the child",
            PageState::CopiedByParent => "copied by the parent",
            PageState::CopiedByBoth => "copied by both",
            PageState::Unknown => "with no frame seen",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagemapAgreement {
    pub parent_agree: usize,
    pub child_agree: usize,
    pub pages: usize,
}

impl SeedData {
    pub fn count(&self, state: PageState) -> usize {
        self.pages.iter().filter(|page| page.state == state).count()
    }

    pub fn sampled(&self) -> bool {
        self.drawn.len() < self.pages.len()
    }

    /// What is drawn: every page, or which sample.
    pub fn sample_note(&self) -> String {
        let pages = self.pages.len();
        if self.drawn.len() == pages {
            return format!("All {pages} pages of the region are drawn.");
        }
        let drawn_of = |state| {
            self.drawn
                .iter()
                .filter(|&&page| self.pages[page].state == state)
                .count()
        };
        let unseen = self.count(PageState::Unknown);
        let unseen_left_out = unseen > 0 && drawn_of(PageState::Unknown) == 0;
        let left_out = if unseen_left_out {
            format!(" The {unseen} pages whose frames the trace never saw are left out.")
        } else {
            String::new()
        };
        if unseen_left_out && self.drawn.len() == pages - unseen {
            return format!(
                "The region has {pages} pages; the {} whose frames the trace saw are all \
                 drawn.{left_out}",
                self.drawn.len()
            );
        }
        let per_state: Vec<String> = PageState::ALL
            .iter()
            .filter(|&&state| self.count(state) > 0)
            .filter(|&&state| !(unseen_left_out && state == PageState::Unknown))
            .map(|&state| {
                format!(
                    "{} of {} {}",
                    drawn_of(state),
                    self.count(state),
                    state.describe()
                )
            })
            .collect();
        format!(
            "The region has {pages} pages: {} are drawn, spread evenly within each kind \
             ({}).{left_out}",
            self.drawn.len(),
            per_state.join("; ")
        )
    }
}

/// Picks the fork and region and rebuilds both page tables; `Err` says why there is no
/// diagram.
pub fn build(
    records: &[Record],
    table: &ProcessTable,
    forks: &[ForkEvent],
    faults: &[Vec<FaultPoint>],
    page_size: u64,
    workload: Option<&WorkloadReport>,
) -> Result<SeedData, String> {
    let process_forks: Vec<&ForkEvent> = forks
        .iter()
        .filter(|fork| fork.kind == ForkKind::Fork)
        .collect();
    if process_forks.is_empty() {
        return Err("the trace has no fork of a process (copy-on-write child)".into());
    }
    let pid = |index: usize| table.processes()[index].pid;
    let (fork, region, region_source) = match workload {
        Some(report) => {
            let role_pid = |role| {
                report
                    .processes
                    .iter()
                    .find(|process| process.role == role)
                    .map(|process| process.pid)
            };
            let (parent_pid, child_pid) = (role_pid(Role::Parent), role_pid(Role::Child));
            let fork = process_forks
                .iter()
                .find(|fork| {
                    Some(pid(fork.parent)) == parent_pid && Some(pid(fork.child)) == child_pid
                })
                .ok_or_else(|| {
                    format!(
                        "the workload's fork ({parent_pid:?} → {child_pid:?}) is not in the trace"
                    )
                })?;
            let region = Region {
                start: report.region_start,
                pages: report.region_pages,
                page_size: report.page_size,
            };
            (*fork, region, RegionSource::Workload)
        }
        None => {
            // The fork whose parent and child wrote most to shared pages: the interesting one.
            let fork = process_forks
                .iter()
                .max_by_key(|fork| {
                    let writes = cow_writes(faults, fork).count();
                    // Among equals, the earliest fork.
                    (writes, std::cmp::Reverse(fork.time_ns))
                })
                .expect("not empty");
            let writes: Vec<u64> = cow_writes(faults, fork).collect();
            let region = infer_region(&writes, page_size).ok_or_else(|| {
                format!(
                    "after the fork of {} → {}, neither wrote to a shared page: nothing was \
                     copied or reused",
                    pid(fork.parent),
                    pid(fork.child)
                )
            })?;
            (*fork, region, RegionSource::Inferred)
        }
    };
    let (parent_pid, child_pid) = (pid(fork.parent), pid(fork.child));
    let frames = region_frames(records, region);
    let unseen = vec![None; region.pages as usize];
    let parent_frames = frames.get(&parent_pid).unwrap_or(&unseen);
    let child_frames = frames.get(&child_pid).unwrap_or(&unseen);
    // Whether each page of the region was written so: a region can have many thousand pages.
    let written_after_fork = |process: usize, kind: FaultKind| -> Vec<bool> {
        let mut written = vec![false; region.pages as usize];
        for page in faults[process]
            .iter()
            .filter(|fault| fault.time_ns >= fork.time_ns && fault.kind == Some(kind))
            .filter_map(|fault| region.page_of(fault.address))
        {
            written[page] = true;
        }
        written
    };
    let parent_copied = written_after_fork(fork.parent, FaultKind::CowCopy);
    let child_copied = written_after_fork(fork.child, FaultKind::CowCopy);
    let parent_reused = written_after_fork(fork.parent, FaultKind::CowReuse);
    let pages: Vec<SeedPage> = (0..region.pages as usize)
        .map(|page| {
            let (parent_frame, child_frame) = (parent_frames[page], child_frames[page]);
            let state = match (parent_frame, child_frame) {
                (Some(parent), Some(child)) if parent == child => PageState::Shared,
                (Some(_), Some(_)) => match (parent_copied[page], child_copied[page]) {
                    (true, true) => PageState::CopiedByBoth,
                    (true, false) => PageState::CopiedByParent,
                    _ => PageState::CopiedByChild,
                },
                _ => PageState::Unknown,
            };
            SeedPage {
                address: region.start + page as u64 * region.page_size,
                parent_frame,
                child_frame,
                state,
                parent_reused: parent_reused[page],
            }
        })
        .collect();
    let pagemap = workload.and_then(|report| {
        let pfns = |pid| {
            report
                .processes
                .iter()
                .find(|process| process.pid == pid)
                .map(|process| process.region_pfns.as_slice())
        };
        let (parent_pfns, child_pfns) = (pfns(parent_pid)?, pfns(child_pid)?);
        Some(PagemapAgreement {
            parent_agree: agreement(parent_frames, parent_pfns).0,
            child_agree: agreement(child_frames, child_pfns).0,
            pages: pages.len(),
        })
    });
    let drawn = sample(&pages, MAX_PAGES_DRAWN);
    Ok(SeedData {
        parent: fork.parent,
        child: fork.child,
        fork_time_ns: fork.time_ns,
        region,
        region_source,
        pages,
        drawn,
        pagemap,
    })
}

/// Addresses of the copy-on-write writes (copies and reuses) of parent and child after the
/// fork.
fn cow_writes<'a>(
    faults: &'a [Vec<FaultPoint>],
    fork: &'a ForkEvent,
) -> impl Iterator<Item = u64> + 'a {
    [fork.parent, fork.child]
        .into_iter()
        .flat_map(|process| &faults[process])
        .filter(|fault| {
            fault.time_ns >= fork.time_ns
                && matches!(fault.kind, Some(FaultKind::CowCopy | FaultKind::CowReuse))
        })
        .map(|fault| fault.address)
}

/// The page range of the densest cluster of `addresses` (most writes; the lowest on a tie).
fn infer_region(addresses: &[u64], page_size: u64) -> Option<Region> {
    let mut pages: Vec<u64> = addresses
        .iter()
        .map(|address| address / page_size)
        .collect();
    pages.sort_unstable();
    let mut best: Option<(usize, u64, u64)> = None; // (writes, first page, last page)
    let mut cluster_start = 0;
    for index in 0..pages.len() {
        let ends_cluster =
            index + 1 == pages.len() || pages[index + 1] - pages[index] > CLUSTER_GAP_PAGES;
        if ends_cluster {
            let writes = index + 1 - cluster_start;
            if best.is_none_or(|(most, ..)| writes > most) {
                best = Some((writes, pages[cluster_start], pages[index]));
            }
            cluster_start = index + 1;
        }
    }
    best.map(|(_, first, last)| Region {
        start: first * page_size,
        pages: last - first + 1,
        page_size,
    })
}

/// Up to `limit` pages, in address order, leaving out those with no frame seen (unless no
/// page has one): all of them if they fit, else at least two of each state it has, the rest shared out in proportion to the states' sizes (D'Hondt), evenly
/// spaced within each state.
fn sample(pages: &[SeedPage], limit: usize) -> Vec<usize> {
    // Pages whose frames the trace never saw say nothing: drawn only when there is no other.
    let known = pages.iter().any(|page| page.state != PageState::Unknown);
    let drawable = |page: &SeedPage| !known || page.state != PageState::Unknown;
    let candidates = pages.iter().filter(|page| drawable(page)).count();
    if candidates <= limit {
        return (0..pages.len())
            .filter(|&page| drawable(&pages[page]))
            .collect();
    }
    let by_state: Vec<Vec<usize>> = PageState::ALL
        .iter()
        .map(|&state| {
            (0..pages.len())
                .filter(|&page| pages[page].state == state && drawable(&pages[page]))
                .collect()
        })
        .collect();
    let present = by_state.iter().filter(|pages| !pages.is_empty()).count();
    let minimum = 2.min(limit / present.max(1));
    let mut quotas: Vec<usize> = by_state
        .iter()
        .map(|members| minimum.min(members.len()))
        .collect();
    for _ in quotas.iter().sum::<usize>()..limit {
        // The next page goes to the state with the most pages per page drawn so far (the
        // first such state on a tie).
        let mut best: Option<(usize, f64)> = None;
        for (state, members) in by_state.iter().enumerate() {
            if members.len() > quotas[state] {
                let weight = members.len() as f64 / (quotas[state] + 1) as f64;
                if best.is_none_or(|(_, most)| weight > most) {
                    best = Some((state, weight));
                }
            }
        }
        let Some((state, _)) = best else { break };
        quotas[state] += 1;
    }
    let mut drawn: Vec<usize> = by_state
        .iter()
        .zip(&quotas)
        .flat_map(|(members, &quota)| {
            (0..quota).map(move |step| members[(2 * step + 1) * members.len() / (2 * quota)])
        })
        .collect();
    drawn.sort_unstable();
    drawn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(state: PageState) -> SeedPage {
        SeedPage {
            address: 0,
            parent_frame: None,
            child_frame: None,
            state,
            parent_reused: false,
        }
    }

    #[test]
    fn a_small_region_is_drawn_whole() {
        let pages = vec![page(PageState::Shared); 5];
        assert_eq!(sample(&pages, 16), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_large_region_is_sampled_in_proportion_with_every_state_shown() {
        // 1000 pages: 990 shared, 8 copied by the child, 2 copied by both.
        let mut pages = vec![page(PageState::Shared); 990];
        pages.extend(vec![page(PageState::CopiedByChild); 8]);
        pages.extend(vec![page(PageState::CopiedByBoth); 2]);
        let drawn = sample(&pages, 16);
        assert_eq!(drawn.len(), 16);
        assert!(drawn.windows(2).all(|pair| pair[0] < pair[1]), "{drawn:?}");
        let count = |state| drawn.iter().filter(|&&p| pages[p].state == state).count();
        assert_eq!(count(PageState::Shared), 12);
        assert_eq!(count(PageState::CopiedByChild), 2);
        assert_eq!(count(PageState::CopiedByBoth), 2);
    }

    #[test]
    fn the_region_is_the_densest_cluster_of_writes() {
        let page_size = 4096;
        // A stack page far away, and a dense run of 10 pages with 12 writes.
        let mut addresses = vec![0x7ffd_0000_0000];
        addresses.extend((0..10).map(|page| 0x1000_0000 + page * page_size + 8));
        addresses.extend([0x1000_0000, 0x1000_0000 + 9 * page_size]);
        let region = infer_region(&addresses, page_size).unwrap();
        assert_eq!(
            region,
            Region {
                start: 0x1000_0000,
                pages: 10,
                page_size
            }
        );
        assert_eq!(infer_region(&[], page_size), None);
    }
}
