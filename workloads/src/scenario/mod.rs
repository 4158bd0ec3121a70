//! Fork workloads described as data: the region's layout, the processes and threads, and the
//! ordered steps they take. One description drives both sides of every check:
//!
//! - [`model`] replays the steps on a small model of the kernel's page tables (frames, map
//!   counts, `anon_vma`s, write protection) and derives, page by page, the fault each access
//!   takes, which frame every process maps at the checkpoint, and so who shares what;
//! - [`runner`] performs the same steps for real: the calling process is the root, forked
//!   processes and threads each wait for their next step on a pipe, so every step happens at
//!   a known point of one total order. After the last step every process that should still
//!   be alive is held alive while its pagemap and taskstats are read (the checkpoint);
//! - [`check`] compares the pagemaps with the model page by page and writes the report.
//!
//! The runner pins the workload to one CPU (children and threads inherit the mask): a
//! freshly allocated page sits in its CPU's LRU-add batch, which holds a page reference,
//! and `wp_can_reuse_anon_folio` only drains the *local* CPU's batch before it compares the
//! reference count with 1. A write that should reuse a page can then copy it when the
//! writer runs on another CPU than the one that allocated the page while that batch has not
//! been flushed yet. Measured here (6.18, 2 CPUs) with a parent that first-touched 1019
//! pages on CPU 0, forked, reaped its child and moved to CPU 1 before writing every page:
//! 0, 16, 12, 0, 0, 0 pages copied instead of reused in six runs (the last 7 to 26 pages
//! touched were still off the LRU, depending on what else ran on CPU 0). On one CPU the
//! local drain always flushes the batch, and every such write is a reuse.

pub(crate) mod check;
pub(crate) mod model;
mod region;
pub(crate) mod runner;

use std::ops::Range;

use crate::report::Role;

/// Index of a task (process or thread) in [`Scenario::tasks`].
pub(crate) type TaskId = usize;

/// The task that calls `run`: it maps the region and creates every other task (directly or
/// through its children).
pub(crate) const ROOT: TaskId = 0;

/// A set of region pages, described so that it can be walked without allocating (a forked
/// child of a multi-threaded process must not allocate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageSet {
    /// Pages `start..end`.
    Range { start: usize, end: usize },
    /// `count` pages `start, start + step, start + 2 * step, ...`.
    Stride {
        start: usize,
        step: usize,
        count: usize,
    },
    /// `count` pages spread evenly over `start..start + len`: page `start + k * len / count`
    /// (rounded down) for each `k < count`; distinct when `count <= len`.
    Spread {
        start: usize,
        len: usize,
        count: usize,
    },
}

impl PageSet {
    pub(crate) const fn range(pages: Range<usize>) -> PageSet {
        PageSet::Range {
            start: pages.start,
            end: pages.end,
        }
    }

    /// The `k`-th page of the set.
    fn nth(self, k: usize) -> usize {
        match self {
            PageSet::Range { start, .. } => start + k,
            PageSet::Stride { start, step, .. } => start + k * step,
            PageSet::Spread { start, len, count } => start + k * len / count,
        }
    }

    pub(crate) fn len(self) -> usize {
        match self {
            PageSet::Range { start, end } => end.saturating_sub(start),
            PageSet::Stride { count, .. } | PageSet::Spread { count, .. } => count,
        }
    }

    /// The pages, in increasing order.
    pub(crate) fn iter(self) -> impl Iterator<Item = usize> {
        (0..self.len()).map(move |k| self.nth(k))
    }

    #[cfg(test)]
    pub(crate) fn contains(self, page: usize) -> bool {
        self.iter().any(|p| p == page)
    }

    /// Checks that the pages are distinct, increasing and below `region_pages`.
    pub(crate) fn validate(self, region_pages: usize) -> Result<(), String> {
        let distinct = match self {
            PageSet::Range { .. } => true,
            PageSet::Stride { step, count, .. } => step > 0 || count <= 1,
            PageSet::Spread { len, count, .. } => count <= len,
        };
        if !distinct {
            return Err(format!("{self:?} repeats pages"));
        }
        match self.len().checked_sub(1).map(|last| self.nth(last)) {
            Some(last) if last >= region_pages => Err(format!(
                "{self:?} reaches page {last}, outside the region of {region_pages} pages"
            )),
            _ => Ok(()),
        }
    }
}

/// What backs a segment of the region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Private anonymous memory (THP off).
    Anonymous,
    /// A private (`MAP_PRIVATE`) writable mapping of a scratch file on a disk filesystem.
    /// Each file segment maps its own range of the file, with a page of file between
    /// ranges, so that two file segments are never merged into one VMA: each has its own
    /// `anon_vma`, which is what decides whether fork copies its page table entries.
    FilePrivate,
}

/// A run of region pages with one backing, one VMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) label: &'static str,
    pub(crate) pages: usize,
    pub(crate) backing: Backing,
}

/// A process or thread of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskSpec {
    /// Unique; what reports and the timeline call it.
    pub(crate) name: &'static str,
    pub(crate) role: Role,
}

/// How a vfork child ends, releasing its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VforkEnd {
    /// `_exit(0)`.
    Exit,
    /// `execve` of [`runner::VFORK_EXEC_PATH`], which exits at once.
    Exec,
}

/// One step. The task named first performs it (the root performs `Vfork`, `SpawnThread`
/// and `Snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Writes the first byte of each page (volatile).
    Write { task: TaskId, pages: PageSet },
    /// Reads the first byte of each page (volatile).
    Read { task: TaskId, pages: PageSet },
    /// `madvise(MADV_POPULATE_READ)` over a range of file pages: maps their page-cache pages
    /// read-only without a user fault (through get_user_pages, with fault-around, so the
    /// number of faults is the kernel's business; the workloads state no count for them).
    PopulateRead { task: TaskId, pages: PageSet },
    /// `task` forks `child`, a new process that then waits for its steps.
    Fork { task: TaskId, child: TaskId },
    /// The root vforks `child` (`clone(CLONE_VM | CLONE_VFORK)`), which writes `writes`
    /// into the root's memory and then exits or execs; the root resumes after that.
    Vfork {
        child: TaskId,
        writes: Option<PageSet>,
        then: VforkEnd,
    },
    /// The root starts thread `thread`, which then waits for its steps.
    SpawnThread { thread: TaskId },
    /// `task`, a forked child of the root, exits; the root reaps it and waits until the
    /// kernel shows the pages it mapped released.
    Exit { task: TaskId },
    /// `task`, a forked process, execs [`runner::EXEC_PATH`], which blocks reading a pipe
    /// until the workload ends; its old memory, and the region in it, are gone.
    Exec { task: TaskId },
    /// The root reads `task`'s pagemap now, as an extra view compared at the end (e.g. the
    /// root's frames before a fork, to show a later write reused them).
    Snapshot { task: TaskId, label: &'static str },
}

impl Step {
    /// The task that performs the step.
    pub(crate) fn actor(&self) -> TaskId {
        match *self {
            Step::Write { task, .. }
            | Step::Read { task, .. }
            | Step::PopulateRead { task, .. }
            | Step::Fork { task, .. }
            | Step::Exit { task }
            | Step::Exec { task } => task,
            Step::Vfork { .. } | Step::SpawnThread { .. } | Step::Snapshot { .. } => ROOT,
        }
    }
}

/// A whole workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) segments: Vec<Segment>,
    /// `tasks[ROOT]` is the caller, with role `Parent`.
    pub(crate) tasks: Vec<TaskSpec>,
    pub(crate) steps: Vec<Step>,
}

impl Scenario {
    pub(crate) fn region_pages(&self) -> usize {
        self.segments.iter().map(|segment| segment.pages).sum()
    }

    /// Index of the segment holding `page`.
    pub(crate) fn segment_of(&self, page: usize) -> Option<usize> {
        let mut end = 0;
        self.segments.iter().position(|segment| {
            end += segment.pages;
            page < end
        })
    }

    pub(crate) fn has_file_segments(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| segment.backing == Backing::FilePrivate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sets_walk_their_pages() {
        assert_eq!(PageSet::range(3..6).iter().collect::<Vec<_>>(), [3, 4, 5]);
        let stride = PageSet::Stride {
            start: 1,
            step: 3,
            count: 4,
        };
        assert_eq!(stride.iter().collect::<Vec<_>>(), [1, 4, 7, 10]);
        let spread = PageSet::Spread {
            start: 0,
            len: 10,
            count: 4,
        };
        assert_eq!(spread.iter().collect::<Vec<_>>(), [0, 2, 5, 7]);
        assert_eq!(spread.len(), 4);
        assert!(spread.contains(5) && !spread.contains(6));
    }

    #[test]
    fn page_set_validation_catches_overruns_and_repeats() {
        assert!(PageSet::range(0..10).validate(10).is_ok());
        assert!(PageSet::range(0..11).validate(10).is_err());
        let stride = PageSet::Stride {
            start: 0,
            step: 3,
            count: 4,
        };
        assert!(stride.validate(10).is_ok() && stride.validate(9).is_err());
        let repeats = PageSet::Spread {
            start: 0,
            len: 3,
            count: 4,
        };
        assert!(repeats.validate(10).is_err());
        assert!(PageSet::range(5..5).validate(0).is_ok());
    }

    #[test]
    fn segments_locate_pages() {
        let scenario = Scenario {
            name: "test",
            segments: vec![
                Segment {
                    label: "a",
                    pages: 3,
                    backing: Backing::FilePrivate,
                },
                Segment {
                    label: "b",
                    pages: 2,
                    backing: Backing::Anonymous,
                },
            ],
            tasks: vec![],
            steps: vec![],
        };
        assert_eq!(scenario.region_pages(), 5);
        assert_eq!(scenario.segment_of(2), Some(0));
        assert_eq!(scenario.segment_of(3), Some(1));
        assert_eq!(scenario.segment_of(5), None);
        assert!(scenario.has_file_segments());
    }
}
