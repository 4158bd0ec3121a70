//! The region of a scenario in memory: anonymous segments, and private mappings of a scratch
//! file on a disk filesystem.

use std::ffi::CString;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::{Backing, Segment};

/// `f_type` of tmpfs and ramfs (`linux/magic.h`): memory filesystems, whose "page cache" is
/// the file's only copy; a private mapping of them is not what the file workloads measure.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// A raw handle on the region: plain data, usable from forked children and threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegionPtr {
    start: *mut u8,
    pages: usize,
    page_size: usize,
}

// SAFETY: the region is process memory that outlives every thread using it (threads are
// joined before it is unmapped); accesses are volatile byte reads and writes.
unsafe impl Send for RegionPtr {}
unsafe impl Sync for RegionPtr {}

impl RegionPtr {
    /// Writes `value` into the first byte of page `page` (volatile: one store, one fault at
    /// most). Allocation-free. Pages are validated by the model before the run.
    pub(crate) fn write_page(self, page: usize, value: u8) {
        if page < self.pages {
            // SAFETY: inside the mapping, which is readable and writable.
            unsafe { self.start.add(page * self.page_size).write_volatile(value) };
        }
    }

    /// Reads the first byte of page `page` (volatile).
    pub(crate) fn read_page(self, page: usize) -> u8 {
        if page < self.pages {
            // SAFETY: inside the readable mapping.
            unsafe { self.start.add(page * self.page_size).read_volatile() }
        } else {
            0
        }
    }

    /// `madvise(MADV_POPULATE_READ)` over pages `start..end`.
    pub(crate) fn populate_read(self, start: usize, end: usize) -> io::Result<()> {
        if start >= end || end > self.pages {
            return Ok(());
        }
        // SAFETY: advising on our own mapping.
        let rc = unsafe {
            libc::madvise(
                self.start.add(start * self.page_size).cast(),
                (end - start) * self.page_size,
                libc::MADV_POPULATE_READ,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// The mapped region; unmapped (and its scratch file removed) on drop.
pub(crate) struct Region {
    ptr: RegionPtr,
    scratch: Option<PathBuf>,
}

impl Region {
    /// Maps the segments back to back. Anonymous segments get `MADV_NOHUGEPAGE`, so that
    /// every page faults on its own. File segments map consecutive ranges of one scratch
    /// file (each page filled with a recognisable byte), separated by a page of file so
    /// that the kernel cannot merge them into one VMA.
    pub(crate) fn map(segments: &[Segment], page_size: usize, tag: &str) -> anyhow::Result<Self> {
        let pages: usize = segments.iter().map(|segment| segment.pages).sum();
        let len = pages * page_size;
        // Reserve the whole range first, then map each segment over its part of it.
        // SAFETY: a fresh anonymous reservation aliases nothing.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(page_size),
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("reserving the region");
        }
        let mut region = Region {
            ptr: RegionPtr {
                start: start.cast(),
                pages,
                page_size,
            },
            scratch: None,
        };
        let file = if segments.iter().any(|s| s.backing == Backing::FilePrivate) {
            let file_pages: usize = segments
                .iter()
                .filter(|s| s.backing == Backing::FilePrivate)
                .map(|s| s.pages + 1)
                .sum();
            let path = scratch_path(tag)?;
            region.scratch = Some(path.clone());
            Some(write_scratch_file(&path, file_pages, page_size)?)
        } else {
            None
        };
        let mut offset_pages = 0;
        let mut file_page = 0;
        for segment in segments {
            // SAFETY: inside our reservation.
            let addr = unsafe { region.ptr.start.add(offset_pages * page_size) };
            let seg_len = segment.pages * page_size;
            let (prot, flags, fd, file_offset) = match segment.backing {
                Backing::Anonymous => (
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                ),
                Backing::FilePrivate => (
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    file.as_ref().expect("scratch file").as_raw_fd(),
                    file_page * page_size,
                ),
            };
            if segment.pages > 0 {
                // SAFETY: replacing part of our own reservation.
                let mapped = unsafe {
                    libc::mmap(
                        addr.cast(),
                        seg_len,
                        prot,
                        flags,
                        fd,
                        file_offset as libc::off_t,
                    )
                };
                if mapped == libc::MAP_FAILED {
                    return Err(io::Error::last_os_error())
                        .with_context(|| format!("mapping segment {:?}", segment.label));
                }
                // SAFETY: advising on the mapping just made.
                if unsafe { libc::madvise(addr.cast(), seg_len, libc::MADV_NOHUGEPAGE) } != 0 {
                    return Err(io::Error::last_os_error()).context("MADV_NOHUGEPAGE");
                }
            }
            if segment.backing == Backing::FilePrivate {
                file_page += segment.pages + 1;
            }
            offset_pages += segment.pages;
        }
        Ok(region)
    }

    pub(crate) fn ptr(&self) -> RegionPtr {
        self.ptr
    }

    pub(crate) fn start_addr(&self) -> u64 {
        self.ptr.start as u64
    }

    pub(crate) fn pages(&self) -> usize {
        self.ptr.pages
    }

    #[cfg(test)]
    pub(crate) fn scratch_file(&self) -> Option<&Path> {
        self.scratch.as_deref()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let len = (self.ptr.pages * self.ptr.page_size).max(self.ptr.page_size);
        // SAFETY: unmapping exactly our reservation; nothing refers into it any more.
        unsafe { libc::munmap(self.ptr.start.cast(), len) };
        if let Some(path) = &self.scratch {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Filesystem type of the filesystem holding `dir`.
fn filesystem_type(dir: &Path) -> io::Result<i64> {
    let c_path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    // SAFETY: statfs fills the zeroed struct; the path is NUL-terminated.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_type as i64)
}

fn is_memory_filesystem(dir: &Path) -> io::Result<bool> {
    let fs_type = filesystem_type(dir)?;
    Ok(fs_type == TMPFS_MAGIC || fs_type == RAMFS_MAGIC)
}

/// A directory on a disk filesystem: the temporary directory unless it is tmpfs, else
/// `/var/tmp`.
pub(crate) fn scratch_dir() -> anyhow::Result<PathBuf> {
    for dir in [std::env::temp_dir(), PathBuf::from("/var/tmp")] {
        if matches!(is_memory_filesystem(&dir), Ok(false)) {
            return Ok(dir);
        }
    }
    bail!(
        "no disk-backed scratch directory: {} and /var/tmp are tmpfs (or missing)",
        std::env::temp_dir().display()
    )
}

fn scratch_path(tag: &str) -> anyhow::Result<PathBuf> {
    Ok(scratch_dir()?.join(format!(
        "cowtrace-{tag}-{}-{}.scratch",
        crate::sys::getpid(),
        crate::sys::gettid()
    )))
}

/// The byte every page `page` of the scratch file is filled with (never 0, so a copied page
/// can be told from a fresh one).
pub(crate) fn scratch_byte(page: usize) -> u8 {
    (page % 251) as u8 + 1
}

/// Creates the scratch file, written and synced, so that its pages are clean and cached.
fn write_scratch_file(
    path: &Path,
    pages: usize,
    page_size: usize,
) -> anyhow::Result<std::fs::File> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut page_bytes = vec![0u8; page_size];
    for page in 0..pages {
        page_bytes.fill(scratch_byte(page));
        file.write_all(&page_bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_anonymous_and_file_segments_back_to_back() {
        let page_size = crate::sys::page_size();
        let segments = [
            Segment {
                label: "file a",
                pages: 3,
                backing: Backing::FilePrivate,
            },
            Segment {
                label: "file b",
                pages: 2,
                backing: Backing::FilePrivate,
            },
            Segment {
                label: "anon",
                pages: 2,
                backing: Backing::Anonymous,
            },
        ];
        let region = Region::map(&segments, page_size, "region-test").unwrap();
        let ptr = region.ptr();
        // File pages 0-2, then (after the gap page 3) 4-5.
        assert_eq!(ptr.read_page(0), scratch_byte(0));
        assert_eq!(ptr.read_page(2), scratch_byte(2));
        assert_eq!(ptr.read_page(3), scratch_byte(4));
        assert_eq!(ptr.read_page(5), 0);
        ptr.write_page(1, 0xee);
        assert_eq!(ptr.read_page(1), 0xee);
        let path = region.scratch_file().unwrap().to_path_buf();
        // A private write never reaches the file.
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk[page_size], scratch_byte(1));
        // Two file VMAs and one anonymous one.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let start = region.start_addr();
        let vmas = maps
            .lines()
            .filter(|line| {
                let range = line.split_whitespace().next().unwrap();
                let (lo, _) = range.split_once('-').unwrap();
                let lo = u64::from_str_radix(lo, 16).unwrap();
                (start..start + 7 * page_size as u64).contains(&lo)
            })
            .count();
        assert_eq!(vmas, 3, "{maps}");
        drop(region);
        assert!(!path.exists());
    }

    #[test]
    fn scratch_dir_is_on_disk() {
        let dir = scratch_dir().unwrap();
        assert!(!is_memory_filesystem(&dir).unwrap());
    }
}
