//! `fork-file-private`: writes to a private file mapping after a fork, with and without an
//! `anon_vma` at the time of the fork.
//!
//! The region maps a scratch file on a disk filesystem (`std::env::temp_dir()`, or
//! `/var/tmp` when that is tmpfs), written and synced first so that its pages are clean and
//! in the page cache, privately and writably, in two VMAs (two ranges of the file with a
//! page between them, so the kernel cannot merge them):
//!
//! - segment A, pages 0..241: never written before the fork;
//! - segment B, pages 241..504: 83 pages written before the fork.
//!
//! 1. The parent populates both segments read-only with `MADV_POPULATE_READ`: every page
//!    maps its page-cache page (through get_user_pages, with fault-around: those faults are
//!    not user faults, and the workload states no count for them; no `file_minor` either).
//!    That gives neither VMA an `anon_vma`.
//! 2. The parent writes B pages `241 + 3k` (83): each is present and read-only, backed by a
//!    page-cache page, which a private write never reuses: **83 `cow_copy`** (copied from
//!    the page cache). B now has an `anon_vma`; A still has none.
//! 3. Fork. `copy_page_range` skips A (`vma_needs_copy`: no `anon_vma`), so the child starts
//!    with *no* page table entries there, though the parent's are present; it copies all of
//!    B's entries (the 83 private pages write-protected in both, the page-cache pages read
//!    only).
//! 4. The child writes A pages `4k` (53): not present, so each is a write fault on a missing
//!    page of a private file mapping: **53 `file_private_copy`** (`do_cow_fault` copies the
//!    page-cache page). It writes B pages `242 + 2k` (97): all present and read-only (32 of
//!    them private pages shared with the parent, 65 page-cache pages): **97 `cow_copy`**.
//! 5. The parent writes A pages `6k` (37): present, page cache: **37 `cow_copy`**. It
//!    writes B pages 241..330 (89): the 15 it wrote before the fork that the child has since
//!    copied (`244 + 6j`) have no other mapper: **15 `cow_reuse`**; the 15 others it wrote
//!    before the fork are still shared with the child and the 59 page-cache pages are never
//!    reused: 74 `cow_copy`.
//! 6. Checkpoint, both alive: parent 194 `cow_copy`, 15 `cow_reuse`; child 97 `cow_copy`,
//!    53 `file_private_copy`. The parent maps all 504 pages, the child 316 (the 188 A pages
//!    it did not write are *not present* in it); 121 pages have one frame in both (page
//!    cache and private), 195 two. The parent maps 383 pages exclusively (its A page-cache
//!    pages included: the child never mapped them), the child 195.
//!
//! A snapshot of the parent's PFNs just before the fork makes the pagemap check prove the
//! 15 reuses (same PFN as then) and the 15 copies of its own pre-fork pages (a new PFN).
//!
//! Taskstats WPCOPY counts `wp_page_copy` only: the `cow_copy` faults, not the
//! `file_private_copy` ones.

use std::path::Path;

use crate::report::Role;
use crate::scenario::{Backing, PageSet, ROOT, Scenario, Segment, Step, TaskSpec};

pub(crate) const INFO: crate::WorkloadInfo = crate::WorkloadInfo {
    name: "fork-file-private",
    summary: "private file mapping, A never written before fork (child's PTEs not copied: 53 \
              file_private_copy) and B written before fork (child 97 cow_copy); parent 194 \
              cow_copy (page-cache pages never reused), 15 cow_reuse",
};

const A_PAGES: usize = 241;
const B_PAGES: usize = 263;
const B: usize = A_PAGES;
const CHILD: usize = 1;

const PARENT_BEFORE_FORK: PageSet = PageSet::Stride {
    start: B,
    step: 3,
    count: 83,
};
const CHILD_A: PageSet = PageSet::Stride {
    start: 0,
    step: 4,
    count: 53,
};
const CHILD_B: PageSet = PageSet::Stride {
    start: B + 1,
    step: 2,
    count: 97,
};
const PARENT_A: PageSet = PageSet::Stride {
    start: 0,
    step: 6,
    count: 37,
};
const PARENT_B: PageSet = PageSet::range(B..B + 89);

pub(crate) fn scenario() -> Scenario {
    Scenario {
        name: INFO.name,
        segments: vec![
            Segment {
                label: "A: file, not written before fork",
                pages: A_PAGES,
                backing: Backing::FilePrivate,
            },
            Segment {
                label: "B: file, written before fork",
                pages: B_PAGES,
                backing: Backing::FilePrivate,
            },
        ],
        tasks: vec![
            TaskSpec {
                name: "parent",
                role: Role::Parent,
            },
            TaskSpec {
                name: "child",
                role: Role::Child,
            },
        ],
        steps: vec![
            Step::PopulateRead {
                task: ROOT,
                pages: PageSet::range(0..A_PAGES + B_PAGES),
            },
            Step::Write {
                task: ROOT,
                pages: PARENT_BEFORE_FORK,
            },
            Step::Snapshot {
                task: ROOT,
                label: "before fork",
            },
            Step::Fork {
                task: ROOT,
                child: CHILD,
            },
            Step::Write {
                task: CHILD,
                pages: CHILD_A,
            },
            Step::Write {
                task: CHILD,
                pages: CHILD_B,
            },
            Step::Write {
                task: ROOT,
                pages: PARENT_A,
            },
            Step::Write {
                task: ROOT,
                pages: PARENT_B,
            },
        ],
    }
}

pub(crate) fn run(report_path: Option<&Path>) -> anyhow::Result<()> {
    crate::scenario::check::run(&scenario(), report_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fault_kind;
    use crate::scenario::check::{expected_counts, process, shared, simulated_report};

    #[test]
    fn page_sets_stay_in_their_segments() {
        assert!(CHILD_A.iter().chain(PARENT_A.iter()).all(|p| p < B));
        assert!(
            PARENT_BEFORE_FORK
                .iter()
                .chain(CHILD_B.iter())
                .chain(PARENT_B.iter())
                .all(|p| (B..B + B_PAGES).contains(&p))
        );
        // The parent's reuses: written before the fork, then copied by the child.
        let reuses: Vec<usize> = PARENT_B
            .iter()
            .filter(|&p| PARENT_BEFORE_FORK.contains(p) && CHILD_B.contains(p))
            .collect();
        assert_eq!(reuses, (0..15).map(|j| 244 + 6 * j).collect::<Vec<_>>());
    }

    #[test]
    fn expectations_match_the_hand_counted_numbers() {
        let counts = expected_counts(&scenario());
        let parent = counts["parent"];
        assert_eq!(
            (
                parent.cow_copy,
                parent.cow_reuse,
                parent.file_private_copy,
                parent.anon_first_touch
            ),
            (83 + 37 + 15 + 59, 15, 0, 0)
        );
        assert_eq!(parent.populated, 504);
        let child = counts["child"];
        assert_eq!(
            (child.cow_copy, child.cow_reuse, child.file_private_copy),
            (97, 0, 53)
        );
    }

    #[test]
    fn checks_pass_when_the_kernel_does_what_the_model_says() {
        let report = simulated_report(&scenario());
        let check = &report.pagemap_check;
        assert!(report.ok, "{check:?}");
        assert_eq!(
            (
                check.shared_pages,
                check.copied_pages,
                check.not_present_pages
            ),
            (121, 195, 188)
        );
        assert_eq!(shared(&report, "child"), [("with_parent".into(), 121)]);
        assert_eq!(
            process(&report, "parent").expected_exclusive_pages,
            Some(383)
        );
        assert_eq!(
            process(&report, "child").expected_exclusive_pages,
            Some(195)
        );
        // File kinds are stated for a file workload.
        let expected = &process(&report, "child").expected;
        assert_eq!(expected[fault_kind::FILE_PRIVATE_COPY], 53);
        assert_eq!(expected[fault_kind::FILE_MINOR], 0);
        // The page-cache pages each maps at the checkpoint: A's 241 - 37 and B's 263 - 83
        // - 59 in the parent; B's 263 - 83 - 65 in the child.
        assert_eq!(
            process(&report, "parent").region_file_pages.len(),
            204 + 121
        );
        assert_eq!(process(&report, "child").region_file_pages.len(), 115);
    }
}
