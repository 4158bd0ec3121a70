//! Scratch files whose page cache the workloads control: created with known contents, written
//! out, then dropped from the cache (or cached page by page) so the next faults are known to
//! read from disk, or known not to.
//!
//! They must live on a file system backed by a block device. On tmpfs (`/tmp` on many
//! systems) or ramfs a file's pages *are* the page cache: `POSIX_FADV_DONTNEED` drops nothing,
//! nothing is ever read from disk, and shmem's fault path replaces the file system's. The
//! directory is `$COWTRACE_SCRATCH_DIR` if set, else `/var/tmp`, else the system's temporary
//! directory, whichever first is not tmpfs or ramfs.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write as _},
    os::{fd::AsRawFd as _, unix::fs::FileExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// Overrides where scratch files go.
pub(crate) const SCRATCH_DIR_VAR: &str = "COWTRACE_SCRATCH_DIR";

/// A file of `pages` pages, removed on drop.
pub(crate) struct ScratchFile {
    path: PathBuf,
    file: File,
    pages: usize,
    page_size: usize,
}

impl ScratchFile {
    /// Creates the file, each page filled with a byte derived from its index, and writes it out
    /// (`fsync`): its pages are then cached, up to date and clean.
    pub(crate) fn create(
        name: &str,
        pages: usize,
        page_size: usize,
    ) -> anyhow::Result<ScratchFile> {
        let dir = scratch_dir()?;
        let path = dir.join(format!("cowtrace-{name}-{}.dat", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating the scratch file {}", path.display()))?;
        let scratch = ScratchFile {
            path,
            file,
            pages,
            page_size,
        };
        // Page by page, as single pages enter the page cache: the layout the workloads model.
        let mut page = vec![0u8; page_size];
        for index in 0..pages {
            page.fill((index % 251) as u8 + 1);
            (&scratch.file)
                .write_all(&page)
                .with_context(|| format!("writing {}", scratch.path.display()))?;
        }
        scratch
            .file
            .sync_all()
            .with_context(|| format!("writing {} to disk", scratch.path.display()))?;
        Ok(scratch)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// Drops the file's pages from the page cache: the next access reads them from disk. The
    /// pages must be clean (they are after [`ScratchFile::create`]) and mapped nowhere.
    pub(crate) fn drop_cached_pages(&self) -> anyhow::Result<()> {
        self.file.sync_data()?;
        fadvise(&self.file, libc::POSIX_FADV_DONTNEED).context("POSIX_FADV_DONTNEED")
    }

    /// Reads exactly these pages into the page cache, one by one and without readahead
    /// (`POSIX_FADV_RANDOM` for the reads, the default afterwards).
    pub(crate) fn cache_pages(&self, pages: impl IntoIterator<Item = usize>) -> anyhow::Result<()> {
        fadvise(&self.file, libc::POSIX_FADV_RANDOM).context("POSIX_FADV_RANDOM")?;
        let mut buffer = vec![0u8; self.page_size];
        for page in pages {
            self.file
                .read_exact_at(&mut buffer, (page * self.page_size) as u64)
                .with_context(|| format!("reading page {page} of {}", self.path.display()))?;
        }
        fadvise(&self.file, libc::POSIX_FADV_NORMAL).context("POSIX_FADV_NORMAL")
    }

    /// Which pages are in the page cache now (`mincore` on a mapping of the whole file, which
    /// looks at the cache without faulting anything in).
    pub(crate) fn cached_pages(&self) -> io::Result<Vec<bool>> {
        let len = self.pages * self.page_size;
        // SAFETY: a fresh read-only mapping of our own file, unmapped before returning.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut residency = vec![0u8; self.pages];
        // SAFETY: the vector holds one byte per page of the mapping.
        let result = unsafe { libc::mincore(address, len, residency.as_mut_ptr()) };
        let error = io::Error::last_os_error();
        // SAFETY: unmapping exactly what was mapped above.
        unsafe { libc::munmap(address, len) };
        if result != 0 {
            return Err(error);
        }
        Ok(residency.iter().map(|byte| byte & 1 != 0).collect())
    }

    pub(crate) fn cached_count(&self) -> io::Result<u64> {
        Ok(self
            .cached_pages()?
            .iter()
            .filter(|cached| **cached)
            .count() as u64)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn fadvise(file: &File, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: advising on our own open file; length 0 means to its end.
    match unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, advice) } {
        0 => Ok(()),
        error => Err(io::Error::from_raw_os_error(error)),
    }
}

/// The first candidate directory on a block-backed file system.
pub(crate) fn scratch_dir() -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os(SCRATCH_DIR_VAR) {
        Some(dir) => vec![dir.into()],
        None => vec!["/var/tmp".into(), std::env::temp_dir()],
    };
    let mut rejected = Vec::new();
    for dir in &candidates {
        match memory_file_system(dir) {
            Ok(None) => return Ok(dir.clone()),
            Ok(Some(kind)) => rejected.push(format!("{} is on {kind}", dir.display())),
            Err(error) => rejected.push(format!("{}: {error}", dir.display())),
        }
    }
    bail!(
        "no directory on a disk-backed file system for the scratch files ({}); set \
         {SCRATCH_DIR_VAR} to one (tmpfs keeps file pages in memory, so nothing would be read \
         from disk)",
        rejected.join("; ")
    )
}

/// `Some(name)` when `dir` is on a file system whose pages live only in memory.
fn memory_file_system(dir: &Path) -> io::Result<Option<&'static str>> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statfs fills the struct; the path is NUL-terminated.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stats) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `f_type` magic numbers (include/uapi/linux/magic.h).
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    Ok(match stats.f_type as i64 {
        TMPFS_MAGIC => Some("tmpfs"),
        RAMFS_MAGIC => Some("ramfs"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_and_dev_shm_are_not_disk_backed_but_var_tmp_is_checked() {
        // /dev/shm is tmpfs on every Linux system with glibc's shm_open.
        if Path::new("/dev/shm").is_dir() {
            assert_eq!(
                memory_file_system(Path::new("/dev/shm")).unwrap(),
                Some("tmpfs")
            );
        }
        assert!(memory_file_system(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn a_scratch_file_caches_exactly_the_pages_asked_for() {
        let page_size = crate::sys::page_size();
        let Ok(file) = ScratchFile::create("unit-test", 7, page_size) else {
            return; // no disk-backed directory here: nothing to test
        };
        assert_eq!(file.cached_count().unwrap(), 7, "written pages stay cached");
        file.drop_cached_pages().unwrap();
        assert_eq!(file.cached_count().unwrap(), 0);
        file.cache_pages([1, 4]).unwrap();
        assert_eq!(
            file.cached_pages().unwrap(),
            [false, true, false, false, true, false, false]
        );
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists());
    }
}
