//! The page model: which frame each private page of each traced process maps, rebuilt from the
//! records. A fork gives the child the parent's frames (shared, copy-on-write where the mapping
//! is private and writable); a COW copy gives the writer the frame the kernel allocated; a
//! reuse keeps the frame; exit, exec, munmap, `madvise(MADV_DONTNEED)` and a shrinking brk drop
//! pages. Sharing between relatives is derived from the frames when asked. Plain Rust.

use std::collections::HashMap;

use cowtrace_common::{FaultKind, ForkKind};

use super::{
    mappings::{AddressSpaces, Backing},
    page_table::{PageTable, Pfn, Vpn},
};
use crate::{probes::syscalls::syscall_name, records::Record};

/// Cumulative per-process counts, from the faults the process took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounters {
    /// Private pages that appeared by first touch.
    pub first_touch: u64,
    /// COW copies (anonymous or private file pages) this process made.
    pub copied: u64,
    /// COW faults that reused the frame (this process was its last mapper).
    pub reused: u64,
    /// Pages it inherited at its fork, and of those, the ones marked copy-on-write.
    pub inherited: u64,
    pub cow_at_fork: u64,
    /// File pages mapped from the page cache (text, read-only data): shared, never copied.
    pub file_pages_mapped: u64,
    /// COW copies of pages in executable file mappings: the seed's "text is never copied".
    pub text_pages_copied: u64,
}

/// One traced process's private pages.
#[derive(Clone, Debug, Default)]
pub struct ProcessPages {
    pub pid: u32,
    pub parent: Option<u32>,
    /// 0 for processes traced from the start, parent's + 1 for a fork.
    pub generation: u32,
    pub pages: PageTable,
    pub counters: PageCounters,
    pub alive: bool,
}

/// A fork (or vfork) of a traced process and what it cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ForkEvent {
    pub time_ns: u64,
    pub parent: u32,
    pub child: u32,
    pub kind: ForkKind,
    /// Private pages the parent mapped at the fork (resident, as the model knows them).
    pub parent_resident_pages: u64,
    /// Of those, pages in private writable mappings: now copy-on-write in both.
    pub pages_marked_cow: u64,
    /// From the clone/fork syscall's entry to its return in the parent.
    pub latency_ns: Option<u64>,
}

impl ForkEvent {
    /// Fork cost per GiB of resident private memory, the figure that grows with the parent.
    pub fn ms_per_gib(&self, page_size: u64) -> Option<f64> {
        let gib = (self.parent_resident_pages * page_size) as f64 / (1u64 << 30) as f64;
        self.latency_ns
            .filter(|_| gib > 0.0)
            .map(|ns| ns as f64 / 1e6 / gib)
    }
}

/// How many of a process's pages share their frame with whom, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sharing {
    pub pid: u32,
    pub generation: u32,
    pub resident: u64,
    /// Pages whose frame another traced process maps too.
    pub shared: u64,
    pub exclusive: u64,
    pub with_parent: u64,
    pub with_children: u64,
    pub with_siblings: u64,
}

#[derive(Clone, Debug, Default)]
pub struct PageModel {
    processes: HashMap<u32, ProcessPages>,
    /// Processes whose pid was later reused, kept for the totals.
    retired: Vec<ProcessPages>,
    forks: Vec<ForkEvent>,
    /// A vfork child (or a posix_spawn one) runs in its parent's memory until it execs or
    /// exits: its faults and unmaps change the owner's pages.
    shared_memory_owner: HashMap<u32, u32>,
    page_size: u64,
    lower_bound: bool,
}

/// madvise advice values that free the pages at once.
const MADV_DONTNEED: u64 = 4;
const MADV_REMOVE: u64 = 9;
const MAX_ERRNO: i64 = 4095;

impl PageModel {
    pub fn new(page_size: u64) -> PageModel {
        PageModel {
            page_size,
            ..Default::default()
        }
    }

    /// Starts following a process that already runs, with the private pages it has now.
    pub fn adopt(
        &mut self,
        pid: u32,
        parent: Option<u32>,
        resident: impl IntoIterator<Item = (Vpn, Pfn)>,
    ) {
        let mut pages = PageTable::default();
        for (vpn, pfn) in resident {
            pages.set(vpn, pfn);
        }
        let generation = parent
            .and_then(|p| self.processes.get(&p))
            .map_or(0, |p| p.generation + 1);
        self.replace(ProcessPages {
            pid,
            parent,
            generation,
            pages,
            alive: true,
            ..Default::default()
        });
    }

    /// Pages a process was found to map outside any fault (after an exec).
    pub fn add_resident(&mut self, pid: u32, resident: impl IntoIterator<Item = (Vpn, Pfn)>) {
        let process = self.process_mut(pid);
        for (vpn, pfn) in resident {
            process.pages.set(vpn, pfn);
        }
    }

    /// Records were lost: from now on every count is a lower bound, and frames may be stale.
    pub fn record_gap(&mut self) {
        self.lower_bound = true;
    }

    pub fn is_lower_bound(&self) -> bool {
        self.lower_bound
    }

    pub fn process(&self, pid: u32) -> Option<&ProcessPages> {
        self.processes.get(&pid)
    }

    /// Every process seen, including those whose pid was reused.
    pub fn processes(&self) -> impl Iterator<Item = &ProcessPages> {
        self.retired.iter().chain(self.processes.values())
    }

    pub fn forks(&self) -> &[ForkEvent] {
        &self.forks
    }

    pub fn frame(&self, pid: u32, address: u64) -> Option<Pfn> {
        self.processes
            .get(&pid)?
            .pages
            .get(address / self.page_size)
    }

    fn replace(&mut self, process: ProcessPages) {
        if let Some(old) = self.processes.insert(process.pid, process) {
            self.retired.push(old);
        }
    }

    /// The process whose memory `pid` runs in.
    fn memory_owner(&self, pid: u32) -> u32 {
        self.shared_memory_owner.get(&pid).copied().unwrap_or(pid)
    }

    fn process_mut(&mut self, pid: u32) -> &mut ProcessPages {
        self.processes.entry(pid).or_insert_with(|| ProcessPages {
            pid,
            alive: true,
            ..Default::default()
        })
    }

    /// Applies one record. `spaces` must be the mappings as they were before this record.
    pub fn apply(&mut self, record: &Record, spaces: &AddressSpaces) {
        let page_size = self.page_size;
        match record {
            Record::Fault(fault) => {
                let pid = fault.header.pid;
                let mapping = spaces.find(pid, fault.address);
                // Pages of shared mappings are not private: they are never copied.
                if mapping.is_some_and(|m| m.shared) {
                    return;
                }
                let Some(kind) = FaultKind::from_u32(fault.kind) else {
                    return;
                };
                let allocates = matches!(
                    kind,
                    FaultKind::AnonFirstTouch | FaultKind::CowCopy | FaultKind::FilePrivateCopy
                ) && fault.alloc_count > 0;
                if allocates {
                    // A huge page maps 2^order pages from its aligned start.
                    let pages = 1u64 << fault.alloc_order.min(18);
                    let first = (fault.address / page_size) & !(pages - 1);
                    let owner = self.memory_owner(pid);
                    let memory = &mut self.process_mut(owner).pages;
                    for index in 0..pages {
                        memory.set(first + index, fault.new_pfn + index);
                    }
                }
                // Counted for the process that faulted, whoever's memory it was.
                let process = self.process_mut(pid);
                match kind {
                    _ if allocates => {
                        if kind == FaultKind::AnonFirstTouch {
                            process.counters.first_touch += 1;
                        } else {
                            process.counters.copied += 1;
                            let text = mapping.is_some_and(|m| {
                                m.executable && matches!(m.backing, Backing::File(_))
                            });
                            process.counters.text_pages_copied += text as u64;
                        }
                    }
                    FaultKind::CowReuse => process.counters.reused += 1,
                    FaultKind::FileMinor | FaultKind::FileMajor => {
                        process.counters.file_pages_mapped += 1
                    }
                    _ => {}
                }
            }
            Record::Fork(fork) => {
                let parent = fork.header.pid;
                let kind = ForkKind::from_clone_flags(fork.clone_flags);
                if kind == ForkKind::Thread {
                    return;
                }
                if kind == ForkKind::SharedVm {
                    let owner = self.memory_owner(parent);
                    self.shared_memory_owner.insert(fork.child_pid, owner);
                }
                let (pages, generation) = match self.processes.get(&self.memory_owner(parent)) {
                    Some(p) => (
                        if kind == ForkKind::Fork {
                            p.pages.clone()
                        } else {
                            PageTable::default()
                        },
                        p.generation + 1,
                    ),
                    None => (PageTable::default(), 1),
                };
                let parent_resident = self.processes.get(&parent).map_or(0, |p| p.pages.len());
                // With no mapping known, every private page counts as copy-on-write.
                let cow = pages
                    .iter()
                    .filter(|(vpn, _)| {
                        spaces
                            .find(parent, vpn * page_size)
                            .is_none_or(|m| m.is_cow_on_fork())
                    })
                    .count() as u64;
                self.forks.push(ForkEvent {
                    time_ns: fork.header.time_ns,
                    parent,
                    child: fork.child_pid,
                    kind,
                    parent_resident_pages: parent_resident,
                    pages_marked_cow: if kind == ForkKind::Fork { cow } else { 0 },
                    latency_ns: None,
                });
                let counters = PageCounters {
                    inherited: pages.len(),
                    cow_at_fork: cow,
                    ..Default::default()
                };
                self.replace(ProcessPages {
                    pid: fork.child_pid,
                    parent: Some(parent),
                    generation,
                    pages,
                    counters,
                    alive: true,
                });
            }
            Record::Exec(exec) => {
                // A new memory image: nothing of the old one is mapped any more (a vfork child
                // leaves its parent's memory to it).
                self.shared_memory_owner.remove(&exec.header.pid);
                if let Some(process) = self.processes.get_mut(&exec.header.pid) {
                    process.pages = PageTable::default();
                }
            }
            Record::Exit(exit) if exit.group_dead != 0 => {
                self.shared_memory_owner.remove(&exit.header.pid);
                if let Some(process) = self.processes.get_mut(&exit.header.pid) {
                    process.pages = PageTable::default();
                    process.alive = false;
                }
            }
            Record::Exit(_) => {}
            Record::Syscall(call) => {
                let Some(name) = syscall_name(call.syscall_nr) else {
                    return;
                };
                if (-MAX_ERRNO..0).contains(&call.ret) {
                    return;
                }
                let caller = call.header.pid;
                // Mapping changes happen to the memory the caller runs in.
                let pid = self.memory_owner(caller);
                let arg = |index: usize| call.args.get(index).copied().unwrap_or(0);
                let pages_of = |len: u64| len.div_ceil(page_size);
                match name {
                    "clone" | "clone3" | "fork" | "vfork" if call.ret > 0 => {
                        let pid = caller;
                        // The parent's return: the fork's cost. Its fork record came first.
                        let child = call.ret as u32;
                        if let Some(event) = self
                            .forks
                            .iter_mut()
                            .rev()
                            .find(|f| f.parent == pid && f.child == child)
                        {
                            event.latency_ns = Some(call.latency_ns);
                        }
                    }
                    // A new mapping replaces whatever was mapped there (MAP_FIXED).
                    "mmap" => self.drop_range(pid, call.ret as u64 / page_size, pages_of(arg(1))),
                    "munmap" => self.drop_range(pid, arg(0) / page_size, pages_of(arg(1))),
                    "madvise" if matches!(arg(2), MADV_DONTNEED | MADV_REMOVE) => {
                        self.drop_range(pid, arg(0) / page_size, pages_of(arg(1)))
                    }
                    "mremap" => {
                        let (old, old_pages, new_pages, new) = (
                            arg(0) / page_size,
                            pages_of(arg(1)),
                            pages_of(arg(2)),
                            call.ret as u64 / page_size,
                        );
                        if let Some(process) = self.processes.get_mut(&pid) {
                            // Shrinking drops the tail; moving carries the pages along.
                            process
                                .pages
                                .remove_range(old + new_pages.min(old_pages), old + old_pages);
                            if new != old {
                                process.pages.move_range(old, new_pages.min(old_pages), new);
                            }
                        }
                    }
                    "brk" => {
                        let heap_end = spaces.get(pid).and_then(|space| {
                            space
                                .mappings()
                                .find(|m| m.backing == Backing::Heap)
                                .map(|m| m.end)
                        });
                        if let Some(heap_end) = heap_end.filter(|&end| end > call.ret as u64) {
                            let start = (call.ret as u64).div_ceil(page_size);
                            self.drop_range(pid, start, heap_end / page_size - start);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn drop_range(&mut self, pid: u32, first: Vpn, pages: u64) {
        if let Some(process) = self.processes.get_mut(&pid) {
            process.pages.remove_range(first, first + pages);
        }
    }

    /// Sharing of every live process, derived from the frames.
    pub fn sharing(&self) -> Vec<Sharing> {
        let live: Vec<&ProcessPages> = self.processes.values().filter(|p| p.alive).collect();
        let mut mappers: HashMap<Pfn, Vec<u32>> = HashMap::new();
        for process in &live {
            for (_, pfn) in process.pages.iter() {
                mappers.entry(pfn).or_default().push(process.pid);
            }
        }
        let parent_of = |pid: u32| self.processes.get(&pid).and_then(|p| p.parent);
        let mut result: Vec<Sharing> = live
            .iter()
            .map(|process| {
                let mut sharing = Sharing {
                    pid: process.pid,
                    generation: process.generation,
                    ..Default::default()
                };
                for (_, pfn) in process.pages.iter() {
                    sharing.resident += 1;
                    let others: Vec<u32> = mappers[&pfn]
                        .iter()
                        .copied()
                        .filter(|&other| other != process.pid)
                        .collect();
                    if others.is_empty() {
                        sharing.exclusive += 1;
                        continue;
                    }
                    sharing.shared += 1;
                    sharing.with_parent += others.iter().any(|&o| Some(o) == process.parent) as u64;
                    sharing.with_children +=
                        others.iter().any(|&o| parent_of(o) == Some(process.pid)) as u64;
                    sharing.with_siblings += others
                        .iter()
                        .any(|&o| process.parent.is_some() && parent_of(o) == process.parent)
                        as u64;
                }
                sharing
            })
            .collect();
        result.sort_by_key(|sharing| sharing.pid);
        result
    }
}

#[cfg(test)]
mod tests {
    use cowtrace_common::{
        ExitRecord, FaultRecord, ForkRecord, RecordHeader, RecordType, SyscallRecord,
    };

    use super::*;

    const PAGE: u64 = 4096;
    const BASE: u64 = 0x7f00_0000_0000;

    fn header(record_type: RecordType, pid: u32, time_ns: u64) -> RecordHeader {
        RecordHeader {
            record_type: record_type as u32,
            pid,
            tid: pid,
            time_ns,
            cpu: 0,
        }
    }

    fn fault(pid: u32, page: u64, kind: FaultKind, pfn: Option<u64>) -> Record {
        Record::Fault(FaultRecord {
            header: header(RecordType::Fault, pid, 0),
            address: BASE + page * PAGE,
            kind: kind as u32,
            new_pfn: pfn.unwrap_or(0),
            alloc_count: pfn.is_some() as u32,
            ..Default::default()
        })
    }

    fn fork(parent: u32, child: u32) -> Record {
        Record::Fork(ForkRecord {
            header: header(RecordType::Fork, parent, 0),
            clone_flags: 0x11,
            child_pid: child,
            child_tid: child,
            comm: [0; 16],
        })
    }

    fn exit(pid: u32) -> Record {
        Record::Exit(ExitRecord {
            header: header(RecordType::Exit, pid, 0),
            group_dead: 1,
            ..Default::default()
        })
    }

    fn syscall(pid: u32, nr: i64, args: &[u64], ret: i64, latency_ns: u64) -> Record {
        let mut all = [0u64; 6];
        all[..args.len()].copy_from_slice(args);
        Record::Syscall(SyscallRecord {
            header: header(RecordType::Syscall, pid, 0),
            args: all,
            ret,
            latency_ns,
            syscall_nr: nr as u32,
            arg_count: args.len() as u32,
        })
    }

    /// The fork-cow scenario at small scale: 13 pages, child copies 7, parent writes 5 of
    /// those (reuse) and 3 still shared (copy).
    fn fork_cow() -> PageModel {
        let spaces = AddressSpaces::new(PAGE);
        let mut model = PageModel::new(PAGE);
        let apply = |model: &mut PageModel, record: Record| model.apply(&record, &spaces);
        for page in 0..13 {
            apply(
                &mut model,
                fault(10, page, FaultKind::AnonFirstTouch, Some(100 + page)),
            );
        }
        apply(&mut model, fork(10, 11));
        apply(
            &mut model,
            syscall(10, libc::SYS_clone, &[0x11, 0, 0, 0, 0], 11, 52_000),
        );
        for page in 0..7 {
            apply(
                &mut model,
                fault(11, page, FaultKind::CowCopy, Some(200 + page)),
            );
        }
        for page in 2..7 {
            apply(&mut model, fault(10, page, FaultKind::CowReuse, None));
        }
        for page in 7..10 {
            apply(
                &mut model,
                fault(10, page, FaultKind::CowCopy, Some(300 + page)),
            );
        }
        model
    }

    #[test]
    fn fork_shares_frames_and_copies_split_them() {
        let model = fork_cow();
        let parent = model.process(10).unwrap();
        let child = model.process(11).unwrap();
        assert_eq!(
            (
                parent.counters.first_touch,
                parent.counters.copied,
                parent.counters.reused
            ),
            (13, 3, 5)
        );
        assert_eq!(
            (
                child.counters.copied,
                child.counters.inherited,
                child.counters.cow_at_fork
            ),
            (7, 13, 13)
        );
        assert_eq!(
            (parent.generation, child.generation, child.parent),
            (0, 1, Some(10))
        );
        assert_eq!(model.frame(11, BASE + 3 * PAGE), Some(203));
        assert_eq!(
            model.frame(10, BASE + 3 * PAGE),
            Some(103),
            "a reuse keeps the frame"
        );
        assert_eq!(model.frame(10, BASE + 8 * PAGE), Some(308));
        assert_eq!(model.frame(11, BASE + 8 * PAGE), Some(108));
        let sharing = model.sharing();
        // Pages 10..13 are still shared; 0..10 each process has its own frame.
        assert_eq!(
            sharing[0],
            Sharing {
                pid: 10,
                generation: 0,
                resident: 13,
                shared: 3,
                exclusive: 10,
                with_parent: 0,
                with_children: 3,
                with_siblings: 0
            }
        );
        assert_eq!(
            sharing[1],
            Sharing {
                pid: 11,
                generation: 1,
                resident: 13,
                shared: 3,
                exclusive: 10,
                with_parent: 3,
                with_children: 0,
                with_siblings: 0
            }
        );
        let fork = &model.forks()[0];
        assert_eq!(
            (
                fork.parent,
                fork.child,
                fork.pages_marked_cow,
                fork.latency_ns
            ),
            (10, 11, 13, Some(52_000))
        );
        let per_gib = fork.ms_per_gib(PAGE).unwrap();
        assert!(
            (per_gib - 0.052 / (13.0 * 4096.0 / (1u64 << 30) as f64)).abs() < 1e-6,
            "{per_gib}"
        );
    }

    #[test]
    fn siblings_and_grandchildren_are_told_apart() {
        let spaces = AddressSpaces::new(PAGE);
        let mut model = PageModel::new(PAGE);
        for record in [
            fault(1, 0, FaultKind::AnonFirstTouch, Some(50)),
            fault(1, 1, FaultKind::AnonFirstTouch, Some(51)),
            fork(1, 2),
            fork(1, 3),
            fork(2, 4),
            fault(3, 1, FaultKind::CowCopy, Some(61)),
        ] {
            model.apply(&record, &spaces);
        }
        let sharing = model.sharing();
        let of = |pid| sharing.iter().find(|s| s.pid == pid).copied().unwrap();
        assert_eq!(
            (of(2).with_parent, of(2).with_siblings, of(2).with_children),
            (2, 1, 2)
        );
        assert_eq!(
            (of(3).with_parent, of(3).with_siblings, of(3).exclusive),
            (1, 1, 1)
        );
        assert_eq!(
            (of(4).generation, of(4).with_parent, of(4).with_siblings),
            (2, 2, 0)
        );
        assert_eq!(of(1).with_children, 2);
    }

    #[test]
    fn unmap_dontneed_exec_and_exit_drop_pages() {
        let spaces = AddressSpaces::new(PAGE);
        let mut model = fork_cow();
        model.apply(
            &syscall(11, libc::SYS_munmap, &[BASE, 2 * PAGE], 0, 0),
            &spaces,
        );
        assert_eq!(model.process(11).unwrap().pages.len(), 11);
        model.apply(
            &syscall(
                11,
                libc::SYS_madvise,
                &[BASE + 2 * PAGE, 3 * PAGE, MADV_DONTNEED],
                0,
                0,
            ),
            &spaces,
        );
        assert_eq!(model.process(11).unwrap().pages.len(), 8);
        // A failed munmap changes nothing; MADV_FREE keeps the pages until reclaim.
        model.apply(
            &syscall(11, libc::SYS_munmap, &[BASE + 5 * PAGE, PAGE], -22, 0),
            &spaces,
        );
        model.apply(
            &syscall(11, libc::SYS_madvise, &[BASE + 5 * PAGE, PAGE, 8], 0, 0),
            &spaces,
        );
        assert_eq!(model.process(11).unwrap().pages.len(), 8);
        model.apply(&exit(11), &spaces);
        assert!(!model.process(11).unwrap().alive);
        // With the child gone, none of the parent's pages is shared any more.
        assert_eq!(model.sharing()[0].shared, 0);
    }

    #[test]
    fn a_reused_pid_is_a_new_process() {
        let spaces = AddressSpaces::new(PAGE);
        let mut model = fork_cow();
        model.apply(&exit(11), &spaces);
        model.apply(&fork(10, 11), &spaces);
        let child = model.process(11).unwrap();
        assert_eq!((child.counters.copied, child.alive), (0, true));
        assert_eq!(model.processes().filter(|p| p.pid == 11).count(), 2);
    }

    #[test]
    fn a_record_gap_turns_counts_into_lower_bounds() {
        let mut model = fork_cow();
        assert!(!model.is_lower_bound());
        model.record_gap();
        assert!(model.is_lower_bound());
    }

    #[test]
    fn a_vfork_child_faults_into_its_parents_memory() {
        let spaces = AddressSpaces::new(PAGE);
        let mut model = PageModel::new(PAGE);
        model.apply(&fault(10, 0, FaultKind::AnonFirstTouch, Some(100)), &spaces);
        let vfork = Record::Fork(ForkRecord {
            header: header(RecordType::Fork, 10, 0),
            clone_flags: 0x4111, // CLONE_VM | CLONE_VFORK | SIGCHLD
            child_pid: 12,
            child_tid: 12,
            comm: [0; 16],
        });
        model.apply(&vfork, &spaces);
        model.apply(&fault(12, 1, FaultKind::AnonFirstTouch, Some(101)), &spaces);
        assert_eq!(
            model.frame(10, BASE + PAGE),
            Some(101),
            "the page lands in the shared memory"
        );
        assert_eq!(
            model.process(12).unwrap().counters.first_touch,
            1,
            "counted for the child"
        );
        assert_eq!(model.process(12).unwrap().pages.len(), 0);
        assert_eq!(
            model.forks()[0].pages_marked_cow,
            0,
            "nothing is copy-on-write"
        );
        // After its exit, the parent keeps its memory; the child's later pid reuse is separate.
        model.apply(&exit(12), &spaces);
        assert_eq!(model.process(10).unwrap().pages.len(), 2);
        model.apply(&fault(12, 2, FaultKind::AnonFirstTouch, Some(102)), &spaces);
        assert_eq!(model.frame(10, BASE + 2 * PAGE), None);
    }

    #[test]
    fn huge_page_first_touch_maps_512_frames() {
        let spaces = AddressSpaces::new(PAGE);
        let mut model = PageModel::new(PAGE);
        let huge = FaultRecord {
            header: header(RecordType::Fault, 1, 0),
            address: BASE + 700 * PAGE,
            kind: FaultKind::AnonFirstTouch as u32,
            new_pfn: 0x10_0000,
            alloc_order: 9,
            alloc_count: 1,
            ..Default::default()
        };
        model.apply(&Record::Fault(huge), &spaces);
        let process = model.process(1).unwrap();
        assert_eq!(process.pages.len(), 512);
        assert_eq!(model.frame(1, BASE + 512 * PAGE), Some(0x10_0000));
        assert_eq!(model.frame(1, BASE + 1023 * PAGE), Some(0x10_0000 + 511));
    }
}
