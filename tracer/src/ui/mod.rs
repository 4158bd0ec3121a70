//! Text output: the live per-process table and the final summary.

pub mod mappings;

use std::fmt::Write as _;

use cowtrace_common::FaultKind;

use crate::{
    model::{ProcessTable, TraceModel, pages::Sharing},
    records::json::EndLine,
};

/// Table columns: header and the fault kind counted in it.
const KIND_COLUMNS: [(&str, FaultKind); 10] = [
    ("FIRST", FaultKind::AnonFirstTouch),
    ("ZERO", FaultKind::ZeroPage),
    ("COPY", FaultKind::CowCopy),
    ("REUSE", FaultKind::CowReuse),
    ("F-MIN", FaultKind::FileMinor),
    ("F-MAJ", FaultKind::FileMajor),
    ("F-COPY", FaultKind::FilePrivateCopy),
    ("SH-WR", FaultKind::WriteShared),
    ("GUP", FaultKind::GupFault),
    ("OTHER", FaultKind::Other),
];

/// Legend for `--help` and the summary.
pub const LEGEND: &str = "\
FIRST anon first touch (page allocated)   ZERO  read mapped the zero page
COPY  COW copy (new frame)                REUSE COW reuse (last mapper kept its frame)
F-MIN file page in cache                  F-MAJ file page read from disk
F-COPY private file page copied           SH-WR write to a shared mapping
GUP   fault through get_user_pages        OTHER anything else
ST    R running, X exited";

/// The per-process table, one row per process plus a total.
pub fn process_table(table: &ProcessTable) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>8} {:<16} {:>2} {:>8}",
        "PID", "COMM", "ST", "FAULTS"
    );
    for (header, _) in KIND_COLUMNS {
        let _ = write!(out, " {header:>7}");
    }
    out.push('\n');
    let totals = table.totals();
    let rows = table.processes().iter().map(|process| {
        let state = if process.exited { "X" } else { "R" };
        (process.pid.to_string(), state, process)
    });
    for (pid, state, process) in rows.chain(std::iter::once((String::new(), "", &totals))) {
        // By characters: a byte cut could split a UTF-8 sequence of a (lossy) command name.
        let comm: String = process.comm.chars().take(16).collect();
        let _ = write!(
            out,
            "{pid:>8} {comm:<16} {state:>2} {:>8}",
            process.faults()
        );
        for (_, kind) in KIND_COLUMNS {
            let _ = write!(out, " {:>7}", process.count(kind));
        }
        out.push('\n');
    }
    out
}

/// The closing summary: the table, copies and reuses in bytes, and the loss accounting.
pub fn summary(table: &ProcessTable, end: &EndLine, page_size: u64) -> String {
    let mut out = String::new();
    let totals = table.totals();
    let _ = writeln!(
        out,
        "\ncowtrace summary: {} processes, {} faults in {:.3} s",
        table.processes().len(),
        totals.faults(),
        end.duration_ns as f64 / 1e9
    );
    out.push_str(&process_table(table));
    let mib = |pages: u64| (pages * page_size) as f64 / (1024.0 * 1024.0);
    let _ = writeln!(
        out,
        "pages copied: {} ({:.2} MiB)   pages reused: {} ({:.2} MiB)   first touches: {}",
        totals.pages_copied(),
        mib(totals.pages_copied()),
        totals.pages_reused(),
        mib(totals.pages_reused()),
        totals.count(FaultKind::AnonFirstTouch)
    );
    let _ = writeln!(
        out,
        "records: {} produced, {} received, {} dropped{}   incomplete faults: {}",
        end.records_produced,
        end.records_received,
        end.records_dropped,
        if end.records_dropped > 0 {
            " (LOST: raise --ringbuf-mb)"
        } else {
            ""
        },
        end.faults_incomplete
    );
    if end.inflight_map_full > 0 || end.traced_set_full > 0 {
        let _ = writeln!(
            out,
            "not followed: {} faults (no fault slot for the thread), {} children (traced set full)",
            end.inflight_map_full, end.traced_set_full
        );
    }
    if table.unknown_fault_kinds() > 0 {
        let _ = writeln!(
            out,
            "records of unknown fault kind: {}",
            table.unknown_fault_kinds()
        );
    }
    out
}

/// Everything printed when a session ends: the per-process table with the loss accounting,
/// the busiest mappings, and the forks and pages.
pub fn session_summary(model: &TraceModel, end: &EndLine, page_size: u64) -> String {
    let mut out = summary(&model.processes, end, page_size);
    out.push_str(&mappings::mapping_table(
        &model.mappings,
        mappings::TOP_MAPPINGS,
        page_size,
    ));
    out.push_str(&fork_summary(model, page_size));
    out
}

/// Forks with their cost, and each process's pages: what it copied, reused, first touched,
/// inherited, and how many it still shared with its relatives the last time it was seen alive.
pub fn fork_summary(model: &TraceModel, page_size: u64) -> String {
    let mut out = String::new();
    let forks = model.pages.forks();
    if model.pages.processes().next().is_none() {
        return out;
    }
    if !forks.is_empty() {
        let _ = writeln!(out, "\nforks:");
    }
    for fork in forks {
        let latency = fork
            .latency_ns
            .map_or("?".to_string(), |ns| format!("{:.1} µs", ns as f64 / 1e3));
        let per_gib = fork
            .ms_per_gib(page_size)
            .map_or(String::new(), |ms| format!(" ({ms:.1} ms/GiB)"));
        let _ = writeln!(
            out,
            "  {} -> {} ({}): parent had {} private pages, {} marked copy-on-write; took {latency}{per_gib}",
            fork.parent,
            fork.child,
            fork.kind.name(),
            fork.parent_resident_pages,
            fork.pages_marked_cow
        );
    }
    let bound = if model.pages.is_lower_bound() {
        " (records were lost: counts are lower bounds)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "\npages per process, sharing as last seen alive{bound}:"
    );
    let _ = writeln!(
        out,
        "{:>8} {:>3} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "PID",
        "GEN",
        "RESIDENT",
        "SHARED",
        "W-PARENT",
        "W-CHILD",
        "W-SIBL",
        "COPIED",
        "REUSED",
        "FIRST",
        "INHERITED"
    );
    let mut processes: Vec<_> = model.pages.processes().collect();
    processes.sort_by_key(|process| (process.generation, process.pid));
    for process in processes {
        let last_seen = model
            .samples
            .iter()
            .rev()
            .find_map(|sample| {
                sample
                    .sharing
                    .iter()
                    .find(|sharing| sharing.pid == process.pid)
            })
            .copied()
            .unwrap_or(Sharing::default());
        let counters = process.counters;
        let _ = writeln!(
            out,
            "{:>8} {:>3} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            process.pid,
            process.generation,
            last_seen.resident,
            last_seen.shared,
            last_seen.with_parent,
            last_seen.with_children,
            last_seen.with_siblings,
            counters.copied,
            counters.reused,
            counters.first_touch,
            counters.inherited
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_process_and_a_total() {
        let mut table = ProcessTable::new();
        table.add_process(42, "fork-cow", None);
        table.add_process(43, "ünïcödé-ñämé-löñgér", None);
        let text = process_table(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].contains("PID") && lines[0].contains("COPY") && lines[0].contains("REUSE")
        );
        assert!(lines[1].contains("42") && lines[1].contains("fork-cow"));
        assert!(lines[1].contains(" R "), "state column: {text}");
        assert!(
            lines[2].contains("ünïcödé-ñämé-löñ "),
            "cut by characters: {text}"
        );
        assert!(lines[3].contains("total"));
        // Every row has as many columns as the header.
        let columns = lines[0].split_whitespace().count();
        assert_eq!(lines[1].split_whitespace().count(), columns, "{text}");
    }

    #[test]
    fn summary_shouts_when_records_were_lost() {
        let table = ProcessTable::new();
        let end = EndLine {
            records_produced: 10,
            records_received: 7,
            records_dropped: 3,
            ..Default::default()
        };
        let text = summary(&table, &end, 4096);
        assert!(text.contains("3 dropped (LOST"), "{text}");
        let end = EndLine {
            records_produced: 10,
            records_received: 10,
            ..Default::default()
        };
        assert!(!summary(&table, &end, 4096).contains("LOST"));
    }
}
