//! The report's content, written once and rendered twice (HTML and Markdown): sections of
//! plain-text paragraphs, facts, tables and charts. Every string here is plain text, some of it
//! straight from the trace (process names, the command line); the renderers escape it.

use std::time::{Duration, UNIX_EPOCH};

use cowtrace_common::{FaultKind, ForkKind};

use super::{
    charts::{Chart, address_space::format_bytes, format_ns},
    data::ReportData,
    mappings,
    seed::RegionSource,
};

/// Processes listed at most in the table (the busiest, in order of appearance).
pub const MAX_TABLE_PROCESSES: usize = 50;

pub struct Document {
    pub title: String,
    /// Shown first, highlighted: a truncated trace, lost records.
    pub warnings: Vec<String>,
    pub sections: Vec<Section>,
}

pub struct Section {
    /// Also the anchor of the section in HTML (`id`).
    pub id: &'static str,
    pub title: String,
    pub blocks: Vec<Block>,
}

pub enum Block {
    Text(String),
    /// Label and value pairs.
    Facts(Vec<(String, String)>),
    Table(Table),
    /// Index into the report's charts.
    Chart(usize),
}

pub struct Table {
    pub headers: Vec<String>,
    /// Right-aligned columns (numbers).
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

/// Table columns of fault kinds: short header, kind.
const KIND_COLUMNS: [(&str, FaultKind); 10] = [
    ("first touch", FaultKind::AnonFirstTouch),
    ("zero page", FaultKind::ZeroPage),
    ("COW copy", FaultKind::CowCopy),
    ("COW reuse", FaultKind::CowReuse),
    ("file minor", FaultKind::FileMinor),
    ("file major", FaultKind::FileMajor),
    ("file copy", FaultKind::FilePrivateCopy),
    ("shared write", FaultKind::WriteShared),
    ("gup", FaultKind::GupFault),
    ("other", FaultKind::Other),
];

pub fn build(data: &ReportData, charts: &[Chart], workload_name: Option<&str>) -> Document {
    let title = match (workload_name, data.start.mode.as_str()) {
        (Some(workload), _) => format!("cowtrace report: the {workload} workload"),
        (None, "command") => format!(
            "cowtrace report: {}",
            data.start.command.first().map_or("a command", |program| {
                program.rsplit('/').next().unwrap_or(program)
            })
        ),
        (None, "pid") => "cowtrace report: running processes".to_string(),
        (None, _) => "cowtrace report: every process".to_string(),
    };
    let mut warnings = Vec::new();
    if let Some(truncation) = &data.truncation {
        warnings.push(format!("Incomplete: {}.", truncation.describe()));
    }
    if let Some(end) = &data.end
        && end.records_dropped > 0
    {
        warnings.push(format!(
            "{} of {} records were dropped (the ring buffer was full): every count is a lower \
             bound. Record again with a larger --ringbuf-mb.",
            end.records_dropped, end.records_produced
        ));
    }
    let chart_index = |name: &str| charts.iter().position(|chart| chart.name == name);
    let mut sections = vec![
        Section {
            id: "summary",
            title: "Summary".into(),
            blocks: vec![Block::Text(glance(data)), Block::Table(process_table(data))],
        },
        Section {
            id: "run",
            title: "Kernel, machine and run".into(),
            blocks: vec![Block::Facts(run_facts(data, workload_name.is_some()))],
        },
        forks_section(data),
        records_section(data),
    ];
    let mut chart_section = |id, title: &str, name: &str, extra: Vec<Block>, absent: &str| {
        let mut blocks = match chart_index(name) {
            Some(index) => vec![Block::Chart(index)],
            None => vec![Block::Text(absent.to_string())],
        };
        blocks.extend(extra);
        sections.push(Section {
            id,
            title: title.to_string(),
            blocks,
        });
    };
    chart_section(
        "pages",
        "Pages over time",
        "pages-over-time",
        vec![],
        "No process copied, reused or first-touched a page in this trace.",
    );
    chart_section(
        "latency",
        "Fault latency",
        "fault-latency",
        vec![],
        "No fault in this trace.",
    );
    chart_section(
        "address-space",
        "Faults over the address space",
        "address-space",
        vec![],
        "No fault with an address in this trace.",
    );
    let (seed_blocks, seed_absent) = match &data.seed {
        Ok(seed) => {
            let region = match seed.region_source {
                RegionSource::Workload => "The region is the workload's own, from its report.",
                RegionSource::Inferred => {
                    "The region is inferred from the trace: the densest range of pages that \
                     parent or child wrote after the fork (copies and reuses)."
                }
            };
            (
                vec![Block::Text(format!("{region} {}", seed.sample_note()))],
                String::new(),
            )
        }
        Err(reason) => (vec![], format!("No seed diagram: {reason}.")),
    };
    chart_section(
        "seed",
        "Seed diagram: one fork, page by page",
        "seed-diagram",
        seed_blocks,
        &seed_absent,
    );
    let mapping_charts: Vec<Block> = charts
        .iter()
        .enumerate()
        .filter(|(_, chart)| chart.name.starts_with("mapping-"))
        .map(|(index, _)| Block::Chart(index))
        .collect();
    sections.push(Section {
        id: "mappings",
        title: "Faults per mapping".into(),
        blocks: if mapping_charts.is_empty() {
            vec![Block::Text(mappings::NOT_AVAILABLE.into())]
        } else {
            mapping_charts
        },
    });
    sections.push(Section {
        id: "overhead",
        title: "Tracer overhead".into(),
        // The trace format carries no overhead measurement (fault latencies include the
        // probes' own cost, but nothing separates it).
        blocks: vec![Block::Text(
            "Not measured in this trace. Fault latencies above include the probes' own cost."
                .into(),
        )],
    });
    Document {
        title,
        warnings,
        sections,
    }
}

fn glance(data: &ReportData) -> String {
    let totals = data.table.totals();
    let page = data.page_size();
    let seconds = match &data.end {
        Some(end) => end.duration_ns as f64 / 1e9,
        None => data.duration_ns() as f64 / 1e9,
    };
    let processes = data.table.processes().len();
    format!(
        "{processes} process{} and {} faults in {seconds:.3} s. Pages copied: {} ({}); pages \
         reused: {} ({}); pages first touched: {} ({}).",
        if processes == 1 { "" } else { "es" },
        totals.faults(),
        totals.pages_copied(),
        format_bytes(totals.pages_copied() * page),
        totals.pages_reused(),
        format_bytes(totals.pages_reused() * page),
        totals.count(FaultKind::AnonFirstTouch),
        format_bytes(totals.count(FaultKind::AnonFirstTouch) * page),
    )
}

fn process_table(data: &ReportData) -> Table {
    let mut headers: Vec<String> = ["pid", "command", "parent", "faults"]
        .map(String::from)
        .to_vec();
    headers.extend(KIND_COLUMNS.iter().map(|(header, _)| header.to_string()));
    headers.extend(["mean copy", "state"].map(String::from));
    let mut numeric = vec![true, false, true, true];
    numeric.extend([true; KIND_COLUMNS.len()]);
    numeric.extend([true, false]);
    let processes = data.table.processes();
    let mut listed: Vec<usize> = (0..processes.len()).collect();
    if listed.len() > MAX_TABLE_PROCESSES {
        listed.sort_by_key(|&index| std::cmp::Reverse(processes[index].faults()));
        listed.truncate(MAX_TABLE_PROCESSES);
        listed.sort_unstable();
    }
    let row = |process: &crate::model::ProcessStats, pid: String, parent: String, state: &str| {
        let mut row = vec![
            pid,
            process.comm.clone(),
            parent,
            process.faults().to_string(),
        ];
        row.extend(
            KIND_COLUMNS
                .iter()
                .map(|&(_, kind)| process.count(kind).to_string()),
        );
        row.push(
            process
                .mean_latency_ns(FaultKind::CowCopy)
                .map_or_else(|| "–".to_string(), |ns| format_ns(ns as f64)),
        );
        row.push(state.to_string());
        row
    };
    let mut rows: Vec<Vec<String>> = listed
        .iter()
        .map(|&index| {
            let process = &processes[index];
            row(
                process,
                process.pid.to_string(),
                process
                    .parent
                    .map_or_else(String::new, |pid| pid.to_string()),
                if process.exited {
                    "exited"
                } else {
                    "running at end"
                },
            )
        })
        .collect();
    let mut totals = data.table.totals();
    let omitted = processes.len() - listed.len();
    totals.comm = if omitted > 0 {
        format!(
            "total (all {} processes; {omitted} not listed)",
            processes.len()
        )
    } else {
        "total".into()
    };
    rows.push(row(&totals, String::new(), String::new(), ""));
    Table {
        headers,
        numeric,
        rows,
    }
}

fn run_facts(data: &ReportData, from_workload: bool) -> Vec<(String, String)> {
    let start = &data.start;
    let mut facts = vec![
        ("kernel".to_string(), start.kernel.clone()),
        (
            "page size".to_string(),
            format!("{} bytes", start.page_size),
        ),
        (
            "CPUs".to_string(),
            format!(
                "records came from {} CPU{} (the trace records no more about the machine)",
                data.cpus_seen,
                if data.cpus_seen == 1 { "" } else { "s" }
            ),
        ),
        (
            "recorded by".to_string(),
            format!("cowtrace {}", start.cowtrace_version),
        ),
        (
            "started".to_string(),
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(start.unix_ms))
                .to_string(),
        ),
    ];
    let traced = match start.mode.as_str() {
        "command" => format!("the command {}", start.command.join(" ")),
        "pid" => format!(
            "running processes {}",
            start
                .pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "every process".to_string(),
    };
    facts.push(("traced".into(), traced));
    if let Some(end) = &data.end {
        facts.push((
            "duration".into(),
            format!("{:.3} s", end.duration_ns as f64 / 1e9),
        ));
        if let Some(code) = end.command_exit_code {
            facts.push(("exit code".into(), code.to_string()));
        }
    }
    facts.push((
        "tracepoints".into(),
        format!("{} attached", start.probes_attached.len()),
    ));
    if !start.probes_off.is_empty() {
        facts.push(("turned off".into(), start.probes_off.join("; ")));
    }
    facts.push(("trace file".into(), data.trace_name.clone()));
    if from_workload {
        facts.push((
            "workload report".into(),
            "given: the seed diagram uses its region and pagemap".into(),
        ));
    }
    facts
}

fn forks_section(data: &ReportData) -> Section {
    let mut blocks = Vec::new();
    if data.forks.is_empty() {
        blocks.push(Block::Text("No process forked in this trace.".into()));
    } else {
        blocks.push(Block::Text(
            "A fork is paid for twice: in the fork call itself, which copies the page tables and \
             write-protects every private page, and afterwards, one copy-on-write fault per page \
             either side writes while it is still shared. The parent's copies are counted until \
             its next fork."
                .into(),
        ));
        let cost = |cost: super::data::CopyCost| {
            if cost.pages == 0 {
                "0".to_string()
            } else {
                format!("{} ({})", cost.pages, format_ns(cost.total_ns as f64))
            }
        };
        let rows = data
            .forks
            .iter()
            .map(|fork| {
                vec![
                    format!(
                        "{:.3}",
                        super::charts::ms_since(data.origin_ns, fork.time_ns)
                    ),
                    data.label(fork.parent),
                    data.label(fork.child),
                    match fork.kind {
                        ForkKind::Fork => "fork (copy-on-write)".to_string(),
                        kind => kind.name().to_string(),
                    },
                    fork.syscall_ns
                        .map_or_else(|| "not traced".to_string(), |ns| format_ns(ns as f64)),
                    cost(fork.parent_copies),
                    cost(fork.child_copies),
                ]
            })
            .collect();
        blocks.push(Block::Table(Table {
            headers: [
                "time (ms)",
                "parent",
                "child",
                "kind",
                "fork call",
                "parent's copies after (time)",
                "child's copies (time)",
            ]
            .map(String::from)
            .to_vec(),
            numeric: vec![true, false, false, false, true, true, true],
            rows,
        }));
    }
    Section {
        id: "forks",
        title: "Forks and what they cost".into(),
        blocks,
    }
}

fn records_section(data: &ReportData) -> Section {
    let mut facts = Vec::new();
    let verdict = match &data.end {
        Some(end) => {
            facts.extend([
                ("produced".to_string(), end.records_produced.to_string()),
                ("received".to_string(), end.records_received.to_string()),
                ("dropped".to_string(), end.records_dropped.to_string()),
                (
                    "faults incomplete".to_string(),
                    format!("{} (started, never finished)", end.faults_incomplete),
                ),
                (
                    "not followed (kernel maps full)".to_string(),
                    format!(
                        "{} faults, {} children",
                        end.inflight_map_full, end.traced_set_full
                    ),
                ),
            ]);
            if end.records_dropped == 0 && end.inflight_map_full == 0 && end.traced_set_full == 0 {
                "Nothing was lost: received + dropped = produced, and nothing was dropped."
            } else {
                "Some records were lost: the counts in this report are lower bounds."
            }
        }
        None => "Unknown: the trace has no end line with the loss counters.",
    };
    facts.push((
        "in this file".to_string(),
        format!(
            "{} fault, fork, exec and exit lines; {} syscall lines",
            data.record_count, data.syscall_count
        ),
    ));
    let unknown = data.table.unknown_fault_kinds();
    if unknown > 0 {
        facts.push((
            "unknown fault kinds".to_string(),
            format!("{unknown} faults of a kind this cowtrace does not know (not drawn)"),
        ));
    }
    Section {
        id: "records",
        title: "Records produced, received and dropped".into(),
        blocks: vec![Block::Text(verdict.into()), Block::Facts(facts)],
    }
}
