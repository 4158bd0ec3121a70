//! What a report shows, computed from a trace file: the per-process table (the same
//! [`ProcessTable`] the live tracer keeps), every fault per process, the forks and what they
//! cost, and the page tables of one fork for the seed diagram.

use std::collections::HashMap;

use cowtrace_common::{
    ExecRecord, ExitRecord, FaultKind, FaultRecord, ForkKind, ForkRecord, RecordHeader, RecordType,
};
use cowtrace_workloads::report::WorkloadReport;

use super::{
    seed::{self, SeedData},
    trace_file::{Event, TraceFile, Truncation},
};
use crate::{
    model::{ProcessStats, ProcessTable},
    records::{
        Record,
        json::{EndLine, ForkLine, StartLine, SyscallLine},
    },
};

/// Everything the charts and the text of a report are drawn from.
#[derive(Debug)]
pub struct ReportData {
    /// The trace file's name (not its path: reports must not depend on where they were made).
    pub trace_name: String,
    pub start: StartLine,
    pub end: Option<EndLine>,
    pub truncation: Option<Truncation>,
    /// Time zero of the charts: the earliest of the start line's clock and the first record
    /// (the traced command can fault before the start line is written).
    pub origin_ns: u64,
    /// The last record's time.
    pub last_ns: u64,
    /// Distinct CPUs the records came from.
    pub cpus_seen: usize,
    /// Fault, fork, exec and exit lines (syscall lines are kept apart, in `fork_syscalls`).
    pub record_count: usize,
    pub syscall_count: usize,
    pub table: ProcessTable,
    /// Every fault of each process, in time order; parallel to `table.processes()`.
    pub faults: Vec<Vec<FaultPoint>>,
    /// Process forks and vforks (not threads), in time order.
    pub forks: Vec<ForkEvent>,
    /// The seed diagram's fork, or why there is none.
    pub seed: Result<SeedData, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPoint {
    pub time_ns: u64,
    pub address: u64,
    pub kind: Option<FaultKind>,
    pub latency_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkEvent {
    pub time_ns: u64,
    /// Indexes into `table.processes()`.
    pub parent: usize,
    pub child: usize,
    pub kind: ForkKind,
    /// How long the fork/clone syscall took in the parent, when the trace has it.
    pub syscall_ns: Option<u64>,
    /// COW copies the parent made after this fork and before its next one, and their time.
    pub parent_copies: CopyCost,
    /// COW copies the child made.
    pub child_copies: CopyCost,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyCost {
    pub pages: u64,
    pub total_ns: u64,
}

impl ReportData {
    pub fn process(&self, index: usize) -> &ProcessStats {
        &self.table.processes()[index]
    }

    /// `pid comm` of a process, for labels.
    pub fn label(&self, index: usize) -> String {
        let process = self.process(index);
        format!("{} {}", process.pid, process.comm)
    }

    pub fn page_size(&self) -> u64 {
        self.start.page_size.max(1)
    }

    pub fn duration_ns(&self) -> u64 {
        self.last_ns.saturating_sub(self.origin_ns)
    }

    /// Processes that faulted, most faults first (ties: first seen first).
    pub fn busiest_processes(&self) -> Vec<usize> {
        let mut indexes: Vec<usize> = (0..self.faults.len())
            .filter(|&index| !self.faults[index].is_empty())
            .collect();
        indexes.sort_by_key(|&index| std::cmp::Reverse(self.faults[index].len()));
        indexes
    }

    /// Latencies of every fault of `kind`, all processes.
    pub fn latencies(&self, kind: FaultKind) -> Vec<u64> {
        self.faults
            .iter()
            .flatten()
            .filter(|fault| fault.kind == Some(kind))
            .map(|fault| fault.latency_ns)
            .collect()
    }
}

/// Builds the report's data. `workload` (the workload's self-report, from `cowtrace run`)
/// pins the seed diagram to the workload's fork and region and adds the pagemap check.
pub fn build(trace: TraceFile, trace_name: &str, workload: Option<&WorkloadReport>) -> ReportData {
    let TraceFile {
        start,
        mut events,
        end,
        truncation,
    } = trace;
    // Records from different CPUs can be out of order by microseconds; the model, the series
    // and the frame reconstruction all want time order. Stable, so ties keep file order.
    events.sort_by_key(Event::time_ns);

    let mut table = ProcessTable::new();
    // Which table entry is the live one for each pid, mirrored from the table's growth: the
    // table starts a new entry for a pid reused after an exit, and so must the series.
    let mut current: HashMap<u32, usize> = HashMap::new();
    let initial_comm = match start.mode.as_str() {
        "command" => start.command.first().map(|program| {
            std::path::Path::new(program).file_name().map_or_else(
                || program.clone(),
                |name| name.to_string_lossy().into_owned(),
            )
        }),
        _ => None,
    };
    for &pid in &start.pids {
        table.add_process(pid, initial_comm.as_deref().unwrap_or("?"), None);
        current.insert(pid, table.processes().len() - 1);
    }

    let mut records = Vec::with_capacity(events.len());
    let mut faults: Vec<Vec<FaultPoint>> = vec![Vec::new(); table.processes().len()];
    let mut fork_lines = Vec::new();
    let mut fork_syscalls = Vec::new();
    let mut cpus = Vec::new();
    for event in &events {
        let cpu = match event {
            Event::Fault(line) => line.cpu,
            Event::Fork(line) => line.cpu,
            Event::Exec(line) => line.cpu,
            Event::Exit(line) => line.cpu,
            Event::Syscall(line) => line.cpu,
        };
        if !cpus.contains(&cpu) {
            cpus.push(cpu);
        }
        let Some(record) = to_record(event) else {
            if let Event::Syscall(line) = event
                && matches!(line.syscall.as_str(), "clone" | "clone3" | "fork" | "vfork")
            {
                fork_syscalls.push(line.clone());
            }
            continue;
        };
        let known_before = table.processes().len();
        table.apply(&record);
        for index in known_before..table.processes().len() {
            current.insert(table.processes()[index].pid, index);
            faults.push(Vec::new());
        }
        match (&record, event) {
            // Faults of a kind this build does not know are counted by the table, not drawn.
            (Record::Fault(fault), Event::Fault(line)) if line.fault_kind().is_some() => {
                faults[current[&fault.header.pid]].push(FaultPoint {
                    time_ns: line.time_ns,
                    address: line.address,
                    kind: line.fault_kind(),
                    latency_ns: line.latency_ns,
                });
            }
            (Record::Fork(fork), Event::Fork(line)) => {
                let kind = ForkKind::from_clone_flags(fork.clone_flags);
                if kind != ForkKind::Thread {
                    fork_lines.push(ForkSeen {
                        line: line.clone(),
                        kind,
                        parent: current[&fork.header.pid],
                        child: current[&fork.child_pid],
                    });
                }
            }
            _ => {}
        }
        records.push(record);
    }

    let forks = fork_events(&fork_lines, &fork_syscalls, &faults);
    let origin_ns = events.first().map_or(start.monotonic_ns, |event| {
        event.time_ns().min(start.monotonic_ns)
    });
    let last_ns = events
        .last()
        .map_or(origin_ns, Event::time_ns)
        .max(origin_ns);
    let seed = seed::build(
        &records,
        &table,
        &forks,
        &faults,
        start.page_size.max(1),
        workload,
    );
    ReportData {
        trace_name: trace_name.to_string(),
        start,
        end,
        truncation,
        origin_ns,
        last_ns,
        cpus_seen: cpus.len(),
        record_count: records.len(),
        syscall_count: events.len() - records.len(),
        table,
        faults,
        forks,
        seed,
    }
}

/// A fork line with the table entries of its parent and child.
struct ForkSeen {
    line: ForkLine,
    kind: ForkKind,
    parent: usize,
    child: usize,
}

fn fork_events(
    fork_lines: &[ForkSeen],
    fork_syscalls: &[SyscallLine],
    faults: &[Vec<FaultPoint>],
) -> Vec<ForkEvent> {
    let copies = |process: usize, from_ns: u64, until_ns: u64| {
        let mut cost = CopyCost::default();
        for fault in &faults[process] {
            if fault.kind == Some(FaultKind::CowCopy)
                && fault.time_ns >= from_ns
                && fault.time_ns < until_ns
            {
                cost.pages += 1;
                cost.total_ns += fault.latency_ns;
            }
        }
        cost
    };
    fork_lines
        .iter()
        .enumerate()
        .map(|(position, fork)| {
            let ForkSeen {
                line,
                kind,
                parent,
                child,
            } = fork;
            // The parent's copies belong to this fork until the parent forks again.
            let next_fork_ns = fork_lines[position + 1..]
                .iter()
                .find(|next| next.parent == *parent)
                .map_or(u64::MAX, |next| next.line.time_ns);
            let syscall_ns = fork_syscalls
                .iter()
                .filter(|syscall| {
                    syscall.tid == line.tid
                        && u32::try_from(syscall.ret).ok() == Some(line.child_pid)
                })
                .min_by_key(|syscall| syscall.time_ns.abs_diff(line.time_ns))
                .map(|syscall| syscall.latency_ns);
            ForkEvent {
                time_ns: line.time_ns,
                parent: *parent,
                child: *child,
                kind: *kind,
                syscall_ns,
                parent_copies: copies(*parent, line.time_ns, next_fork_ns),
                child_copies: copies(*child, 0, u64::MAX),
            }
        })
        .collect()
}

/// The model's record for a JSON line; `None` for syscall lines, which the model does not
/// count. Command names go back into the kernel's 16-byte field (they came from it).
fn to_record(event: &Event) -> Option<Record> {
    let header = |record_type: RecordType, time_ns, cpu, pid, tid| RecordHeader {
        record_type: record_type as u32,
        cpu,
        pid,
        tid,
        time_ns,
    };
    Some(match event {
        Event::Fault(line) => Record::Fault(FaultRecord {
            header: header(
                RecordType::Fault,
                line.time_ns,
                line.cpu,
                line.pid,
                line.tid,
            ),
            address: line.address,
            latency_ns: line.latency_ns,
            new_pfn: line.new_pfn.unwrap_or(0),
            error_code: line.error_code,
            flags: line.flags,
            // A kind this build does not know stays unknown: the table counts it apart.
            kind: line.fault_kind().map_or(u32::MAX, |kind| kind as u32),
            alloc_order: line.alloc_order.unwrap_or(0),
            alloc_count: line.alloc_count,
            fault_around_window_pages: line.fault_around_window_pages,
            cache_fill_pages: line.cache_fill_pages,
            reserved: 0,
        }),
        Event::Fork(line) => Record::Fork(ForkRecord {
            header: header(RecordType::Fork, line.time_ns, line.cpu, line.pid, line.tid),
            clone_flags: line.clone_flags,
            child_pid: line.child_pid,
            child_tid: line.child_tid,
            comm: comm_bytes(&line.comm),
        }),
        Event::Exec(line) => Record::Exec(ExecRecord {
            header: header(RecordType::Exec, line.time_ns, line.cpu, line.pid, line.tid),
            old_tid: line.old_tid,
            reserved: 0,
            comm: comm_bytes(&line.comm),
        }),
        Event::Exit(line) => Record::Exit(ExitRecord {
            header: header(RecordType::Exit, line.time_ns, line.cpu, line.pid, line.tid),
            group_dead: line.group_dead.into(),
            reserved: 0,
            comm: comm_bytes(&line.comm),
        }),
        Event::Syscall(_) => return None,
    })
}

/// The kernel's `comm` field: at most 16 bytes, cut at a character boundary.
fn comm_bytes(comm: &str) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let mut length = 0;
    for (offset, character) in comm.char_indices() {
        let end = offset + character.len_utf8();
        if end > bytes.len() {
            break;
        }
        length = end;
    }
    bytes[..length].copy_from_slice(&comm.as_bytes()[..length]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_is_cut_at_a_character_boundary() {
        assert_eq!(&comm_bytes("sh")[..3], b"sh\0");
        assert_eq!(
            &comm_bytes("<script>alert(1)</script>"),
            b"<script>alert(1)"
        );
        let cut = comm_bytes("ééééééééé"); // 18 bytes: the ninth character does not fit
        assert_eq!(crate::records::comm_to_string(&cut), "éééééééé");
    }
}
