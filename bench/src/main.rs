//! `cowtrace-collector-bench TRACE.jsonl`: the collector figures `cargo xtask bench` cannot take
//! from the outside, measured on a trace recorded with `cowtrace trace --json`:
//!
//! - how fast the trace's lines parse back into [`JsonLine`]s (the file read into memory
//!   first, so the figure is parsing, not the disk);
//! - how many bytes the page model's page tables ([`PageTable`]) take per tracked page, once
//!   filled with every frame the trace shows: each new frame of a first touch or a copy, and a
//!   forked child inheriting its parent's table, as the live model does.
//!
//! Prints one JSON object ([`CollectorFigures`]) on standard output.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use cowtrace::model::page_table::PageTable;
use cowtrace::records::json::JsonLine;
use serde::Serialize;

/// What this program measures, as printed.
#[derive(Debug, Serialize)]
struct CollectorFigures {
    lines: u64,
    fault_lines: u64,
    bytes: u64,
    parse_seconds: f64,
    /// Pages present in the page tables at the end (every process, exits ignored: the peak).
    tracked_pages: u64,
    /// Heap bytes of those tables, hash map slots included ([`PageTable::bytes_per_page`]).
    page_table_bytes: f64,
}

/// Fault kinds that give the faulting process a frame of its own.
const NEW_FRAME_KINDS: [&str; 3] = ["anon_first_touch", "cow_copy", "file_private_copy"];

fn main() -> anyhow::Result<()> {
    let path: PathBuf = match std::env::args_os().nth(1) {
        Some(path) => path.into(),
        None => bail!("usage: cowtrace-collector-bench TRACE.jsonl"),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;

    let started = Instant::now();
    let mut parsed = Vec::with_capacity(text.len() / 256);
    for (number, line) in text.lines().enumerate() {
        let line: JsonLine = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a trace line", path.display(), number + 1))?;
        parsed.push(line);
    }
    let parse_seconds = started.elapsed().as_secs_f64();
    let parsed = black_box(parsed);

    let (tracked_pages, page_table_bytes) = page_tables(&parsed);
    let figures = CollectorFigures {
        lines: parsed.len() as u64,
        fault_lines: parsed
            .iter()
            .filter(|line| matches!(line, JsonLine::Fault(_)))
            .count() as u64,
        bytes: text.len() as u64,
        parse_seconds,
        tracked_pages,
        page_table_bytes,
    };
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// Fills one page table per process from the trace and returns (pages, heap bytes) over all.
fn page_tables(lines: &[JsonLine]) -> (u64, f64) {
    let page_size = lines
        .iter()
        .find_map(|line| match line {
            JsonLine::Start(start) => Some(start.page_size),
            _ => None,
        })
        .unwrap_or(4096);
    let mut tables: HashMap<u32, PageTable> = HashMap::new();
    for line in lines {
        match line {
            JsonLine::Fault(fault) if NEW_FRAME_KINDS.contains(&fault.kind.as_str()) => {
                if let Some(pfn) = fault.new_pfn {
                    tables
                        .entry(fault.pid)
                        .or_default()
                        .set(fault.address / page_size, pfn);
                }
            }
            JsonLine::Fork(fork) if fork.fork_kind == "fork" => {
                let inherited = tables.get(&fork.pid).cloned().unwrap_or_default();
                tables.insert(fork.child_pid, inherited);
            }
            _ => {}
        }
    }
    tables.values().fold((0, 0.0), |(pages, bytes), table| {
        (
            pages + table.len(),
            bytes + table.bytes_per_page() * table.len() as f64,
        )
    })
}
