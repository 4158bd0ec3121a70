//! One page fault, from its start to its end, and what kind of fault it was.
//!
//! No tracepoint sits on the copy-on-write path, but a fault has a start
//! (`exceptions:page_fault_*`), an end (`memcg:count_memcg_events` with `PGFAULT`, counted by
//! `handle_mm_fault` on completion) and, in between and in the same thread, the allocations and
//! page cache events it caused. [`FaultInFlight`] collects those facts per thread; [`classify`]
//! turns them into a [`FaultKind`]. The eBPF programs call exactly these functions.

use crate::record::{FaultRecord, RecordHeader, RecordType};

/// x86 page fault error code bits (`arch/x86/include/asm/trap_pf.h`).
pub mod error_code {
    /// The page was present: a protection fault (write to a read-only PTE), not a missing page.
    pub const PRESENT: u32 = 0x1;
    pub const WRITE: u32 = 0x2;
    /// The fault happened in user mode.
    pub const USER: u32 = 0x4;
    pub const INSTRUCTION_FETCH: u32 = 0x10;
}

/// Facts gathered while the fault was in flight (bit set in [`FaultRecord::flags`]).
pub mod flags {
    /// A movable page (user data) was allocated during the fault.
    pub const ALLOCATED: u32 = 1 << 0;
    /// The fault went through the page cache (`filemap_fault` or fault-around map_pages).
    pub const FILEMAP: u32 = 1 << 1;
    /// A page was added to the page cache during the fault: it had to be read (I/O).
    pub const CACHE_FILL: u32 = 1 << 2;
    /// `PGMAJFAULT` was counted for the fault.
    pub const MAJOR: u32 = 1 << 3;
    /// The fault was taken in kernel mode on a user address (e.g. `copy_to_user`).
    pub const KERNEL_MODE: u32 = 1 << 4;
    /// A fault end with no start in the same thread: taken through get_user_pages (ptrace,
    /// `/proc/PID/mem`, `O_DIRECT`), not through the MMU.
    pub const NO_START: u32 = 1 << 5;
}

/// What a fault did to memory.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// First touch of anonymous memory: a fresh page was allocated.
    AnonFirstTouch = 0,
    /// A read of untouched anonymous memory: the shared zero page was mapped, nothing allocated.
    ZeroPage = 1,
    /// A write to a write-protected, shared page: the page was copied into a new frame.
    CowCopy = 2,
    /// A write to a write-protected page that nobody else maps any more: the page was reused in
    /// place, no copy. The kernel side cannot tell it from a write-notify on a shared mapping
    /// (same events); user space, which knows the mapping, calls that one [`Self::WriteShared`].
    CowReuse = 3,
    /// A file page that was already in the page cache was mapped.
    FileMinor = 4,
    /// A file page had to be read from disk (`PGMAJFAULT`, or a page cache fill in the fault).
    /// User space narrows it to `PGMAJFAULT`, the kernel's own definition: a fill alone is
    /// readahead of other pages by a fault whose own page was cached.
    FileMajor = 5,
    /// First write to a private file mapping: the page cache page was copied into a new frame.
    FilePrivateCopy = 6,
    /// A write to a shared mapping: the page is mapped writable and dirtied, never copied.
    WriteShared = 7,
    /// A fault completed through get_user_pages rather than the MMU (no fault start seen).
    GupFault = 8,
    /// Anything else: a read of a present page (protection change, NUMA hinting, spurious).
    Other = 9,
}

impl FaultKind {
    pub const COUNT: usize = 10;
    pub const ALL: [FaultKind; Self::COUNT] = [
        FaultKind::AnonFirstTouch,
        FaultKind::ZeroPage,
        FaultKind::CowCopy,
        FaultKind::CowReuse,
        FaultKind::FileMinor,
        FaultKind::FileMajor,
        FaultKind::FilePrivateCopy,
        FaultKind::WriteShared,
        FaultKind::GupFault,
        FaultKind::Other,
    ];

    /// The kind stored as `kind` in a [`FaultRecord`]; `None` for a value this build does not
    /// know (a record from a newer kernel side, or a corrupt trace file).
    pub fn from_u32(value: u32) -> Option<FaultKind> {
        Self::ALL.get(value as usize).copied()
    }

    /// Stable snake_case name, used in JSON output and tables.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::AnonFirstTouch => "anon_first_touch",
            FaultKind::ZeroPage => "zero_page",
            FaultKind::CowCopy => "cow_copy",
            FaultKind::CowReuse => "cow_reuse",
            FaultKind::FileMinor => "file_minor",
            FaultKind::FileMajor => "file_major",
            FaultKind::FilePrivateCopy => "file_private_copy",
            FaultKind::WriteShared => "write_shared",
            FaultKind::GupFault => "gup_fault",
            FaultKind::Other => "other",
        }
    }

    pub fn from_name(name: &str) -> Option<FaultKind> {
        Self::ALL.iter().copied().find(|kind| kind.name() == name)
    }
}

/// Decides the kind of a completed fault from its error code and the facts gathered in flight.
///
/// The rules, validated against a workload with known answers (see `../shared/kernel-notes.md`):
/// a write to a present page that allocated is a copy (`wp_page_copy`, the same event taskstats
/// counts as WPCOPY); without an allocation it is a reuse. Page cache involvement marks file
/// faults; I/O marks them major.
pub fn classify(error_code: u32, fault_flags: u32) -> FaultKind {
    use error_code::{PRESENT, WRITE};
    use flags::{ALLOCATED, CACHE_FILL, FILEMAP, MAJOR, NO_START};

    if fault_flags & NO_START != 0 {
        return FaultKind::GupFault;
    }
    if fault_flags & (MAJOR | CACHE_FILL) != 0 {
        return FaultKind::FileMajor;
    }
    let write = error_code & WRITE != 0;
    let present = error_code & PRESENT != 0;
    let allocated = fault_flags & ALLOCATED != 0;
    let file = fault_flags & FILEMAP != 0;
    match (write, present) {
        // Write-protect fault: anonymous COW, zero-page COW and private-file COW of a mapped
        // page all go through wp_page_copy and allocate; reuse keeps the frame.
        (true, true) if allocated => FaultKind::CowCopy,
        (true, true) => FaultKind::CowReuse,
        // Write to a missing page.
        (true, false) if file && allocated => FaultKind::FilePrivateCopy,
        (true, false) if file => FaultKind::WriteShared,
        (true, false) if allocated => FaultKind::AnonFirstTouch,
        // No page cache event and nothing allocated: an existing shmem page (MAP_SHARED anon).
        (true, false) => FaultKind::WriteShared,
        // Read or instruction fetch of a missing page.
        (false, false) if file => FaultKind::FileMinor,
        (false, false) if allocated => FaultKind::AnonFirstTouch,
        (false, false) => FaultKind::ZeroPage,
        (false, true) => FaultKind::Other,
    }
}

/// Per-thread state of a fault between its start and its end (the value of the kernel's
/// per-thread map). Plain data with no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultInFlight {
    pub start_ns: u64,
    pub address: u64,
    /// PFN of the first movable page allocated in the fault (the copy, or the new page).
    pub new_pfn: u64,
    pub error_code: u32,
    pub flags: u32,
    pub alloc_order: u32,
    pub alloc_count: u32,
    /// Pages in the ranges fault-around scanned (see [`FaultInFlight::on_fault_around`]).
    pub fault_around_window_pages: u32,
    /// Pages added to the page cache during the fault (read from disk, readahead included).
    pub cache_fill_pages: u32,
}

impl FaultInFlight {
    /// A fault starts: `exceptions:page_fault_user` or `page_fault_kernel`.
    pub fn start(now_ns: u64, address: u64, error_code: u32) -> FaultInFlight {
        let mut fault_flags = 0;
        if error_code & error_code::USER == 0 {
            fault_flags |= flags::KERNEL_MODE;
        }
        FaultInFlight {
            start_ns: now_ns,
            address,
            new_pfn: 0,
            error_code,
            flags: fault_flags,
            alloc_order: 0,
            alloc_count: 0,
            fault_around_window_pages: 0,
            cache_fill_pages: 0,
        }
    }

    /// Whether a fault is in flight: a thread's slot is kept between faults, and a start time
    /// of zero marks it idle (the monotonic clock never reads zero once the system is up).
    #[inline(always)]
    pub fn in_flight(&self) -> bool {
        self.start_ns != 0
    }

    /// Marks the slot idle once its fault has ended.
    #[inline(always)]
    pub fn end(&mut self) {
        self.start_ns = 0;
    }

    /// A page was allocated by this thread while the fault was in flight. Only movable pages
    /// are user data; page tables and other kernel allocations are unmovable and ignored.
    pub fn on_page_alloc(&mut self, pfn: u64, order: u32, migratetype: u32, movable: u32) {
        if migratetype != movable {
            return;
        }
        if self.alloc_count == 0 {
            self.new_pfn = pfn;
            self.alloc_order = order;
        }
        self.alloc_count += 1;
        self.flags |= flags::ALLOCATED;
    }

    /// `filemap:mm_filemap_fault` fired in this fault: it went through the page cache.
    pub fn on_filemap(&mut self) {
        self.flags |= flags::FILEMAP;
    }

    /// `filemap:mm_filemap_map_pages` fired in this fault: fault-around scanned the file pages
    /// `index..=last_index` and mapped those that were cached, up to date and not mapped yet.
    /// The tracepoint reports the range scanned, not the pages mapped (measured: a 16-page
    /// window with every other page cached maps 8), and fires only when the range held at
    /// least one cached page. A retried fault can scan twice.
    pub fn on_fault_around(&mut self, index: u64, last_index: u64) {
        self.flags |= flags::FILEMAP;
        if last_index >= index {
            let pages = (last_index - index + 1).min(u32::MAX as u64) as u32;
            self.fault_around_window_pages = self.fault_around_window_pages.saturating_add(pages);
        }
    }

    /// `filemap:mm_filemap_add_to_page_cache` fired in this fault: a folio of `2^order` pages
    /// entered the page cache, so it had to be read (the faulting page, or readahead).
    pub fn on_cache_fill(&mut self, order: u32) {
        self.flags |= flags::CACHE_FILL | flags::FILEMAP;
        // Orders are small (at most a PMD's, 9 on x86-64); the bound keeps the shift defined.
        let pages = if order < 31 { 1u32 << order } else { 0 };
        self.cache_fill_pages = self.cache_fill_pages.saturating_add(pages);
    }

    /// `PGMAJFAULT` was counted in this fault.
    pub fn on_major(&mut self) {
        self.flags |= flags::MAJOR;
    }

    /// The fault ended (`PGFAULT` counted): the one record it produces.
    pub fn finish(&self, header: RecordHeader) -> FaultRecord {
        FaultRecord {
            latency_ns: header.time_ns.saturating_sub(self.start_ns),
            header,
            address: self.address,
            new_pfn: self.new_pfn,
            error_code: self.error_code,
            flags: self.flags,
            kind: classify(self.error_code, self.flags) as u32,
            alloc_order: self.alloc_order,
            alloc_count: self.alloc_count,
            fault_around_window_pages: self.fault_around_window_pages,
            cache_fill_pages: self.cache_fill_pages,
            reserved: 0,
        }
    }

    /// A fault end with no start in this thread: a get_user_pages fault. Address and error code
    /// are unknown (zero).
    pub fn finish_without_start(header: RecordHeader) -> FaultRecord {
        let fault_flags = flags::NO_START;
        FaultRecord {
            header,
            address: 0,
            latency_ns: 0,
            new_pfn: 0,
            error_code: 0,
            flags: fault_flags,
            kind: classify(0, fault_flags) as u32,
            alloc_order: 0,
            alloc_count: 0,
            fault_around_window_pages: 0,
            cache_fill_pages: 0,
            reserved: 0,
        }
    }
}

impl RecordHeader {
    pub fn fault(time_ns: u64, cpu: u32, pid: u32, tid: u32) -> RecordHeader {
        RecordHeader {
            record_type: RecordType::Fault as u32,
            cpu,
            pid,
            tid,
            time_ns,
        }
    }
}
