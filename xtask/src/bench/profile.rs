//! Where the tracing time goes, for the report's account of a missed target:
//!
//! - the kernel's own run-time statistics of every BPF program during one storm
//!   (`kernel.bpf_stats_enabled`), for cowtrace's programs and for the bpftrace script that
//!   classifies the same way, so the two can be compared program by program;
//! - `bpftool prog profile`, where the kernel and bpftool allow it;
//! - `perf record` of the workload with and without cowtrace.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    path::Path,
    process::{Child, Command},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use cowtrace_workloads::fault_storm::PAGES_VAR;

use super::{
    machine,
    outputs::{self, ProgramStats, SymbolShare},
    runner::{self, Bench},
};
use crate::process;

/// How many of the hottest symbols the report lists.
pub const TOP_SYMBOLS: usize = 20;

/// One tracer's programs over one storm.
#[derive(Clone, Debug)]
pub struct ProgramsRun {
    /// Its programs, with the kernel's run count and run time of each.
    pub programs: Vec<ProgramStats>,
    /// Faults the tracer reported for the run.
    pub faults_traced: Option<u64>,
}

impl ProgramsRun {
    /// Run time of the programs in `role` divided by the faults traced.
    pub fn ns_per_fault(&self, role: FaultPathRole) -> Option<f64> {
        let faults = self.faults_traced.filter(|n| *n > 0)?;
        let ns: u64 = self
            .programs
            .iter()
            .filter(|program| FaultPathRole::of(&program.name) == Some(role))
            .map(|program| program.run_time_ns)
            .sum();
        Some(ns as f64 / faults as f64)
    }
}

/// The three steps of following a fault, whichever tracer's program takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPathRole {
    /// `exceptions:page_fault_user` / `page_fault_kernel`.
    Start,
    /// `kmem:mm_page_alloc`.
    Allocation,
    /// `memcg:count_memcg_events`.
    End,
}

impl FaultPathRole {
    pub const ALL: [FaultPathRole; 3] = [
        FaultPathRole::Start,
        FaultPathRole::Allocation,
        FaultPathRole::End,
    ];

    /// The role of a program by its name: cowtrace names its programs after what they do,
    /// bpftrace after the tracepoint (cut to the kernel's 15 bytes).
    pub fn of(name: &str) -> Option<FaultPathRole> {
        match name {
            "fault_start" | "page_fault_user" | "page_fault_kern" => Some(FaultPathRole::Start),
            "page_alloc" | "mm_page_alloc" => Some(FaultPathRole::Allocation),
            "fault_end" | "count_memcg_eve" => Some(FaultPathRole::End),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FaultPathRole::Start => "fault start (page_fault_user/kernel)",
            FaultPathRole::Allocation => "allocation (mm_page_alloc)",
            FaultPathRole::End => "fault end (count_memcg_events)",
        }
    }
}

/// Interrupts the architecture counts (`/proc/interrupts`), during one storm.
#[derive(Clone, Debug)]
pub struct Interrupts {
    pub untraced: BTreeMap<String, u64>,
    pub traced: BTreeMap<String, u64>,
    /// Records cowtrace produced in the traced storm.
    pub records: u64,
}

/// The interrupts the report shows, and what each means here.
pub const INTERRUPTS_SHOWN: [(&str, &str); 4] = [
    (
        "IWI",
        "IRQ work; under cowtrace, a ring-buffer commit that wakes the reader: a fault record \
         only once half the buffer waits, a process or syscall record at once",
    ),
    (
        "CAL",
        "function calls; waking a task on another CPU, such as the reader, sends one",
    ),
    ("RES", "rescheduling"),
    ("TLB", "TLB shootdowns"),
];

#[derive(Clone, Debug)]
pub struct Profile {
    pub cowtrace_programs: Result<ProgramsRun, String>,
    pub bpftrace_programs: Result<ProgramsRun, String>,
    /// What `bpftool prog profile` said.
    pub prog_profile: String,
    /// Hottest symbols of the workload's own samples, traced and untraced.
    pub perf_traced: Result<Vec<SymbolShare>, String>,
    pub perf_untraced: Result<Vec<SymbolShare>, String>,
    pub interrupts: Result<Interrupts, String>,
}

pub fn run(bench: &Bench) -> Profile {
    let (cowtrace_programs, prog_profile) = match cowtrace_statistics(bench) {
        Ok((programs, prog_profile)) => (Ok(programs), prog_profile),
        Err(err) => (Err(format!("{err:#}")), "not tried".to_string()),
    };
    Profile {
        cowtrace_programs,
        bpftrace_programs: bpftrace_statistics(bench).map_err(|err| format!("{err:#}")),
        prog_profile,
        perf_traced: workload_profile(bench, true).map_err(|err| format!("{err:#}")),
        perf_untraced: workload_profile(bench, false).map_err(|err| format!("{err:#}")),
        interrupts: interrupts(bench).map_err(|err| format!("{err:#}")),
    }
}

/// `/proc/interrupts` before and after one storm, untraced and under cowtrace.
fn interrupts(bench: &Bench) -> Result<Interrupts> {
    let read = || -> Result<BTreeMap<String, u64>> {
        Ok(outputs::interrupt_counts(
            &fs::read_to_string("/proc/interrupts").context("reading /proc/interrupts")?,
        ))
    };
    let during = |cmd: &mut Command| -> Result<BTreeMap<String, u64>> {
        let before = read()?;
        let status = machine::run_to_completion(cmd, Duration::from_secs(300))?;
        let after = read()?;
        if !status.success() {
            bail!("`{}` failed ({status})", process::display(cmd));
        }
        Ok(after
            .iter()
            .map(|(name, count)| {
                let earlier = before.get(name).copied().unwrap_or(0);
                (name.clone(), count.saturating_sub(earlier))
            })
            .collect())
    };
    let vars = [(PAGES_VAR.into(), bench.pages.to_string().into())];
    let report = bench.scratch.join("interrupts-storm.json");
    let stderr_path = bench.scratch.join("interrupts-stderr.txt");

    let mut untraced = process::as_root(&bench.workload, &vars)?;
    untraced
        .args(["fault-storm", "--report"])
        .arg(&report)
        .stdout(File::create(bench.scratch.join("interrupts-stdout.txt"))?);
    let untraced = during(&mut untraced)?;

    let mut traced = process::as_root(&bench.cowtrace, &vars)?;
    traced
        .args(["trace", "-q", "--json", "/dev/null", "--"])
        .arg(&bench.workload)
        .args(["fault-storm", "--report"])
        .arg(&report)
        .stdout(File::create(bench.scratch.join("interrupts-stdout.txt"))?)
        .stderr(File::create(&stderr_path)?);
    println!("bench: profile: {}", process::display(&traced));
    let traced = during(&mut traced)?;
    let summary = outputs::cowtrace_summary(&fs::read_to_string(&stderr_path)?)
        .with_context(|| format!("no `records:` line in {}", stderr_path.display()))?;
    Ok(Interrupts {
        untraced,
        traced,
        records: summary.produced,
    })
}

/// Switches `kernel.bpf_stats_enabled` on, and back to what it was when dropped.
struct BpfStatsGuard {
    previous: String,
}

const BPF_STATS: &str = "kernel.bpf_stats_enabled";

fn sysctl_write(value: &str) -> Result<()> {
    process::stdout(process::as_root("sysctl", &[])?.args(["-w", &format!("{BPF_STATS}={value}")]))
        .map(drop)
}

impl BpfStatsGuard {
    fn enable() -> Result<BpfStatsGuard> {
        let previous = fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .context("reading kernel.bpf_stats_enabled")?
            .trim()
            .to_string();
        sysctl_write("1")?;
        Ok(BpfStatsGuard { previous })
    }
}

impl Drop for BpfStatsGuard {
    fn drop(&mut self) {
        if let Err(err) = sysctl_write(&self.previous) {
            eprintln!(
                "bench: could not restore {BPF_STATS}={}: {err:#}",
                self.previous
            );
        }
    }
}

/// One tracer's programs among all loaded ones: those loaded since `spawned_at` (Unix
/// seconds) that share a map with the newest program named `anchor` loaded since then.
/// Another tracer, or another session's cowtrace, uses other maps.
pub fn select_programs(all: &[ProgramStats], spawned_at: u64, anchor: &str) -> Vec<ProgramStats> {
    let recent = |program: &&ProgramStats| program.loaded_at + 1 >= spawned_at;
    let Some(anchor) = all
        .iter()
        .filter(recent)
        .filter(|program| program.name == anchor)
        .max_by_key(|program| program.id)
    else {
        return Vec::new();
    };
    all.iter()
        .filter(recent)
        .filter(|program| program.map_ids.iter().any(|id| anchor.map_ids.contains(id)))
        .cloned()
        .collect()
}

fn unix_seconds() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// After the storm under `child` has written `report` (its last act), reads the programs
/// loaded since `spawned_at` that belong with `anchor`. The traced command sleeps after the
/// storm, so the tracer's programs are still loaded.
fn programs_after_storm(
    child: &mut Child,
    report: &Path,
    spawned_at: u64,
    anchor: &str,
) -> Result<Vec<ProgramStats>> {
    let started = Instant::now();
    while runner::read_storm_report(report).is_err() {
        if child.try_wait()?.is_some() || started.elapsed() > Duration::from_secs(120) {
            bail!("the storm wrote no report at {}", report.display());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let json = process::stdout(process::as_root("bpftool", &[])?.args(["prog", "show", "-j"]))?;
    let programs = select_programs(&outputs::bpf_programs(&json)?, spawned_at, anchor);
    if programs.is_empty() {
        bail!("no program named {anchor} loaded since the tracer started");
    }
    Ok(programs)
}

/// Seconds the traced command sleeps after its storm, keeping the programs loaded.
const LOADED_WINDOW: &str = "6";

/// cowtrace's programs over one storm, with BPF statistics on; tries `bpftool prog profile`
/// while they are loaded.
fn cowtrace_statistics(bench: &Bench) -> Result<(ProgramsRun, String)> {
    let report = bench.scratch.join("stats-cowtrace-storm.json");
    let stderr_path = bench.scratch.join("stats-cowtrace-stderr.txt");
    let _ = fs::remove_file(&report);
    let _stats = BpfStatsGuard::enable()?;
    let spawned_at = unix_seconds()?;
    let vars = [(PAGES_VAR.into(), bench.pages.to_string().into())];
    let mut cmd = process::as_root(&bench.cowtrace, &vars)?;
    cmd.args(["trace", "-q", "--json", "/dev/null", "--", "/bin/sh", "-c"])
        .arg(format!(
            r#""$0" fault-storm --report "$1" && exec sleep {LOADED_WINDOW}"#
        ))
        .arg(&bench.workload)
        .arg(&report)
        .stdout(File::create(
            bench.scratch.join("stats-cowtrace-stdout.txt"),
        )?)
        .stderr(File::create(&stderr_path)?);
    println!("bench: profile: {}", process::display(&cmd));
    let mut child = cmd.spawn().context("cannot start cowtrace")?;
    let outcome = programs_after_storm(&mut child, &report, spawned_at, "fault_end")
        .map(|programs| (prog_profile(&programs), programs));
    let status = machine::wait_with_deadline(&mut child, Duration::from_secs(120), || {})?;
    let (prog_profile, programs) = outcome?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    let summary = outputs::cowtrace_summary(&fs::read_to_string(&stderr_path)?);
    Ok((
        ProgramsRun {
            programs,
            faults_traced: summary.and_then(|summary| summary.faults),
        },
        prog_profile,
    ))
}

/// `bpftool prog profile` on cowtrace's `fault_end`: bpftool attaches fentry/fexit programs
/// to the profiled one, which needs a bpftool built with BPF skeletons and a kernel that
/// allows fentry. Returns what it said.
fn prog_profile(programs: &[ProgramStats]) -> String {
    let Some(fault_end) = programs.iter().find(|program| program.name == "fault_end") else {
        return "not tried: no fault_end program".to_string();
    };
    let id = fault_end.id.to_string();
    let args = [
        "prog",
        "profile",
        "id",
        &id,
        "duration",
        "1",
        "cycles",
        "instructions",
    ];
    let output = match process::as_root("bpftool", &[]).and_then(|mut cmd| {
        cmd.args(args)
            .output()
            .context("cannot run bpftool prog profile")
    }) {
        Ok(output) => output,
        Err(err) => return format!("{err:#}"),
    };
    let said: Vec<String> = [&output.stderr, &output.stdout]
        .iter()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .take(6)
        .collect();
    format!(
        "`bpftool {}` ({}): {}",
        args.join(" "),
        output.status,
        said.join(" / ")
    )
}

/// The bpftrace script's programs over one storm, with BPF statistics on. bpftrace takes its
/// command as one string split at spaces, so the storm and the sleep go into a small shell
/// script, run through `/bin/sh` (bpftrace 0.17 only starts ELF executables).
fn bpftrace_statistics(bench: &Bench) -> Result<ProgramsRun> {
    let report = bench.scratch.join("stats-bpftrace-storm.json");
    let output = bench.scratch.join("stats-bpftrace-output.json");
    let wrapper = bench.scratch.join("storm-then-sleep.sh");
    let _ = fs::remove_file(&report);
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n'{}' fault-storm --report '{}' && exec sleep {LOADED_WINDOW}\n",
            bench.workload.display(),
            report.display()
        ),
    )?;
    let wrapper = wrapper.to_string_lossy();
    if wrapper.contains(char::is_whitespace) {
        bail!("bpftrace -c cannot run {wrapper}: its path has spaces");
    }
    let _stats = BpfStatsGuard::enable()?;
    let spawned_at = unix_seconds()?;
    let vars = [(PAGES_VAR.into(), bench.pages.to_string().into())];
    let mut cmd = process::as_root("bpftrace", &vars)?;
    cmd.args(["-f", "json", "-o"])
        .arg(&output)
        .arg("-c")
        .arg(format!("/bin/sh {wrapper}"))
        .arg(&bench.kinds_script)
        .args([
            bench.pgfault_item.to_string(),
            bench.migrate_movable.to_string(),
            "0".to_string(),
        ])
        .stdout(File::create(
            bench.scratch.join("stats-bpftrace-stdout.txt"),
        )?)
        .stderr(File::create(
            bench.scratch.join("stats-bpftrace-stderr.txt"),
        )?);
    println!("bench: profile: {}", process::display(&cmd));
    let mut child = cmd.spawn().context("cannot start bpftrace")?;
    let programs = programs_after_storm(&mut child, &report, spawned_at, "count_memcg_eve");
    let status = machine::wait_with_deadline(&mut child, Duration::from_secs(120), || {})?;
    let programs = programs?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    let counted = outputs::bpftrace_output(&fs::read_to_string(&output)?);
    Ok(ProgramsRun {
        programs,
        faults_traced: Some(counted.faults()),
    })
}

/// The comm the kernel gives the workload: its file name, cut to 15 bytes.
fn workload_comm(workload: &Path) -> String {
    let name = workload
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    name.chars().take(15).collect()
}

/// The comms of cowtrace's threads: the main thread drains the ring buffer, the runtime's
/// worker does the rest.
pub const TRACER_COMMS: &str = "cowtrace,tokio-rt-worker";

/// `perf record -e cpu-clock` of `cmd` into `data`; a virtual machine may offer no hardware
/// counters.
pub fn perf_record(
    data: &Path,
    vars: &[(std::ffi::OsString, std::ffi::OsString)],
) -> Result<Command> {
    let mut record = process::as_root("perf", vars)?;
    record
        .args(["record", "-e", "cpu-clock", "-F", "4999", "-o"])
        .arg(data)
        .arg("--");
    Ok(record)
}

/// The hottest symbols of the samples of `comms` (comma-separated) in `data`, as shares of
/// those samples.
pub fn hottest_symbols(data: &Path, comms: &str) -> Result<Vec<SymbolShare>> {
    let text = process::stdout(
        process::as_root("perf", &[])?
            .args(["report", "-i"])
            .arg(data)
            .args(["--comm", comms])
            .args([
                "--percentage",
                "relative",
                "--no-children",
                "--sort",
                "sym",
                "--stdio",
            ]),
    )?;
    let mut symbols = outputs::perf_report_symbols(&text);
    symbols.truncate(TOP_SYMBOLS);
    Ok(symbols)
}

/// `perf record` of one storm (under cowtrace when `traced`), then the hottest symbols of the
/// workload's own samples.
fn workload_profile(bench: &Bench, traced: bool) -> Result<Vec<SymbolShare>> {
    let tag = if traced { "traced" } else { "untraced" };
    let data = bench.scratch.join(format!("perf-{tag}.data"));
    let report = bench.scratch.join(format!("perf-{tag}-storm.json"));
    let vars = [(PAGES_VAR.into(), bench.pages.to_string().into())];
    let mut record = perf_record(&data, &vars)?;
    if traced {
        record
            .arg(&bench.cowtrace)
            .args(["trace", "-q", "--json", "/dev/null", "--"]);
    }
    record
        .arg(&bench.workload)
        .args(["fault-storm", "--report"])
        .arg(&report)
        .stdout(File::create(
            bench.scratch.join(format!("perf-{tag}-stdout.txt")),
        )?)
        .stderr(File::create(
            bench.scratch.join(format!("perf-{tag}-stderr.txt")),
        )?);
    println!("bench: profile: {}", process::display(&record));
    let mut child = record.spawn().context("cannot start perf record")?;
    let status = machine::wait_with_deadline(&mut child, Duration::from_secs(300), || {})?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&record));
    }
    let symbols = hottest_symbols(&data, &workload_comm(&bench.workload));
    let _ = fs::remove_file(&data);
    symbols
}

/// Whether a kernel symbol belongs to the tracing machinery rather than to the fault itself:
/// BPF programs and helpers, their maps and task storage, the ring buffer, the tracepoint glue
/// that calls them (raw: `__bpf_trace_*`, `bpf_trace_run*`; classic: `perf_trace_*`,
/// `trace_call_bpf`), the clock they read, the probe reads of fields.
pub fn is_tracing_symbol(symbol: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "bpf_",
        "__bpf",
        "__traceiter_",
        "perf_trace",
        "trace_call_bpf",
        "copy_from_kernel_nofault",
        "pcpu_freelist",
        "ktime_get",
    ];
    const PARTS: [&str; 4] = ["htab", "ringbuf", "irq_work", "lookup_nulls_elem"];
    PREFIXES.iter().any(|prefix| symbol.starts_with(prefix))
        || PARTS.iter().any(|part| symbol.contains(part))
        || symbol == "read_tsc"
}

/// Share (percent) of the listed samples spent in the tracing machinery.
pub fn tracing_share(symbols: &[SymbolShare]) -> f64 {
    symbols
        .iter()
        .filter(|share| share.kernel && is_tracing_symbol(&share.symbol))
        .fold(0.0, |sum, share| sum + share.percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(id: u32, name: &str, loaded_at: u64, maps: &[u32]) -> ProgramStats {
        ProgramStats {
            id,
            name: name.into(),
            loaded_at,
            map_ids: maps.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn selects_the_programs_of_the_newest_tracer() {
        let all = [
            // Another session's cowtrace, loaded earlier, with its own maps.
            program(10, "fault_end", 100, &[1, 2]),
            program(11, "fault_start", 100, &[1, 2]),
            // Ours.
            program(20, "fault_start", 200, &[5, 6]),
            program(21, "fault_end", 200, &[5, 6, 7]),
            program(22, "syscall_exit", 201, &[7]),
            // Something else loaded meanwhile, sharing no map.
            program(23, "sd_fw_ingress", 200, &[9]),
        ];
        let ids: Vec<u32> = select_programs(&all, 200, "fault_end")
            .iter()
            .map(|program| program.id)
            .collect();
        assert_eq!(ids, [20, 21, 22]);
        assert!(select_programs(&all, 300, "fault_end").is_empty());
        assert!(select_programs(&all, 200, "count_memcg_eve").is_empty());
    }

    #[test]
    fn roles_of_cowtrace_and_bpftrace_programs() {
        assert_eq!(FaultPathRole::of("fault_start"), Some(FaultPathRole::Start));
        assert_eq!(
            FaultPathRole::of("page_fault_kern"),
            Some(FaultPathRole::Start)
        );
        assert_eq!(
            FaultPathRole::of("mm_page_alloc"),
            Some(FaultPathRole::Allocation)
        );
        assert_eq!(
            FaultPathRole::of("count_memcg_eve"),
            Some(FaultPathRole::End)
        );
        assert_eq!(FaultPathRole::of("sched_process_f"), None);
    }

    #[test]
    fn run_time_per_fault_sums_the_programs_of_a_role() {
        let mut start_user = program(1, "page_fault_user", 0, &[]);
        start_user.run_time_ns = 3000;
        let mut start_kernel = program(2, "page_fault_kern", 0, &[]);
        start_kernel.run_time_ns = 1000;
        let mut fork = program(3, "sched_process_f", 0, &[]);
        fork.run_time_ns = 99_999;
        let run = ProgramsRun {
            programs: vec![start_user, start_kernel, fork],
            faults_traced: Some(20),
        };
        assert_eq!(run.ns_per_fault(FaultPathRole::Start), Some(200.0));
        assert_eq!(run.ns_per_fault(FaultPathRole::End), Some(0.0));
        let none = ProgramsRun {
            faults_traced: None,
            ..run
        };
        assert_eq!(none.ns_per_fault(FaultPathRole::Start), None);
    }

    #[test]
    fn workload_comm_is_cut_to_fifteen_bytes() {
        assert_eq!(
            workload_comm(Path::new("/t/release/cowtrace-workload")),
            "cowtrace-worklo"
        );
        assert_eq!(workload_comm(Path::new("storm")), "storm");
    }

    #[test]
    fn tracing_symbols_are_told_from_fault_work() {
        for symbol in [
            "bpf_prog_b8910d41bfa75504_fault_end",
            "__bpf_ringbuf_reserve",
            "__bpf_trace_count_memcg_events",
            "bpf_trace_run3",
            "__traceiter_mm_page_alloc",
            "bpf_task_storage_get",
            "bpf_local_storage_lookup",
            "__htab_map_lookup_elem",
            "trace_call_bpf",
            "perf_trace_mm_page_alloc",
            "copy_from_kernel_nofault",
            "irq_work_queue",
        ] {
            assert!(is_tracing_symbol(symbol), "{symbol}");
        }
        for symbol in [
            "clear_page_erms",
            "do_wp_page",
            "copy_mc_enhanced_fast_string",
        ] {
            assert!(!is_tracing_symbol(symbol), "{symbol}");
        }
        let symbols = [
            SymbolShare {
                percent: 11.0,
                kernel: true,
                symbol: "trace_call_bpf".into(),
            },
            SymbolShare {
                percent: 30.0,
                kernel: true,
                symbol: "clear_page_erms".into(),
            },
            SymbolShare {
                percent: 2.0,
                kernel: false,
                symbol: "bpf_user_function".into(),
            },
        ];
        assert_eq!(tracing_share(&symbols), 11.0);
        // Nothing listed is 0, not -0.
        assert_eq!(tracing_share(&[]).to_string(), "0");
    }
}
