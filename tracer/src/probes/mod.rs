//! Probes: finds what this kernel offers, loads the eBPF programs with this kernel's settings,
//! attaches them to tracepoints, and hands out the maps user space needs.
//!
//! Only tracepoints are used, so cowtrace runs where kprobes and fentry are not available
//! (locked-down or minimal kernels) as well as everywhere else. The four that fire on every
//! fault are attached raw (the program gets the tracepoint's arguments, with no perf record
//! filled first: about half the cost per fault); the rest are classic, with their fields'
//! offsets read from tracefs.

pub mod btf;
pub mod floor;
pub mod frames;
pub mod syscalls;
pub mod tracefs;

use std::fs;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{Program, RawTracePoint, TracePoint},
};
use cowtrace_common::{Counter, ProbeConfig, config::OFFSET_ABSENT};

use self::{btf::KernelBtf, syscalls::SyscallPlan, tracefs::Tracefs};

/// The compiled eBPF object (built by build.rs from `tracer-ebpf`).
pub(crate) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowtrace"));

/// Names of the programs as loaded in the kernel (bpftool shows them); tests use them to check
/// that nothing is left behind.
pub const PROGRAM_NAMES: [&str; 12] = [
    "fault_start",
    "page_alloc",
    "filemap_fault",
    "fault_around",
    "cache_fill",
    "fault_end",
    "task_newtask",
    "process_fork",
    "process_exec",
    "process_exit",
    "syscall_enter",
    "syscall_exit",
];

/// How a program attaches to its tracepoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Classic: the program reads the tracepoint's record (offsets from tracefs).
    Classic,
    /// Raw: the program gets the `TP_PROTO` arguments, checked against these (as BTF spells
    /// them) at start-up, since the programs read them by position.
    Raw(&'static [&'static str]),
}

const FAULT_ARGS: &[&str] = &["long unsigned int", "struct pt_regs *", "long unsigned int"];

/// One tracepoint and the program attached to it.
struct Attachment {
    program: &'static str,
    probe: Probe,
    category: &'static str,
    event: &'static str,
    /// Without it cowtrace cannot classify faults at all; otherwise it runs with less detail.
    required: bool,
    /// What is lost when an optional tracepoint is missing.
    without: &'static str,
}

const ATTACHMENTS: [Attachment; 11] = [
    Attachment {
        program: "fault_start",
        probe: Probe::Raw(FAULT_ARGS),
        category: "exceptions",
        event: "page_fault_user",
        required: true,
        without: "",
    },
    Attachment {
        program: "fault_start",
        probe: Probe::Raw(FAULT_ARGS),
        category: "exceptions",
        event: "page_fault_kernel",
        required: false,
        without: "faults taken in kernel mode (copy_to_user) show as get_user_pages faults",
    },
    Attachment {
        program: "page_alloc",
        probe: Probe::Raw(&["struct page *", "unsigned int", "gfp_t", "int"]),
        category: "kmem",
        event: "mm_page_alloc",
        required: true,
        without: "",
    },
    Attachment {
        program: "fault_end",
        probe: Probe::Raw(&["struct mem_cgroup *", "int", "long unsigned int"]),
        category: "memcg",
        event: "count_memcg_events",
        required: true,
        without: "",
    },
    Attachment {
        program: "filemap_fault",
        probe: Probe::Classic,
        category: "filemap",
        event: "mm_filemap_fault",
        required: false,
        without: "file faults that miss fault-around show as zero-page maps",
    },
    Attachment {
        program: "fault_around",
        probe: Probe::Classic,
        category: "filemap",
        event: "mm_filemap_map_pages",
        required: false,
        without: "fault-around file faults show as zero-page maps and pages scanned are not counted",
    },
    Attachment {
        program: "cache_fill",
        probe: Probe::Classic,
        category: "filemap",
        event: "mm_filemap_add_to_page_cache",
        required: false,
        without: "major faults are seen only through PGMAJFAULT",
    },
    Attachment {
        program: "task_newtask",
        probe: Probe::Classic,
        category: "task",
        event: "task_newtask",
        required: true,
        without: "",
    },
    Attachment {
        program: "process_fork",
        probe: Probe::Classic,
        category: "sched",
        event: "sched_process_fork",
        required: true,
        without: "",
    },
    Attachment {
        program: "process_exec",
        probe: Probe::Classic,
        category: "sched",
        event: "sched_process_exec",
        required: true,
        without: "",
    },
    Attachment {
        program: "process_exit",
        probe: Probe::Classic,
        category: "sched",
        event: "sched_process_exit",
        required: true,
        without: "",
    },
];

/// Fault records wake the reader only when this fraction of the ring buffer is waiting: a
/// safety net under the reader's 50 ms timer, which does the draining. Measured with two
/// storms keeping both cores busy, waking at an eighth (or less) of the buffer made the storms
/// 1.5 to 3 times slower than the timer alone: each wakeup puts the reader, with a large batch,
/// on the CPU of the fault that crossed the line. Half the buffer is crossed only when the
/// timer falls behind, and leaves the other half for the burst.
const WAKEUP_FRACTION: u32 = 2;

/// How the probes should filter.
#[derive(Clone, Copy, Debug)]
pub struct ProbeOptions {
    /// Trace every process but cowtrace itself.
    pub trace_all: bool,
    /// Size of the ring buffer in bytes (a power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
}

/// What start-up found: printed in the banner, so a user knows what was turned off.
#[derive(Clone, Debug, Default)]
pub struct FeatureReport {
    pub attached: Vec<String>,
    pub turned_off: Vec<String>,
}

/// Loaded and attached probes. Dropping it detaches and unloads every program.
pub struct Probes {
    ebpf: Ebpf,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    pub features: FeatureReport,
}

/// The maps user space keeps: they outlive the programs, so after detaching, the last records
/// can be drained and the final counters read in a consistent state.
pub struct ProbeMaps {
    counters: PerCpuArray<MapData, u64>,
    traced: HashMap<MapData, u32, u32>,
}

impl Probes {
    pub fn load(options: ProbeOptions) -> Result<(Probes, RingBuf<MapData>, ProbeMaps)> {
        check_memcg_enabled()?;
        let tracefs = Tracefs::find_or_mount()?;
        let btf = KernelBtf::load()?;
        let mut features = FeatureReport::default();
        let mut usable = Vec::new();
        for attachment in &ATTACHMENTS {
            let name = format!("{}:{}", attachment.category, attachment.event);
            let problem = if !tracefs.has_event(attachment.category, attachment.event) {
                Some("absent".to_string())
            } else if let Probe::Raw(expected) = attachment.probe {
                let found = btf.tracepoint_args(attachment.event)?;
                (found != expected).then(|| {
                    format!(
                        "arguments ({}) are not the ({}) cowtrace reads",
                        found.join(", "),
                        expected.join(", ")
                    )
                })
            } else {
                None
            };
            match problem {
                None => usable.push(attachment),
                Some(problem) if attachment.required => bail!(
                    "this kernel's tracepoint {name}, which cowtrace needs, is unusable: \
                     {problem} (see README: Requirements)"
                ),
                Some(problem) => features
                    .turned_off
                    .push(format!("{name} ({problem}: {})", attachment.without)),
            }
        }
        let syscalls = SyscallPlan::read(&tracefs)?;
        for left_out in &syscalls.left_out {
            features.turned_off.push(format!(
                "{left_out}: its mapping changes or fork cost are not recorded"
            ));
        }
        let config = probe_config(&tracefs, &btf, &syscalls, options)?;
        drop(btf);

        let mut ebpf = EbpfLoader::new()
            .override_global("CONFIG", &config, true)
            // INFLIGHT is task storage, which aya has no user-space type for: only the kernel
            // side uses it.
            .allow_unsupported_maps()
            .map_max_entries("EVENTS", options.ring_buffer_bytes)
            .load(EBPF_OBJECT)
            .context("loading the eBPF programs into the kernel")?;
        // Kept for as long as the programs: dropping it would close the log map they use.
        let logger = aya_log::EbpfLogger::init(&mut ebpf)
            .map_err(|error| log::debug!("no eBPF logger: {error}"))
            .ok();
        // page_alloc first, alone: frame numbers need the page array's base, found with it
        // before any fault can be traced.
        usable.sort_by_key(|attachment| attachment.program != "page_alloc");
        for (index, attachment) in usable.iter().enumerate() {
            attach(&mut ebpf, attachment)?;
            features
                .attached
                .push(format!("{}:{}", attachment.category, attachment.event));
            if index == 0 {
                frames::calibrate(
                    &mut ebpf,
                    config.struct_page_size,
                    crate::commands::trace::page_size() as usize,
                )?;
            }
        }
        let mut arg_counts: HashMap<_, u32, u32> = HashMap::try_from(
            ebpf.map_mut("SYSCALL_ARG_COUNTS")
                .context("SYSCALL_ARG_COUNTS map")?,
        )?;
        for (syscall, arg_count) in &syscalls.syscalls {
            arg_counts.insert(syscall.nr, arg_count, 0)?;
        }
        for (syscall, _) in &syscalls.syscalls {
            for (program, event) in [("syscall_enter", "sys_enter"), ("syscall_exit", "sys_exit")] {
                let event = format!("{event}_{}", syscall.name);
                attach_classic(&mut ebpf, program, "syscalls", &event)?;
                features.attached.push(format!("syscalls:{event}"));
            }
        }

        let ring_buffer = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map")?)?;
        let maps = ProbeMaps {
            counters: PerCpuArray::try_from(ebpf.take_map("COUNTERS").context("COUNTERS map")?)?,
            traced: HashMap::try_from(ebpf.take_map("TRACED").context("TRACED map")?)?,
        };
        Ok((
            Probes {
                ebpf,
                logger,
                features,
            },
            ring_buffer,
            maps,
        ))
    }

    /// Passes on what the eBPF programs logged (rare warnings, e.g. a full traced set).
    pub fn flush_logs(&mut self) {
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
    }

    /// Detaches and unloads every program. The maps in [`ProbeMaps`] stay readable.
    ///
    /// Each detach waits for an RCU grace period (tens of ms); one thread per program lets
    /// the waits overlap instead of adding up to most of a second.
    pub fn detach(mut self) {
        self.flush_logs();
        std::thread::scope(|scope| {
            for (name, program) in self.ebpf.programs_mut() {
                scope.spawn(move || {
                    let unloaded = match program {
                        Program::TracePoint(program) => program.unload(),
                        Program::RawTracePoint(program) => program.unload(),
                        _ => Ok(()),
                    };
                    if let Err(error) = unloaded {
                        log::warn!("unloading {name}: {error}");
                    }
                });
            }
        });
        drop(self.ebpf);
    }
}

impl ProbeMaps {
    /// Adds a process to the traced set; its future children are added by the kernel.
    pub fn trace_process(&mut self, pid: u32) -> Result<()> {
        self.traced
            .insert(pid, 1, 0)
            .with_context(|| format!("adding pid {pid} to the traced set"))
    }

    pub fn untrace_process(&mut self, pid: u32) -> Result<()> {
        match self.traced.remove(&pid) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(error) => {
                Err(error).with_context(|| format!("removing pid {pid} from the traced set"))
            }
        }
    }

    /// Sum over CPUs of one kernel counter.
    pub fn counter(&self, counter: Counter) -> Result<u64> {
        let values = self.counters.get(&(counter as u32), 0)?;
        Ok(values.iter().sum())
    }
}

/// Loads a program on first use and attaches it to one tracepoint.
fn attach(ebpf: &mut Ebpf, attachment: &Attachment) -> Result<()> {
    match attachment.probe {
        Probe::Classic => attach_classic(
            ebpf,
            attachment.program,
            attachment.category,
            attachment.event,
        ),
        Probe::Raw(_) => {
            let program: &mut RawTracePoint = program(ebpf, attachment.program)?.try_into()?;
            if program.fd().is_err() {
                program.load().with_context(|| {
                    format!("the kernel refused program {}", attachment.program)
                })?;
            }
            program.attach(attachment.event).with_context(|| {
                format!(
                    "attaching {} to the raw tracepoint {}",
                    attachment.program, attachment.event
                )
            })?;
            Ok(())
        }
    }
}

fn attach_classic(ebpf: &mut Ebpf, program_name: &str, category: &str, event: &str) -> Result<()> {
    let program: &mut TracePoint = program(ebpf, program_name)?.try_into()?;
    if program.fd().is_err() {
        program
            .load()
            .with_context(|| format!("the kernel refused program {program_name}"))?;
    }
    program
        .attach(category, event)
        .with_context(|| format!("attaching {program_name} to {category}:{event}"))?;
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Program> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))
}

/// Settings for the eBPF side from this kernel's format files and BTF.
fn probe_config(
    tracefs: &Tracefs,
    btf: &KernelBtf,
    syscalls: &SyscallPlan,
    options: ProbeOptions,
) -> Result<ProbeConfig> {
    let newtask = tracefs.format("task", "task_newtask")?;
    let fork = tracefs.format("sched", "sched_process_fork")?;
    let exec = tracefs.format("sched", "sched_process_exec")?;
    let exit = tracefs.format("sched", "sched_process_exit")?;
    // The filemap tracepoints are optional: without one, its program is not attached and its
    // offsets are never read.
    let (map_pages_index, map_pages_last_index) =
        if tracefs.has_event("filemap", "mm_filemap_map_pages") {
            let map_pages = tracefs.format("filemap", "mm_filemap_map_pages")?;
            (
                map_pages.offset("index", 8)?,
                map_pages.offset("last_index", 8)?,
            )
        } else {
            (OFFSET_ABSENT, OFFSET_ABSENT)
        };
    let cache_fill_order = if tracefs.has_event("filemap", "mm_filemap_add_to_page_cache") {
        let cache_fill = tracefs.format("filemap", "mm_filemap_add_to_page_cache")?;
        match cache_fill.field("order") {
            Some(_) => cache_fill.offset("order", 1)?,
            None => OFFSET_ABSENT,
        }
    } else {
        OFFSET_ABSENT
    };
    Ok(ProbeConfig {
        tracer_tgid: std::process::id(),
        trace_all: options.trace_all as u32,
        item_pgfault: btf.enum_value("vm_event_item", "PGFAULT")?,
        item_pgmajfault: btf.enum_value("vm_event_item", "PGMAJFAULT")?,
        migrate_movable: btf.enum_value("migratetype", "MIGRATE_MOVABLE")?,
        struct_page_size: btf.struct_size("page")?,
        // Probes::load calibrates on the thread that builds the configuration.
        calibration_tid: unsafe { libc::gettid() } as u32,
        newtask_pid: newtask.offset("pid", 4)?,
        newtask_clone_flags: newtask.offset("clone_flags", 8)?,
        fork_child_pid: fork.offset("child_pid", 4)?,
        exec_old_pid: exec.offset("old_pid", 4)?,
        exit_group_dead: match exit.field("group_dead") {
            Some(_) => exit.offset("group_dead", 1)?,
            None => OFFSET_ABSENT,
        },
        syscall_nr: syscalls.nr_offset,
        syscall_args: syscalls.first_arg_offset,
        syscall_ret: syscalls.ret_offset,
        map_pages_index,
        map_pages_last_index,
        cache_fill_order,
        wakeup_bytes: options.ring_buffer_bytes / WAKEUP_FRACTION,
    })
}

/// Fault ends are seen through memcg event accounting: with the memory controller disabled
/// (`cgroup_disable=memory`) no fault would ever end.
fn check_memcg_enabled() -> Result<()> {
    let Ok(cgroups) = fs::read_to_string("/proc/cgroups") else {
        return Ok(()); // cgroup v1 listing absent: nothing to say either way
    };
    for line in cgroups.lines().filter(|line| !line.starts_with('#')) {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.first() == Some(&"memory") && columns.get(3) == Some(&"0") {
            bail!(
                "the memory cgroup controller is disabled on this kernel (cgroup_disable=memory?); \
                 cowtrace sees the end of each fault through memcg accounting and needs it enabled"
            );
        }
    }
    Ok(())
}
