//! The model: per-process fault counts rebuilt from the record stream. Plain Rust, no BPF:
//! it is driven by decoded records and unit-tested with synthetic ones.

pub mod fault_attribution;
pub mod frames;
pub mod mapping_stats;
pub mod mappings;
pub mod page_table;
pub mod pages;

use std::collections::HashMap;

use cowtrace_common::{FaultKind, FaultRecord, ForkKind};

use crate::{
    probes,
    records::{Record, comm_to_string},
};

use self::{
    fault_attribution::FaultAttribution,
    mapping_stats::MappingTable,
    mappings::{AddressSpace, AddressSpaces, MappingSource},
    pages::{PageModel, Sharing},
};

/// Records from different CPUs can reach user space slightly out of time order (a program
/// can be preempted between taking its timestamp and writing its record). Records wait this
/// long and are applied in time order.
pub const REORDER_WINDOW_NS: u64 = 20_000_000;

/// Sharing is sampled at every fork and exit, and at most once a second otherwise: a sample
/// walks every resident page of every process, and at 10 per second it kept the reader from
/// draining a large fault storm in time (records were dropped; see reports/performance.md).
pub const SAMPLE_INTERVAL_NS: u64 = 1_000_000_000;

/// The sharing of every live process at one moment (a point of the time series).
#[derive(Clone, Debug, PartialEq)]
pub struct PageSample {
    pub time_ns: u64,
    pub sharing: Vec<Sharing>,
}

/// What a record needs from /proc, read when the record arrives (the process may be gone by
/// the time the record is applied).
#[derive(Default)]
struct Prefetched {
    mappings: Option<AddressSpace>,
    mapped_file: Option<String>,
    /// After an exec: the pages the new image already has (its stack, set up by the kernel
    /// through get_user_pages, whose faults carry no address).
    resident: Vec<(page_table::Vpn, page_table::Pfn)>,
}

impl MappingSource for Prefetched {
    fn mappings(&mut self, _pid: u32) -> Option<AddressSpace> {
        self.mappings.take()
    }
    fn mapped_file(&mut self, _pid: u32, _start: u64, _end: u64, _fd: i32) -> Option<String> {
        self.mapped_file.take()
    }
}

struct Pending {
    time_ns: u64,
    sequence: u64,
    record: Record,
    prefetched: Prefetched,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ns, self.sequence) == (other.time_ns, other.sequence)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time_ns, self.sequence).cmp(&(other.time_ns, other.sequence))
    }
}

/// Everything rebuilt from the record stream: per-process counts, mappings and pages.
pub struct TraceModel {
    pub processes: ProcessTable,
    pub address_spaces: AddressSpaces,
    /// Faults per mapping (file, heap, stack, anonymous region), counted by refined kind.
    pub mappings: MappingTable,
    pub pages: PageModel,
    pub samples: Vec<PageSample>,
    /// Records in the order they were applied, each fault with its attribution, while someone
    /// collects them ([`TraceModel::collect_applied`]).
    applied: Option<Vec<AppliedRecord>>,
    pending: std::collections::BinaryHeap<std::cmp::Reverse<Pending>>,
    sequence: u64,
    newest_ns: u64,
    last_sample_ns: u64,
    page_size: u64,
}

impl TraceModel {
    pub fn new(page_size: u64) -> TraceModel {
        TraceModel {
            processes: ProcessTable::new(),
            address_spaces: AddressSpaces::new(page_size),
            mappings: MappingTable::new(),
            pages: PageModel::new(page_size),
            samples: Vec::new(),
            applied: None,
            pending: Default::default(),
            sequence: 0,
            newest_ns: 0,
            last_sample_ns: 0,
            page_size,
        }
    }

    /// Starts following a process that already runs, with its mappings and private pages.
    pub fn adopt(
        &mut self,
        pid: u32,
        comm: &str,
        parent: Option<u32>,
        resident: Vec<(page_table::Vpn, page_table::Pfn)>,
        source: &mut dyn MappingSource,
    ) {
        self.processes.add_process(pid, comm, parent);
        self.address_spaces.adopt(pid, source);
        self.pages.adopt(pid, parent, resident);
    }

    /// Takes a record as it arrives; it is applied once older records can no longer arrive.
    pub fn push(&mut self, record: Record, source: &mut dyn MappingSource) {
        let mut prefetched = Prefetched::default();
        match &record {
            Record::Exec(exec) => {
                prefetched.mappings = source.mappings(exec.header.pid);
                if let Some(space) = &prefetched.mappings {
                    prefetched.resident = source.private_pages(exec.header.pid, space);
                }
            }
            Record::Syscall(call)
                if probes::syscalls::syscall_name(call.syscall_nr) == Some("mmap")
                    && call.ret > 0 =>
            {
                let start = call.ret as u64;
                let end = start + call.args[1].div_ceil(self.page_size) * self.page_size;
                prefetched.mapped_file =
                    source.mapped_file(call.header.pid, start, end, call.args[4] as i32);
            }
            _ => {}
        }
        let time_ns = record.time_ns();
        self.newest_ns = self.newest_ns.max(time_ns);
        self.sequence += 1;
        self.pending.push(std::cmp::Reverse(Pending {
            time_ns,
            sequence: self.sequence,
            record,
            prefetched,
        }));
        self.release_before(self.newest_ns.saturating_sub(REORDER_WINDOW_NS));
    }

    /// Applies every waiting record older than `time_ns` (CLOCK_MONOTONIC).
    pub fn release_before(&mut self, time_ns: u64) {
        while self
            .pending
            .peek()
            .is_some_and(|pending| pending.0.time_ns < time_ns)
        {
            let std::cmp::Reverse(mut pending) = self.pending.pop().expect("peeked");
            let resident = std::mem::take(&mut pending.prefetched.resident);
            self.apply(&pending.record, &mut pending.prefetched);
            if let Record::Exec(exec) = &pending.record
                && !resident.is_empty()
            {
                self.pages.add_resident(exec.header.pid, resident);
            }
        }
    }

    /// Applies everything still waiting (at the end of a trace).
    pub fn flush(&mut self) {
        self.release_before(u64::MAX);
    }

    /// From now on, keeps every applied record for [`TraceModel::take_applied`] (JSON lines
    /// and workload checks need each fault's mapping as it was when the fault happened).
    pub fn collect_applied(&mut self) {
        self.applied.get_or_insert_with(Vec::new);
    }

    /// The records applied since the last call, in time order.
    pub fn take_applied(&mut self) -> Vec<AppliedRecord> {
        self.applied
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn apply(&mut self, record: &Record, source: &mut dyn MappingSource) {
        // Faults are attributed to the mappings as they are when the fault happens.
        let attribution = match record {
            Record::Fault(fault) => Some(FaultAttribution::of(
                fault,
                self.address_spaces.find(fault.header.pid, fault.address),
            )),
            _ => None,
        };
        // Pages first: they need the mappings as they were before this record.
        self.pages.apply(record, &self.address_spaces);
        self.address_spaces.apply(record, source);
        match (record, &attribution) {
            (Record::Fault(fault), Some(attribution)) => {
                self.processes.count_fault(fault, attribution.kind);
                self.mappings.add(fault, attribution);
            }
            _ => self.processes.apply(record),
        }
        if let Some(applied) = self.applied.as_mut() {
            applied.push(AppliedRecord {
                record: *record,
                fault: attribution,
            });
        }
        let time_ns = record.time_ns();
        let lifecycle = matches!(record, Record::Fork(_) | Record::Exit(_) | Record::Exec(_));
        if lifecycle || time_ns >= self.last_sample_ns + SAMPLE_INTERVAL_NS {
            self.samples.push(PageSample {
                time_ns,
                sharing: self.pages.sharing(),
            });
            self.last_sample_ns = time_ns;
        }
    }
}

/// A record as the model applied it; a fault with what the model learnt from its mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedRecord {
    pub record: Record,
    pub fault: Option<FaultAttribution>,
}

/// What one process did, as far as the trace saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessStats {
    pub pid: u32,
    pub comm: String,
    /// The traced process that forked this one, if the fork was seen.
    pub parent: Option<u32>,
    pub faults_by_kind: [u64; FaultKind::COUNT],
    pub latency_ns_by_kind: [u64; FaultKind::COUNT],
    /// Processes this one forked (copy-on-write children).
    pub forks: u64,
    /// Children sharing its memory (vfork, posix_spawn).
    pub shared_vm_children: u64,
    pub threads: u64,
    pub execs: u64,
    pub exited: bool,
}

impl ProcessStats {
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.faults_by_kind[kind as usize]
    }

    pub fn faults(&self) -> u64 {
        self.faults_by_kind.iter().sum()
    }

    /// Frames this process got by copying: COW copies of anonymous pages and copies of private
    /// file pages.
    pub fn pages_copied(&self) -> u64 {
        self.count(FaultKind::CowCopy) + self.count(FaultKind::FilePrivateCopy)
    }

    pub fn pages_reused(&self) -> u64 {
        self.count(FaultKind::CowReuse)
    }

    pub fn mean_latency_ns(&self, kind: FaultKind) -> Option<u64> {
        let count = self.count(kind);
        (count > 0).then(|| self.latency_ns_by_kind[kind as usize] / count)
    }

    fn add(&mut self, other: &ProcessStats) {
        for kind in 0..FaultKind::COUNT {
            self.faults_by_kind[kind] += other.faults_by_kind[kind];
            self.latency_ns_by_kind[kind] += other.latency_ns_by_kind[kind];
        }
        self.forks += other.forks;
        self.shared_vm_children += other.shared_vm_children;
        self.threads += other.threads;
        self.execs += other.execs;
    }
}

/// All processes seen, in the order they appeared. A pid reused after its process exited gets
/// a new entry, so two processes are never merged.
#[derive(Clone, Debug, Default)]
pub struct ProcessTable {
    entries: Vec<ProcessStats>,
    current: HashMap<u32, usize>,
    unknown_fault_kinds: u64,
}

impl ProcessTable {
    pub fn new() -> ProcessTable {
        ProcessTable::default()
    }

    /// Registers a process traced from the start (its comm comes from /proc).
    pub fn add_process(&mut self, pid: u32, comm: &str, parent: Option<u32>) {
        let index = self.entries.len();
        self.entries.push(ProcessStats {
            pid,
            comm: comm.to_string(),
            parent,
            ..Default::default()
        });
        self.current.insert(pid, index);
    }

    /// The live entry for `pid`, created on first sight.
    fn entry(&mut self, pid: u32) -> &mut ProcessStats {
        let index = match self.current.get(&pid) {
            Some(&index) => index,
            None => {
                self.add_process(pid, "?", None);
                self.entries.len() - 1
            }
        };
        &mut self.entries[index]
    }

    /// Counts one fault as `kind` (the kernel's, or refined by its mapping); `None`: a kind
    /// this build does not know.
    pub fn count_fault(&mut self, fault: &FaultRecord, kind: Option<FaultKind>) {
        match kind {
            Some(kind) => {
                let process = self.entry(fault.header.pid);
                process.faults_by_kind[kind as usize] += 1;
                process.latency_ns_by_kind[kind as usize] += fault.latency_ns;
            }
            None => self.unknown_fault_kinds += 1,
        }
    }

    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Fault(fault) => self.count_fault(fault, FaultKind::from_u32(fault.kind)),
            Record::Fork(fork) => {
                let parent = fork.header.pid;
                let comm = comm_to_string(&fork.comm);
                match ForkKind::from_clone_flags(fork.clone_flags) {
                    ForkKind::Thread => self.entry(parent).threads += 1,
                    kind => {
                        let process = self.entry(parent);
                        if kind == ForkKind::Fork {
                            process.forks += 1;
                        } else {
                            process.shared_vm_children += 1;
                        }
                        // A new process, even if an exited one had this pid before.
                        self.add_process(fork.child_pid, &comm, Some(parent));
                    }
                }
            }
            Record::Exec(exec) => {
                let process = self.entry(exec.header.pid);
                process.execs += 1;
                process.comm = comm_to_string(&exec.comm);
            }
            // Mapping changes and fork costs feed the page model, not the fault counts.
            Record::Syscall(_) => {}
            Record::Exit(exit) => {
                if exit.group_dead != 0 {
                    let process = self.entry(exit.header.pid);
                    process.exited = true;
                    if process.comm == "?" {
                        process.comm = comm_to_string(&exit.comm);
                    }
                    self.current.remove(&exit.header.pid);
                }
            }
        }
    }

    pub fn processes(&self) -> &[ProcessStats] {
        &self.entries
    }

    /// The current (latest) process with this pid.
    pub fn process(&self, pid: u32) -> Option<&ProcessStats> {
        self.current.get(&pid).map(|&index| &self.entries[index])
    }

    pub fn live_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|process| !process.exited)
            .count()
    }

    pub fn totals(&self) -> ProcessStats {
        let mut totals = ProcessStats {
            comm: "total".into(),
            ..Default::default()
        };
        for process in &self.entries {
            totals.add(process);
        }
        totals
    }

    /// Fault records whose kind this build does not know (newer kernel side).
    pub fn unknown_fault_kinds(&self) -> u64 {
        self.unknown_fault_kinds
    }
}

#[cfg(test)]
mod tests {
    use cowtrace_common::{
        ExecRecord, ExitRecord, FaultRecord, ForkRecord, RecordHeader, RecordType, clone_flags,
    };

    use super::*;

    fn header(record_type: RecordType, pid: u32) -> RecordHeader {
        RecordHeader {
            record_type: record_type as u32,
            pid,
            tid: pid,
            ..Default::default()
        }
    }

    fn fault(pid: u32, kind: FaultKind, latency_ns: u64) -> Record {
        Record::Fault(FaultRecord {
            header: header(RecordType::Fault, pid),
            kind: kind as u32,
            latency_ns,
            ..Default::default()
        })
    }

    fn fork(parent: u32, child: u32, flags: u64) -> Record {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"work");
        Record::Fork(ForkRecord {
            header: header(RecordType::Fork, parent),
            clone_flags: flags,
            child_pid: if flags & clone_flags::CLONE_THREAD != 0 {
                parent
            } else {
                child
            },
            child_tid: child,
            comm,
        })
    }

    fn exit(pid: u32) -> Record {
        Record::Exit(ExitRecord {
            header: header(RecordType::Exit, pid),
            group_dead: 1,
            ..Default::default()
        })
    }

    #[test]
    fn counts_faults_per_process_and_kind() {
        let mut table = ProcessTable::new();
        table.add_process(100, "parent", None);
        for _ in 0..1009 {
            table.apply(&fault(100, FaultKind::AnonFirstTouch, 3_000));
        }
        table.apply(&fork(100, 101, 0x11));
        for _ in 0..503 {
            table.apply(&fault(101, FaultKind::CowCopy, 4_000));
        }
        for _ in 0..257 {
            table.apply(&fault(100, FaultKind::CowReuse, 1_000));
        }
        for _ in 0..251 {
            table.apply(&fault(100, FaultKind::CowCopy, 2_000));
        }
        let parent = table.process(100).unwrap();
        assert_eq!(parent.count(FaultKind::AnonFirstTouch), 1009);
        assert_eq!(parent.pages_copied(), 251);
        assert_eq!(parent.pages_reused(), 257);
        assert_eq!(parent.forks, 1);
        assert_eq!(parent.mean_latency_ns(FaultKind::CowReuse), Some(1_000));
        let child = table.process(101).unwrap();
        assert_eq!(child.parent, Some(100));
        assert_eq!(child.comm, "work");
        assert_eq!(child.pages_copied(), 503);
        assert_eq!(child.pages_reused(), 0);
        let totals = table.totals();
        assert_eq!(totals.faults(), 1009 + 503 + 257 + 251);
        assert_eq!(totals.pages_copied(), 754);
    }

    #[test]
    fn threads_and_vforks_are_not_forks() {
        let mut table = ProcessTable::new();
        table.add_process(10, "p", None);
        table.apply(&fork(
            10,
            11,
            clone_flags::CLONE_VM | clone_flags::CLONE_THREAD,
        ));
        table.apply(&fork(
            10,
            12,
            clone_flags::CLONE_VM | clone_flags::CLONE_VFORK,
        ));
        let parent = table.process(10).unwrap();
        assert_eq!(
            (parent.threads, parent.shared_vm_children, parent.forks),
            (1, 1, 0)
        );
        // A thread is no process of its own; the vfork child is.
        assert!(table.process(11).is_none());
        assert_eq!(table.processes().len(), 2);
    }

    #[test]
    fn a_reused_pid_starts_a_new_process() {
        let mut table = ProcessTable::new();
        table.add_process(10, "p", None);
        table.apply(&fork(10, 20, 0x11));
        table.apply(&fault(20, FaultKind::CowCopy, 1));
        table.apply(&exit(20));
        assert_eq!(table.live_count(), 1);
        table.apply(&fork(10, 20, 0x11));
        table.apply(&fault(20, FaultKind::ZeroPage, 1));
        let entries: Vec<_> = table.processes().iter().filter(|p| p.pid == 20).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].count(FaultKind::CowCopy), 1);
        assert_eq!(entries[0].count(FaultKind::ZeroPage), 0);
        assert_eq!(entries[1].count(FaultKind::ZeroPage), 1);
        assert!(entries[0].exited && !entries[1].exited);
    }

    #[test]
    fn exec_renames_and_unknown_kinds_are_counted_not_guessed() {
        let mut table = ProcessTable::new();
        let mut comm = [0u8; 16];
        comm[..2].copy_from_slice(b"ls");
        table.apply(&Record::Exec(ExecRecord {
            header: header(RecordType::Exec, 5),
            old_tid: 5,
            reserved: 0,
            comm,
        }));
        assert_eq!(table.process(5).unwrap().comm, "ls");
        assert_eq!(table.process(5).unwrap().execs, 1);
        table.apply(&Record::Fault(FaultRecord {
            header: header(RecordType::Fault, 5),
            kind: 999,
            ..Default::default()
        }));
        assert_eq!(table.unknown_fault_kinds(), 1);
        assert_eq!(table.process(5).unwrap().faults(), 0);
    }
}

#[cfg(test)]
mod trace_model_tests {
    use cowtrace_common::{FaultRecord, ForkRecord, RecordHeader};

    use super::{mappings::AddressSpace, *};

    struct NoProc;
    impl MappingSource for NoProc {
        fn mappings(&mut self, _pid: u32) -> Option<AddressSpace> {
            None
        }
        fn mapped_file(&mut self, _pid: u32, _start: u64, _end: u64, _fd: i32) -> Option<String> {
            None
        }
    }

    const MS: u64 = 1_000_000;

    fn fault(time_ns: u64, pid: u32, page: u64, kind: FaultKind, pfn: u64) -> Record {
        Record::Fault(FaultRecord {
            header: RecordHeader::fault(time_ns, 0, pid, pid),
            address: 0x1000_0000 + page * 4096,
            kind: kind as u32,
            new_pfn: pfn,
            alloc_count: 1,
            ..Default::default()
        })
    }

    fn fork(time_ns: u64, parent: u32, child: u32) -> Record {
        Record::Fork(ForkRecord {
            header: RecordHeader {
                record_type: 2,
                cpu: 1,
                pid: parent,
                tid: parent,
                time_ns,
            },
            clone_flags: 0x11,
            child_pid: child,
            child_tid: child,
            comm: [0; 16],
        })
    }

    #[test]
    fn records_from_other_cpus_are_applied_in_time_order() {
        let mut model = TraceModel::new(4096);
        let mut source = NoProc;
        model.push(
            fault(MS, 10, 0, FaultKind::AnonFirstTouch, 100),
            &mut source,
        );
        // The child's copy (CPU 0) reaches user space before the fork record (CPU 1) that
        // precedes it in time: applied as it arrives, the child would have no parent frames.
        model.push(fault(3 * MS, 11, 0, FaultKind::CowCopy, 200), &mut source);
        model.push(fork(2 * MS, 10, 11), &mut source);
        // Nothing is applied while the reorder window is open.
        assert!(model.pages.process(11).is_none());
        model.push(
            fault(
                2 * MS + REORDER_WINDOW_NS + 2 * MS,
                10,
                1,
                FaultKind::AnonFirstTouch,
                101,
            ),
            &mut source,
        );
        let child = model.pages.process(11).expect("fork applied");
        assert_eq!((child.counters.inherited, child.counters.copied), (1, 1));
        assert_eq!(model.pages.frame(11, 0x1000_0000), Some(200));
        assert_eq!(model.pages.frame(10, 0x1000_0000), Some(100));
        // The last record waits for the window or the end of the trace.
        assert_eq!(model.pages.frame(10, 0x1000_1000), None);
        model.flush();
        assert_eq!(model.pages.frame(10, 0x1000_1000), Some(101));
        assert_eq!(
            model.processes.process(11).map(|p| p.pages_copied()),
            Some(1)
        );
    }

    #[test]
    fn sharing_is_sampled_at_forks() {
        let mut model = TraceModel::new(4096);
        let mut source = NoProc;
        model.push(
            fault(MS, 10, 0, FaultKind::AnonFirstTouch, 100),
            &mut source,
        );
        model.push(fork(2 * MS, 10, 11), &mut source);
        model.flush();
        let at_fork = model
            .samples
            .iter()
            .find(|s| s.time_ns == 2 * MS)
            .expect("sample at the fork");
        let child = at_fork.sharing.iter().find(|s| s.pid == 11).unwrap();
        assert_eq!((child.resident, child.with_parent), (1, 1));
    }
}
