//! A mapping the workloads touch page by page, placed at an aligned address so that the
//! kernel's address-aligned decisions (fault-around windows, huge pages) fall on known pages.

use std::{io, os::fd::RawFd, ptr::NonNull};

use crate::{
    oracle::pagemap::{self, PageEntry},
    sys,
};

/// Unmapped on drop.
pub(crate) struct Mapped {
    start: NonNull<u8>,
    pages: usize,
    page_size: usize,
}

/// 64 KiB: fault-around windows (16 pages by default) start on this alignment.
pub(crate) const WINDOW_ALIGNMENT: usize = 64 * 1024;
/// 2 MiB: a PMD, the size of a transparent huge page on x86-64.
pub(crate) const HUGE_PAGE_SIZE: usize = 2 * 1024 * 1024;

impl Mapped {
    /// Maps `pages` pages (of `fd` from offset 0, or anonymous memory for `None`) at an address
    /// that is a multiple of `alignment`: a larger reservation is made first, then the mapping
    /// is placed inside it with `MAP_FIXED`, and the rest of the reservation is unmapped.
    pub(crate) fn map(
        pages: usize,
        page_size: usize,
        prot: libc::c_int,
        flags: libc::c_int,
        fd: Option<RawFd>,
        alignment: usize,
    ) -> io::Result<Mapped> {
        let len = pages * page_size;
        let reserved_len = len + alignment;
        // SAFETY: a fresh inaccessible reservation; nothing refers to it.
        let reserved = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if reserved == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let reserved = reserved as usize;
        let aligned = reserved.next_multiple_of(alignment);
        let (fd, flags) = match fd {
            Some(fd) => (fd, flags),
            None => (-1, flags | libc::MAP_ANONYMOUS),
        };
        // SAFETY: replaces part of our own reservation.
        let address = unsafe {
            libc::mmap(
                aligned as *mut libc::c_void,
                len,
                prot,
                flags | libc::MAP_FIXED,
                fd,
                0,
            )
        };
        let error = io::Error::last_os_error();
        // SAFETY: the parts of the reservation outside the mapping (or all of it on failure).
        unsafe {
            if address == libc::MAP_FAILED {
                libc::munmap(reserved as *mut libc::c_void, reserved_len);
                return Err(error);
            }
            if aligned > reserved {
                libc::munmap(reserved as *mut libc::c_void, aligned - reserved);
            }
            let tail = aligned + len;
            if reserved + reserved_len > tail {
                libc::munmap(tail as *mut libc::c_void, reserved + reserved_len - tail);
            }
        }
        Ok(Mapped {
            start: NonNull::new(address.cast()).expect("mmap returned NULL"),
            pages,
            page_size,
        })
    }

    pub(crate) fn start_addr(&self) -> u64 {
        self.start.as_ptr() as u64
    }

    /// Virtual page number of the first page.
    pub(crate) fn first_vpn(&self) -> u64 {
        self.start_addr() / self.page_size as u64
    }

    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    pub(crate) fn advise(&self, advice: libc::c_int) -> io::Result<()> {
        // SAFETY: advising on our own mapping.
        let result = unsafe {
            libc::madvise(
                self.start.as_ptr().cast(),
                self.pages * self.page_size,
                advice,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Reads the first byte of each page (volatile: every read is a fault the workload
    /// promises, neither dropped nor merged). Returns their sum, so the reads are used.
    pub(crate) fn read_pages(&self, pages: impl IntoIterator<Item = usize>) -> u64 {
        let mut sum = 0u64;
        for page in pages {
            assert!(page < self.pages, "page {page} outside the mapping");
            // SAFETY: inside our readable mapping.
            sum += u64::from(unsafe {
                self.start
                    .as_ptr()
                    .add(page * self.page_size)
                    .read_volatile()
            });
        }
        sum
    }

    /// Writes `value` into the first byte of each page (volatile).
    pub(crate) fn write_pages(&self, pages: impl IntoIterator<Item = usize>, value: u8) {
        for page in pages {
            assert!(page < self.pages, "page {page} outside the mapping");
            // SAFETY: inside our writable mapping.
            unsafe {
                self.start
                    .as_ptr()
                    .add(page * self.page_size)
                    .write_volatile(value)
            };
        }
    }

    /// This process's page table entries for the mapping (`/proc/self/pagemap`).
    pub(crate) fn page_entries(&self) -> io::Result<Vec<PageEntry>> {
        pagemap::read_range(sys::getpid(), self.start_addr(), self.pages)
    }

    /// Pages present in this process's page table now.
    pub(crate) fn present_pages(&self) -> io::Result<u64> {
        Ok(self
            .page_entries()?
            .iter()
            .filter(|entry| entry.present)
            .count() as u64)
    }

    /// The mapping's `AnonHugePages` in `/proc/self/smaps`, in KiB.
    pub(crate) fn anon_huge_kib(&self) -> io::Result<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let header = format!("{:x}-", self.start_addr());
        let mut in_mapping = false;
        for line in smaps.lines() {
            // A mapping's block starts with its range (`start-end perms ...`); fields follow.
            let first_word = line.split_whitespace().next().unwrap_or_default();
            let is_range = first_word
                .split_once('-')
                .is_some_and(|(start, _)| u64::from_str_radix(start, 16).is_ok());
            if is_range {
                in_mapping = line.starts_with(&header);
            } else if in_mapping && let Some(value) = line.strip_prefix("AnonHugePages:") {
                let kib = value.trim().trim_end_matches("kB").trim();
                return kib
                    .parse()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, line.to_string()));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no mapping at {header} in /proc/self/smaps"),
        ))
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly our mapping; no references into it outlive us.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.pages * self.page_size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_start_on_the_asked_alignment() {
        let page_size = sys::page_size();
        for alignment in [WINDOW_ALIGNMENT, HUGE_PAGE_SIZE] {
            let mapping = Mapped::map(
                3,
                page_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                None,
                alignment,
            )
            .unwrap();
            assert_eq!(mapping.start_addr() % alignment as u64, 0);
            mapping.write_pages(0..3, 7);
            assert_eq!(mapping.read_pages([0, 2]), 14);
            assert_eq!(mapping.anon_huge_kib().unwrap(), 0);
        }
    }
}
