//! Each fault attributed to the mapping its address lies in, and its kind refined by what that
//! mapping is. Pure functions over a record and a [`Mapping`]: unit-tested without BPF.
//!
//! The kernel side classifies a fault from its error code and the events inside it
//! ([`cowtrace_common::classify`]); it cannot see the VMA. Three of its answers change once the
//! mapping is known, and one once the kernel's own major-fault accounting is taken at its word:
//!
//! | kernel kind | when | refined kind | why |
//! |---|---|---|---|
//! | `file_major` | a page cache fill, no `PGMAJFAULT` | as without the fill (`file_minor` for a read) | the fill was readahead of other pages; the fault's own page was cached, and the kernel (and perf) count the fault as minor. The pages still count as read. |
//! | `cow_reuse`, `cow_copy`, `file_private_copy` | a write in a shared mapping | `write_shared` | a shared mapping is never copied (`do_wp_page` takes `wp_page_shared`): a write to a present page is a write-notify (the file system learns the page is dirty), and an allocation is someone else's (readahead) |
//! | `zero_page` | a read of a missing page in a shared mapping | `file_minor` | the zero page only backs private anonymous memory; a shared page came from the page cache (shmem's for shared anonymous memory) |
//! | `file_minor` | a read of a missing page in shared anonymous memory that allocated | `anon_first_touch` | shmem allocates a zeroed page on the first touch, read or write, and fault-around only scanned its neighbours |
//! | `zero_page` | in `[vdso]`, `[vvar]` and other special mappings | `other` | the kernel maps its own page there |
//!
//! The record keeps the kernel's kind (`kernel_kind` in JSON); tables, JSON `kind` and checks
//! use the refined one. Refining is idempotent: a refined kind refines to itself.

use cowtrace_common::{
    FaultKind, FaultRecord, classify,
    fault::{error_code, flags},
};

use super::mappings::{Backing, Mapping};

/// What the model learnt about one fault from the mappings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultAttribution {
    /// The kind refined by the mapping; `None` for a kind this build does not know.
    pub kind: Option<FaultKind>,
    /// The mapping hit; `None` when no known mapping holds the address (get_user_pages faults
    /// have none, and processes traced with `-a` are not modelled).
    pub mapping: Option<FaultMapping>,
}

/// A fault record with what the model learnt about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributedFault {
    pub record: FaultRecord,
    pub attribution: FaultAttribution,
}

/// The part of a [`Mapping`] a fault keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultMapping {
    /// [`Mapping::name`]: the file's path, or `[heap]`, `[stack]`, `[anon]`, ...
    pub name: String,
    /// Byte offset in the file of the faulting address (file mappings).
    pub file_offset: Option<u64>,
}

impl FaultAttribution {
    pub fn of(fault: &FaultRecord, mapping: Option<&Mapping>) -> FaultAttribution {
        FaultAttribution {
            kind: refine(fault, mapping),
            mapping: mapping.map(|mapping| FaultMapping {
                name: mapping.name(),
                file_offset: mapping
                    .is_file()
                    .then(|| mapping.offset + (fault.address - mapping.start)),
            }),
        }
    }
}

/// `PGMAJFAULT` was counted for the fault: the kernel's (and perf's) major fault.
pub fn is_major(fault: &FaultRecord) -> bool {
    fault.flags & flags::MAJOR != 0
}

/// The fault's kind once its mapping is known (see the module documentation for the rules).
pub fn refine(fault: &FaultRecord, mapping: Option<&Mapping>) -> Option<FaultKind> {
    let mut kind = FaultKind::from_u32(fault.kind)?;
    let write = fault.error_code & error_code::WRITE != 0;
    let present = fault.error_code & error_code::PRESENT != 0;
    let allocated = fault.flags & flags::ALLOCATED != 0;

    if kind == FaultKind::FileMajor && !is_major(fault) {
        // Readahead alone: classify as if the pages had not been read in this fault.
        kind = classify(fault.error_code, fault.flags & !flags::CACHE_FILL);
    }
    let Some(mapping) = mapping else {
        return Some(kind);
    };
    if mapping.shared {
        match kind {
            FaultKind::CowReuse | FaultKind::CowCopy | FaultKind::FilePrivateCopy if write => {
                kind = FaultKind::WriteShared;
            }
            FaultKind::ZeroPage if !write && !present => kind = FaultKind::FileMinor,
            _ => {}
        }
    }
    if kind == FaultKind::ZeroPage && matches!(mapping.backing, Backing::Special(_)) {
        kind = FaultKind::Other;
    }
    if mapping.backing == Backing::SharedAnonymous
        && kind == FaultKind::FileMinor
        && !write
        && !present
        && allocated
    {
        kind = FaultKind::AnonFirstTouch;
    }
    Some(kind)
}

#[cfg(test)]
mod tests {
    use cowtrace_common::RecordHeader;

    use super::*;

    const START: u64 = 0x7f00_0000_0000;

    fn mapping(backing: Backing, shared: bool) -> Mapping {
        Mapping {
            start: START,
            end: START + 64 * 4096,
            readable: true,
            writable: true,
            executable: false,
            shared,
            offset: 0x10_000,
            backing,
        }
    }

    fn file(shared: bool) -> Mapping {
        mapping(Backing::File("/data/table.db".into()), shared)
    }

    /// A fault as the kernel side records it: classified from its error code and flags.
    fn fault(error: u32, fault_flags: u32) -> FaultRecord {
        FaultRecord {
            header: RecordHeader::fault(1, 0, 7, 7),
            address: START + 3 * 4096 + 12,
            error_code: error | error_code::USER,
            flags: fault_flags,
            kind: classify(error | error_code::USER, fault_flags) as u32,
            ..Default::default()
        }
    }

    const WRITE: u32 = error_code::WRITE;
    const PRESENT: u32 = error_code::PRESENT;

    fn refined(error: u32, fault_flags: u32, mapping: Option<&Mapping>) -> FaultKind {
        refine(&fault(error, fault_flags), mapping).unwrap()
    }

    #[test]
    fn a_write_notify_on_a_shared_mapping_is_write_shared_not_a_reuse() {
        // Write to a present page, nothing allocated: the kernel side says reuse.
        assert_eq!(
            FaultKind::from_u32(fault(WRITE | PRESENT, 0).kind),
            Some(FaultKind::CowReuse)
        );
        assert_eq!(
            refined(WRITE | PRESENT, 0, Some(&file(true))),
            FaultKind::WriteShared
        );
        let shmem = mapping(Backing::SharedAnonymous, true);
        assert_eq!(
            refined(WRITE | PRESENT, 0, Some(&shmem)),
            FaultKind::WriteShared
        );
        // In a private mapping it really is a reuse (the last mapper keeps its page).
        assert_eq!(
            refined(WRITE | PRESENT, 0, Some(&file(false))),
            FaultKind::CowReuse
        );
        let anon = mapping(Backing::Anonymous, false);
        assert_eq!(
            refined(WRITE | PRESENT, 0, Some(&anon)),
            FaultKind::CowReuse
        );
    }

    #[test]
    fn a_shared_mapping_never_copies() {
        // An allocation during a shared write (readahead by the file system) is no copy.
        let readahead = flags::ALLOCATED | flags::FILEMAP;
        assert_eq!(
            refined(WRITE | PRESENT, flags::ALLOCATED, Some(&file(true))),
            FaultKind::WriteShared
        );
        assert_eq!(
            refined(WRITE, readahead, Some(&file(true))),
            FaultKind::WriteShared
        );
        // Private: the first write copies the cached page; a write after a read copies too.
        assert_eq!(
            refined(WRITE, readahead, Some(&file(false))),
            FaultKind::FilePrivateCopy
        );
        assert_eq!(
            refined(WRITE | PRESENT, flags::ALLOCATED, Some(&file(false))),
            FaultKind::CowCopy
        );
    }

    #[test]
    fn shared_anonymous_memory_has_no_zero_page() {
        let shmem = mapping(Backing::SharedAnonymous, true);
        // A shmem page that exists already (touched before, or by another process): mapped
        // from shmem's page cache even where fault-around did not see it.
        assert_eq!(refined(0, 0, Some(&shmem)), FaultKind::FileMinor);
        assert_eq!(
            refined(0, flags::FILEMAP, Some(&shmem)),
            FaultKind::FileMinor
        );
        // A read of a hole allocates a zeroed page: a first touch, also when fault-around
        // scanned cached neighbours first (which makes the kernel side say file_minor).
        let around = fault(0, flags::FILEMAP | flags::ALLOCATED);
        assert_eq!(FaultKind::from_u32(around.kind), Some(FaultKind::FileMinor));
        assert_eq!(
            refine(&around, Some(&shmem)),
            Some(FaultKind::AnonFirstTouch)
        );
        assert_eq!(
            refined(0, flags::ALLOCATED, Some(&shmem)),
            FaultKind::AnonFirstTouch
        );
        // Private anonymous memory keeps its zero page.
        let anon = mapping(Backing::Anonymous, false);
        assert_eq!(refined(0, 0, Some(&anon)), FaultKind::ZeroPage);
        assert_eq!(
            refined(0, 0, Some(&mapping(Backing::Heap, false))),
            FaultKind::ZeroPage
        );
        // The vdso's pages are the kernel's own.
        let vdso = mapping(Backing::Special("[vdso]".into()), false);
        assert_eq!(refined(0, 0, Some(&vdso)), FaultKind::Other);
        // A shared file page is in the page cache, never the zero page.
        assert_eq!(refined(0, 0, Some(&file(true))), FaultKind::FileMinor);
        // A cached page of a private file mapping allocated nothing: stays file_minor.
        assert_eq!(
            refined(0, flags::FILEMAP | flags::ALLOCATED, Some(&file(false))),
            FaultKind::FileMinor
        );
    }

    #[test]
    fn readahead_without_pgmajfault_is_a_minor_fault() {
        // The fault's page was cached; it read the next pages ahead (async readahead).
        let readahead = flags::FILEMAP | flags::CACHE_FILL | flags::ALLOCATED;
        assert_eq!(
            FaultKind::from_u32(fault(0, readahead).kind),
            Some(FaultKind::FileMajor)
        );
        assert_eq!(refined(0, readahead, None), FaultKind::FileMinor);
        assert_eq!(
            refined(0, readahead, Some(&file(false))),
            FaultKind::FileMinor
        );
        // With PGMAJFAULT it was the fault's own page: major.
        assert_eq!(
            refined(0, readahead | flags::MAJOR, Some(&file(false))),
            FaultKind::FileMajor
        );
        assert_eq!(refined(0, flags::MAJOR, None), FaultKind::FileMajor);
        // A shared write that read ahead: a write to the shared page.
        assert_eq!(
            refined(WRITE, readahead, Some(&file(true))),
            FaultKind::WriteShared
        );
    }

    #[test]
    fn get_user_pages_and_unknown_kinds_are_left_alone() {
        let gup = FaultRecord {
            flags: flags::NO_START,
            kind: FaultKind::GupFault as u32,
            ..Default::default()
        };
        assert_eq!(refine(&gup, None), Some(FaultKind::GupFault));
        let unknown = FaultRecord {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(refine(&unknown, Some(&file(true))), None);
    }

    #[test]
    fn refining_twice_changes_nothing() {
        let mappings = [
            None,
            Some(file(true)),
            Some(file(false)),
            Some(mapping(Backing::SharedAnonymous, true)),
            Some(mapping(Backing::Anonymous, false)),
            Some(mapping(Backing::Special("[vvar]".into()), false)),
        ];
        for error in [0, WRITE, PRESENT, WRITE | PRESENT] {
            for fault_flags in 0..(flags::NO_START << 1) {
                for mapping in &mappings {
                    let mut record = fault(error, fault_flags);
                    let once = refine(&record, mapping.as_ref()).unwrap();
                    record.kind = once as u32;
                    assert_eq!(
                        refine(&record, mapping.as_ref()),
                        Some(once),
                        "error {error:#x} flags {fault_flags:#x} {mapping:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_model_counts_refined_kinds_per_process_and_mapping() {
        use crate::{
            model::{
                TraceModel,
                mappings::{AddressSpace, MappingSource},
            },
            records::Record,
        };
        struct SharedFile;
        impl MappingSource for SharedFile {
            fn mappings(&mut self, _pid: u32) -> Option<AddressSpace> {
                let maps = "7f0000000000-7f0000040000 rw-s 00010000 fe:01 12 /data/table.db\n";
                AddressSpace::parse_proc_maps(maps).ok()
            }
            fn mapped_file(&mut self, _: u32, _: u64, _: u64, _: i32) -> Option<String> {
                None
            }
        }
        let mut model = TraceModel::new(4096);
        model.adopt(7, "db", None, Vec::new(), &mut SharedFile);
        model.collect_applied();
        // What the kernel side calls a reuse: a write-notify in this shared mapping.
        model.push(Record::Fault(fault(WRITE | PRESENT, 0)), &mut SharedFile);
        model.flush();
        let applied = model.take_applied();
        assert_eq!(applied.len(), 1);
        let attribution = applied[0].fault.as_ref().unwrap();
        assert_eq!(attribution.kind, Some(FaultKind::WriteShared));
        assert_eq!(
            attribution.mapping,
            Some(FaultMapping {
                name: "/data/table.db".into(),
                file_offset: Some(0x10_000 + 3 * 4096 + 12),
            })
        );
        let process = model.processes.process(7).unwrap();
        assert_eq!(
            (
                process.count(FaultKind::WriteShared),
                process.count(FaultKind::CowReuse)
            ),
            (1, 0)
        );
        let stats = model.mappings.get("/data/table.db").unwrap();
        assert_eq!(stats.count(FaultKind::WriteShared), 1);
        assert!(model.take_applied().is_empty(), "taken once");
    }

    #[test]
    fn a_fault_keeps_its_mapping_name_and_file_offset() {
        let record = fault(0, flags::FILEMAP);
        let attribution = FaultAttribution::of(&record, Some(&file(false)));
        assert_eq!(attribution.kind, Some(FaultKind::FileMinor));
        let hit = attribution.mapping.unwrap();
        assert_eq!(hit.name, "/data/table.db");
        // The mapping starts at file offset 0x10000; the fault is 3 pages and 12 bytes in.
        assert_eq!(hit.file_offset, Some(0x10_000 + 3 * 4096 + 12));
        let anon = FaultAttribution::of(&record, Some(&mapping(Backing::Heap, false)));
        assert_eq!(anon.mapping.unwrap().file_offset, None);
        assert_eq!(FaultAttribution::of(&record, None).mapping, None);
    }
}
