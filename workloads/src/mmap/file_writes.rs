//! Writes to a cached file mapped private (each written page is copied) and shared (each
//! written page is dirtied in place: a write-notify, never a copy). Both write some pages
//! straight away and others after reading them, which maps them read-only first.

use std::{os::fd::AsRawFd as _, path::Path};

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

pub(crate) const PRIVATE_WRITE: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-private-write",
        summary: "cached 521-page file mapped private: writes 251 pages (251 file_private_copy), \
                  reads then writes 257 others (17 file_minor, then 257 cow_copy)",
    },
    run: run_private,
};

pub(crate) const SHARED_WRITE: MmapWorkload = MmapWorkload {
    info: WorkloadInfo {
        name: "mmap-shared-write",
        summary: "cached 521-page file mapped shared: writes 251 pages, reads then writes 257 \
                  others (17 file_minor; 508 write_shared, 257 of them write-notifies the kernel \
                  side calls cow_reuse)",
    },
    run: run_shared,
};

/// The plan both share. Part B starts on a window boundary (256 = 16 × 16) after a gap, so
/// fault-around for its reads never reaches part A.
const FILE_PAGES: usize = 521;
const WRITTEN: std::ops::Range<usize> = 0..251;
const READ_THEN_WRITTEN: std::ops::Range<usize> = 256..513;

/// What the file's mapping sees, predicted page by page.
struct Prediction {
    /// Faults of the reads of part B, all served from the cache by fault-around.
    read_faults: u64,
    window_pages: u64,
    /// Pages present at the end: written ones, and everything fault-around mapped.
    present: u64,
}

fn predict(window_pages: u64, first_vpn: u64) -> Prediction {
    let mut model = FaultAroundModel::new(
        window_pages,
        first_vpn,
        FILE_PAGES as u64,
        vec![true; FILE_PAGES],
    );
    // Writes take no fault-around: each maps its own page.
    for page in WRITTEN {
        model.map(page as u64);
    }
    let reads = model
        .read_all(READ_THEN_WRITTEN.map(|page| page as u64))
        .expect("the whole file is cached");
    Prediction {
        read_faults: reads.faults,
        window_pages: reads.window_pages,
        present: model.mapped_pages(),
    }
}

/// Maps the cached file (`MAP_PRIVATE` or `MAP_SHARED`), writes part A, reads then writes part
/// B. Returns the mapping and the file for the report.
fn write_file(
    run: &Run,
    label: &str,
    share: libc::c_int,
) -> anyhow::Result<(ScratchFile, Mapped, u64)> {
    let file = ScratchFile::create(&format!("{}-{label}", run.name), FILE_PAGES, run.page_size)?;
    let cached_before = file.cached_count()?;
    let mapping = Mapped::map(
        FILE_PAGES,
        run.page_size,
        libc::PROT_READ | libc::PROT_WRITE,
        share,
        Some(file.file().as_raw_fd()),
        WINDOW_ALIGNMENT,
    )
    .with_context(|| format!("mapping {}", file.path().display()))?;
    mapping.write_pages(WRITTEN, 0xa1);
    mapping.read_pages(READ_THEN_WRITTEN);
    mapping.write_pages(READ_THEN_WRITTEN, 0xb2);
    Ok((file, mapping, cached_before))
}

fn mapping_name(file: &ScratchFile) -> anyhow::Result<String> {
    Ok(std::fs::canonicalize(file.path())?
        .to_string_lossy()
        .into_owned())
}

fn describe(how: &str) -> String {
    format!(
        "cached {FILE_PAGES}-page file, {how}: write pages [{}, {}), read then write [{}, {})",
        WRITTEN.start, WRITTEN.end, READ_THEN_WRITTEN.start, READ_THEN_WRITTEN.end
    )
}

fn run_private(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(PRIVATE_WRITE.info.name);
    let (window_pages, _) = fault_around_pages(run.page_size);
    let (file, mapping, cached_before) = write_file(&run, "private", libc::MAP_PRIVATE)?;
    let predicted = predict(window_pages, mapping.first_vpn());
    let entries = mapping.page_entries()?;
    let present = entries.iter().filter(|entry| entry.present).count() as u64;
    // A copy is private anonymous memory; a page only read is still the page cache's.
    let copies = entries
        .iter()
        .filter(|entry| entry.present && !entry.file_or_shared)
        .count() as u64;
    let written = WRITTEN.len() as u64;
    let read_then_written = READ_THEN_WRITTEN.len() as u64;
    // A write to a page not mapped copies the cached page (do_cow_fault); a write to a page
    // mapped read-only by a read copies it too (wp_page_copy, counted by taskstats WPCOPY).
    run.add(
        "private",
        describe("MAP_PRIVATE"),
        mapping_name(&file)?,
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(0)),
            fault_around_window_pages: Some(Expected::Exactly(predicted.window_pages)),
            ..Expectations::exact(&[
                (fault_kind::FILE_PRIVATE_COPY, written),
                (fault_kind::FILE_MINOR, predicted.read_faults),
                (fault_kind::COW_COPY, read_then_written),
            ])
        },
        vec![
            Measurement::new(
                "file pages cached before the writes (mincore)",
                FILE_PAGES as u64,
                cached_before,
            ),
            Measurement::new(
                "pages present at the end (pagemap)",
                predicted.present,
                present,
            ),
            Measurement::new(
                "private copies present (pagemap: anonymous)",
                written + read_then_written,
                copies,
            ),
        ],
    );
    run.finish(report_path)
}

fn run_shared(report_path: Option<&Path>) -> anyhow::Result<()> {
    let mut run = Run::new(SHARED_WRITE.info.name);
    let (window_pages, _) = fault_around_pages(run.page_size);
    let (file, mapping, cached_before) = write_file(&run, "shared", libc::MAP_SHARED)?;
    let predicted = predict(window_pages, mapping.first_vpn());
    let entries = mapping.page_entries()?;
    let present = entries.iter().filter(|entry| entry.present).count() as u64;
    let page_cache = entries
        .iter()
        .filter(|entry| entry.present && entry.file_or_shared)
        .count() as u64;
    let written = (WRITTEN.len() + READ_THEN_WRITTEN.len()) as u64;
    // A write to a page not mapped maps the cached page writable (do_shared_fault); a write
    // to a page a read mapped read-only (the file system wants to know when pages get dirty)
    // is a write-notify: wp_page_shared, no copy.
    run.add(
        "shared",
        describe("MAP_SHARED"),
        mapping_name(&file)?,
        &mapping,
        Expectations {
            cache_fill_pages: Some(Expected::Exactly(0)),
            fault_around_window_pages: Some(Expected::Exactly(predicted.window_pages)),
            ..Expectations::exact(&[
                (fault_kind::WRITE_SHARED, written),
                (fault_kind::FILE_MINOR, predicted.read_faults),
            ])
        },
        vec![
            Measurement::new(
                "file pages cached before the writes (mincore)",
                FILE_PAGES as u64,
                cached_before,
            ),
            Measurement::new(
                "pages present at the end (pagemap)",
                predicted.present,
                present,
            ),
            Measurement::new(
                "page cache pages present (pagemap: no copies)",
                predicted.present,
                page_cache,
            ),
        ],
    );
    run.finish(report_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reads_of_part_b_take_seventeen_faults_over_265_pages() {
        // Aligned on a window: 16 full windows from page 256, then [512, 521) cut by the end.
        let predicted = predict(16, 0x7f00_0000);
        assert_eq!(predicted.read_faults, 17);
        assert_eq!(predicted.window_pages, 16 * 16 + 9);
        assert_eq!(predicted.present, 251 + 265);
        assert!(PRIVATE_WRITE.info.summary.contains("17 file_minor"));
        assert!(SHARED_WRITE.info.summary.contains("508 write_shared"));
    }
}
