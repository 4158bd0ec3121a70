//! A forked child that does a little work, says so, and then waits to be released.
//!
//! Workloads need the child alive at their checkpoint: its pagemap and taskstats can only be
//! read while it exists, and a page it still maps is still shared.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Exit status of a child whose protocol with the parent broke (a pipe failed).
const CHILD_EXIT_PROTOCOL_ERROR: i32 = 2;

/// A forked child, blocked after its work until [`BlockedChild::release_and_wait`].
///
/// Dropping it without releasing closes the release pipe (the child sees end-of-file and
/// exits) and reaps the child, so an early error in the parent leaves no process behind.
pub(crate) struct BlockedChild {
    pid: libc::pid_t,
    ready_rx: OwnedFd,
    release_tx: Option<OwnedFd>,
    reaped: bool,
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildExit {
    Exited(i32),
    Signaled(i32),
}

impl ChildExit {
    pub(crate) fn success(self) -> bool {
        self == ChildExit::Exited(0)
    }
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Exited(code) => write!(f, "exit status {code}"),
            ChildExit::Signaled(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    // O_CLOEXEC: other processes spawned meanwhile must not hold our pipe ends open.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl BlockedChild {
    /// Forks. The child runs `child_work`, signals readiness, blocks until released (or
    /// until the parent goes away), and `_exit(0)`s. The parent returns at once; call
    /// [`BlockedChild::wait_ready`] to wait for the child's work to be done.
    ///
    /// # Safety
    ///
    /// `child_work` runs in the forked child of a possibly multi-threaded process: it must
    /// be async-signal-safe (no allocation, no locks, no panics, no stdio).
    pub(crate) unsafe fn fork(child_work: impl FnOnce()) -> io::Result<Self> {
        let (ready_rx, ready_tx) = pipe()?;
        let (release_rx, release_tx) = pipe()?;
        // SAFETY: the child only runs async-signal-safe code (the caller's promise for
        // `child_work`, then raw read/write/close/_exit) and never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // The work comes first: nothing may fault between the fork and the work.
            child_work();
            // SAFETY: raw descriptors inherited from the parent, used only here.
            unsafe {
                child_signal_and_block(
                    ready_tx.as_raw_fd(),
                    release_rx.as_raw_fd(),
                    &[ready_rx.as_raw_fd(), release_tx.as_raw_fd()],
                )
            }
        }
        // Parent: drop the child's ends so that a dead child reads as end-of-file.
        drop(ready_tx);
        drop(release_rx);
        Ok(BlockedChild {
            pid,
            ready_rx,
            release_tx: Some(release_tx),
            reaped: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Blocks until the child has finished its work.
    pub(crate) fn wait_ready(&mut self) -> io::Result<()> {
        let mut byte = 0u8;
        loop {
            // SAFETY: reading one byte into a valid local.
            let n = unsafe { libc::read(self.ready_rx.as_raw_fd(), (&raw mut byte).cast(), 1) };
            match n {
                1 => return Ok(()),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("child {} exited before signalling readiness", self.pid),
                    ));
                }
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// Lets the child exit and reaps it.
    pub(crate) fn release_and_wait(mut self) -> io::Result<ChildExit> {
        if let Some(release_tx) = self.release_tx.take() {
            let byte = 1u8;
            // SAFETY: writing one byte from a valid local. A failure (child already gone)
            // is harmless: closing the pipe below releases the child just the same.
            unsafe { libc::write(release_tx.as_raw_fd(), (&raw const byte).cast(), 1) };
        }
        self.reap()
    }

    fn reap(&mut self) -> io::Result<ChildExit> {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child with a valid status pointer.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        self.reaped = true;
        if libc::WIFEXITED(status) {
            Ok(ChildExit::Exited(libc::WEXITSTATUS(status)))
        } else {
            Ok(ChildExit::Signaled(libc::WTERMSIG(status)))
        }
    }
}

impl Drop for BlockedChild {
    fn drop(&mut self) {
        // Closing the release pipe wakes the child with end-of-file; it exits.
        self.release_tx = None;
        if !self.reaped {
            let _ = self.reap();
        }
    }
}

/// The child's half of the protocol: say "ready", wait for a byte or end-of-file, exit.
///
/// # Safety
///
/// Only for a freshly forked child; the descriptors must be the pipe ends it inherited.
unsafe fn child_signal_and_block(ready_tx: RawFd, release_rx: RawFd, unused: &[RawFd]) -> ! {
    // SAFETY (whole body): raw syscalls on inherited descriptors and a stack byte; all are
    // async-signal-safe, and `_exit` skips the parent's atexit handlers and stdio buffers.
    unsafe {
        // The child must not hold the write end of its own release pipe, or it could never
        // see end-of-file when the parent dies.
        for &fd in unused {
            libc::close(fd);
        }
        let byte = 1u8;
        if libc::write(ready_tx, (&raw const byte).cast(), 1) != 1 {
            libc::_exit(CHILD_EXIT_PROTOCOL_ERROR);
        }
        let mut buf = 0u8;
        loop {
            let n = libc::read(release_rx, (&raw mut buf).cast(), 1);
            // A byte (released) or end-of-file (parent gone): either way, done.
            if n >= 0 {
                libc::_exit(0);
            }
            if *libc::__errno_location() != libc::EINTR {
                libc::_exit(CHILD_EXIT_PROTOCOL_ERROR);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_runs_work_then_exits_cleanly_when_released() {
        let _alone = crate::exclusive_forks();
        let region = crate::sys::AnonRegion::map(1, crate::sys::page_size()).unwrap();
        region.write_pages(0..1, 1);
        // SAFETY: a volatile store is async-signal-safe.
        let mut child = unsafe { BlockedChild::fork(|| region.write_pages(0..1, 2)) }.unwrap();
        child.wait_ready().unwrap();
        // The child's write went to its own copy of the page.
        assert_eq!(region.read_page(0), 1);
        assert!(child.pid() > 0);
        assert_eq!(child.release_and_wait().unwrap(), ChildExit::Exited(0));
    }

    #[test]
    fn dropping_an_unreleased_child_reaps_it() {
        let _alone = crate::exclusive_forks();
        // SAFETY: the empty closure is trivially async-signal-safe.
        let mut child = unsafe { BlockedChild::fork(|| {}) }.unwrap();
        child.wait_ready().unwrap();
        let pid = child.pid as libc::pid_t;
        drop(child);
        // SAFETY: probing whether the pid still names our child.
        let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(rc, -1, "child should already be reaped");
    }
}
