//! mmap workloads: how pages of file mappings and anonymous memory appear on demand. Each maps
//! one or more regions, touches them in a known order, predicts every fault the tracer must see
//! in them (by kind, with pages read from disk, fault-around ranges and huge pages), checks
//! what it can itself against the kernel (pagemap, mincore, smaps) and writes its report
//! ([`crate::report::MappingReport`] per mapping).
//!
//! Page counts are primes so that off-by-one errors and swapped kinds show. Files are small
//! (at most 4 MiB) and live in a scratch directory on a disk-backed file system
//! ([`scratch`]).

mod anonymous;
mod fault_around;
mod file_reads;
mod file_writes;
mod mapped;
mod scratch;

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, bail};

use crate::{
    WorkloadInfo,
    report::{Expected, MappingReport, Measurement, WorkloadReport, fault_kind},
    sys,
};

use self::mapped::Mapped;

pub(crate) use self::{
    anonymous::{ANON_ZERO, HUGEPAGE, SHARED_ANON},
    file_reads::{FAULT_AROUND, POPULATE, RANDOM, SEQUENTIAL},
    file_writes::{PRIVATE_WRITE, SHARED_WRITE},
};

/// One mmap workload: its listing and its entry point.
pub(crate) struct MmapWorkload {
    pub info: WorkloadInfo,
    pub run: fn(Option<&Path>) -> anyhow::Result<()>,
}

/// How long a workload keeps its mappings after its last access (see [`Run::finish`]).
const TRACER_CATCH_UP: std::time::Duration = std::time::Duration::from_millis(200);

/// The kinds every mmap workload states; those it does not mention are expected 0.
const STATED_KINDS: [&str; 8] = [
    fault_kind::ANON_FIRST_TOUCH,
    fault_kind::ZERO_PAGE,
    fault_kind::COW_COPY,
    fault_kind::COW_REUSE,
    fault_kind::FILE_MINOR,
    fault_kind::FILE_MAJOR,
    fault_kind::FILE_PRIVATE_COPY,
    fault_kind::WRITE_SHARED,
];

/// Expected faults by kind: the given ones, every other stated kind 0.
fn expected_faults(counts: &[(&str, Expected)]) -> BTreeMap<String, Expected> {
    let mut faults: BTreeMap<String, Expected> = STATED_KINDS
        .iter()
        .map(|kind| (kind.to_string(), Expected::Exactly(0)))
        .collect();
    for (kind, count) in counts {
        faults.insert(kind.to_string(), *count);
    }
    faults
}

/// The sum of exact counts (the total when every count is exact).
fn exact_total(counts: &[(&str, Expected)]) -> Expected {
    Expected::Exactly(
        counts
            .iter()
            .map(|(_, count)| match count {
                Expected::Exactly(count) => *count,
                Expected::Between { .. } => panic!("a total of bounds is not exact"),
            })
            .sum(),
    )
}

/// Pages per fault-around window: `fault_around_bytes` from debugfs when it is mounted, the
/// kernel's default (64 KiB) otherwise.
fn fault_around_pages(page_size: usize) -> (u64, &'static str) {
    match std::fs::read_to_string("/sys/kernel/debug/fault_around_bytes")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
    {
        Some(bytes) => (
            (bytes / page_size as u64).max(1),
            "fault_around_bytes from debugfs",
        ),
        None => (
            fault_around::DEFAULT_WINDOW_PAGES,
            "fault_around_bytes: the kernel's default 64 KiB (debugfs not mounted)",
        ),
    }
}

/// Who runs the workload, for its report.
struct Run {
    name: &'static str,
    page_size: usize,
    pid: u32,
    tid: u32,
    mappings: Vec<MappingReport>,
}

/// What a workload states about one of its mappings.
struct Expectations {
    faults: Vec<(&'static str, Expected)>,
    /// `None`: the sum of `faults`, all exact.
    total_faults: Option<Expected>,
    cache_fill_pages: Option<Expected>,
    fault_around_window_pages: Option<Expected>,
    huge_page_faults: Option<Expected>,
}

impl Expectations {
    fn exact(faults: &[(&'static str, u64)]) -> Expectations {
        Expectations {
            faults: faults
                .iter()
                .map(|(kind, count)| (*kind, Expected::Exactly(*count)))
                .collect(),
            total_faults: None,
            cache_fill_pages: None,
            fault_around_window_pages: None,
            huge_page_faults: None,
        }
    }
}

impl Run {
    fn new(name: &'static str) -> Run {
        Run {
            name,
            page_size: sys::page_size(),
            pid: sys::getpid(),
            tid: sys::gettid(),
            mappings: Vec::new(),
        }
    }

    /// Records what the workload expects in `mapping` and what it measured.
    fn add(
        &mut self,
        label: &str,
        description: String,
        name: String,
        mapping: &Mapped,
        expectations: Expectations,
        ground_truth: Vec<Measurement>,
    ) {
        let total_faults = expectations
            .total_faults
            .unwrap_or_else(|| exact_total(&expectations.faults));
        self.mappings.push(MappingReport {
            label: label.to_string(),
            description,
            name,
            pid: self.pid,
            tid: self.tid,
            start: mapping.start_addr(),
            pages: mapping.pages() as u64,
            faults: expected_faults(&expectations.faults),
            total_faults,
            cache_fill_pages: expectations.cache_fill_pages,
            fault_around_window_pages: expectations.fault_around_window_pages,
            huge_page_faults: expectations.huge_page_faults,
            ground_truth,
        });
    }

    /// Writes the report (also when a check failed, so it can be read), prints a summary,
    /// and fails if the kernel disagreed with the workload's own arithmetic.
    fn finish(self, report_path: Option<&Path>) -> anyhow::Result<()> {
        let report = WorkloadReport::of_mappings(
            self.name,
            self.page_size as u64,
            self.pid,
            self.tid,
            self.mappings,
        );
        if let Some(path) = report_path {
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::write(path, json + "\n")
                .with_context(|| format!("writing the report to {}", path.display()))?;
        }
        println!("{}: pid {} (tid {})", report.workload, self.pid, self.tid);
        let mut failed = Vec::new();
        for mapping in &report.mappings {
            println!(
                "  {} at {:#x}, {} pages: {}",
                mapping.label, mapping.start, mapping.pages, mapping.description
            );
            let expected: Vec<String> = mapping
                .faults
                .iter()
                .filter(|(_, count)| **count != Expected::Exactly(0))
                .map(|(kind, count)| format!("{kind} {count}"))
                .collect();
            println!(
                "    expected faults: {} (total {})",
                expected.join(", "),
                mapping.total_faults
            );
            for measurement in &mapping.ground_truth {
                println!(
                    "    {}: {} (expected {}): {}",
                    measurement.what,
                    measurement.measured,
                    measurement.expected,
                    if measurement.ok() { "ok" } else { "MISMATCH" }
                );
                if !measurement.ok() {
                    failed.push(format!("{}: {}", mapping.label, measurement.what));
                }
            }
        }
        // The mappings (unmapped by the caller after this) and the process stay a moment: a
        // tracer names a file mapping, and learns a process's mappings after exec, from /proc
        // when the record arrives, a few milliseconds late.
        std::thread::sleep(TRACER_CATCH_UP);
        if !failed.is_empty() {
            bail!(
                "the kernel disagrees with the workload's arithmetic: {}",
                failed.join("; ")
            );
        }
        Ok(())
    }
}
