//! Per-task statistics from the kernel's taskstats generic-netlink family.
//!
//! The counter that matters here is `wpcopy_count`: delay accounting counts every
//! copy-on-write copy (`wp_page_copy`) a task makes, which makes it an oracle for the
//! tracer's `cow_copy` classification that shares no code with it.
//!
//! Delay accounting is off by default; `sysctl kernel.task_delayacct=1` turns it on, but
//! only for tasks created afterwards: the kernel gives a task its delay record at
//! fork/clone time only while accounting is on (`delayacct_tsk_init`), and a task without
//! one reports 0 in every delay field forever (its CPU fields are still filled, so nothing
//! in the reply tells such a task from one that merely had no delays). So turn it on
//! *before* starting the process (or thread) to be measured. [`TaskStats::wpcopy_count`]
//! refuses when the sysctl is off; [`TaskStats::wpcopy_count_of_copier`] also catches a
//! task created while it was off, given that the task is known to have copied.
//!
//! # `struct taskstats` layout
//!
//! The struct only grows at the end, except once: version 15 (2025) inserted
//! `*_delay_max`/`*_delay_min` pairs mid-struct, and version 16 moved them to the end again
//! (upstream "taskstats: fix struct taskstats breaks backward compatibility since version
//! 15", May 2025, marked for stable). So every version >= 13 but 15 keeps the version-13
//! offsets read here; version 15 is rejected. Linux 6.18 replies with version 16, 560
//! bytes (measured; the installed `/usr/include/linux/taskstats.h` is the older version 13):
//!
//! | version | adds at the end                                   | size |
//! |---------|---------------------------------------------------|------|
//! | 13      | `wpcopy_count`, `wpcopy_delay_total` (offset 400) | 416  |
//! | 14      | `irq_count`, `irq_delay_total`                    | 432  |
//! | 16      | 16 `*_delay_max`/`*_delay_min` fields             | 560  |
//!
//! (A version 17 adding `*_delay_max_ts` timestamps at the end was proposed in 2026; it
//! keeps these offsets.)
//!
//! The kernel sends `sizeof(struct taskstats)` of its own build, so the attribute length is
//! checked against the fields read, never assumed.

use std::fmt;
use std::io;
use std::mem::offset_of;
use std::sync::Mutex;

use neli::{
    consts::{nl::NlmF, socket::NlFamily},
    err::RouterError,
    genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, NlattrBuilder},
    nl::NlPayload,
    router::synchronous::NlRouter,
    types::{Buffer, GenlBuffer},
    utils::Groups,
};

/// `TASKSTATS_GENL_NAME`: the generic-netlink family name.
const FAMILY_NAME: &str = "TASKSTATS";
/// `TASKSTATS_GENL_VERSION`.
const GENL_VERSION: u8 = 1;
/// `TASKSTATS_CMD_GET`.
const CMD_GET: u8 = 1;
/// `TASKSTATS_CMD_ATTR_PID`: request attribute carrying a task (thread) id, u32.
const CMD_ATTR_PID: u16 = 1;
/// `TASKSTATS_TYPE_PID`: reply attribute carrying the task id, u32.
const TYPE_PID: u16 = 1;
/// `TASKSTATS_TYPE_STATS`: reply attribute carrying `struct taskstats`.
const TYPE_STATS: u16 = 3;
/// `TASKSTATS_TYPE_AGGR_PID`: reply attribute nesting `TYPE_PID` and `TYPE_STATS`.
const TYPE_AGGR_PID: u16 = 4;

/// First struct version with the `wpcopy_*` fields.
const FIRST_VERSION_WITH_WPCOPY: u16 = 13;
/// The version whose layout moved fields mid-struct (see the module docs).
const WITHDRAWN_LAYOUT_VERSION: u16 = 15;

/// Where the kernel's delay-accounting switch lives.
const DELAYACCT_SYSCTL: &str = "/proc/sys/kernel/task_delayacct";

/// `struct taskstats` up to version 13 (`include/uapi/linux/taskstats.h`), used only for
/// its field offsets. `repr(C)` reproduces the C layout; the one `aligned(8)` attribute
/// natural alignment does not already satisfy (`ac_uid`) gets explicit padding.
#[repr(C)]
#[allow(dead_code)] // never constructed: a layout description
struct RawTaskstatsV13 {
    version: u16,
    ac_exitcode: u32,
    ac_flag: u8,
    ac_nice: u8,
    cpu_count: u64,
    cpu_delay_total: u64,
    blkio_count: u64,
    blkio_delay_total: u64,
    swapin_count: u64,
    swapin_delay_total: u64,
    cpu_run_real_total: u64,
    cpu_run_virtual_total: u64,
    ac_comm: [u8; 32],
    ac_sched: u8,
    ac_pad: [u8; 3],
    ac_uid_alignment: u32,
    ac_uid: u32,
    ac_gid: u32,
    ac_pid: u32,
    ac_ppid: u32,
    ac_btime: u32,
    ac_etime: u64,
    ac_utime: u64,
    ac_stime: u64,
    ac_minflt: u64,
    ac_majflt: u64,
    coremem: u64,
    virtmem: u64,
    hiwater_rss: u64,
    hiwater_vm: u64,
    read_char: u64,
    write_char: u64,
    read_syscalls: u64,
    write_syscalls: u64,
    read_bytes: u64,
    write_bytes: u64,
    cancelled_write_bytes: u64,
    nvcsw: u64,
    nivcsw: u64,
    ac_utimescaled: u64,
    ac_stimescaled: u64,
    cpu_scaled_run_real_total: u64,
    freepages_count: u64,
    freepages_delay_total: u64,
    thrashing_count: u64,
    thrashing_delay_total: u64,
    ac_btime64: u64,
    compact_count: u64,
    compact_delay_total: u64,
    ac_tgid: u32,
    ac_tgetime: u64,
    ac_exe_dev: u64,
    ac_exe_inode: u64,
    wpcopy_count: u64,
    wpcopy_delay_total: u64,
}

/// The fields of one task's `struct taskstats` that cowtrace uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStats {
    /// Struct version the kernel replied with (16 on Linux 6.18).
    pub version: u16,
    /// Length of the struct the kernel sent, in bytes.
    pub struct_len: usize,
    /// Task (thread) id the stats are for.
    pub pid: u32,
    /// Thread group (process) id.
    pub tgid: u32,
    /// Command name.
    pub comm: String,
    /// Minor page faults.
    pub minor_faults: u64,
    /// Major page faults.
    pub major_faults: u64,
    /// Whether `kernel.task_delayacct` was on at the time of the query. Necessary for the
    /// delay counters to mean anything, not sufficient (see the module docs).
    pub delay_accounting: bool,
    /// Copy-on-write copies counted by delay accounting (raw; see [`Self::wpcopy_count`]).
    pub wpcopy_count_raw: u64,
    /// Nanoseconds spent in those copies.
    pub wpcopy_delay_total_ns: u64,
}

impl TaskStats {
    /// Parses a `TASKSTATS_TYPE_STATS` payload; `sysctl_on` is the value of
    /// `kernel.task_delayacct` at the time of the query.
    pub fn parse(raw: &[u8], sysctl_on: bool) -> Result<Self, TaskstatsError> {
        let version = u16::from_ne_bytes(read_array(raw, offset_of!(RawTaskstatsV13, version))?);
        if version < FIRST_VERSION_WITH_WPCOPY || version == WITHDRAWN_LAYOUT_VERSION {
            return Err(TaskstatsError::UnsupportedVersion(version));
        }
        let u64_at = |offset| read_array(raw, offset).map(u64::from_ne_bytes);
        let u32_at = |offset| read_array(raw, offset).map(u32::from_ne_bytes);
        let comm_bytes: [u8; 32] = read_array(raw, offset_of!(RawTaskstatsV13, ac_comm))?;
        let comm_len = comm_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(comm_bytes.len());
        Ok(TaskStats {
            version,
            struct_len: raw.len(),
            pid: u32_at(offset_of!(RawTaskstatsV13, ac_pid))?,
            tgid: u32_at(offset_of!(RawTaskstatsV13, ac_tgid))?,
            comm: String::from_utf8_lossy(&comm_bytes[..comm_len]).into_owned(),
            minor_faults: u64_at(offset_of!(RawTaskstatsV13, ac_minflt))?,
            major_faults: u64_at(offset_of!(RawTaskstatsV13, ac_majflt))?,
            delay_accounting: sysctl_on,
            wpcopy_count_raw: u64_at(offset_of!(RawTaskstatsV13, wpcopy_count))?,
            wpcopy_delay_total_ns: u64_at(offset_of!(RawTaskstatsV13, wpcopy_delay_total))?,
        })
    }

    /// The copy-on-write copy count, or [`TaskstatsError::DelayAccountingOff`] when the
    /// sysctl is off and the count is meaningless.
    pub fn wpcopy_count(&self) -> Result<u64, TaskstatsError> {
        if self.delay_accounting {
            Ok(self.wpcopy_count_raw)
        } else {
            Err(TaskstatsError::DelayAccountingOff)
        }
    }

    /// Like [`Self::wpcopy_count`], for a task the caller knows has made copy-on-write
    /// copies: a zero count can then only mean the task has no delay record
    /// ([`TaskstatsError::TaskNotAccounted`]).
    pub fn wpcopy_count_of_copier(&self) -> Result<u64, TaskstatsError> {
        match self.wpcopy_count()? {
            0 => Err(TaskstatsError::TaskNotAccounted(self.pid)),
            count => Ok(count),
        }
    }
}

/// Copies `N` bytes at `offset`, or reports the payload as too short for this field.
fn read_array<const N: usize>(raw: &[u8], offset: usize) -> Result<[u8; N], TaskstatsError> {
    raw.get(offset..offset + N)
        .map(|bytes| bytes.try_into().unwrap())
        .ok_or(TaskstatsError::Truncated {
            len: raw.len(),
            needed: offset + N,
        })
}

/// Why taskstats could not be read.
#[derive(Debug)]
pub enum TaskstatsError {
    /// `kernel.task_delayacct` is 0: the kernel does not count delays (nor COW copies).
    DelayAccountingOff,
    /// The task (this tid) made copies but counts none: it was created while delay
    /// accounting was off and is never counted.
    TaskNotAccounted(u32),
    /// The kernel's struct version has no `wpcopy` fields (< 13) or the withdrawn
    /// version-15 layout.
    UnsupportedVersion(u16),
    /// The struct is shorter than the fields read require.
    Truncated { len: usize, needed: usize },
    /// The reply did not contain the expected attributes.
    MalformedReply(String),
    /// Socket, family resolution or kernel error (e.g. no such task).
    Netlink(String),
    /// Reading or writing the sysctl failed.
    Io(io::Error),
}

impl fmt::Display for TaskstatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskstatsError::DelayAccountingOff => write!(
                f,
                "delay accounting is off (kernel.task_delayacct = 0): wpcopy counts are not \
                 collected; enable with `sysctl kernel.task_delayacct=1` before starting the \
                 process to measure"
            ),
            TaskstatsError::TaskNotAccounted(tid) => write!(
                f,
                "delay accounting is off for task {tid}: it was created before \
                 kernel.task_delayacct was set to 1, so its wpcopy counts stay 0"
            ),
            TaskstatsError::UnsupportedVersion(version) => {
                write!(f, "unsupported struct taskstats version {version}")
            }
            TaskstatsError::Truncated { len, needed } => write!(
                f,
                "struct taskstats payload is {len} bytes, fields read need {needed}"
            ),
            TaskstatsError::MalformedReply(what) => write!(f, "malformed taskstats reply: {what}"),
            TaskstatsError::Netlink(what) => write!(f, "taskstats netlink query failed: {what}"),
            TaskstatsError::Io(err) => write!(f, "{DELAYACCT_SYSCTL}: {err}"),
        }
    }
}

impl std::error::Error for TaskstatsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskstatsError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for TaskstatsError {
    fn from(err: io::Error) -> Self {
        TaskstatsError::Io(err)
    }
}

fn netlink_error(context: &str, err: impl fmt::Display) -> TaskstatsError {
    TaskstatsError::Netlink(format!("{context}: {err}"))
}

/// An error from a request: an error the kernel answered with reads as its errno (EPERM
/// without CAP_NET_ADMIN, ESRCH for a gone task) rather than neli's dump of the packet.
fn request_error<T, P>(context: &str, err: RouterError<T, P>) -> TaskstatsError
where
    RouterError<T, P>: fmt::Display,
{
    match err {
        RouterError::Nlmsgerr(answer) => netlink_error(
            context,
            io::Error::from_raw_os_error(answer.error().wrapping_neg()),
        ),
        other => netlink_error(context, other),
    }
}

/// Whether `kernel.task_delayacct` is on.
pub fn delay_accounting_enabled() -> Result<bool, TaskstatsError> {
    let value = std::fs::read_to_string(DELAYACCT_SYSCTL)?;
    Ok(value.trim() != "0")
}

fn set_delay_accounting(on: bool) -> io::Result<()> {
    std::fs::write(DELAYACCT_SYSCTL, if on { "1\n" } else { "0\n" })
}

/// Holders of [`DelayAccountingGuard`] in this process, and the sysctl value to restore when
/// the last one goes away. One process-wide count, so that concurrent users (parallel
/// tests) do not switch accounting off under each other.
static DELAY_ACCOUNTING_HOLDERS: Mutex<(usize, bool)> = Mutex::new((0, false));

/// Keeps `kernel.task_delayacct` on while alive (needs root), then restores the value found
/// when the first guard was taken. Only tasks created while it is on are counted: take the
/// guard before spawning what is to be measured. Guards nest across threads of one
/// process; other processes toggling the sysctl at the same time are not coordinated with.
#[derive(Debug)]
#[must_use = "delay accounting is restored when the guard is dropped"]
pub struct DelayAccountingGuard(());

impl DelayAccountingGuard {
    pub fn enable() -> Result<Self, TaskstatsError> {
        let mut holders = DELAY_ACCOUNTING_HOLDERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if holders.0 == 0 {
            let was_on = delay_accounting_enabled()?;
            if !was_on {
                set_delay_accounting(true)?;
            }
            holders.1 = was_on;
        }
        holders.0 += 1;
        Ok(DelayAccountingGuard(()))
    }
}

impl Drop for DelayAccountingGuard {
    fn drop(&mut self) {
        let mut holders = DELAY_ACCOUNTING_HOLDERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        holders.0 -= 1;
        if holders.0 == 0 && !holders.1 {
            let _ = set_delay_accounting(false);
        }
    }
}

/// A generic-netlink connection with the taskstats family resolved, for repeated queries.
pub struct TaskstatsClient {
    router: NlRouter,
    family_id: u16,
}

impl TaskstatsClient {
    pub fn connect() -> Result<Self, TaskstatsError> {
        let (router, _multicast) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|err| netlink_error("connecting a generic netlink socket", err))?;
        let family_id = router
            .resolve_genl_family(FAMILY_NAME)
            .map_err(|err| netlink_error("resolving the TASKSTATS family", err))?;
        Ok(TaskstatsClient { router, family_id })
    }

    /// Queries the stats of one task (a thread id; for a single-threaded process, its pid).
    pub fn query(&self, tid: u32) -> Result<TaskStats, TaskstatsError> {
        let sysctl_on = delay_accounting_enabled()?;
        let pid_attr = NlattrBuilder::default()
            .nla_type(
                AttrTypeBuilder::default()
                    .nla_type(CMD_ATTR_PID)
                    .build()
                    .map_err(|err| netlink_error("building request", err))?,
            )
            .nla_payload(tid)
            .build()
            .map_err(|err| netlink_error("building request", err))?;
        let request = GenlmsghdrBuilder::<u8, u16>::default()
            .cmd(CMD_GET)
            .version(GENL_VERSION)
            .attrs(std::iter::once(pid_attr).collect::<GenlBuffer<u16, Buffer>>())
            .build()
            .map_err(|err| netlink_error("building request", err))?;
        let replies = self
            .router
            .send::<_, _, u16, Genlmsghdr<u8, u16>>(
                self.family_id,
                NlmF::empty(),
                NlPayload::Payload(request),
            )
            .map_err(|err| netlink_error("sending TASKSTATS_CMD_GET", err))?;

        let mut stats = None;
        for reply in replies {
            let reply = reply.map_err(|err| request_error(&format!("task {tid}"), err))?;
            let Some(genl) = reply.get_payload() else {
                continue; // the ACK closing the exchange
            };
            let attrs = genl.attrs().get_attr_handle();
            let Some(aggregate) = attrs.get_attribute(TYPE_AGGR_PID) else {
                continue;
            };
            let nested = aggregate
                .get_attr_handle::<u16>()
                .map_err(|err| TaskstatsError::MalformedReply(err.to_string()))?;
            let reply_pid = nested
                .get_attr_payload_as::<u32>(TYPE_PID)
                .map_err(|err| TaskstatsError::MalformedReply(format!("TYPE_PID: {err}")))?;
            if reply_pid != tid {
                return Err(TaskstatsError::MalformedReply(format!(
                    "asked for task {tid}, got {reply_pid}"
                )));
            }
            let raw = nested.get_attribute(TYPE_STATS).ok_or_else(|| {
                TaskstatsError::MalformedReply("no TASKSTATS_TYPE_STATS".to_string())
            })?;
            stats = Some(TaskStats::parse(raw.nla_payload().as_ref(), sysctl_on)?);
        }
        stats.ok_or_else(|| {
            TaskstatsError::MalformedReply("no TASKSTATS_TYPE_AGGR_PID in reply".to_string())
        })
    }
}

/// One-shot [`TaskstatsClient::query`].
pub fn query(tid: u32) -> Result<TaskStats, TaskstatsError> {
    TaskstatsClient::connect()?.query(tid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets and size printed by a C compiler for the version-13 header installed on the
    /// development machine (`/usr/include/linux/taskstats.h`), via `offsetof`/`sizeof`.
    #[test]
    fn v13_layout_matches_the_c_header() {
        assert_eq!(offset_of!(RawTaskstatsV13, ac_exitcode), 4);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_flag), 8);
        assert_eq!(offset_of!(RawTaskstatsV13, cpu_count), 16);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_comm), 80);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_sched), 112);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_uid), 120);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_pid), 128);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_etime), 144);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_minflt), 168);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_majflt), 176);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_btime64), 344);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_tgid), 368);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_tgetime), 376);
        assert_eq!(offset_of!(RawTaskstatsV13, ac_exe_inode), 392);
        assert_eq!(offset_of!(RawTaskstatsV13, wpcopy_count), 400);
        assert_eq!(offset_of!(RawTaskstatsV13, wpcopy_delay_total), 408);
        assert_eq!(size_of::<RawTaskstatsV13>(), 416);
    }

    /// A synthetic struct of `len` bytes with recognisable values in the fields we read.
    fn synthetic(version: u16, len: usize) -> Vec<u8> {
        let mut raw = vec![0u8; len];
        let mut put =
            |offset: usize, bytes: &[u8]| raw[offset..offset + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(RawTaskstatsV13, version), &version.to_ne_bytes());
        put(offset_of!(RawTaskstatsV13, ac_comm), b"cowtrace\0");
        put(offset_of!(RawTaskstatsV13, ac_pid), &4242u32.to_ne_bytes());
        put(
            offset_of!(RawTaskstatsV13, ac_minflt),
            &1500u64.to_ne_bytes(),
        );
        put(offset_of!(RawTaskstatsV13, ac_majflt), &3u64.to_ne_bytes());
        put(offset_of!(RawTaskstatsV13, ac_tgid), &4240u32.to_ne_bytes());
        put(
            offset_of!(RawTaskstatsV13, wpcopy_count),
            &503u64.to_ne_bytes(),
        );
        put(
            offset_of!(RawTaskstatsV13, wpcopy_delay_total),
            &777u64.to_ne_bytes(),
        );
        raw
    }

    #[test]
    fn parses_version_16_struct() {
        let stats = TaskStats::parse(&synthetic(16, 560), true).unwrap();
        assert_eq!(
            stats,
            TaskStats {
                version: 16,
                struct_len: 560,
                pid: 4242,
                tgid: 4240,
                comm: "cowtrace".to_string(),
                minor_faults: 1500,
                major_faults: 3,
                delay_accounting: true,
                wpcopy_count_raw: 503,
                wpcopy_delay_total_ns: 777,
            }
        );
        assert_eq!(stats.wpcopy_count().unwrap(), 503);
    }

    #[test]
    fn parses_minimal_version_13_struct() {
        let stats = TaskStats::parse(&synthetic(13, 416), true).unwrap();
        assert_eq!(stats.wpcopy_count_raw, 503);
    }

    #[test]
    fn rejects_versions_without_wpcopy_and_the_withdrawn_layout() {
        for version in [12, WITHDRAWN_LAYOUT_VERSION] {
            match TaskStats::parse(&synthetic(version, 560), true) {
                Err(TaskstatsError::UnsupportedVersion(v)) => assert_eq!(v, version),
                other => panic!("version {version}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_a_truncated_struct() {
        match TaskStats::parse(&synthetic(16, 416)[..410], true) {
            Err(TaskstatsError::Truncated { len: 410, needed }) => assert_eq!(needed, 416),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn copier_with_zero_count_is_not_accounted() {
        let mut raw = synthetic(16, 560);
        // What the kernel sends for a task without a delay record: wpcopy fields zero.
        raw[offset_of!(RawTaskstatsV13, wpcopy_count)..][..16].fill(0);
        let stats = TaskStats::parse(&raw, true).unwrap();
        assert_eq!(stats.wpcopy_count().unwrap(), 0);
        let err = stats.wpcopy_count_of_copier().unwrap_err();
        assert!(
            matches!(err, TaskstatsError::TaskNotAccounted(4242)),
            "{err:?}"
        );
        assert!(err.to_string().contains("created before"), "{err}");
        let counted = TaskStats::parse(&synthetic(16, 560), true).unwrap();
        assert_eq!(counted.wpcopy_count_of_copier().unwrap(), 503);
    }

    #[test]
    fn wpcopy_count_says_when_delay_accounting_is_off() {
        let stats = TaskStats::parse(&synthetic(16, 560), false).unwrap();
        let err = stats.wpcopy_count().unwrap_err();
        assert!(matches!(err, TaskstatsError::DelayAccountingOff));
        assert!(err.to_string().contains("delay accounting is off"));
    }

    const PRE_TOUCHED_COW_PAGES: usize = 13;

    #[test]
    #[ignore = "needs root: run with cargo xtask test"]
    fn child_writing_cow_pages_counts_at_least_that_many_copies() {
        let _alone = crate::exclusive_forks();
        let _accounting = DelayAccountingGuard::enable().unwrap();
        let region =
            crate::sys::AnonRegion::map(PRE_TOUCHED_COW_PAGES, crate::sys::page_size()).unwrap();
        region.write_pages(0..PRE_TOUCHED_COW_PAGES, 1);
        // SAFETY: volatile stores only.
        let mut child = unsafe {
            crate::process::BlockedChild::fork(|| region.write_pages(0..PRE_TOUCHED_COW_PAGES, 2))
        }
        .unwrap();
        child.wait_ready().unwrap();
        let stats = query(child.pid());
        let exit = child.release_and_wait().unwrap();
        let stats = stats.unwrap();
        assert!(exit.success(), "{exit}");
        assert_eq!(stats.pid, stats.tgid, "a forked child is single-threaded");
        assert!(stats.version >= FIRST_VERSION_WITH_WPCOPY);
        let copies = stats.wpcopy_count().unwrap();
        // The upper bound catches reading the wrong field (a delay total would be huge);
        // the slack covers the child's own stack and libc pages it writes after the fork.
        assert!(
            (PRE_TOUCHED_COW_PAGES as u64..PRE_TOUCHED_COW_PAGES as u64 + 64).contains(&copies),
            "child made {copies} COW copies, expected at least {PRE_TOUCHED_COW_PAGES}"
        );
    }

    #[test]
    #[ignore = "needs root: run with cargo xtask test"]
    fn idle_unforked_process_has_a_stable_count() {
        let _accounting = DelayAccountingGuard::enable().unwrap();
        // A freshly exec'd process that does nothing: its COW count must not move.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let client = TaskstatsClient::connect().unwrap();
        let first = client.query(sleeper.id());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let second = client.query(sleeper.id());
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.comm, "sleep");
        assert!(first.delay_accounting);
        assert_eq!(
            first.wpcopy_count().unwrap(),
            second.wpcopy_count().unwrap()
        );
        assert_eq!(first.minor_faults, second.minor_faults);
    }

    #[test]
    #[ignore = "needs root: run with cargo xtask test"]
    fn reports_delay_accounting_state_and_fails_for_missing_task() {
        let _accounting = DelayAccountingGuard::enable().unwrap();
        assert!(delay_accounting_enabled().unwrap());
        let before = query(crate::sys::gettid()).unwrap();
        // A fresh test thread may not have faulted yet: make it take exactly one fault.
        // SAFETY: a private anonymous mapping of one page, written once, then unmapped.
        unsafe {
            let page = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(page, libc::MAP_FAILED);
            std::ptr::write_volatile(page.cast::<u8>(), 1);
            libc::munmap(page, 4096);
        }
        let own = query(crate::sys::gettid()).unwrap();
        assert!(own.delay_accounting);
        assert!(
            own.minor_faults > before.minor_faults,
            "{before:?} -> {own:?}"
        );
        // The kernel sends its whole struct; it must at least hold the fields we read.
        assert!(own.struct_len >= size_of::<RawTaskstatsV13>(), "{own:?}");
        // pid_max is at most 2^22, so this task cannot exist.
        match query(u32::MAX / 2) {
            Err(TaskstatsError::Netlink(what)) => {
                assert!(what.contains("No such process"), "{what}")
            }
            other => panic!("{other:?}"),
        }
    }
}
