//! A tracing session: load the probes, start or join the traced processes, turn ring buffer
//! records into the model, the live table and JSON lines, and finish with exact loss counts.

use std::{
    fs::File,
    io::{self, BufWriter, IsTerminal as _, Write},
    os::fd::AsFd as _,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use cowtrace_common::Counter;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    attach,
    cli::{OutputArgs, TraceArgs},
    commands::require_root,
    model::{
        ProcessTable, REORDER_WINDOW_NS, TraceModel,
        fault_attribution::AttributedFault,
        mappings::{MappingSource as _, ProcMappingSource},
    },
    probes::{ProbeMaps, ProbeOptions, Probes},
    records::{
        Record, decode,
        json::{EndLine, JsonLine, SCHEMA_VERSION, StartLine},
    },
    ui, verify,
};

/// What to trace.
#[derive(Clone, Debug)]
pub enum Target {
    /// Run this command and trace it (and its children) from its first instruction.
    Command(Vec<String>),
    /// Trace these running processes and their future children.
    Pids(Vec<u32>),
    /// Everything but cowtrace.
    All,
}

#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub target: Target,
    pub json: Option<PathBuf>,
    pub interval: Option<Duration>,
    pub count: Option<u64>,
    pub output: OutputArgs,
    /// Keep every decoded record in memory (for workload checks).
    pub keep_records: bool,
    /// Compare the page model with pagemap at the end.
    pub verify: bool,
}

/// The result of a finished session.
pub struct SessionOutcome {
    pub model: TraceModel,
    /// `--verify`: the page model against pagemap for the processes alive at the end.
    pub verification: Option<Vec<verify::live::LiveCheck>>,
    pub end: EndLine,
    pub records: Vec<Record>,
    /// With `keep_records`: every fault in time order, with its mapping and refined kind.
    pub faults: Vec<AttributedFault>,
    pub page_size: u64,
    /// Pid of the traced command (mode `command`).
    pub command_pid: Option<u32>,
}

pub async fn trace_command(args: TraceArgs) -> Result<i32> {
    let target = if args.all {
        Target::All
    } else if !args.pids.is_empty() {
        if !args.command.is_empty() {
            bail!("give either -p PID or a command after --, not both");
        }
        Target::Pids(args.pids.clone())
    } else if !args.command.is_empty() {
        Target::Command(args.command.clone())
    } else {
        bail!(
            "nothing to trace: give a command after --, -p PID, or -a (see cowtrace trace --help)"
        );
    };
    let outcome = run_session(SessionOptions {
        target,
        json: args.json,
        interval: args.interval.map(Duration::from_secs),
        count: args.count,
        output: args.output,
        keep_records: false,
        verify: args.verify,
    })
    .await?;
    let mut out = io::stderr();
    let _ = write!(
        out,
        "{}",
        ui::session_summary(&outcome.model, &outcome.end, outcome.page_size)
    );
    if let Some(checks) = &outcome.verification {
        let _ = write!(out, "{}", verify::live::render(checks));
    }
    // Like `perf stat -- CMD`: the traced command's exit code is ours.
    Ok(outcome.end.command_exit_code.unwrap_or(0))
}

pub async fn run_session(options: SessionOptions) -> Result<SessionOutcome> {
    require_root()?;
    if let Target::Pids(pids) = &options.target {
        for pid in pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                bail!("no such process: {pid}");
            }
        }
    }
    let json_to_stdout = options.json.as_deref() == Some(std::path::Path::new("-"));
    let mut json = open_json(options.json.as_ref())?;
    let page_size = page_size();
    let started = Instant::now();

    let (mut probes, ring_buffer, mut maps) = Probes::load(ProbeOptions {
        trace_all: matches!(options.target, Target::All),
        ring_buffer_bytes: options.output.ring_buffer_mb * 1024 * 1024,
    })?;
    log::debug!("probes loaded and attached after {:?}", started.elapsed());
    // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd until `into_inner`, so
    // the fd stays open for as long as it is registered.
    let mut ring_buffer =
        unsafe { AsyncFd::register_with_interest(ring_buffer, Interest::READABLE) }
            .map_err(|error| anyhow::anyhow!("polling the ring buffer: {error}"))?;
    let own_pid = std::process::id();
    let mut model = TraceModel::new(page_size);
    let mut mapping_source = ProcMappingSource { page_size };

    // Start or join the processes to trace.
    let mut child = None;
    let mut initial_pids = Vec::new();
    match &options.target {
        Target::Command(command) => {
            // The child must be traced from its first instruction. While we spawn it, our own
            // process is in the traced set, so the kernel adds the child at fork time; then we
            // leave the set. Our own records are dropped below.
            maps.trace_process(own_pid)?;
            let mut spawn = tokio::process::Command::new(&command[0]);
            spawn.args(&command[1..]);
            if json_to_stdout {
                // Standard output carries the JSON lines: the command's own output goes to
                // standard error so the lines stay whole and parseable.
                let stderr = io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .context("duplicating stderr")?;
                spawn.stdout(std::process::Stdio::from(stderr));
            }
            let spawned = spawn.spawn();
            maps.untrace_process(own_pid)?;
            let spawned = spawned.with_context(|| format!("cannot run `{}`", command[0]))?;
            let pid = spawned
                .id()
                .context("child exited before it could be traced")?;
            // Its exec, which follows, gives its mappings.
            model
                .processes
                .add_process(pid, &command_name(&command[0]), None);
            initial_pids.push(pid);
            child = Some(spawned);
        }
        Target::Pids(pids) => {
            // The processes and their descendants: in the traced set first, so that forks from
            // now on are followed, then their current mappings and pages.
            let family = attach::existing_family(pids)?;
            for process in &family {
                maps.trace_process(process.pid)?;
            }
            for process in family {
                let space = mapping_source.mappings(process.pid);
                let resident = space
                    .as_ref()
                    .map(|space| mapping_source.private_pages(process.pid, space))
                    .unwrap_or_default();
                model.adopt(
                    process.pid,
                    &process.comm,
                    process.parent,
                    resident,
                    &mut mapping_source,
                );
            }
            initial_pids.extend(pids);
        }
        Target::All => {}
    }

    let live_terminal = !options.output.quiet && !json_to_stdout && io::stdout().is_terminal();
    let interval = options
        .interval
        .or(live_terminal.then_some(Duration::from_secs(1)));
    if let Some(json) = json.as_mut() {
        write_json(
            json,
            &JsonLine::Start(start_line(&options, &probes, &initial_pids, page_size)),
        )?;
    }
    if !options.output.quiet {
        banner(&options.target, &initial_pids, &probes, json_to_stdout);
    }

    // JSON lines and kept faults come from the model once it has applied a record: a fault's
    // mapping is known then, and lines come in time order.
    if json.is_some() || options.keep_records {
        model.collect_applied();
    }
    let mut records = Vec::new();
    let mut faults = Vec::new();
    let mut received = 0u64;
    let mut handle = |record: Record, model: &mut TraceModel| -> Result<()> {
        received += 1;
        if record.pid() == own_pid {
            return Ok(());
        }
        model.push(record, &mut mapping_source);
        if options.keep_records {
            records.push(record);
        }
        Ok(())
    };

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut ticker = interval
        .map(|period| tokio::time::interval_at(tokio::time::Instant::now() + period, period));
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    // Drains what did not wake us, applies records once the reorder window has passed, and
    // notices lost records.
    let mut flush_ticker = tokio::time::interval(Duration::from_millis(50));
    let mut dropped_seen = 0;
    let mut tables_printed = 0u64;
    let mut command_exit_code = None;
    loop {
        tokio::select! {
            guard = ring_buffer.readable_mut() => {
                let mut guard = guard?;
                let ring = guard.get_inner_mut();
                while let Some(item) = ring.next() {
                    handle(decode(&item)?, &mut model)?;
                }
                guard.clear_ready();
                emit_applied(&mut model, &mut json, options.keep_records.then_some(&mut faults))?;
                probes.flush_logs();
            }
            _ = flush_ticker.tick() => {
                // Fault records do not wake us until the ring buffer is filling up (a wakeup
                // per record would cost the traced process more than the record): drain here.
                let ring = ring_buffer.get_mut();
                while let Some(item) = ring.next() {
                    handle(decode(&item)?, &mut model)?;
                }
                model.release_before(monotonic_ns().saturating_sub(REORDER_WINDOW_NS));
                emit_applied(&mut model, &mut json, options.keep_records.then_some(&mut faults))?;
                let dropped = maps.counter(Counter::RecordsDropped)?;
                if dropped > dropped_seen {
                    dropped_seen = dropped;
                    model.pages.record_gap();
                }
                if matches!(options.target, Target::Pids(_)) && model.processes.live_count() == 0 {
                    break; // every traced process has exited
                }
            }
            _ = sigusr1.recv() => {
                model.release_before(monotonic_ns().saturating_sub(REORDER_WINDOW_NS));
                eprint!("{}", verify::live::render(&verify::live::check_live(&model, page_size)));
            }
            _ = tick(&mut ticker) => {
                print_live_table(&model.processes, live_terminal, json_to_stdout);
                tables_printed += 1;
                if options.count.is_some_and(|count| tables_printed >= count) {
                    break;
                }
            }
            status = wait_child(&mut child) => {
                let status = status.context("waiting for the traced command")?;
                command_exit_code = status.code();
                break;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }

    log::debug!("event loop ended after {:?}", started.elapsed());
    // Detach first, then drain: no record can be produced after the counters are read, so
    // received + dropped = produced holds exactly.
    probes.detach();
    // Stopped by a signal or the count: the command goes on untraced; reap it if done.
    if let (Some(child), None) = (child.as_mut(), command_exit_code)
        && let Ok(Some(status)) = child.try_wait()
    {
        command_exit_code = status.code();
    }
    let mut ring_buffer = ring_buffer.into_inner();
    while let Some(item) = ring_buffer.next() {
        let record = decode(&item)?;
        drop(item);
        handle(record, &mut model)?;
    }
    model.flush();
    emit_applied(
        &mut model,
        &mut json,
        options.keep_records.then_some(&mut faults),
    )?;
    if maps.counter(Counter::RecordsDropped)? > 0 {
        model.pages.record_gap();
    }
    log::debug!("detached and drained after {:?}", started.elapsed());
    let verification = options
        .verify
        .then(|| verify::live::check_live(&model, page_size));
    let end = end_line(&maps, received, started.elapsed(), command_exit_code)?;
    if let Some(json) = json.as_mut() {
        write_json(json, &JsonLine::End(end.clone()))?;
        json.flush().context("writing the JSON output")?;
    }
    Ok(SessionOutcome {
        model,
        verification,
        end,
        records,
        faults,
        page_size,
        command_pid: initial_pids.first().copied().filter(|_| child.is_some()),
    })
}

/// Writes the records the model has applied since the last call as JSON lines, each fault with
/// its mapping and refined kind, and keeps the faults in `faults` if given.
fn emit_applied(
    model: &mut TraceModel,
    json: &mut Option<Box<dyn Write>>,
    mut faults: Option<&mut Vec<AttributedFault>>,
) -> Result<()> {
    for applied in model.take_applied() {
        if let Some(json) = json.as_mut() {
            let line = match (JsonLine::from(&applied.record), &applied.fault) {
                (JsonLine::Fault(line), Some(attribution)) => {
                    let mapping = attribution.mapping.as_ref();
                    JsonLine::Fault(line.attributed(
                        attribution.kind,
                        mapping.map(|mapping| mapping.name.as_str()),
                        mapping.and_then(|mapping| mapping.file_offset),
                    ))
                }
                (line, _) => line,
            };
            write_json(json, &line)?;
        }
        if let (Some(faults), Record::Fault(record), Some(attribution)) =
            (faults.as_mut(), applied.record, applied.fault)
        {
            faults.push(AttributedFault {
                record,
                attribution,
            });
        }
    }
    Ok(())
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn wait_child(
    child: &mut Option<tokio::process::Child>,
) -> io::Result<std::process::ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

fn end_line(
    maps: &ProbeMaps,
    received: u64,
    elapsed: Duration,
    command_exit_code: Option<i32>,
) -> Result<EndLine> {
    Ok(EndLine {
        records_produced: maps.counter(Counter::RecordsProduced)?,
        records_received: received,
        records_dropped: maps.counter(Counter::RecordsDropped)?,
        faults_incomplete: maps.counter(Counter::FaultsIncomplete)?,
        inflight_map_full: maps.counter(Counter::InflightMapFull)?,
        traced_set_full: maps.counter(Counter::TracedSetFull)?,
        duration_ns: elapsed.as_nanos() as u64,
        command_exit_code,
    })
}

fn open_json(path: Option<&PathBuf>) -> Result<Option<Box<dyn Write>>> {
    Ok(match path {
        None => None,
        Some(path) if path.as_os_str() == "-" => Some(Box::new(BufWriter::new(io::stdout()))),
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            Some(Box::new(BufWriter::new(file)))
        }
    })
}

fn write_json(out: &mut Box<dyn Write>, line: &JsonLine) -> Result<()> {
    serde_json::to_writer(&mut *out, line).context("writing the JSON output")?;
    out.write_all(b"\n").context("writing the JSON output")?;
    Ok(())
}

fn start_line(
    options: &SessionOptions,
    probes: &Probes,
    pids: &[u32],
    page_size: u64,
) -> StartLine {
    let (mode, command) = match &options.target {
        Target::Command(command) => ("command", command.clone()),
        Target::Pids(_) => ("pid", Vec::new()),
        Target::All => ("all", Vec::new()),
    };
    StartLine {
        schema: SCHEMA_VERSION,
        cowtrace_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel: kernel_release(),
        page_size,
        mode: mode.to_string(),
        command,
        pids: pids.to_vec(),
        monotonic_ns: monotonic_ns(),
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        probes_attached: probes.features.attached.clone(),
        probes_off: probes.features.turned_off.clone(),
    }
}

fn banner(target: &Target, pids: &[u32], probes: &Probes, to_stderr: bool) {
    let what = match target {
        Target::Command(command) => format!("`{}` (pid {})", command.join(" "), pids[0]),
        Target::Pids(_) => format!(
            "pid {}",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Target::All => "all processes".to_string(),
    };
    let mut text = format!(
        "Tracing page faults of {what} and its children; {} tracepoints attached. Ctrl-C to end.\n",
        probes.features.attached.len()
    );
    if matches!(target, Target::All) {
        text = format!(
            "Tracing page faults of all processes; {} tracepoints attached. Ctrl-C to end.\n",
            probes.features.attached.len()
        );
    }
    for off in &probes.features.turned_off {
        text.push_str(&format!("  turned off: {off}\n"));
    }
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

fn print_live_table(table: &ProcessTable, live_terminal: bool, json_to_stdout: bool) {
    // Standard output may carry the JSON lines: tables then go to standard error.
    let mut out: Box<dyn Write> = if json_to_stdout {
        Box::new(io::stderr())
    } else {
        Box::new(io::stdout().lock())
    };
    if live_terminal {
        // Redraw in place, like top.
        let _ = write!(out, "\x1b[H\x1b[2J");
    }
    let _ = write!(out, "{}", ui::process_table(table));
    if !live_terminal {
        let _ = writeln!(out);
    }
    let _ = out.flush();
}

fn command_name(program: &str) -> String {
    std::path::Path::new(program)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.to_string())
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
