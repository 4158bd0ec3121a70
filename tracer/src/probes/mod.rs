//! Probes: finds what this kernel offers, loads the eBPF programs with this kernel's settings,
//! attaches them to tracepoints, and hands out the maps user space needs.
//!
//! Only classic tracepoints are used, so cowtrace runs where kprobes and fentry are not
//! available (locked-down or minimal kernels) as well as everywhere else.

pub mod btf;
pub mod syscalls;
pub mod tracefs;

use std::fs;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::TracePoint,
};
use cowtrace_common::{Counter, ProbeConfig, config::OFFSET_ABSENT};

use self::{btf::KernelBtf, syscalls::SyscallPlan, tracefs::Tracefs};

/// The compiled eBPF object (built by build.rs from `tracer-ebpf`).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowtrace"));

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

/// One tracepoint and the program attached to it.
struct Attachment {
    program: &'static str,
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
        category: "exceptions",
        event: "page_fault_user",
        required: true,
        without: "",
    },
    Attachment {
        program: "fault_start",
        category: "exceptions",
        event: "page_fault_kernel",
        required: false,
        without: "faults taken in kernel mode (copy_to_user) show as get_user_pages faults",
    },
    Attachment {
        program: "page_alloc",
        category: "kmem",
        event: "mm_page_alloc",
        required: true,
        without: "",
    },
    Attachment {
        program: "fault_end",
        category: "memcg",
        event: "count_memcg_events",
        required: true,
        without: "",
    },
    Attachment {
        program: "filemap_fault",
        category: "filemap",
        event: "mm_filemap_fault",
        required: false,
        without: "file faults that miss fault-around show as zero-page maps",
    },
    Attachment {
        program: "fault_around",
        category: "filemap",
        event: "mm_filemap_map_pages",
        required: false,
        without: "fault-around file faults show as zero-page maps and pages scanned are not counted",
    },
    Attachment {
        program: "cache_fill",
        category: "filemap",
        event: "mm_filemap_add_to_page_cache",
        required: false,
        without: "major faults are seen only through PGMAJFAULT",
    },
    Attachment {
        program: "task_newtask",
        category: "task",
        event: "task_newtask",
        required: true,
        without: "",
    },
    Attachment {
        program: "process_fork",
        category: "sched",
        event: "sched_process_fork",
        required: true,
        without: "",
    },
    Attachment {
        program: "process_exec",
        category: "sched",
        event: "sched_process_exec",
        required: true,
        without: "",
    },
    Attachment {
        program: "process_exit",
        category: "sched",
        event: "sched_process_exit",
        required: true,
        without: "",
    },
];

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
        let mut features = FeatureReport::default();
        for attachment in &ATTACHMENTS {
            let name = format!("{}:{}", attachment.category, attachment.event);
            if !tracefs.has_event(attachment.category, attachment.event) {
                if attachment.required {
                    bail!(
                        "this kernel lacks the tracepoint {name}, which cowtrace needs \
                         (see README: Requirements)"
                    );
                }
                features
                    .turned_off
                    .push(format!("{name} (absent: {})", attachment.without));
            }
        }
        let syscalls = SyscallPlan::read(&tracefs)?;
        for left_out in &syscalls.left_out {
            features.turned_off.push(format!(
                "{left_out}: its mapping changes or fork cost are not recorded"
            ));
        }
        let config = probe_config(&tracefs, &syscalls, options)?;

        let mut ebpf = EbpfLoader::new()
            .override_global("CONFIG", &config, true)
            .map_max_entries("EVENTS", options.ring_buffer_bytes)
            .load(EBPF_OBJECT)
            .context("loading the eBPF programs into the kernel")?;
        // Kept for as long as the programs: dropping it would close the log map they use.
        let logger = aya_log::EbpfLogger::init(&mut ebpf)
            .map_err(|error| log::debug!("no eBPF logger: {error}"))
            .ok();
        for attachment in &ATTACHMENTS {
            if tracefs.has_event(attachment.category, attachment.event) {
                attach(
                    &mut ebpf,
                    attachment.program,
                    attachment.category,
                    attachment.event,
                )?;
                features
                    .attached
                    .push(format!("{}:{}", attachment.category, attachment.event));
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
                attach(&mut ebpf, program, "syscalls", &event)?;
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
                let Ok(program) = <&mut TracePoint>::try_from(program) else {
                    continue;
                };
                scope.spawn(move || {
                    if let Err(error) = program.unload() {
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
fn attach(ebpf: &mut Ebpf, program_name: &str, category: &str, event: &str) -> Result<()> {
    let program: &mut TracePoint = ebpf
        .program_mut(program_name)
        .with_context(|| format!("program {program_name} missing from the object"))?
        .try_into()?;
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

/// Settings for the eBPF side from this kernel's format files and BTF.
fn probe_config(
    tracefs: &Tracefs,
    syscalls: &SyscallPlan,
    options: ProbeOptions,
) -> Result<ProbeConfig> {
    let btf = KernelBtf::load()?;
    let fault = tracefs.format("exceptions", "page_fault_user")?;
    let alloc = tracefs.format("kmem", "mm_page_alloc")?;
    let memcg = tracefs.format("memcg", "count_memcg_events")?;
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
    // page_fault_kernel shares page_fault_user's layout (one event class); check it anyway.
    if tracefs.has_event("exceptions", "page_fault_kernel") {
        let kernel = tracefs.format("exceptions", "page_fault_kernel")?;
        if kernel.fields != fault.fields {
            bail!(
                "exceptions:page_fault_kernel and page_fault_user differ in layout on this kernel"
            );
        }
    }
    Ok(ProbeConfig {
        tracer_tgid: std::process::id(),
        trace_all: options.trace_all as u32,
        item_pgfault: btf.enum_value("vm_event_item", "PGFAULT")?,
        item_pgmajfault: btf.enum_value("vm_event_item", "PGMAJFAULT")?,
        migrate_movable: btf.enum_value("migratetype", "MIGRATE_MOVABLE")?,
        fault_address: fault.offset("address", 8)?,
        fault_error_code: fault.offset("error_code", 8)?,
        alloc_pfn: alloc.offset("pfn", 8)?,
        alloc_order: alloc.offset("order", 4)?,
        alloc_migratetype: alloc.offset("migratetype", 4)?,
        memcg_item: memcg.offset("item", 4)?,
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
        reserved: 0,
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
