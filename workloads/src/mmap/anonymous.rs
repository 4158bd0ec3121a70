//! Anonymous memory on demand: the zero page for reads and a copy for the write that follows,
//! a transparent huge page per 2 MiB under `MADV_HUGEPAGE`, and shared anonymous memory
//! (shmem), which allocates on reads too and is mapped from its page cache afterwards.

use std::{collections::HashSet, path::Path};

use anyhow::{Context as _, bail};

use super::{
    Expectations, MmapWorkload, Run,
    fault_around::FaultAroundModel,
    fault_around_pages,
    mapped::{HUGE_PAGE_SIZE, Mapped, WINDOW_ALIGNMENT},
};
use crate::{
    WorkloadInfo,
    report::{Expected, Measurement, fault_kind},
};

pub(crate) const ANON_ZERO: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-anon-zero",
        summary: "private anonymous memory: reads 503 pages (503 zero_page), writes them \
                  (503 cow_copy: the zero page is copied), writes 257 fresh ones (257 \
                  anon_first_touch)",
    },
    run: run_anon_zero,
};

pub(crate) const HUGEPAGE: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-hugepage",
        summary: "writes every 4 KiB page of 5 aligned 2 MiB under MADV_HUGEPAGE: 5 faults, \
                  each allocating one huge page (order 9)",
    },
    run: run_hugepage,
};

pub(crate) const SHARED_ANON: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-shared-anon",
        summary: "MAP_SHARED|MAP_ANONYMOUS: reads 251 pages (251 anon_first_touch: shmem \
                  allocates on reads), drops the mappings (MADV_DONTNEED) and reads them again \
                  (16 file_minor from shmem's page cache)",
    },
    run: run_shared_anon,
};

const ZERO_READ_THEN_WRITTEN: std::ops::Range<usize> = 0..503;
const ZERO_WRITTEN_ONLY: std::ops::Range<usize> = 503..760;

const HUGE_PAGES: usize = 5;

const SHARED_ANON_PAGES: usize = 251;

fn run_anon_zero(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(ANON_ZERO.info.name);
    let pages = ZERO_WRITTEN_ONLY.end;
    let mapping = Mapped::map(
        pages,
        run.page_size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
        None,
        WINDOW_ALIGNMENT,
    )
    .context("mapping anonymous memory")?;
    // 4 KiB pages only: a huge zero page would turn 503 reads into one fault.
    mapping.advise(libc::MADV_NOHUGEPAGE)?;
    mapping.read_pages(ZERO_READ_THEN_WRITTEN);
    // Every page read so far maps one and the same frame: the zero page.
    let read_frames: HashSet<u64> = mapping.page_entries()?[ZERO_READ_THEN_WRITTEN]
        .iter()
        .filter(|entry| entry.present)
        .map(|entry| entry.pfn)
        .collect();
    mapping.write_pages(ZERO_READ_THEN_WRITTEN, 0x5a);
    mapping.write_pages(ZERO_WRITTEN_ONLY, 0xa5);
    let entries = mapping.page_entries()?;
    let present = entries.iter().filter(|entry| entry.present).count() as u64;
    let read = ZERO_READ_THEN_WRITTEN.len() as u64;
    let fresh = ZERO_WRITTEN_ONLY.len() as u64;
    let mut ground_truth = vec![
        Measurement::new(
            "frames behind the read pages (pagemap: the zero page)",
            1,
            read_frames.len() as u64,
        ),
        Measurement::new("pages present at the end (pagemap)", read + fresh, present),
    ];
    // Frame numbers are visible to root only (CAP_SYS_ADMIN); without, they read as 0.
    if entries.iter().any(|entry| entry.pfn != 0) {
        let frames: HashSet<u64> = entries.iter().map(|entry| entry.pfn).collect();
        ground_truth.push(Measurement::new(
            "distinct frames at the end (pagemap)",
            read + fresh,
            frames.len() as u64,
        ));
    }
    // Writing a page that maps the zero page is a write to a present, write-protected page:
    // do_wp_page copies it (wp_page_copy allocates a zeroed page), exactly as a COW copy.
    run.add(
        "anon",
        format!(
            "private anonymous, THP off: read [{}, {}), write them, write [{}, {})",
            ZERO_READ_THEN_WRITTEN.start,
            ZERO_READ_THEN_WRITTEN.end,
            ZERO_WRITTEN_ONLY.start,
            ZERO_WRITTEN_ONLY.end
        ),
        "[anon]".into(),
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(0)),
            ..Expectations::exact(&[
                (fault_kind::ZERO_PAGE, read),
                (fault_kind::COW_COPY, read),
                (fault_kind::ANON_FIRST_TOUCH, fresh),
            ])
        },
        ground_truth,
    );
    run.finish(report_path)
}

/// The transparent huge page mode (`always`, `madvise` or `never`).
fn thp_mode() -> anyhow::Result<String> {
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    text.split_whitespace()
        .find_map(|word| {
            word.strip_prefix('[')
                .and_then(|word| word.strip_suffix(']'))
        })
        .map(str::to_string)
        .with_context(|| format!("no [mode] in {path}: {text}"))
}

fn run_hugepage(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(HUGEPAGE.info.name);
    let mode = thp_mode()?;
    if mode == "never" {
        bail!(
            "transparent huge pages are off (`never` in /sys/kernel/mm/transparent_hugepage/enabled)"
        );
    }
    let pages_per_huge_page = HUGE_PAGE_SIZE / run.page_size;
    let pages = HUGE_PAGES * pages_per_huge_page;
    let mapping = Mapped::map(
        pages,
        run.page_size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
        None,
        HUGE_PAGE_SIZE,
    )
    .context("mapping anonymous memory")?;
    mapping.advise(libc::MADV_HUGEPAGE)?;
    // The first write in each 2 MiB allocates and maps a huge page; the other 511 find it.
    mapping.write_pages(0..pages, 0x3c);
    let present = mapping.present_pages()?;
    let huge_kib = mapping.anon_huge_kib()?;
    let huge = HUGE_PAGES as u64;
    run.add(
        "huge",
        format!(
            "private anonymous, 2 MiB-aligned, MADV_HUGEPAGE (THP mode `{mode}`): write all \
             {pages} pages"
        ),
        "[anon]".into(),
        &mapping,
        Expectations {
            huge_page_faults: Some(Expected::Exactly(huge)),
            ..Expectations::exact(&[(fault_kind::ANON_FIRST_TOUCH, huge)])
        },
        vec![
            Measurement::new("pages present (pagemap)", pages as u64, present),
            Measurement::new(
                "AnonHugePages in KiB (smaps)",
                (HUGE_PAGES * HUGE_PAGE_SIZE / 1024) as u64,
                huge_kib,
            ),
        ],
    );
    run.finish(report_path)
}

fn run_shared_anon(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(SHARED_ANON.info.name);
    let (window_pages, window_source) = fault_around_pages(run.page_size);
    let mapping = Mapped::map(
        SHARED_ANON_PAGES,
        run.page_size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        None,
        WINDOW_ALIGNMENT,
    )
    .context("mapping shared anonymous memory")?;
    let pages = SHARED_ANON_PAGES as u64;
    let mut model = FaultAroundModel::shmem(window_pages, mapping.first_vpn(), pages);
    let first = model
        .read_all(0..pages)
        .expect("shmem allocates missing pages");
    mapping.read_pages(0..SHARED_ANON_PAGES);
    let present_first = mapping.present_pages()?;
    // Drops the page table entries only: the pages stay in the shared object.
    mapping.advise(libc::MADV_DONTNEED)?;
    let present_dropped = mapping.present_pages()?;
    model.unmap_all();
    let again = model.read_all(0..pages).expect("every page is cached now");
    mapping.read_pages(0..SHARED_ANON_PAGES);
    let present_again = mapping.present_pages()?;
    // First reads: shmem allocates a zeroed page (no zero page in shared memory). The kernel
    // side sees fault-around's event for most of them and calls them file_minor; the mapping
    // says they allocated in shared anonymous memory: first touches.
    run.add(
        "shmem",
        format!(
            "MAP_SHARED|MAP_ANONYMOUS: read all {SHARED_ANON_PAGES} pages ({} of them after \
             fault-around found a neighbour), MADV_DONTNEED, read them again; windows of \
             {window_pages} pages ({window_source})",
            first.allocated_after_window
        ),
        "[anon shared]".into(),
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(0)),
            fault_around_window_pages: Some(Expected::Exactly(
                first.window_pages + again.window_pages,
            )),
            ..Expectations::exact(&[
                (fault_kind::ANON_FIRST_TOUCH, first.allocated),
                (fault_kind::FILE_MINOR, again.faults),
            ])
        },
        vec![
            Measurement::new(
                "pages present after the first reads (pagemap)",
                pages,
                present_first,
            ),
            Measurement::new(
                "pages present after MADV_DONTNEED (pagemap)",
                0,
                present_dropped,
            ),
            Measurement::new(
                "pages present after the second reads (pagemap)",
                pages,
                present_again,
            ),
        ],
    );
    run.finish(report_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_anonymous_numbers_follow_from_the_plan() {
        let mut model = FaultAroundModel::shmem(16, 0, SHARED_ANON_PAGES as u64);
        let first = model.read_all(0..251).unwrap();
        assert_eq!((first.faults, first.allocated), (251, 251));
        model.unmap_all();
        let again = model.read_all(0..251).unwrap();
        assert_eq!(again.faults, 16);
        assert!(SHARED_ANON.info.summary.contains("16 file_minor"));
        assert!(SHARED_ANON.info.summary.contains("251 anon_first_touch"));
    }

    #[test]
    fn anon_zero_summary_matches_the_plan() {
        assert!(
            ANON_ZERO
                .info
                .summary
                .contains(&format!("{} zero_page", ZERO_READ_THEN_WRITTEN.len()))
        );
        assert!(
            ANON_ZERO
                .info
                .summary
                .contains(&format!("{} anon_first_touch", ZERO_WRITTEN_ONLY.len()))
        );
    }

    #[test]
    fn thp_mode_is_one_of_the_known_ones() {
        if let Ok(mode) = thp_mode() {
            assert!(
                ["always", "madvise", "never"].contains(&mode.as_str()),
                "{mode}"
            );
        }
    }
}
