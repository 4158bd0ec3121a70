//! The machine the benchmark runs on: what it is, and how busy others keep it.

use std::{
    fs,
    process::{Child, Command, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::outputs::{self, CpuTimes};
use crate::process;

/// What the report says about the machine.
#[derive(Clone, Debug, Default)]
pub struct MachineInfo {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub memory_gib: f64,
    pub clocksource: String,
    /// The CPU flags say `hypervisor`: a virtual machine, where interrupts and some MSR
    /// writes exit to the host.
    pub virtual_machine: bool,
    pub date_utc: String,
    /// `git describe`-like: the commit measured, and whether the tree had local changes.
    pub tree: String,
    pub tools: Vec<(String, String)>,
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn first_line_of(cmd: &mut Command) -> String {
    process::stdout(cmd)
        .ok()
        .and_then(|out| out.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "not installed".to_string())
}

pub fn describe(root: &std::path::Path) -> MachineInfo {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let virtual_machine = cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|flag| flag == "hypervisor"));
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let commit = process::stdout(
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(root),
    )
    .map(|out| out.trim().to_string())
    .unwrap_or_else(|_| "unknown commit".to_string());
    let dirty = process::stdout(
        Command::new("git")
            .args(["status", "--porcelain"])
            .current_dir(root),
    )
    .map(|out| !out.trim().is_empty())
    .unwrap_or(false);
    MachineInfo {
        cpu_model,
        cores: thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        memory_gib: memory_kib / (1024.0 * 1024.0),
        clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .trim()
            .to_string(),
        virtual_machine,
        date_utc: first_line_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        tree: if dirty {
            format!("{commit} with uncommitted changes")
        } else {
            commit
        },
        tools: vec![
            (
                "perf".into(),
                first_line_of(Command::new("perf").arg("version")),
            ),
            (
                "bpftrace".into(),
                first_line_of(Command::new("bpftrace").arg("--version")),
            ),
            (
                "bpftool".into(),
                first_line_of(Command::new("bpftool").arg("version")),
            ),
        ],
    }
}

fn cpu_now() -> Result<CpuTimes> {
    outputs::cpu_times(&read("/proc/stat")).context("cannot read /proc/stat")
}

/// Share of the machine's CPU time (0..1) used while `window` passed, by anyone.
fn busy_share_over(window: Duration) -> Result<f64> {
    let before = cpu_now()?;
    thread::sleep(window);
    let after = cpu_now()?;
    let total = after.total.saturating_sub(before.total);
    Ok(if total == 0 {
        0.0
    } else {
        after.busy.saturating_sub(before.busy) as f64 / total as f64
    })
}

/// Busy share below which the machine counts as quiet before a run starts.
pub const QUIET_SHARE: f64 = 0.10;

/// Busy share right after a run above which others are taken to have been busy during it (a
/// build, another session's tests: they last far longer than a run). Higher than
/// [`QUIET_SHARE`]: the end of our own run (memory being freed, a reader draining) still
/// shows for a moment.
pub const BUSY_AFTER_SHARE: f64 = 0.25;

/// Tracing BPF programs loaded now, by anyone. Another tracer on the fault path (another
/// session's cowtrace, say) runs its programs on every fault of every process, ours included.
pub fn tracing_programs_loaded() -> Result<usize> {
    let json = process::stdout(process::as_root("bpftool", &[])?.args(["prog", "show", "-j"]))?;
    Ok(outputs::bpf_programs(&json)?
        .iter()
        .filter(|program| program.is_tracing())
        .count())
}

/// The state of the machine around a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quiet {
    /// Busy share over a quarter second.
    pub busy_share: f64,
    /// Tracing BPF programs others had loaded.
    pub tracing_programs: usize,
}

impl Quiet {
    pub fn is_quiet(&self) -> bool {
        self.busy_share < QUIET_SHARE && self.tracing_programs == 0
    }
}

/// Waits, up to `patience`, for the machine to be quiet: busy share below [`QUIET_SHARE`]
/// over a quarter second, and no tracing BPF program loaded. Returns the last state seen.
pub fn wait_until_quiet(patience: Duration) -> Result<Quiet> {
    let started = Instant::now();
    loop {
        let quiet = Quiet {
            busy_share: busy_share_over(Duration::from_millis(250))?,
            tracing_programs: tracing_programs_loaded()?,
        };
        if quiet.is_quiet() || started.elapsed() >= patience {
            return Ok(quiet);
        }
    }
}

/// The state of the machine right after a run. The kernel frees a closed program's memory
/// after an RCU grace period, so the run's own programs may still be listed for a moment:
/// only those still there after two seconds are taken for others'.
pub fn state_after_run() -> Result<Quiet> {
    let busy_share = busy_share_over(Duration::from_millis(250))?;
    let started = Instant::now();
    let mut tracing_programs = tracing_programs_loaded()?;
    while tracing_programs > 0 && started.elapsed() < Duration::from_secs(2) {
        thread::sleep(Duration::from_millis(100));
        tracing_programs = tracing_programs_loaded()?;
    }
    Ok(Quiet {
        busy_share,
        tracing_programs,
    })
}

/// Runs `cmd` to completion; past `deadline` it is stopped (see [`wait_with_deadline`]).
pub fn run_to_completion(cmd: &mut Command, deadline: Duration) -> Result<ExitStatus> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{}`", process::display(cmd)))?;
    wait_with_deadline(&mut child, deadline, || {})
        .with_context(|| format!("running `{}`", process::display(cmd)))
}

/// Waits for `child`, calling `on_tick` every 10 ms meanwhile; past `deadline` sends it
/// SIGTERM (cowtrace then detaches and prints its summary), then SIGKILL five seconds later,
/// and fails.
pub fn wait_with_deadline(
    child: &mut Child,
    deadline: Duration,
    mut on_tick: impl FnMut(),
) -> Result<ExitStatus> {
    let started = Instant::now();
    let mut terminated_at = None;
    loop {
        on_tick();
        if let Some(status) = child.try_wait()? {
            return match terminated_at {
                None => Ok(status),
                Some(_) => bail!("timed out after {deadline:?}; ended with {status}"),
            };
        }
        match terminated_at {
            None if started.elapsed() > deadline => {
                // SAFETY: signalling our own child by the pid we spawned it with.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                terminated_at = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(5) => {
                child.kill()?;
            }
            _ => {}
        }
        thread::sleep(Duration::from_millis(10));
    }
}
