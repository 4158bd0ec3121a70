//! The per-mapping table of the summary: for the mappings with the most faults, how their pages
//! got there, how many pages fault-around scanned, what was read from disk, and how long the
//! major faults waited.

use std::fmt::Write as _;

use cowtrace_common::FaultKind;

use super::KIND_COLUMNS;
use crate::model::mapping_stats::{MappingStats, MappingTable};

/// Rows of the summary's mapping table.
pub const TOP_MAPPINGS: usize = 10;

/// Width of the mapping name column; longer names keep their end (the file name).
const NAME_WIDTH: usize = 40;

pub const LEGEND: &str = "\
AROUND pages in the ranges fault-around scanned: an upper bound of the pages it mapped
READ   read from disk into the page cache (readahead included)   MAJ-P50/MAX major-fault latency";

/// The `limit` mappings with the most faults, then the major-fault latency histogram of each
/// that had major faults. Empty when no fault was attributed.
pub fn mapping_table(table: &MappingTable, limit: usize, page_size: u64) -> String {
    let mut out = String::new();
    if table.is_empty() {
        return out;
    }
    let rows = table.top(limit);
    let _ = writeln!(
        out,
        "\nfaults by mapping ({} of {} mappings, most faults first):",
        rows.len(),
        table.len()
    );
    let _ = write!(out, "{:<NAME_WIDTH$} {:>7}", "MAPPING", "FAULTS");
    for (header, kind) in KIND_COLUMNS {
        // get_user_pages faults have no address: they have their own row, not a column.
        if kind != FaultKind::GupFault {
            let _ = write!(out, " {header:>6}");
        }
    }
    let _ = writeln!(
        out,
        " {:>7} {:>9} {:>8} {:>8}",
        "AROUND", "READ", "MAJ-P50", "MAJ-MAX"
    );
    for stats in &rows {
        let _ = write!(
            out,
            "{:<NAME_WIDTH$} {:>7}",
            shorten(&stats.name, NAME_WIDTH),
            stats.faults()
        );
        for (_, kind) in KIND_COLUMNS {
            if kind != FaultKind::GupFault {
                let _ = write!(out, " {:>6}", stats.count(kind));
            }
        }
        let quantile = |q| stats.major_latency.quantile_upper_ns(q).map(duration);
        let _ = writeln!(
            out,
            " {:>7} {:>9} {:>8} {:>8}",
            stats.fault_around_window_pages,
            bytes(stats.bytes_read(page_size)),
            quantile(0.5).unwrap_or_else(|| "-".into()),
            quantile(1.0).unwrap_or_else(|| "-".into()),
        );
    }
    let with_majors: Vec<&&MappingStats> = rows
        .iter()
        .filter(|stats| stats.major_faults() > 0)
        .collect();
    if !with_majors.is_empty() {
        out.push_str("major-fault latency (faults per bucket):\n");
        for stats in with_majors {
            let _ = write!(out, "  {}:", shorten(&stats.name, NAME_WIDTH));
            for (low, high, count) in stats.major_latency.buckets() {
                let _ = write!(out, "  [{}, {}) {count}", duration(low), duration(high));
            }
            out.push('\n');
        }
    }
    let huge: u64 = rows.iter().map(|stats| stats.huge_page_faults).sum();
    if huge > 0 {
        let _ = writeln!(
            out,
            "huge-page faults (2 MiB allocations) in these mappings: {huge}"
        );
    }
    let _ = writeln!(out, "{LEGEND}");
    out
}

/// Keeps the end of a long name, where a path's file name is.
fn shorten(name: &str, width: usize) -> String {
    let chars = name.chars().count();
    if chars <= width {
        return name.to_string();
    }
    let tail: String = name.chars().skip(chars - (width - 1)).collect();
    format!("…{tail}")
}

fn duration(ns: u64) -> String {
    match ns {
        u64::MAX => "inf".into(),
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}us", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    }
}

fn bytes(count: u64) -> String {
    const KIB: u64 = 1024;
    match count {
        0 => "0".into(),
        1..KIB => format!("{count} B"),
        KIB..0x10_0000 => format!("{} KiB", count / KIB),
        _ => format!("{:.1} MiB", count as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use cowtrace_common::{FaultRecord, RecordHeader, fault::flags};

    use super::*;
    use crate::model::fault_attribution::{FaultAttribution, FaultMapping};

    fn add(table: &mut MappingTable, name: &str, kind: FaultKind, fault: FaultRecord) {
        let attribution = FaultAttribution {
            kind: Some(kind),
            mapping: Some(FaultMapping {
                name: name.into(),
                file_offset: None,
            }),
        };
        table.add(&fault, &attribution);
    }

    #[test]
    fn lists_the_busiest_mappings_with_reads_and_major_latencies() {
        let mut table = MappingTable::new();
        let data = "/var/lib/a-rather-long-directory-name/for-a-database/table-0001.db";
        for _ in 0..251 {
            let fault = FaultRecord {
                header: RecordHeader::fault(1, 0, 9, 9),
                latency_ns: 150_000,
                flags: flags::FILEMAP | flags::MAJOR | flags::CACHE_FILL,
                cache_fill_pages: 1,
                fault_around_window_pages: 16,
                ..Default::default()
            };
            add(&mut table, data, FaultKind::FileMajor, fault);
        }
        for _ in 0..3 {
            add(
                &mut table,
                "[heap]",
                FaultKind::AnonFirstTouch,
                FaultRecord::default(),
            );
        }
        add(
            &mut table,
            "[stack]",
            FaultKind::AnonFirstTouch,
            FaultRecord::default(),
        );
        let text = mapping_table(&table, 2, 4096);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].contains("2 of 3 mappings"), "{text}");
        assert!(
            lines[2].starts_with("MAPPING") && lines[2].contains("AROUND"),
            "{text}"
        );
        // The busiest first, its name cut at the front to keep the file name.
        assert!(
            lines[3].starts_with("…") && lines[3].contains("table-0001.db"),
            "{text}"
        );
        assert!(
            lines[3].contains(" 251 ") && lines[3].contains("4016"),
            "{text}"
        );
        assert!(
            lines[3].contains("1004 KiB") && lines[3].contains("262us"),
            "{text}"
        );
        assert!(lines[4].starts_with("[heap]"), "{text}");
        assert_eq!(
            lines[2].split_whitespace().count(),
            lines[4].split_whitespace().count(),
            "{text}"
        );
        assert!(text.contains("[131us, 262us) 251"), "{text}");
        assert!(!text.contains("[stack]"), "{text}");
    }

    #[test]
    fn nothing_attributed_prints_nothing() {
        assert_eq!(mapping_table(&MappingTable::new(), 10, 4096), "");
    }

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
        assert_eq!(duration(999), "999ns");
        assert_eq!(duration(262_144), "262us");
        assert_eq!(duration(2_500_000), "2.5ms");
        assert_eq!(shorten("abcdef", 4), "…def");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
