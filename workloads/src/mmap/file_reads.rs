//! Reads of file mappings: from disk page by page (`MADV_RANDOM`), from disk with readahead
//! (`MADV_SEQUENTIAL` and the default read-around), from the page cache with fault-around, and
//! not at all (`MAP_POPULATE`).

use std::path::Path;

use anyhow::Context as _;

use super::{
    Expectations, MmapWorkload, Run,
    fault_around::FaultAroundModel,
    fault_around_pages,
    mapped::{Mapped, WINDOW_ALIGNMENT},
    scratch::ScratchFile,
};
use crate::{
    WorkloadInfo,
    report::{Expected, Measurement, fault_kind},
};

pub(crate) const RANDOM: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-random",
        summary: "reads 251 of a cold 503-page file's pages in scattered order under \
                  MADV_RANDOM: 251 major faults, 251 pages read, no readahead",
    },
    run: run_random,
};

pub(crate) const SEQUENTIAL: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-sequential",
        summary: "reads two cold 1009-page files page by page, one MADV_SEQUENTIAL, one with \
                  default read-around: readahead and fault-around take fewer faults than pages; \
                  every page read once",
    },
    run: run_sequential,
};

pub(crate) const FAULT_AROUND: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-fault-around",
        summary: "reads a cached 1009-page file (64 faults map it all, 16 pages each) and the \
                  even pages of a 127-page file with only those cached (8 faults scan 127 pages, \
                  map 64)",
    },
    run: run_fault_around,
};

pub(crate) const POPULATE: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-populate",
        summary: "maps a cold 257-page file with MAP_POPULATE, then reads every page: \
                  no faults in the mapping",
    },
    run: run_populate,
};

/// `mmap-random`: a prime file size, a prime number of reads, and a stride coprime with the
/// size, so the reads hit distinct pages scattered over the whole file.
const RANDOM_FILE_PAGES: usize = 503;
const RANDOM_READS: usize = 251;
const RANDOM_STRIDE: usize = 199;

const SEQUENTIAL_FILE_PAGES: usize = 1009;

const CACHED_FILE_PAGES: usize = 1009;
/// Every other page cached: fault-around scans whole windows but maps half of them.
const HALF_CACHED_FILE_PAGES: usize = 127;

const POPULATE_FILE_PAGES: usize = 257;

/// The pages `mmap-random` reads, in order.
fn random_order() -> impl Iterator<Item = usize> {
    (0..RANDOM_READS).map(|step| step * RANDOM_STRIDE % RANDOM_FILE_PAGES)
}

/// The name cowtrace gives the mapping: the file's path as the kernel resolves it.
fn mapping_name(file: &ScratchFile) -> anyhow::Result<String> {
    let path = std::fs::canonicalize(file.path())
        .with_context(|| format!("resolving {}", file.path().display()))?;
    Ok(path.to_string_lossy().into_owned())
}

/// Maps the whole file read-only and private, 64 KiB-aligned.
fn map_read_only(
    file: &ScratchFile,
    page_size: usize,
    extra_flags: libc::c_int,
) -> anyhow::Result<Mapped> {
    use std::os::fd::AsRawFd as _;
    Mapped::map(
        file.pages(),
        page_size,
        libc::PROT_READ,
        libc::MAP_PRIVATE | extra_flags,
        Some(file.file().as_raw_fd()),
        WINDOW_ALIGNMENT,
    )
    .with_context(|| format!("mapping {}", file.path().display()))
}

fn run_random(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(RANDOM.info.name);
    let file = ScratchFile::create(run.name, RANDOM_FILE_PAGES, run.page_size)?;
    file.drop_cached_pages()?;
    let cached_before = file.cached_count()?;
    let mapping = map_read_only(&file, run.page_size, 0)?;
    mapping.advise(libc::MADV_RANDOM)?;
    mapping.read_pages(random_order());
    let present = mapping.present_pages()?;
    let cached_after = file.cached_count()?;
    let reads = RANDOM_READS as u64;
    // No readahead: each read finds its page missing, reads it alone (a major fault, one page
    // into the cache) and maps it; fault-around finds only pages already mapped.
    run.add(
        "random",
        format!(
            "cold file, MADV_RANDOM: read {RANDOM_READS} of its {RANDOM_FILE_PAGES} pages, \
             page (i × {RANDOM_STRIDE}) mod {RANDOM_FILE_PAGES}"
        ),
        mapping_name(&file)?,
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(reads)),
            ..Expectations::exact(&[(fault_kind::FILE_MAJOR, reads)])
        },
        vec![
            Measurement::new(
                "file pages cached before the reads (mincore)",
                0,
                cached_before,
            ),
            Measurement::new("pages present after the reads (pagemap)", reads, present),
            Measurement::new(
                "file pages cached after the reads (mincore)",
                reads,
                cached_after,
            ),
        ],
    );
    run.finish(report_path)
}

fn run_sequential(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(SEQUENTIAL.info.name);
    let (window_pages, _) = fault_around_pages(run.page_size);
    let pages = SEQUENTIAL_FILE_PAGES as u64;
    // Both stay mapped to the end, so the second cannot reuse the first's addresses: the
    // tracer tells their faults apart by address.
    let mut keep = Vec::new();
    for (label, advice, how) in [
        ("sequential", Some(libc::MADV_SEQUENTIAL), "MADV_SEQUENTIAL"),
        ("read-around", None, "default advice (read-around)"),
    ] {
        let file = ScratchFile::create(
            &format!("{}-{label}", run.name),
            SEQUENTIAL_FILE_PAGES,
            run.page_size,
        )?;
        file.drop_cached_pages()?;
        let cached_before = file.cached_count()?;
        let mapping = map_read_only(&file, run.page_size, 0)?;
        if let Some(advice) = advice {
            mapping.advise(advice)?;
        }
        mapping.read_pages(0..SEQUENTIAL_FILE_PAGES);
        let present = mapping.present_pages()?;
        let cached_after = file.cached_count()?;
        // How many faults depends on how far the readahead I/O got when each fault came: at
        // least one major fault (the first page), and each fault maps at most one window.
        // Every page is read from disk exactly once, by a fault of this thread.
        let most = pages - 1;
        run.add(
            label,
            format!("cold file, {how}: read all {SEQUENTIAL_FILE_PAGES} pages in order"),
            mapping_name(&file)?,
            &mapping,
            Expectations {
                faults: vec![
                    (
                        fault_kind::FILE_MAJOR,
                        Expected::Between {
                            at_least: 1,
                            at_most: most,
                        },
                    ),
                    (
                        fault_kind::FILE_MINOR,
                        Expected::Between {
                            at_least: 0,
                            at_most: most,
                        },
                    ),
                ],
                total_faults: Some(Expected::Between {
                    at_least: pages.div_ceil(window_pages),
                    at_most: most,
                }),
                cache_fill_pages: Some(Expected::Exactly(pages)),
                fault_around_window_pages: None,
                huge_page_faults: None,
            },
            vec![
                Measurement::new(
                    "file pages cached before the reads (mincore)",
                    0,
                    cached_before,
                ),
                Measurement::new("pages present after the reads (pagemap)", pages, present),
                Measurement::new(
                    "file pages cached after the reads (mincore)",
                    pages,
                    cached_after,
                ),
            ],
        );
        keep.push((mapping, file));
    }
    run.finish(report_path)
}

fn run_fault_around(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(FAULT_AROUND.info.name);
    let (window_pages, window_source) = fault_around_pages(run.page_size);

    // A file entirely in the page cache (just written): every fault maps its whole window.
    let file = ScratchFile::create(
        &format!("{}-cached", run.name),
        CACHED_FILE_PAGES,
        run.page_size,
    )?;
    let cached_before = file.cached_count()?;
    let mapping = map_read_only(&file, run.page_size, 0)?;
    let pages = CACHED_FILE_PAGES as u64;
    let mut model = FaultAroundModel::new(
        window_pages,
        mapping.first_vpn(),
        pages,
        vec![true; CACHED_FILE_PAGES],
    );
    let predicted = model
        .read_all(0..pages)
        .map_err(|missing| anyhow::anyhow!("page {} is not cached", missing.page))?;
    mapping.read_pages(0..CACHED_FILE_PAGES);
    let present = mapping.present_pages()?;
    run.add(
        "cached",
        format!(
            "cached file: read all {CACHED_FILE_PAGES} pages in order; windows of \
             {window_pages} pages ({window_source})"
        ),
        mapping_name(&file)?,
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(0)),
            fault_around_window_pages: Some(Expected::Exactly(predicted.window_pages)),
            ..Expectations::exact(&[(fault_kind::FILE_MINOR, predicted.faults)])
        },
        vec![
            Measurement::new(
                "file pages cached before the reads (mincore)",
                pages,
                cached_before,
            ),
            Measurement::new(
                "pages present after the reads (pagemap)",
                model.mapped_pages(),
                present,
            ),
        ],
    );
    // Kept mapped to the end: the next mapping must not reuse its addresses.
    let _cached = (mapping, file);

    // Every other page cached: the tracepoint reports each window whole; pagemap shows that
    // only the cached half of it was mapped.
    let file = ScratchFile::create(
        &format!("{}-half-cached", run.name),
        HALF_CACHED_FILE_PAGES,
        run.page_size,
    )?;
    file.drop_cached_pages()?;
    let even_pages = (0..HALF_CACHED_FILE_PAGES).step_by(2);
    file.cache_pages(even_pages.clone())?;
    let cached = file.cached_pages()?;
    let cached_even = cached.iter().step_by(2).filter(|cached| **cached).count() as u64;
    let cached_odd = cached
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|cached| **cached)
        .count() as u64;
    let mapping = map_read_only(&file, run.page_size, 0)?;
    let expected_cached: Vec<bool> = (0..HALF_CACHED_FILE_PAGES)
        .map(|page| page % 2 == 0)
        .collect();
    let even_count = even_pages.len() as u64;
    let mut model = FaultAroundModel::new(
        window_pages,
        mapping.first_vpn(),
        HALF_CACHED_FILE_PAGES as u64,
        expected_cached,
    );
    let predicted = model
        .read_all(even_pages.clone().map(|page| page as u64))
        .map_err(|missing| anyhow::anyhow!("page {} is not cached", missing.page))?;
    mapping.read_pages(even_pages);
    let present = mapping.present_pages()?;
    run.add(
        "half-cached",
        format!(
            "file of {HALF_CACHED_FILE_PAGES} pages, only the {even_count} even ones cached: \
             read those in order; each window is reported whole, half of it is mapped"
        ),
        mapping_name(&file)?,
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(0)),
            fault_around_window_pages: Some(Expected::Exactly(predicted.window_pages)),
            ..Expectations::exact(&[(fault_kind::FILE_MINOR, predicted.faults)])
        },
        vec![
            Measurement::new(
                "even pages cached before the reads (mincore)",
                even_count,
                cached_even,
            ),
            Measurement::new("odd pages cached before the reads (mincore)", 0, cached_odd),
            Measurement::new(
                "pages present after the reads (pagemap)",
                model.mapped_pages(),
                present,
            ),
        ],
    );
    run.finish(report_path)
}

fn run_populate(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(POPULATE.info.name);
    let file = ScratchFile::create(run.name, POPULATE_FILE_PAGES, run.page_size)?;
    file.drop_cached_pages()?;
    let cached_before = file.cached_count()?;
    // mmap itself faults every page in, through get_user_pages: those faults have no address
    // (the tracer shows them as gup_fault), and the reads after it find every page mapped.
    let mapping = map_read_only(&file, run.page_size, libc::MAP_POPULATE)?;
    let present_after_mmap = mapping.present_pages()?;
    mapping.read_pages(0..POPULATE_FILE_PAGES);
    let present = mapping.present_pages()?;
    let pages = POPULATE_FILE_PAGES as u64;
    run.add(
        "populate",
        format!("cold file mapped with MAP_POPULATE, then all {POPULATE_FILE_PAGES} pages read"),
        mapping_name(&file)?,
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(0)),
            fault_around_window_pages: Some(Expected::Exactly(0)),
            ..Expectations::exact(&[])
        },
        vec![
            Measurement::new("file pages cached before mmap (mincore)", 0, cached_before),
            Measurement::new(
                "pages present right after mmap (pagemap)",
                pages,
                present_after_mmap,
            ),
            Measurement::new("pages present after the reads (pagemap)", pages, present),
        ],
    );
    run.finish(report_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_reads_hit_distinct_pages_all_over_the_file() {
        let mut pages: Vec<usize> = random_order().collect();
        assert_eq!(pages.len(), RANDOM_READS);
        assert!(pages.iter().all(|page| *page < RANDOM_FILE_PAGES));
        assert!(
            pages.windows(2).any(|pair| pair[1] < pair[0]),
            "not in file order"
        );
        pages.sort_unstable();
        pages.dedup();
        assert_eq!(pages.len(), RANDOM_READS, "distinct pages");
        assert!(*pages.last().unwrap() > RANDOM_FILE_PAGES * 9 / 10);
    }

    #[test]
    fn listed_numbers_follow_from_the_plans() {
        // The summaries spell out numbers (a const string cannot be formatted).
        let mut cached = FaultAroundModel::new(16, 0, 1009, vec![true; CACHED_FILE_PAGES]);
        let totals = cached.read_all(0..1009).unwrap();
        assert_eq!((totals.faults, totals.window_pages), (64, 1009));
        assert!(FAULT_AROUND.info.summary.contains("64 faults"));
        let even: Vec<bool> = (0..HALF_CACHED_FILE_PAGES)
            .map(|page| page % 2 == 0)
            .collect();
        let mut half = FaultAroundModel::new(16, 0, 127, even);
        let totals = half.read_all((0..127).step_by(2)).unwrap();
        assert_eq!(
            (totals.faults, totals.window_pages, half.mapped_pages()),
            (8, 127, 64)
        );
        assert!(
            FAULT_AROUND
                .info
                .summary
                .contains("8 faults scan 127 pages, map 64")
        );
        assert!(RANDOM.info.summary.contains(&format!(
            "{RANDOM_READS} of a cold {RANDOM_FILE_PAGES}-page"
        )));
    }
}
