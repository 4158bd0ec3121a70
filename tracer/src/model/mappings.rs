//! The mapping model: each traced process's address space (its VMAs), started from
//! `/proc/PID/maps` when a process is first seen or execs, then kept current from the
//! memory-map syscall records. Every fault can then be attributed to its mapping, and the page
//! model knows which pages a fork shares copy-on-write. Plain Rust: unit-tested on text.

use std::collections::{BTreeMap, HashMap};

use cowtrace_common::ForkKind;
use procfs::{
    FromBufRead as _,
    process::{MMPermissions, MMapPath, MemoryMaps},
};

use crate::records::Record;

/// What backs a mapping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Backing {
    /// Private anonymous memory (malloc'd chunks, thread stacks, `MAP_ANONYMOUS`).
    Anonymous,
    /// Anonymous memory shared between processes (`MAP_SHARED | MAP_ANONYMOUS`, shmem).
    SharedAnonymous,
    Heap,
    Stack,
    File(String),
    /// `[vdso]`, `[vvar]` and the like.
    Special(String),
}

/// One VMA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub shared: bool,
    /// File offset of `start` (file mappings).
    pub offset: u64,
    pub backing: Backing,
}

impl Mapping {
    pub fn contains(&self, address: u64) -> bool {
        (self.start..self.end).contains(&address)
    }

    pub fn is_file(&self) -> bool {
        matches!(self.backing, Backing::File(_))
    }

    /// A fork shares this mapping's pages copy-on-write: private and writable (a shared mapping
    /// stays shared; a read-only private one is never written, so never copied).
    pub fn is_cow_on_fork(&self) -> bool {
        !self.shared && self.writable
    }

    /// How tables and reports name the mapping.
    pub fn name(&self) -> String {
        match &self.backing {
            Backing::Anonymous => "[anon]".into(),
            Backing::SharedAnonymous => "[anon shared]".into(),
            Backing::Heap => "[heap]".into(),
            Backing::Stack => "[stack]".into(),
            Backing::File(path) => path.clone(),
            Backing::Special(name) => name.clone(),
        }
    }

    /// The part of this mapping inside [start, end), with the file offset moved along.
    fn slice(&self, start: u64, end: u64) -> Mapping {
        let start = start.max(self.start);
        let end = end.min(self.end);
        let offset = if self.is_file() {
            self.offset + (start - self.start)
        } else {
            self.offset
        };
        Mapping {
            start,
            end,
            offset,
            ..self.clone()
        }
    }
}

/// One process's mappings, by start address; they never overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressSpace {
    mappings: BTreeMap<u64, Mapping>,
    /// Start of the heap, from the first `brk` seen when no `[heap]` mapping exists yet.
    brk_base: Option<u64>,
}

/// Resolves the file behind a new file mapping while it still exists.
pub trait MappingSource {
    /// The process's current mappings (`/proc/PID/maps`), if it is still there.
    fn mappings(&mut self, pid: u32) -> Option<AddressSpace>;
    /// Path of the file mapped at [start, end) in `pid`, or of its descriptor `fd`.
    fn mapped_file(&mut self, pid: u32, start: u64, end: u64, fd: i32) -> Option<String>;
    /// The private pages `pid` maps now, with their frames (after an exec: the new stack).
    fn private_pages(&mut self, _pid: u32, _space: &AddressSpace) -> Vec<(u64, u64)> {
        Vec::new()
    }
}

/// How `/proc/PID/maps` names `MAP_SHARED | MAP_ANONYMOUS` memory (and shared `/dev/zero`).
const SHARED_ANONYMOUS_PATH: &str = "/dev/zero (deleted)";

const MAP_SHARED: u64 = 0x01;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_ANONYMOUS: u64 = 0x20;
const PROT_READ: u64 = 0x1;
const PROT_WRITE: u64 = 0x2;
const PROT_EXEC: u64 = 0x4;
/// Syscall results from -4095 to -1 are errors.
const MAX_ERRNO: i64 = 4095;

impl AddressSpace {
    /// Parses the text of `/proc/PID/maps`.
    pub fn parse_proc_maps(text: &str) -> Result<AddressSpace, String> {
        let maps = MemoryMaps::from_buf_read(text.as_bytes()).map_err(|error| error.to_string())?;
        let mut space = AddressSpace::default();
        for map in maps {
            let backing = match map.pathname {
                // Shared anonymous memory is a shmem file the kernel names after /dev/zero.
                MMapPath::Path(path)
                    if map.perms.contains(MMPermissions::SHARED)
                        && path.as_os_str() == SHARED_ANONYMOUS_PATH =>
                {
                    Backing::SharedAnonymous
                }
                MMapPath::Path(path) => Backing::File(path.to_string_lossy().into_owned()),
                MMapPath::Heap => Backing::Heap,
                MMapPath::Stack | MMapPath::TStack(_) => Backing::Stack,
                MMapPath::Anonymous if map.perms.contains(MMPermissions::SHARED) => {
                    Backing::SharedAnonymous
                }
                MMapPath::Anonymous => Backing::Anonymous,
                MMapPath::Vdso => Backing::Special("[vdso]".into()),
                MMapPath::Vvar => Backing::Special("[vvar]".into()),
                MMapPath::Vsyscall => Backing::Special("[vsyscall]".into()),
                MMapPath::Vsys(key) => Backing::Special(format!("/SYSV{key:08x}")),
                MMapPath::Rollup => continue,
                MMapPath::Other(name) => Backing::Special(name),
            };
            space.insert(Mapping {
                start: map.address.0,
                end: map.address.1,
                readable: map.perms.contains(MMPermissions::READ),
                writable: map.perms.contains(MMPermissions::WRITE),
                executable: map.perms.contains(MMPermissions::EXECUTE),
                shared: map.perms.contains(MMPermissions::SHARED),
                offset: map.offset,
                backing,
            });
        }
        Ok(space)
    }

    pub fn find(&self, address: u64) -> Option<&Mapping> {
        self.mappings
            .range(..=address)
            .next_back()
            .map(|(_, mapping)| mapping)
            .filter(|m| m.contains(address))
    }

    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.mappings.values()
    }

    /// Adds a mapping, replacing whatever overlapped it (as `MAP_FIXED` does).
    pub fn insert(&mut self, mapping: Mapping) {
        self.remove_range(mapping.start, mapping.end);
        self.mappings.insert(mapping.start, mapping);
    }

    /// Removes [start, end), splitting mappings that straddle its ends.
    pub fn remove_range(&mut self, start: u64, end: u64) {
        for mapping in self.overlapping(start, end) {
            self.mappings.remove(&mapping.start);
            if mapping.start < start {
                let left = mapping.slice(mapping.start, start);
                self.mappings.insert(left.start, left);
            }
            if mapping.end > end {
                let right = mapping.slice(end, mapping.end);
                self.mappings.insert(right.start, right);
            }
        }
    }

    fn overlapping(&self, start: u64, end: u64) -> Vec<Mapping> {
        // The mapping starting before `start` may reach into the range.
        let first = self
            .mappings
            .range(..start)
            .next_back()
            .map(|(&key, _)| key)
            .unwrap_or(start);
        self.mappings
            .range(first..end)
            .map(|(_, mapping)| mapping.clone())
            .filter(|m| m.end > start)
            .collect()
    }

    /// Changes the protection of [start, end) (`mprotect`).
    pub fn protect(&mut self, start: u64, end: u64, prot: u64) {
        for mapping in self.overlapping(start, end) {
            let mut inner = mapping.slice(start, end);
            inner.readable = prot & PROT_READ != 0;
            inner.writable = prot & PROT_WRITE != 0;
            inner.executable = prot & PROT_EXEC != 0;
            self.insert(inner);
        }
    }

    /// Applies one completed memory-map syscall.
    pub fn apply_syscall(
        &mut self,
        pid: u32,
        name: &str,
        args: &[u64],
        ret: i64,
        page_size: u64,
        source: &mut dyn MappingSource,
    ) {
        if (-MAX_ERRNO..0).contains(&ret) {
            return; // failed: nothing changed
        }
        let arg = |index: usize| args.get(index).copied().unwrap_or(0);
        let page_up = |len: u64| len.div_ceil(page_size) * page_size;
        match name {
            "mmap" => {
                let (start, len, prot, flags, fd, offset) = (
                    ret as u64,
                    page_up(arg(1)),
                    arg(2),
                    arg(3),
                    arg(4) as i32,
                    arg(5),
                );
                let shared = flags & MAP_SHARED_VALIDATE == MAP_SHARED
                    || flags & MAP_SHARED_VALIDATE == MAP_SHARED_VALIDATE;
                let backing = if flags & MAP_ANONYMOUS != 0 {
                    if shared {
                        Backing::SharedAnonymous
                    } else {
                        Backing::Anonymous
                    }
                } else {
                    let path = source.mapped_file(pid, start, start + len, fd);
                    Backing::File(path.unwrap_or_else(|| format!("(fd {fd})")))
                };
                self.insert(Mapping {
                    start,
                    end: start + len,
                    readable: prot & PROT_READ != 0,
                    writable: prot & PROT_WRITE != 0,
                    executable: prot & PROT_EXEC != 0,
                    shared,
                    offset: if flags & MAP_ANONYMOUS != 0 {
                        0
                    } else {
                        offset
                    },
                    backing,
                });
            }
            "munmap" => self.remove_range(arg(0), arg(0) + page_up(arg(1))),
            "mprotect" => self.protect(arg(0), arg(0) + page_up(arg(1)), arg(2)),
            "mremap" => {
                let (old, old_len, new_len, new_start) =
                    (arg(0), page_up(arg(1)), page_up(arg(2)), ret as u64);
                let Some(moved) = self.find(old).cloned() else {
                    return;
                };
                let template = moved.slice(old, old + old_len.max(page_size));
                const MREMAP_DONTUNMAP: u64 = 4;
                if arg(3) & MREMAP_DONTUNMAP == 0 {
                    self.remove_range(old, old + old_len);
                }
                self.insert(Mapping {
                    start: new_start,
                    end: new_start + new_len,
                    ..template
                });
            }
            "brk" => self.set_brk(ret as u64),
            _ => {} // madvise, forks: no change to the mappings
        }
    }

    /// The program break moved to `end` (the result of `brk`).
    fn set_brk(&mut self, end: u64) {
        let heap = self
            .mappings
            .values()
            .find(|m| m.backing == Backing::Heap)
            .cloned();
        match heap {
            Some(heap) if end <= heap.start => {
                self.mappings.remove(&heap.start);
            }
            Some(heap) => {
                self.mappings.remove(&heap.start);
                self.insert(Mapping { end, ..heap });
            }
            None => match self.brk_base {
                // brk(0) reports the base; a later larger result creates the heap.
                Some(base) if end > base => self.insert(Mapping {
                    start: base,
                    end,
                    readable: true,
                    writable: true,
                    executable: false,
                    shared: false,
                    offset: 0,
                    backing: Backing::Heap,
                }),
                Some(_) => {}
                None => self.brk_base = Some(end),
            },
        }
    }
}

/// The address spaces of all traced processes, kept in step with the record stream.
#[derive(Default)]
pub struct AddressSpaces {
    spaces: HashMap<u32, AddressSpace>,
    page_size: u64,
}

impl AddressSpaces {
    pub fn new(page_size: u64) -> AddressSpaces {
        AddressSpaces {
            spaces: HashMap::new(),
            page_size,
        }
    }

    pub fn get(&self, pid: u32) -> Option<&AddressSpace> {
        self.spaces.get(&pid)
    }

    pub fn find(&self, pid: u32, address: u64) -> Option<&Mapping> {
        self.spaces.get(&pid).and_then(|space| space.find(address))
    }

    /// Starts following a process that already exists (from its `/proc/PID/maps`).
    pub fn adopt(&mut self, pid: u32, source: &mut dyn MappingSource) {
        if let Some(space) = source.mappings(pid) {
            self.spaces.insert(pid, space);
        }
    }

    pub fn apply(&mut self, record: &Record, source: &mut dyn MappingSource) {
        match record {
            // A forked child starts with a copy of the parent's mappings; a vfork child shares
            // them until it execs, which replaces them anyway.
            Record::Fork(fork)
                if ForkKind::from_clone_flags(fork.clone_flags) != ForkKind::Thread =>
            {
                let inherited = self.spaces.get(&fork.header.pid).cloned();
                match inherited {
                    Some(space) => {
                        self.spaces.insert(fork.child_pid, space);
                    }
                    None => self.adopt(fork.child_pid, source),
                }
            }
            // The kernel built a new image without syscalls: read it.
            Record::Exec(exec) => {
                self.spaces.remove(&exec.header.pid);
                self.adopt(exec.header.pid, source);
            }
            Record::Exit(exit) if exit.group_dead != 0 => {
                self.spaces.remove(&exit.header.pid);
            }
            Record::Syscall(call) => {
                let Some(name) = crate::probes::syscalls::syscall_name(call.syscall_nr) else {
                    return;
                };
                let args = &call.args[..(call.arg_count as usize).min(call.args.len())];
                let pid = call.header.pid;
                let page_size = self.page_size;
                if let Some(space) = self.spaces.get_mut(&pid) {
                    space.apply_syscall(pid, name, args, call.ret, page_size, source);
                }
            }
            _ => {}
        }
    }
}

/// Reads mappings, mapped files and pages from `/proc`.
pub struct ProcMappingSource {
    pub page_size: u64,
}

impl MappingSource for ProcMappingSource {
    fn private_pages(&mut self, pid: u32, space: &AddressSpace) -> Vec<(u64, u64)> {
        crate::attach::private_pages(pid, space, self.page_size)
    }

    fn mappings(&mut self, pid: u32) -> Option<AddressSpace> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        AddressSpace::parse_proc_maps(&text).ok()
    }

    fn mapped_file(&mut self, pid: u32, start: u64, end: u64, _fd: i32) -> Option<String> {
        // map_files names the mapping itself (it outlives the descriptor, which is often
        // closed right after mmap). By the time the record is read the mapping may have been
        // split (ld.so maps a library whole, then segments and RELRO over it) or merged with
        // a neighbour: any entry overlapping it names the file. The descriptor is no fallback:
        // when the mapping is gone, its number has often been reused for another file already
        // (ld.so maps /etc/ld.so.cache with descriptor 3, unmaps it, closes it, and the
        // program's first open gets 3 again), and no name beats a wrong one.
        let map_files = format!("/proc/{pid}/map_files");
        std::fs::read_link(format!("{map_files}/{start:x}-{end:x}"))
            .or_else(|_| {
                let piece = std::fs::read_dir(&map_files)?
                    .filter_map(|entry| entry.ok())
                    .find(|entry| {
                        map_files_range(&entry.file_name().to_string_lossy()).is_some_and(
                            |(piece_start, piece_end)| piece_start < end && piece_end > start,
                        )
                    })
                    .ok_or(std::io::ErrorKind::NotFound)?;
                std::fs::read_link(piece.path())
            })
            .ok()
            .map(|path| path.to_string_lossy().into_owned())
    }
}

/// The range of a `/proc/PID/map_files` entry name (`start-end` in hex).
fn map_files_range(name: &str) -> Option<(u64, u64)> {
    let (start, end) = name.split_once('-')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fe:01 1234                       /usr/bin/demo
55d0c0a02000-55d0c0a05000 r-xp 00002000 fe:01 1234                       /usr/bin/demo
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000010000 rw-p 00000000 00:00 0 
7f0000010000-7f0000020000 rw-s 00000000 00:01 77                         /dev/zero (deleted)
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
7ffc000fe000-7ffc00100000 r-xp 00000000 00:00 0                          [vdso]
";

    struct Fake {
        files: HashMap<(u64, u64), String>,
    }

    impl MappingSource for Fake {
        fn mappings(&mut self, _pid: u32) -> Option<AddressSpace> {
            AddressSpace::parse_proc_maps(MAPS).ok()
        }
        fn mapped_file(&mut self, _pid: u32, start: u64, end: u64, _fd: i32) -> Option<String> {
            self.files.get(&(start, end)).cloned()
        }
    }

    fn names(space: &AddressSpace) -> Vec<(u64, u64, String)> {
        space
            .mappings()
            .map(|m| (m.start, m.end, m.name()))
            .collect()
    }

    #[test]
    fn map_files_names_are_ranges() {
        assert_eq!(
            map_files_range("7f1200000000-7f1200003000"),
            Some((0x7f12_0000_0000, 0x7f12_0000_3000))
        );
        assert_eq!(map_files_range("not-a-range"), None);
        assert_eq!(map_files_range("1234"), None);
    }

    #[test]
    fn parses_proc_maps_into_backings_and_permissions() {
        let space = AddressSpace::parse_proc_maps(MAPS).unwrap();
        assert_eq!(space.mappings().count(), 7);
        let text = space.find(0x55d0c0a03000).unwrap();
        assert_eq!(
            (
                text.name().as_str(),
                text.executable,
                text.writable,
                text.offset
            ),
            ("/usr/bin/demo", true, false, 0x2000)
        );
        assert_eq!(space.find(0x55d0c1000000).unwrap().backing, Backing::Heap);
        assert_eq!(
            space.find(0x7f000000ffff).unwrap().backing,
            Backing::Anonymous
        );
        assert!(space.find(0x7f000000ffff).unwrap().is_cow_on_fork());
        let shared = space.find(0x7f0000010000).unwrap();
        assert!(shared.shared && !shared.is_cow_on_fork());
        assert_eq!(
            shared.name(),
            "[anon shared]",
            "as mmap(MAP_SHARED|MAP_ANONYMOUS) names it"
        );
        assert_eq!(space.find(0x7ffc00000000).unwrap().backing, Backing::Stack);
        assert!(space.find(0x1000).is_none());
        assert!(space.find(0x55d0c0a05000).is_none(), "end is exclusive");
    }

    #[test]
    fn syscalls_map_unmap_protect_and_remap() {
        let mut fake = Fake {
            files: HashMap::from([((0x7f1000000000, 0x7f1000003000), "/data/f".to_string())]),
        };
        let mut space = AddressSpace::default();
        // mmap(NULL, 3 pages + 1 byte, RW, PRIVATE|ANON) -> rounded up to 4 pages.
        space.apply_syscall(
            1,
            "mmap",
            &[0, 3 * 4096 + 1, 3, 0x22, u32::MAX as u64, 0],
            0x7f0000000000,
            4096,
            &mut fake,
        );
        assert_eq!(
            names(&space),
            [(0x7f0000000000, 0x7f0000004000, "[anon]".into())]
        );
        // munmap of the second page splits it.
        space.apply_syscall(1, "munmap", &[0x7f0000001000, 4096], 0, 4096, &mut fake);
        assert_eq!(
            names(&space),
            [
                (0x7f0000000000, 0x7f0000001000, "[anon]".into()),
                (0x7f0000002000, 0x7f0000004000, "[anon]".into())
            ]
        );
        // mprotect read-only on the last page splits again.
        space.apply_syscall(
            1,
            "mprotect",
            &[0x7f0000003000, 4096, 1],
            0,
            4096,
            &mut fake,
        );
        assert!(!space.find(0x7f0000003000).unwrap().writable);
        assert!(space.find(0x7f0000002000).unwrap().writable);
        // A private file mapping at offset 2 pages, then mremap it elsewhere, larger.
        space.apply_syscall(
            1,
            "mmap",
            &[0, 3 * 4096, 3, 0x02, 5, 0x2000],
            0x7f1000000000,
            4096,
            &mut fake,
        );
        let file = space.find(0x7f1000001000).unwrap();
        assert_eq!(
            (file.name().as_str(), file.offset, file.shared),
            ("/data/f", 0x2000, false)
        );
        space.apply_syscall(
            1,
            "mremap",
            &[0x7f1000000000, 3 * 4096, 5 * 4096, 1, 0],
            0x7f2000000000,
            4096,
            &mut fake,
        );
        assert!(space.find(0x7f1000000000).is_none());
        let moved = space.find(0x7f2000004fff).unwrap();
        assert_eq!((moved.name().as_str(), moved.offset), ("/data/f", 0x2000));
        // A failed syscall changes nothing.
        let before = space.clone();
        space.apply_syscall(1, "munmap", &[0x7f2000000000, 4096], -22, 4096, &mut fake);
        assert_eq!(space, before);
    }

    #[test]
    fn brk_creates_grows_and_shrinks_the_heap() {
        let mut fake = Fake {
            files: HashMap::new(),
        };
        let mut space = AddressSpace::default();
        space.apply_syscall(1, "brk", &[0], 0x5000_0000, 4096, &mut fake);
        assert!(
            space.find(0x5000_0000).is_none(),
            "brk(0) only reports the base"
        );
        space.apply_syscall(1, "brk", &[0x5002_1000], 0x5002_1000, 4096, &mut fake);
        assert_eq!(space.find(0x5002_0fff).unwrap().backing, Backing::Heap);
        space.apply_syscall(1, "brk", &[0x5001_0000], 0x5001_0000, 4096, &mut fake);
        assert!(space.find(0x5001_0000).is_none());
        assert!(space.find(0x5000_ffff).is_some());
    }

    #[test]
    fn a_mapping_over_an_existing_one_replaces_the_overlap() {
        let mut space = AddressSpace::parse_proc_maps(MAPS).unwrap();
        let mut fake = Fake {
            files: HashMap::new(),
        };
        // MAP_FIXED anonymous over the middle of the anonymous region.
        space.apply_syscall(
            1,
            "mmap",
            &[0x7f0000004000, 4096, 1, 0x32, u32::MAX as u64, 0],
            0x7f0000004000,
            4096,
            &mut fake,
        );
        assert!(space.find(0x7f0000003fff).unwrap().writable);
        assert!(!space.find(0x7f0000004000).unwrap().writable);
        assert!(space.find(0x7f0000005000).unwrap().writable);
        assert_eq!(space.mappings().count(), 9);
    }
}
