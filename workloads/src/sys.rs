//! Thin wrappers over the few system calls the workloads need.

use std::io;
use std::ptr::NonNull;

/// The base page size, from `sysconf(_SC_PAGESIZE)`.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).expect("sysconf(_SC_PAGESIZE) failed")
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads, so the tracer can
/// place these timestamps among its own events. Safe in a forked child: no allocation, no
/// panic (CLOCK_MONOTONIC with a valid pointer cannot fail).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub(crate) fn getpid() -> u32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() as u32 }
}

/// The calling thread's id. Taskstats (and page faults) are per thread: when the workload
/// runs on a non-main thread (a test harness), the pid would name the wrong task.
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// An anonymous private mapping with transparent huge pages disabled, unmapped on drop.
///
/// THP is off so that every page of the region faults on its own: a huge page would turn
/// hundreds of expected first-touch faults into one.
pub(crate) struct AnonRegion {
    start: NonNull<u8>,
    pages: usize,
    page_size: usize,
}

impl AnonRegion {
    pub(crate) fn map(pages: usize, page_size: usize) -> io::Result<Self> {
        let len = pages * page_size;
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = AnonRegion {
            start: NonNull::new(addr.cast()).expect("mmap returned NULL"),
            pages,
            page_size,
        };
        // SAFETY: advising on our own fresh mapping.
        if unsafe { libc::madvise(addr, len, libc::MADV_NOHUGEPAGE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(region)
    }

    pub(crate) fn start_addr(&self) -> u64 {
        self.start.as_ptr() as u64
    }

    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// Writes `value` into the first byte of each page in `pages`.
    ///
    /// Volatile, so the compiler can neither drop nor merge the stores: each one is a fault
    /// the workload promises. Allocation-free, so it is safe in a freshly forked child.
    pub(crate) fn write_pages(&self, pages: std::ops::Range<usize>, value: u8) {
        assert!(pages.end <= self.pages, "page range outside the region");
        for page in pages {
            // SAFETY: the offset is inside our mapping, which is readable and writable.
            unsafe {
                self.start
                    .as_ptr()
                    .add(page * self.page_size)
                    .write_volatile(value)
            };
        }
    }

    /// Reads the first byte of a page (volatile, for tests that check who wrote what).
    #[cfg(test)]
    pub(crate) fn read_page(&self, page: usize) -> u8 {
        assert!(page < self.pages);
        // SAFETY: the offset is inside our readable mapping.
        unsafe {
            self.start
                .as_ptr()
                .add(page * self.page_size)
                .read_volatile()
        }
    }
}

impl Drop for AnonRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we created; no references into it outlive us.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.pages * self.page_size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn monotonic_clock_advances() {
        let first = monotonic_ns();
        let second = monotonic_ns();
        assert!(second >= first);
    }

    #[test]
    fn region_is_page_aligned_and_writable() {
        let region = AnonRegion::map(3, page_size()).unwrap();
        assert_eq!(region.start_addr() % page_size() as u64, 0);
        region.write_pages(0..3, 7);
        assert_eq!(region.read_page(2), 7);
    }
}
