//! Performs a scenario's steps for real, in order, then holds the checkpoint.
//!
//! The root (the caller) performs its own steps inline. Every forked process and thread runs
//! [`serve`]: it waits on its own pipe for the index of its next step, performs it, and
//! acknowledges on a pipe shared by all, with CLOCK_MONOTONIC times. The root sends one
//! step at a time and waits for its acknowledgement, so the steps of all processes happen in
//! the scenario's order. After the last step everybody is blocked on its pipe: the root
//! reads every pagemap and every taskstats (the checkpoint), then closes the pipes; each
//! process reaps its own children and exits, each thread returns.
//!
//! Code that runs in a forked child (everything [`process_main`] reaches) is
//! async-signal-safe: raw system calls and volatile stores only, no allocation, no locks,
//! no panics, because the root may be multi-threaded (a test harness, or the `threads`
//! workload).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use super::model::Model;
use super::region::{Region, RegionPtr};
use super::{PageSet, ROOT, Scenario, Step, TaskId, VforkEnd};
use crate::oracle::pagemap::PageEntry;
use crate::report::{Role, TaskstatsSample, TimelineEvent};
use crate::sys::{self, monotonic_ns};

/// What an exec'ing child of the `fork-exec` workload runs: it blocks reading its standard
/// input (a pipe the root holds) until the workload ends, so it is alive at the checkpoint.
pub(crate) const EXEC_PATH: &CStr = c"/bin/cat";
/// What an exec'ing vfork child runs: exits at once.
pub(crate) const VFORK_EXEC_PATH: &CStr = c"/bin/true";

/// How long the root waits for one acknowledgement before giving up.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the root waits for the kernel to show an exited (or exec'd) process's pages
/// released; see [`Family::settle`].
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Stack of a vfork child (it runs on its own stack, in the root's memory).
const VFORK_STACK_BYTES: usize = 256 * 1024;

const ACK_HELLO: u32 = 1;
const ACK_DONE: u32 = 2;
const ACK_FAILED: u32 = 3;

/// Exit status of a forked process whose protocol broke (a pipe failed, a bad step).
const EXIT_PROTOCOL: i32 = 2;
/// Exit status of a forked process one of whose own children failed.
const EXIT_CHILD_FAILED: i32 = 3;
/// Exit status when exec failed.
const EXIT_EXEC_FAILED: i32 = 127;

/// One acknowledgement, written in one `write` (smaller than `PIPE_BUF`, so atomic).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ack {
    task: u32,
    kind: u32,
    pid: u32,
    tid: u32,
    start_ns: u64,
    end_ns: u64,
    /// Fork: the new process's pid. Failure: the errno.
    aux: u32,
    _pad: u32,
}

const ACK_BYTES: usize = size_of::<Ack>();

/// What forked processes and threads share with the root (read-only).
struct Ctx<'a> {
    steps: &'a [Step],
    region: RegionPtr,
    /// Per task: the byte it writes (distinct per task, for debugging).
    values: &'a [u8],
    /// Per task: the read end of its step pipe (-1 for tasks without one).
    go_rx: &'a [RawFd],
    /// Descriptors a forked process closes first: every step pipe's write end, the
    /// acknowledgement pipe's read end, the exec child's stdin write end.
    close_in_child: &'a [RawFd],
    ack_tx: RawFd,
    /// Read end of the pipe an exec'd child reads as its standard input (-1 if none).
    exec_stdin: RawFd,
}

/// Runtime facts about one task.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskRun {
    pub(crate) pid: u32,
    pub(crate) tid: u32,
    /// How the process ended, for processes the root reaped (direct and vfork children).
    pub(crate) exit: Option<String>,
    pub(crate) exit_ok: bool,
    /// CLOCK_MONOTONIC when it was reaped, for processes that ended before the checkpoint.
    pub(crate) ended_ns: Option<u64>,
}

/// Everything the run observed, for [`super::check`].
pub(crate) struct RunFacts {
    pub(crate) tasks: Vec<TaskRun>,
    /// Per task: its pagemap at the checkpoint, and when it was read.
    pub(crate) checkpoint: Vec<Option<(Vec<PageEntry>, u64)>>,
    /// Per task: a note about its state at the checkpoint (exec'd, exited).
    pub(crate) notes: Vec<Option<String>>,
    /// Per task: true when a checkpoint observation contradicts the model outright (an
    /// exec'd process still mapping something over the region).
    pub(crate) anomalies: Vec<bool>,
    /// Per [`Step::Snapshot`], in order: the pagemap read then.
    pub(crate) snapshots: Vec<Vec<PageEntry>>,
    pub(crate) timeline: Vec<TimelineEvent>,
    pub(crate) region_start: u64,
    pub(crate) cpu: Option<usize>,
    /// Per task: taskstats read at the checkpoint (`None` for tasks not alive then).
    pub(crate) taskstats: Vec<Option<Result<TaskstatsSample, String>>>,
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: `fds` has room for two descriptors. O_CLOEXEC: an exec'd child keeps none.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes all of `bytes` (async-signal-safe).
fn write_all_raw(fd: RawFd, bytes: &[u8]) -> bool {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n > 0 {
            done += n as usize;
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return false;
        }
    }
    true
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on end-of-file before the first byte.
fn read_exact_raw(fd: RawFd, buf: &mut [u8]) -> Result<bool, i32> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reading into a valid slice.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n > 0 {
            done += n as usize;
        } else if n == 0 {
            return if done == 0 {
                Ok(false)
            } else {
                Err(libc::EPIPE)
            };
        } else if errno() != libc::EINTR {
            return Err(errno());
        }
    }
    Ok(true)
}

fn send_ack(ctx: &Ctx<'_>, ack: Ack) -> bool {
    // SAFETY: Ack is plain data without padding bytes.
    let bytes: [u8; ACK_BYTES] = unsafe { std::mem::transmute(ack) };
    write_all_raw(ctx.ack_tx, &bytes)
}

fn own_ids() -> (u32, u32) {
    // SAFETY: getpid and gettid cannot fail.
    unsafe { (libc::getpid() as u32, libc::gettid() as u32) }
}

/// Performs a step that any task can perform: accesses and forks. Returns the new pid for a
/// fork, or an errno.
fn perform(ctx: &Ctx<'_>, me: TaskId, step: &Step) -> Result<u32, i32> {
    match *step {
        Step::Write { pages, .. } => {
            let value = ctx.values.get(me).copied().unwrap_or(0xff);
            for page in pages.iter() {
                ctx.region.write_page(page, value);
            }
            Ok(0)
        }
        Step::Read { pages, .. } => {
            for page in pages.iter() {
                ctx.region.read_page(page);
            }
            Ok(0)
        }
        Step::PopulateRead { pages, .. } => {
            let result = match pages {
                PageSet::Range { start, end } => ctx.region.populate_read(start, end),
                _ => pages
                    .iter()
                    .try_for_each(|page| ctx.region.populate_read(page, page + 1)),
            };
            result
                .map(|()| 0)
                .map_err(|err| err.raw_os_error().unwrap_or(libc::EIO))
        }
        Step::Fork { child, .. } => {
            // SAFETY: the child only runs `process_main`, which is async-signal-safe.
            let pid = unsafe { libc::fork() };
            match pid {
                -1 => Err(errno()),
                0 => process_main(ctx, child),
                pid => Ok(pid as u32),
            }
        }
        _ => Err(libc::EINVAL),
    }
}

/// The life of a forked process: close what is not ours, say hello, serve steps, reap our
/// own children, exit.
fn process_main(ctx: &Ctx<'_>, me: TaskId) -> ! {
    for &fd in ctx.close_in_child {
        // SAFETY: closing inherited descriptors this process must not hold.
        unsafe { libc::close(fd) };
    }
    let (pid, tid) = own_ids();
    let now = monotonic_ns();
    let hello = Ack {
        task: me as u32,
        kind: ACK_HELLO,
        pid,
        tid,
        start_ns: now,
        end_ns: now,
        ..Ack::default()
    };
    let mut code = if send_ack(ctx, hello) {
        serve(ctx, me)
    } else {
        EXIT_PROTOCOL
    };
    loop {
        let mut status = 0;
        // SAFETY: reaping our own children with a valid status pointer.
        let rc = unsafe { libc::waitpid(-1, &mut status, 0) };
        if rc > 0 {
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) && code == 0 {
                code = EXIT_CHILD_FAILED;
            }
        } else if errno() != libc::EINTR {
            break; // ECHILD: none left
        }
    }
    // SAFETY: _exit skips atexit handlers and stdio buffers inherited from the root.
    unsafe { libc::_exit(code) }
}

/// Serves steps until the root closes our pipe; returns the exit code.
fn serve(ctx: &Ctx<'_>, me: TaskId) -> i32 {
    let go_rx = ctx.go_rx.get(me).copied().unwrap_or(-1);
    loop {
        let mut index_bytes = [0u8; 4];
        match read_exact_raw(go_rx, &mut index_bytes) {
            Ok(true) => {}
            Ok(false) => return 0, // released
            Err(_) => return EXIT_PROTOCOL,
        }
        let index = u32::from_ne_bytes(index_bytes) as usize;
        let (pid, tid) = own_ids();
        let start_ns = monotonic_ns();
        let Some(step) = ctx.steps.get(index) else {
            return EXIT_PROTOCOL;
        };
        let result = match step {
            Step::Exit { .. } | Step::Exec { .. } => Ok(0),
            _ => perform(ctx, me, step),
        };
        let (kind, aux) = match result {
            Ok(aux) => (ACK_DONE, aux),
            Err(errno) => (ACK_FAILED, errno as u32),
        };
        let ack = Ack {
            task: me as u32,
            kind,
            pid,
            tid,
            start_ns,
            end_ns: monotonic_ns(),
            aux,
            _pad: 0,
        };
        if !send_ack(ctx, ack) {
            return EXIT_PROTOCOL;
        }
        match step {
            Step::Exit { .. } => return 0,
            Step::Exec { .. } => exec_blocking_child(ctx),
            _ => {}
        }
    }
}

/// Replaces this process with [`EXEC_PATH`] reading the exec pipe as standard input.
fn exec_blocking_child(ctx: &Ctx<'_>) -> ! {
    // SAFETY: dup2 and execve with NUL-terminated strings and NULL-terminated arrays that
    // live on this stack; async-signal-safe.
    unsafe {
        if ctx.exec_stdin >= 0 {
            libc::dup2(ctx.exec_stdin, 0);
        }
        let argv = [EXEC_PATH.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        libc::execve(EXEC_PATH.as_ptr(), argv.as_ptr(), envp.as_ptr());
        libc::_exit(EXIT_EXEC_FAILED)
    }
}

/// What a vfork child needs; it runs in the root's memory, on its own stack.
#[repr(C)]
struct VforkArgs {
    region: RegionPtr,
    writes: Option<PageSet>,
    value: u8,
    exec: bool,
    start_ns: u64,
    end_ns: u64,
}

extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the root's VforkArgs, which outlives the child's run (the
    // root is suspended until the child exits or execs). Shared memory: the root reads the
    // times after it resumes.
    let args = unsafe { &mut *arg.cast::<VforkArgs>() };
    args.start_ns = monotonic_ns();
    if let Some(pages) = args.writes {
        for page in pages.iter() {
            args.region.write_page(page, args.value);
        }
    }
    args.end_ns = monotonic_ns();
    // SAFETY: exit or exec, the only things a vfork child may do next.
    unsafe {
        if args.exec {
            let argv = [VFORK_EXEC_PATH.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            libc::execve(VFORK_EXEC_PATH.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(EXIT_EXEC_FAILED)
        }
        libc::_exit(0)
    }
}

/// Keeps the calling thread on one CPU; restores its affinity on drop. See the module docs
/// of [`super`] for why.
struct CpuPin {
    old: libc::cpu_set_t,
    cpu: usize,
}

impl CpuPin {
    fn pin_to_current() -> io::Result<CpuPin> {
        // SAFETY: plain-data cpu sets, filled by the kernel.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut old) != 0 {
                return Err(io::Error::last_os_error());
            }
            let cpu = libc::sched_getcpu();
            if cpu < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &one) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(CpuPin {
                old,
                cpu: cpu as usize,
            })
        }
    }
}

impl Drop for CpuPin {
    fn drop(&mut self) {
        // SAFETY: restoring the mask read before.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.old) };
    }
}

/// Reads `pages` pagemap entries of `/proc/PID[/task/TID]/pagemap` from `start_addr`.
pub(crate) fn read_pagemap(
    pid: u32,
    tid: Option<u32>,
    start_addr: u64,
    pages: usize,
) -> io::Result<Vec<PageEntry>> {
    use std::os::unix::fs::FileExt as _;
    let path = match tid {
        Some(tid) => format!("/proc/{pid}/task/{tid}/pagemap"),
        None => format!("/proc/{pid}/pagemap"),
    };
    let file = std::fs::File::open(&path)?;
    let mut raw = vec![0u8; pages * 8];
    let offset = start_addr / sys::page_size() as u64 * 8;
    file.read_exact_at(&mut raw, offset)
        .map_err(|err| io::Error::new(err.kind(), format!("reading {path}: {err}")))?;
    Ok(raw
        .chunks_exact(8)
        .map(|word| PageEntry::decode(u64::from_ne_bytes(word.try_into().unwrap())))
        .collect())
}

/// The root's side of the protocol; on drop (also on error) it releases everybody and
/// reaps its children.
struct Family<'s> {
    scenario: &'s Scenario,
    go_tx: Vec<Option<OwnedFd>>,
    exec_stdin_tx: Option<OwnedFd>,
    ack_rx: OwnedFd,
    runs: Vec<TaskRun>,
    /// Forked children of the root not reaped yet.
    unreaped: Vec<TaskId>,
    timeline: Vec<TimelineEvent>,
}

impl Family<'_> {
    fn read_ack(&self) -> anyhow::Result<Ack> {
        let mut poll = libc::pollfd {
            fd: self.ack_rx.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + ACK_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no acknowledgement within {ACK_TIMEOUT:?}: a child hangs or died");
            }
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut poll, 1, left.as_millis() as i32) };
            if rc > 0 {
                break;
            }
            if rc < 0 && errno() != libc::EINTR {
                return Err(io::Error::last_os_error()).context("polling for acknowledgements");
            }
        }
        let mut bytes = [0u8; ACK_BYTES];
        match read_exact_raw(self.ack_rx.as_raw_fd(), &mut bytes) {
            Ok(true) => {}
            Ok(false) => bail!("the acknowledgement pipe closed"),
            Err(errno) => bail!(
                "reading an acknowledgement: {}",
                io::Error::from_raw_os_error(errno)
            ),
        }
        // SAFETY: any bit pattern is a valid Ack.
        Ok(unsafe { std::mem::transmute::<[u8; ACK_BYTES], Ack>(bytes) })
    }

    /// Waits for one acknowledgement of each `(task, kind)`, in any order.
    fn wait_acks(&mut self, wanted: &[(TaskId, u32)]) -> anyhow::Result<Vec<Ack>> {
        let mut got: Vec<Option<Ack>> = vec![None; wanted.len()];
        while got.iter().any(Option::is_none) {
            let ack = self.read_ack()?;
            let task = ack.task as usize;
            let name = self.scenario.tasks.get(task).map_or("?", |spec| spec.name);
            if ack.kind == ACK_FAILED {
                bail!(
                    "{name} failed its step: {}",
                    io::Error::from_raw_os_error(ack.aux as i32)
                );
            }
            let slot = wanted
                .iter()
                .zip(&got)
                .position(|(&(t, kind), slot)| t == task && kind == ack.kind && slot.is_none())
                .ok_or_else(|| anyhow!("unexpected acknowledgement {ack:?}"))?;
            if ack.kind == ACK_HELLO {
                self.runs[task].pid = ack.pid;
                self.runs[task].tid = ack.tid;
            }
            got[slot] = Some(ack);
        }
        Ok(got.into_iter().map(Option::unwrap).collect())
    }

    fn send_step(&self, task: TaskId, index: usize) -> anyhow::Result<()> {
        let fd = self.go_tx[task]
            .as_ref()
            .ok_or_else(|| anyhow!("{} has no step pipe", self.scenario.tasks[task].name))?;
        if !write_all_raw(fd.as_raw_fd(), &(index as u32).to_ne_bytes()) {
            bail!(
                "sending a step to {}: {}",
                self.scenario.tasks[task].name,
                io::Error::last_os_error()
            );
        }
        Ok(())
    }

    fn record(&mut self, task: TaskId, action: String, pages: usize, start_ns: u64, end_ns: u64) {
        let run = &self.runs[task];
        self.timeline.push(TimelineEvent {
            process: self.scenario.tasks[task].name.to_string(),
            pid: run.pid,
            tid: run.tid,
            action,
            pages: pages as u64,
            start_ns,
            end_ns,
        });
    }

    fn reap(&mut self, task: TaskId) -> anyhow::Result<()> {
        let pid = self.runs[task].pid as libc::pid_t;
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
            if rc == pid {
                break;
            }
            if errno() != libc::EINTR {
                return Err(io::Error::last_os_error())
                    .with_context(|| format!("reaping {}", self.scenario.tasks[task].name));
            }
        }
        self.set_exit(task, status);
        self.unreaped.retain(|&t| t != task);
        Ok(())
    }

    fn set_exit(&mut self, task: TaskId, status: i32) {
        let run = &mut self.runs[task];
        run.ended_ns = Some(monotonic_ns());
        if libc::WIFEXITED(status) {
            run.exit = Some(format!("exit status {}", libc::WEXITSTATUS(status)));
            run.exit_ok = libc::WEXITSTATUS(status) == 0;
        } else {
            run.exit = Some(format!("killed by signal {}", libc::WTERMSIG(status)));
            run.exit_ok = false;
        }
    }

    /// After an exit or exec: waits until every process's exclusively-mapped page count is
    /// the model's. The kernel tears an address space down when its last user lets go,
    /// which is normally the exiting (or exec'ing) task before it can be reaped (or before
    /// its new program runs); but anyone holding the address space at that moment (a tool
    /// reading `/proc/PID/maps`, a tracer) delays the teardown past it, and a write in the
    /// meantime would copy a page that is about to become the writer's alone. Returns how
    /// long it waited, or `None` on timeout (the checks then tell).
    fn settle(&self, model: &Model<'_>, region: &Region) -> Option<Duration> {
        let began = Instant::now();
        loop {
            let settled = (0..self.scenario.tasks.len()).all(|task| {
                let Some(view) = model.view(task) else {
                    return true;
                };
                let predicted = view
                    .iter()
                    .filter(|page| page.is_some_and(|page| page.exclusive))
                    .count();
                let run = &self.runs[task];
                let thread = self.scenario.tasks[task].role == Role::Thread;
                read_pagemap(
                    run.pid,
                    thread.then_some(run.tid),
                    region.start_addr(),
                    region.pages(),
                )
                .is_ok_and(|entries| {
                    entries.iter().filter(|entry| entry.exclusive).count() == predicted
                })
            });
            if settled {
                return Some(began.elapsed());
            }
            if began.elapsed() > SETTLE_TIMEOUT {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Family<'_> {
    fn drop(&mut self) {
        self.release_and_reap();
    }
}

impl Family<'_> {
    /// Ends the workload: closing the step pipes releases every process and thread, closing
    /// the exec pipe ends the exec'd child; then reaps the root's children (killing one
    /// that does not end within 10 s).
    fn release_and_reap(&mut self) {
        self.go_tx.clear();
        self.exec_stdin_tx = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        for task in std::mem::take(&mut self.unreaped) {
            let pid = self.runs[task].pid as libc::pid_t;
            let mut status = 0;
            loop {
                // SAFETY: polling our own child.
                let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if rc == pid {
                    self.set_exit(task, status);
                    break;
                }
                if rc < 0 && errno() != libc::EINTR {
                    break;
                }
                if Instant::now() > deadline {
                    // SAFETY: killing and reaping our own hung child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    self.set_exit(task, status);
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn describe(scenario: &Scenario, step: &Step) -> (String, usize) {
    let name = |task: TaskId| scenario.tasks[task].name;
    match *step {
        Step::Write { pages, .. } => (format!("write {} pages", pages.len()), pages.len()),
        Step::Read { pages, .. } => (format!("read {} pages", pages.len()), pages.len()),
        Step::PopulateRead { pages, .. } => (
            format!("MADV_POPULATE_READ {} pages", pages.len()),
            pages.len(),
        ),
        Step::Fork { child, .. } => (format!("fork {}", name(child)), 0),
        Step::Vfork {
            child,
            writes,
            then,
        } => {
            let pages = writes.map_or(0, PageSet::len);
            let end = match then {
                VforkEnd::Exit => "_exit".to_string(),
                VforkEnd::Exec => format!("exec {}", VFORK_EXEC_PATH.to_string_lossy()),
            };
            (
                format!(
                    "vfork {}, which writes {pages} pages, then {end}",
                    name(child)
                ),
                pages,
            )
        }
        Step::SpawnThread { thread } => (format!("start {}", name(thread)), 0),
        Step::Exit { .. } => ("exit".to_string(), 0),
        Step::Exec { .. } => (format!("exec {}", EXEC_PATH.to_string_lossy()), 0),
        Step::Snapshot { task, label } => (format!("read pagemap of {} ({label})", name(task)), 0),
    }
}

/// Runs the scenario and observes the checkpoint: pagemaps, then `sample_taskstats` (given
/// every task's pid and tid), while everybody who should be alive is. `region` is mapped by
/// the caller.
pub(crate) fn execute(
    scenario: &Scenario,
    region: &Region,
    sample_taskstats: impl FnOnce(&[TaskRun]) -> Vec<Option<Result<TaskstatsSample, String>>>,
) -> anyhow::Result<RunFacts> {
    let tasks = scenario.tasks.len();
    let pin = CpuPin::pin_to_current()
        .map_err(|err| eprintln!("cowtrace-workloads: cannot pin to one CPU: {err}"))
        .ok();

    // Every pipe exists before the first fork, so that every process inherits the ones it
    // needs.
    let mut go_rx_owned: Vec<Option<OwnedFd>> = Vec::with_capacity(tasks);
    let mut go_tx: Vec<Option<OwnedFd>> = Vec::with_capacity(tasks);
    for spec in &scenario.tasks {
        if matches!(spec.role, Role::Child | Role::Grandchild | Role::Thread) {
            let (rx, tx) = pipe().context("creating a step pipe")?;
            go_rx_owned.push(Some(rx));
            go_tx.push(Some(tx));
        } else {
            go_rx_owned.push(None);
            go_tx.push(None);
        }
    }
    let (ack_rx, ack_tx) = pipe().context("creating the acknowledgement pipe")?;
    let has_exec = scenario
        .steps
        .iter()
        .any(|step| matches!(step, Step::Exec { .. }));
    let (exec_stdin_rx, exec_stdin_tx) = if has_exec {
        let (rx, tx) = pipe().context("creating the exec'd child's stdin")?;
        (Some(rx), Some(tx))
    } else {
        (None, None)
    };
    let go_rx: Vec<RawFd> = go_rx_owned
        .iter()
        .map(|fd| fd.as_ref().map_or(-1, |fd| fd.as_raw_fd()))
        .collect();
    let mut close_in_child: Vec<RawFd> = go_tx.iter().flatten().map(|fd| fd.as_raw_fd()).collect();
    close_in_child.push(ack_rx.as_raw_fd());
    close_in_child.extend(exec_stdin_tx.as_ref().map(|fd| fd.as_raw_fd()));
    let values: Vec<u8> = (0..tasks).map(|task| 0x20 + task as u8).collect();
    let ctx = Ctx {
        steps: &scenario.steps,
        region: region.ptr(),
        values: &values,
        go_rx: &go_rx,
        close_in_child: &close_in_child,
        ack_tx: ack_tx.as_raw_fd(),
        exec_stdin: exec_stdin_rx.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
    };
    let (root_pid, root_tid) = own_ids();
    let mut runs = vec![TaskRun::default(); tasks];
    runs[ROOT] = TaskRun {
        pid: root_pid,
        tid: root_tid,
        ..TaskRun::default()
    };

    std::thread::scope(|scope| -> anyhow::Result<RunFacts> {
        // Created inside the scope: dropping it (even on error) releases the threads before
        // the scope joins them.
        let mut family = Family {
            scenario,
            go_tx,
            exec_stdin_tx,
            ack_rx,
            runs,
            unreaped: Vec::new(),
            timeline: Vec::new(),
        };
        let mut model = Model::new(scenario);
        let mut snapshots = Vec::new();
        let ctx = &ctx;
        let holds = hold_steps()?;
        for (index, step) in scenario.steps.iter().enumerate() {
            if holds.contains(&index) {
                wait_for_go_line(index)?;
            }
            let actor = step.actor();
            let (action, pages) = describe(scenario, step);
            let start_ns = monotonic_ns();
            match *step {
                Step::Write { .. } | Step::Read { .. } | Step::PopulateRead { .. }
                    if actor == ROOT =>
                {
                    perform(ctx, ROOT, step).map_err(|errno| {
                        anyhow!("{action}: {}", io::Error::from_raw_os_error(errno))
                    })?;
                    family.record(ROOT, action, pages, start_ns, monotonic_ns());
                }
                Step::Fork { child, .. } if actor == ROOT => {
                    let pid = perform(ctx, ROOT, step).map_err(|errno| {
                        anyhow!("fork: {}", io::Error::from_raw_os_error(errno))
                    })?;
                    family.runs[child].pid = pid;
                    family.unreaped.push(child);
                    family.wait_acks(&[(child, ACK_HELLO)])?;
                    family.record(ROOT, action, 0, start_ns, monotonic_ns());
                }
                Step::Fork { child, .. } => {
                    family.send_step(actor, index)?;
                    let acks = family.wait_acks(&[(actor, ACK_DONE), (child, ACK_HELLO)])?;
                    family.record(actor, action, 0, acks[0].start_ns, acks[0].end_ns);
                }
                Step::Write { .. } | Step::Read { .. } | Step::PopulateRead { .. } => {
                    family.send_step(actor, index)?;
                    let ack = family.wait_acks(&[(actor, ACK_DONE)])?[0];
                    family.record(actor, action, pages, ack.start_ns, ack.end_ns);
                }
                Step::Exit { task } => {
                    family.send_step(task, index)?;
                    let ack = family.wait_acks(&[(task, ACK_DONE)])?[0];
                    family.reap(task)?;
                    family.record(task, action, 0, ack.start_ns, monotonic_ns());
                }
                Step::Exec { task } => {
                    family.send_step(task, index)?;
                    let ack = family.wait_acks(&[(task, ACK_DONE)])?[0];
                    wait_for_exec(family.runs[task].pid)?;
                    family.record(task, action, 0, ack.start_ns, monotonic_ns());
                }
                Step::Vfork {
                    child,
                    writes,
                    then,
                } => {
                    let mut args = VforkArgs {
                        region: region.ptr(),
                        writes,
                        value: values[child],
                        exec: then == VforkEnd::Exec,
                        start_ns: 0,
                        end_ns: 0,
                    };
                    let mut stack = vec![0u8; VFORK_STACK_BYTES];
                    // SAFETY: the top of our stack buffer, 16-byte aligned as the ABI wants.
                    let top = unsafe { stack.as_mut_ptr().add(VFORK_STACK_BYTES) };
                    let top = (top as usize & !15) as *mut libc::c_void;
                    // SAFETY: the child runs `vfork_child` on `stack` in our memory and
                    // exits or execs; we are suspended until then, so `args` and `stack`
                    // outlive its use of them.
                    let pid = unsafe {
                        libc::clone(
                            vfork_child,
                            top,
                            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                            (&raw mut args).cast(),
                        )
                    };
                    if pid < 0 {
                        return Err(io::Error::last_os_error()).context("vfork");
                    }
                    family.runs[child].pid = pid as u32;
                    family.runs[child].tid = pid as u32;
                    family.unreaped.push(child);
                    let (child_start, child_end) = (args.start_ns, args.end_ns);
                    family.reap(child)?;
                    drop(stack);
                    family.record(
                        ROOT,
                        format!("vfork {}", scenario.tasks[child].name),
                        0,
                        start_ns,
                        monotonic_ns(),
                    );
                    family.record(child, action, pages, child_start, child_end);
                }
                Step::SpawnThread { thread } => {
                    std::thread::Builder::new()
                        .name(scenario.tasks[thread].name.to_string())
                        .spawn_scoped(scope, move || {
                            let (pid, tid) = own_ids();
                            let now = monotonic_ns();
                            let hello = Ack {
                                task: thread as u32,
                                kind: ACK_HELLO,
                                pid,
                                tid,
                                start_ns: now,
                                end_ns: now,
                                ..Ack::default()
                            };
                            if send_ack(ctx, hello) {
                                serve(ctx, thread);
                            }
                        })
                        .context("starting a thread")?;
                    family.wait_acks(&[(thread, ACK_HELLO)])?;
                    family.record(ROOT, action, 0, start_ns, monotonic_ns());
                }
                Step::Snapshot { task, .. } => {
                    let run = &family.runs[task];
                    let thread = scenario.tasks[task].role == Role::Thread;
                    let entries = read_pagemap(
                        run.pid,
                        thread.then_some(run.tid),
                        region.start_addr(),
                        region.pages(),
                    )
                    .with_context(|| action.clone())?;
                    snapshots.push(entries);
                    family.record(ROOT, action, 0, start_ns, monotonic_ns());
                }
            }
            model
                .apply(step)
                .map_err(|err| anyhow!("step {index} ({step:?}): {err}"))?;
            if let Step::Exit { task } | Step::Exec { task } = *step {
                let waited = family.settle(&model, region);
                let action = match waited {
                    Some(waited) => format!(
                        "wait until the pages {} mapped are released ({} µs)",
                        scenario.tasks[task].name,
                        waited.as_micros()
                    ),
                    None => format!(
                        "wait until the pages {} mapped are released: gave up after {SETTLE_TIMEOUT:?}",
                        scenario.tasks[task].name
                    ),
                };
                let now = monotonic_ns();
                family.record(ROOT, action, 0, now, now);
            }
        }

        if holds.contains(&scenario.steps.len()) {
            wait_for_go_line(scenario.steps.len())?;
        }
        // The checkpoint: everybody who should be alive is blocked on its pipe.
        let outcome = model.finish();
        let mut checkpoint = vec![None; tasks];
        let mut notes = vec![None; tasks];
        let mut anomalies = vec![false; tasks];
        for task in 0..tasks {
            let run = &family.runs[task];
            let spec = &scenario.tasks[task];
            if outcome.views[task].is_some() {
                let thread = spec.role == Role::Thread;
                let entries = read_pagemap(
                    run.pid,
                    thread.then_some(run.tid),
                    region.start_addr(),
                    region.pages(),
                )
                .with_context(|| format!("reading the pagemap of {}", spec.name))?;
                checkpoint[task] = Some((entries, monotonic_ns()));
            } else if outcome.alive[task] && outcome.execed[task] {
                let (note, overlaps) = exec_note(
                    run.pid,
                    region.start_addr(),
                    region.pages() * sys::page_size(),
                );
                notes[task] = Some(note);
                anomalies[task] = overlaps;
                checkpoint[task] = Some((Vec::new(), monotonic_ns()));
            } else if !outcome.alive[task] {
                notes[task] = Some(match (spec.role, outcome.execed[task]) {
                    (Role::VforkChild, true) => format!(
                        "vfork child: ran in the parent's memory, then exec'd {} and exited \
                         before the checkpoint",
                        VFORK_EXEC_PATH.to_string_lossy()
                    ),
                    (Role::VforkChild, false) => "vfork child: ran in the parent's memory, \
                                                  then exited before the checkpoint"
                        .to_string(),
                    _ => "exited before the checkpoint; its pages were released when it was \
                          reaped"
                        .to_string(),
                });
            }
        }
        let taskstats = sample_taskstats(&family.runs);
        // Release everybody, reap the children; threads are joined when the scope ends.
        family.release_and_reap();
        let runs = family.runs.clone();
        let timeline = std::mem::take(&mut family.timeline);
        drop(family);
        Ok(RunFacts {
            tasks: runs,
            checkpoint,
            notes,
            anomalies,
            snapshots,
            timeline,
            region_start: region.start_addr(),
            cpu: pin.as_ref().map(|pin| pin.cpu),
            taskstats,
        })
    })
}

/// Waits until `pid` runs [`EXEC_PATH`]: its `comm` is set after its old memory was
/// dropped (`begin_new_exec`: `exec_mmap`, then `__set_task_comm`).
fn wait_for_exec(pid: u32) -> anyhow::Result<()> {
    let want = EXEC_PATH
        .to_str()
        .ok()
        .and_then(|path| path.rsplit('/').next())
        .unwrap_or("cat");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .with_context(|| format!("process {pid} vanished instead of exec'ing"))?;
        if comm.trim_end() == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("process {pid} did not exec {want} within 5 s (comm {comm:?})");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Describes an exec'd process at the checkpoint; true if something is mapped over the
/// region's addresses in it (the model says nothing is).
fn exec_note(pid: u32, start: u64, len: usize) -> (String, bool) {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let maps = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(maps) => maps,
        Err(err) => {
            return (
                format!("exec'd, but its maps could not be read: {err}"),
                true,
            );
        }
    };
    let end = start + len as u64;
    let overlapping: Vec<&str> = maps
        .lines()
        .filter(|line| {
            let Some((lo, hi)) = line
                .split_whitespace()
                .next()
                .and_then(|range| range.split_once('-'))
            else {
                return false;
            };
            let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
            else {
                return false;
            };
            lo < end && start < hi
        })
        .collect();
    if overlapping.is_empty() {
        (
            format!(
                "exec'd {} (comm {:?}): its memory was replaced, and nothing is mapped at the \
                 region's addresses in it (checked in /proc/{pid}/maps); no region_pfns",
                EXEC_PATH.to_string_lossy(),
                comm.trim_end()
            ),
            false,
        )
    } else {
        (
            format!(
                "exec'd {}, but /proc/{pid}/maps has mappings over the region's addresses: {}",
                EXEC_PATH.to_string_lossy(),
                overlapping.join("; ")
            ),
            true,
        )
    }
}

/// `COWTRACE_WORKLOAD_HOLD_BEFORE_STEP=N[,M...]`: the root waits for a line on standard input
/// before step N (N = the number of steps: after the last one, before the checkpoint), with
/// every process of the family alive and blocked. A tracer can attach with `-p` at such a
/// moment, after the forks of the earlier steps, and must still get everything after right.
pub(crate) const HOLD_ENV: &str = "COWTRACE_WORKLOAD_HOLD_BEFORE_STEP";

fn hold_steps() -> anyhow::Result<Vec<usize>> {
    let Ok(text) = std::env::var(HOLD_ENV) else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(|step| {
            step.trim()
                .parse()
                .map_err(|_| anyhow!("{HOLD_ENV}={text:?}: `{step}` is not a step number"))
        })
        .collect()
}

fn wait_for_go_line(step: usize) -> anyhow::Result<()> {
    eprintln!("workload: holding before step {step}; a line on standard input goes on");
    let mut line = String::new();
    io::stdin()
        .read_line(&mut line)
        .map_err(|error| anyhow!("waiting on stdin ({HOLD_ENV}): {error}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_is_plain_data_of_pipe_atomic_size() {
        assert_eq!(ACK_BYTES, 40);
        const { assert!(ACK_BYTES <= libc::PIPE_BUF) };
    }

    #[test]
    fn exec_paths_exist() {
        for path in [EXEC_PATH, VFORK_EXEC_PATH] {
            let path = std::path::Path::new(path.to_str().unwrap());
            assert!(path.exists(), "{}", path.display());
        }
    }

    #[test]
    fn exec_note_sees_overlapping_mappings() {
        // Our own stack overlaps itself; an address no one maps does not.
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        assert!(exec_note(sys::getpid(), addr & !4095, 4096).1);
        assert!(!exec_note(sys::getpid(), 4096, 4096).1);
    }

    #[test]
    fn pin_restores_the_affinity() {
        let before = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
            libc::CPU_COUNT(&set)
        };
        {
            let pin = CpuPin::pin_to_current().unwrap();
            let during = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
                assert!(libc::CPU_ISSET(pin.cpu, &set));
                libc::CPU_COUNT(&set)
            };
            assert_eq!(during, 1);
        }
        let after = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
            libc::CPU_COUNT(&set)
        };
        assert_eq!(before, after);
    }
}
