//! `reports/performance.md`: every figure of one `cargo xtask bench` run, as ratios to the
//! untraced workload, with the machine, the peers, the targets and, where a target is
//! missed, what the profile says bounds it.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use super::{
    analysis::{self, ConfigFigures, KINDS, TargetRow},
    collector::{CollectorRun, Rendering},
    machine::{self, MachineInfo},
    outputs::{self, SymbolShare},
    profile::{self, FaultPathRole, Profile, ProgramsRun},
    runner::{Config, Sample},
    stats::Verdict,
};

/// cowtrace's `--ringbuf-mb` default.
const DEFAULT_RING_BUFFER_MIB: u64 = 16;
/// A fault record (`FaultRecord`).
const FAULT_RECORD_BYTES: u64 = 80;
/// A fault record with the ring buffer's 8-byte header.
const RECORD_BYTES: u64 = FAULT_RECORD_BYTES + 8;
/// Fault records wake cowtrace's reader only once this fraction of the ring buffer waits
/// (1/2, cowtrace's `WAKEUP_FRACTION`).
const WAKEUP_FRACTION: u64 = 2;
/// Otherwise the reader drains the ring buffer on a timer of this period.
const DRAIN_PERIOD_MS: u64 = 50;

/// Everything the report shows.
pub struct ReportInput<'a> {
    pub machine: &'a MachineInfo,
    pub pages: usize,
    pub repetitions: usize,
    pub configs: &'a [Config],
    /// `cowtrace run fault-storm`'s verdict and check lines, or why it failed.
    pub preflight: &'a Result<String, String>,
    pub figures: &'a BTreeMap<Config, ConfigFigures>,
    pub samples: &'a [Sample],
    pub collector: &'a Result<CollectorRun, String>,
    pub profile: Option<&'a Profile>,
    pub targets: &'a [TargetRow],
    pub elapsed: Duration,
}

fn ratio_cell(figures: Option<&ConfigFigures>, kind: &str) -> String {
    let Some(figures) = figures else {
        return "—".to_string();
    };
    match (figures.ratios.get(kind), figures.ns_per_fault.get(kind)) {
        (Some(ratio), Some(ns)) => format!("{ratio:.2}× ({:.0} ns)", ns.median),
        (None, Some(ns)) => format!("— ({:.0} ns)", ns.median),
        _ => "—".to_string(),
    }
}

fn lost_cell(config: Config, figures: &ConfigFigures) -> String {
    match figures.max_lost() {
        None if config == Config::PerfStat => "— (counters)".to_string(),
        None => "—".to_string(),
        Some(0) => format!("0 in {} runs", figures.lost.len()),
        Some(max) => format!(
            "**{} in {} runs** (up to {max} per run)",
            figures.total_lost(),
            figures.lost.len()
        ),
    }
}

fn count(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(digit);
    }
    grouped
}

fn overhead_table(out: &mut String, input: &ReportInput<'_>, configs: &[Config]) {
    let _ = writeln!(
        out,
        "| configuration | runs used | first touch | COW copy | COW reuse | faults seen | records or events lost |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for config in configs {
        let Some(figures) = input.figures.get(config) else {
            continue;
        };
        if figures.samples == 0 {
            let _ = writeln!(
                out,
                "| {} | 0 | failed: {} | | | | |",
                config.label(),
                figures.failures.first().map_or("", String::as_str)
            );
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {}/{} | {} | {} | {} | {} | {} |",
            config.label(),
            figures.used,
            figures.samples,
            ratio_cell(Some(figures), KINDS[0].0),
            ratio_cell(Some(figures), KINDS[1].0),
            ratio_cell(Some(figures), KINDS[2].0),
            figures.faults_seen.map_or("—".to_string(), count),
            lost_cell(*config, figures),
        );
    }
}

fn machine_section(out: &mut String, input: &ReportInput<'_>) {
    let machine = input.machine;
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| CPU | {} ({} cores{}) |",
        machine.cpu_model,
        machine.cores,
        if machine.virtual_machine {
            ", virtual machine"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "| kernel | {} |", machine.kernel);
    let _ = writeln!(out, "| memory | {:.1} GiB |", machine.memory_gib);
    let _ = writeln!(out, "| clock source | {} |", machine.clocksource);
    for (tool, version) in &machine.tools {
        let _ = writeln!(out, "| {tool} | {version} |");
    }
    let _ = writeln!(out, "| tree measured | {} |", machine.tree);
    let _ = writeln!(out, "| date | {} |\n", machine.date_utc);
}

fn method_section(out: &mut String, input: &ReportInput<'_>) {
    let disturbed = input.samples.iter().filter(|s| !s.is_clean()).count();
    let _ = writeln!(out, "## Method\n");
    let _ = writeln!(
        out,
        "The workload is `fault-storm` with {pages} pages: the parent first-touches \
         every page, forks, the child writes every page (each a COW copy) and exits, then the \
         parent writes every page again (each a COW reuse). Each phase is timed inside the \
         workload with CLOCK_MONOTONIC, so no tracer's start-up or shut-down is in a figure; \
         the workload pins itself to the CPU it starts on (a reuse can otherwise turn into a \
         copy), which leaves the other CPU to a tracer's reader. \
         The {configs} configurations below ran {reps} times each, interleaved: repetition *r* \
         runs them all in turn starting from the *r*-th and wrapping round, so none always runs \
         first or after the same neighbour (an untraced storm before them all, not counted, \
         warms the page allocator and the binary's page cache); each figure is \
         the median over the runs, and a ratio is the configuration's median over the untraced \
         median (the two-storm configurations over the untraced pair's). Before each run the \
         benchmark waited (up to a minute and a half) for the machine to be quiet: below \
         {quiet:.0} % busy, and no tracing BPF program of anyone else loaded (another tracer's \
         programs on the fault path run on every fault of every process). A run that started \
         without that quiet, or after which the machine was more than {limit:.0} % busy or \
         someone else's tracing programs were loaded, counts as disturbed and is left out of \
         the medians when at least three clean runs remain ({disturbed} of {total} runs were \
         disturbed). Losses count every run.\n",
        pages = input.pages,
        configs = input.configs.len(),
        reps = input.repetitions,
        quiet = machine::QUIET_SHARE * 100.0,
        limit = machine::BUSY_AFTER_SHARE * 100.0,
        total = input.samples.len(),
    );
    let floors: Vec<&str> = input
        .configs
        .iter()
        .filter_map(|config| match config {
            Config::RawTracepointFloor => Some(
                "under a program that returns at once on each of the four raw tracepoints \
                 cowtrace's fault path uses (`cowtrace __probe-floor`): cowtrace's floor, what \
                 the kernel charges for calling any program there, which no change to \
                 cowtrace's programs can remove",
            ),
            Config::TracepointFloor => Some(
                "under bpftrace programs that return at once on the same four tracepoints in \
                 their classic form (`bench/tracepoint-floor.bt`): the floor of bpftrace and of \
                 perf-based tools, whose tracepoints fill a perf record with every field before \
                 calling anything",
            ),
            _ => None,
        })
        .collect();
    if !floors.is_empty() {
        let _ = writeln!(
            out,
            "{} a floor rather than a tracer: the workload {}.{}\n",
            if floors.len() == 1 {
                "One configuration measures"
            } else {
                "Two configurations measure"
            },
            floors.join("; and "),
            if input.configs.contains(&Config::TracepointFloor) {
                " The bpftrace scripts use the classic tracepoints: bpftrace 0.17 cannot attach \
                 raw ones."
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "Every cell reads *ratio to untraced (median ns per fault)*; the absolute times are \
         this machine's and only the ratios carry over.\n"
    );
    match input.preflight {
        Ok(lines) => {
            let _ = writeln!(
                out,
                "Before measuring, `cowtrace run fault-storm` checked that cowtrace classifies \
                 the storm exactly (against the workload's arithmetic, taskstats and pagemap):\n\n\
                 ```text\n{lines}\n```\n"
            );
        }
        Err(why) => {
            let _ = writeln!(
                out,
                "**`cowtrace run fault-storm` did not pass before measuring**: {why}\n"
            );
        }
    }
}

fn targets_section(out: &mut String, input: &ReportInput<'_>) {
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(
        out,
        "| target (issue 6) | measured | verdict |\n|---|---|---|"
    );
    for row in input.targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            row.target,
            row.measured,
            row.verdict.label()
        );
    }
    let _ = writeln!(
        out,
        "\n\"Below a peer\" is read as: cowtrace's ratio lower than the peer's on every fault \
         kind. cowtrace has no counting-only mode, so that configuration of the issue is not \
         measured.\n"
    );
    floors_under_missed_targets(out, input.figures);
}

/// For every overhead target cowtrace misses: what it adds against what the target allows,
/// and how much of that allowance its raw-tracepoint floor already takes.
fn floors_under_missed_targets(out: &mut String, figures: &BTreeMap<Config, ConfigFigures>) {
    let ratio = |config: Config, kind: &str| figures.get(&config)?.ratios.get(kind).copied();
    let mut lines = Vec::new();
    for (kind, limit) in analysis::OVERHEAD_LIMITS {
        let Some(ours) = ratio(Config::Cowtrace, kind).filter(|ours| *ours > limit) else {
            continue;
        };
        let (Some(untraced), Some(added)) = (
            median_ns(figures, Config::Untraced, kind),
            added_ns(figures, Config::Cowtrace, kind),
        ) else {
            continue;
        };
        let budget = (limit - 1.0) * untraced;
        let mut line = format!(
            "- **{}**: cowtrace is at {ours:.2}× where the target is {limit:.2}×: it adds \
             {added:.0} ns per fault, the target allows {budget:.0} ns.",
            kind_label(kind)
        );
        match (
            ratio(Config::RawTracepointFloor, kind),
            added_ns(figures, Config::RawTracepointFloor, kind),
        ) {
            (Some(floor_ratio), Some(floor)) => {
                let _ = write!(
                    line,
                    " A program that does nothing on cowtrace's raw tracepoints is already at \
                     {floor_ratio:.2}× ({floor:+.0} ns)"
                );
                if floor > budget {
                    line.push_str(
                        ": the floor alone misses the target, so no change to cowtrace's \
                         programs can meet it on this machine",
                    );
                } else {
                    let _ = write!(
                        line,
                        ", which leaves {:.0} ns per fault for cowtrace's own work",
                        budget - floor
                    );
                }
                let own = added - floor;
                if own > 0.0 {
                    let _ = write!(
                        line,
                        "; cowtrace's own work (its programs and what they cause) adds {own:.0} \
                         ns beyond the floor."
                    );
                } else {
                    line.push_str("; cowtrace adds nothing measurable beyond the floor.");
                }
            }
            _ => line.push_str(" Its raw-tracepoint floor was not measured."),
        }
        if let Some(classic) = ratio(Config::TracepointFloor, kind) {
            let _ = write!(
                line,
                " On the classic tracepoints, the floor bpftrace and perf-based tools pay is \
                 {classic:.2}×."
            );
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Where an overhead target is missed, the floor under it (medians; a floor is the \
         workload under programs that return at once):\n"
    );
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
}

fn collector_section(out: &mut String, input: &ReportInput<'_>) {
    let _ = writeln!(out, "## Collector\n");
    let cowtrace = input.figures.get(&Config::Cowtrace);
    if let Some(attach) = cowtrace.and_then(|f| f.attach_ms) {
        let _ = writeln!(
            out,
            "- **Attach time** (load, relocate and attach every program, as cowtrace logs it): \
             median {:.0} ms, {:.0}–{:.0} ms over {} runs.",
            attach.median, attach.min, attach.max, attach.count
        );
    }
    if let Some(rate) = cowtrace.and_then(|f| f.session_records_per_second) {
        let _ = writeln!(
            out,
            "- **Records per second over a whole session** (records received / the session from \
             attach to detach, as the summary states it): median {} records/s. The storm \
             produces records faster than that while it runs: the session also holds the \
             attach and the detach, during which no fault happens.",
            count(rate.median)
        );
    }
    if let Some(peak) = cowtrace
        .and_then(|f| f.ns_per_fault.values().map(|s| s.median).reduce(f64::min))
        .filter(|ns| *ns > 0.0)
    {
        let _ = writeln!(
            out,
            "- **Fastest arrival**: the fastest phase under cowtrace produced a record every \
             {peak:.0} ns, {} records/s. The ring buffer takes a storm of this size whole, so \
             its losses above say nothing about whether the reader keeps up at that rate; the \
             million-record storm below does.",
            count(1e9 / peak)
        );
    }
    match input.collector {
        Ok(run) => {
            let end = &run.end;
            let seconds = end.duration_ns as f64 / 1e9;
            let _ = writeln!(
                out,
                "- **A million-record storm** ({} pages) traced to a JSON-lines file: {} records \
                 received, {} dropped, in a {seconds:.2} s session: {} records/s including attach \
                 and detach, JSON written to disk.",
                count(run.pages as f64),
                count(end.records_received as f64),
                count(end.records_dropped as f64),
                count(end.records_received as f64 / seconds.max(f64::MIN_POSITIVE)),
            );
            match &run.bound {
                Some(Ok(bound)) => {
                    let summary = &bound.summary;
                    let _ = writeln!(
                        out,
                        "- **What bounds the reader**: the same storm traced without JSON (under \
                         `perf record`): {} records produced, {} dropped ({:.1} %). The hottest \
                         symbols of cowtrace's own threads:\n",
                        count(summary.produced as f64),
                        count(summary.dropped as f64),
                        summary.dropped as f64 * 100.0 / summary.produced.max(1) as f64
                    );
                    symbol_list(out, &bound.tracer_symbols);
                }
                Some(Err(why)) => {
                    let _ = writeln!(
                        out,
                        "- The run that looks for the reader's bound failed: {why}"
                    );
                }
                None => {}
            }
            if let Some(kib) = run.tracer_peak_rss_kib {
                let _ = writeln!(
                    out,
                    "- **Tracer peak resident memory** during that run: {:.1} MiB.",
                    kib as f64 / 1024.0
                );
            }
            match &run.figures {
                Ok(figures) => {
                    let _ = writeln!(
                        out,
                        "- **Records per second from a recorded file** (`cowtrace-collector-bench`, \
                         lines parsed back into `JsonLine`s, the file already in memory): {} lines \
                         ({:.0} MB) in {:.2} s, {} lines/s.",
                        count(figures.lines as f64),
                        figures.bytes as f64 / 1e6,
                        figures.parse_seconds,
                        count(figures.lines_per_second())
                    );
                    if let Some(bytes) = figures.bytes_per_tracked_page() {
                        let _ = writeln!(
                            out,
                            "- **Memory per tracked page**: the page model's page tables \
                             (`PageTable`, 16-page chunks in a hash map), filled with every frame \
                             of that trace ({} pages over all processes): {bytes:.1} bytes per \
                             page.",
                            count(figures.tracked_pages as f64)
                        );
                    }
                }
                Err(why) => {
                    let _ = writeln!(out, "- Parsing the recorded file failed: {why}");
                }
            }
            match &run.rendering {
                Rendering::Measured { seconds, records } => {
                    let _ = writeln!(
                        out,
                        "- **Report rendering** (`cowtrace report`) of that trace: {seconds:.2} s \
                         for {} records.",
                        count(*records as f64)
                    );
                }
                Rendering::Unavailable(why) => {
                    let _ = writeln!(out, "- **Report rendering**: not measured: {why}.");
                }
            }
        }
        Err(why) => {
            let _ = writeln!(out, "- The million-record run failed: {why}");
        }
    }
    let _ = writeln!(out);
}

/// Median ns per fault of `kind` under `config`.
fn median_ns(figures: &BTreeMap<Config, ConfigFigures>, config: Config, kind: &str) -> Option<f64> {
    Some(figures.get(&config)?.ns_per_fault.get(kind)?.median)
}

/// What `config` adds per fault of `kind` over its baseline, medians.
fn added_ns(figures: &BTreeMap<Config, ConfigFigures>, config: Config, kind: &str) -> Option<f64> {
    Some(median_ns(figures, config, kind)? - median_ns(figures, config.baseline(), kind)?)
}

/// How the report names a fault kind of the storm.
fn kind_label(kind: &str) -> &str {
    KINDS
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(kind, |(_, label)| label)
}

/// One list of hottest symbols, as an indented table under a list item.
fn symbol_list(out: &mut String, symbols: &[SymbolShare]) {
    let _ = writeln!(out, "  | symbol | % |\n  |---|---|");
    for share in symbols.iter().take(12) {
        let _ = writeln!(
            out,
            "  | `{}`{} | {:.1} |",
            share.symbol,
            if share.kernel { " (kernel)" } else { "" },
            share.percent
        );
    }
    let _ = writeln!(out);
}

/// Two lists of hottest symbols side by side, each under its title.
fn symbols_table(
    out: &mut String,
    (left_title, traced): (&str, &[SymbolShare]),
    (right_title, untraced): (&str, &[SymbolShare]),
) {
    let _ = writeln!(
        out,
        "| # | {left_title} | % | {right_title} | % |\n|---|---|---|---|---|"
    );
    for index in 0..traced.len().max(untraced.len()) {
        let cell = |symbols: &[SymbolShare]| {
            symbols
                .get(index)
                .map_or(("".to_string(), "".to_string()), |s| {
                    (
                        format!("`{}`{}", s.symbol, if s.kernel { "" } else { " (user)" }),
                        format!("{:.1}", s.percent),
                    )
                })
        };
        let ((a, pa), (b, pb)) = (cell(traced), cell(untraced));
        let _ = writeln!(out, "| {} | {a} | {pa} | {b} | {pb} |", index + 1);
    }
    let _ = writeln!(out);
}

fn programs_table(out: &mut String, run: &ProgramsRun) {
    let _ = writeln!(
        out,
        "| program | runs | ns per run | total ms |\n|---|---|---|---|"
    );
    let mut programs = run.programs.clone();
    programs.sort_by_key(|program| std::cmp::Reverse(program.run_time_ns));
    for program in &programs {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {:.1} |",
            program.name,
            count(program.run_cnt as f64),
            program
                .ns_per_run()
                .map_or("—".to_string(), |ns| format!("{ns:.0}")),
            program.run_time_ns as f64 / 1e6
        );
    }
    let _ = writeln!(out);
}

/// Program run time per traced fault, cowtrace's against the bpftrace script's, by role.
fn roles_table(out: &mut String, cowtrace: &ProgramsRun, bpftrace: Option<&ProgramsRun>) {
    let _ = writeln!(
        out,
        "| step of a fault | cowtrace, ns per traced fault | bpftrace (counts in maps), ns per traced fault |\n|---|---|---|"
    );
    let cell = |run: Option<&ProgramsRun>, role| {
        run.and_then(|run| run.ns_per_fault(role))
            .map_or("—".to_string(), |ns| format!("{ns:.0}"))
    };
    let mut totals = (0.0, 0.0);
    for role in FaultPathRole::ALL {
        totals.0 += cowtrace.ns_per_fault(role).unwrap_or(0.0);
        totals.1 += bpftrace
            .and_then(|run| run.ns_per_fault(role))
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            role.label(),
            cell(Some(cowtrace), role),
            cell(bpftrace, role)
        );
    }
    let _ = writeln!(
        out,
        "| **all three** | **{:.0}** | **{}** |\n",
        totals.0,
        if bpftrace.is_some() {
            format!("{:.0}", totals.1)
        } else {
            "—".to_string()
        }
    );
}

/// The bound in a few sentences, from the figures: the budget each target leaves per fault,
/// what cowtrace's raw-tracepoint floor takes of it (and what the classic floor would), what
/// cowtrace's programs take, and the interrupts.
fn bound_summary(out: &mut String, input: &ReportInput<'_>, profile: &Profile) {
    let figures = input.figures;
    let budgets: Vec<(&str, f64)> = analysis::OVERHEAD_LIMITS
        .iter()
        .filter_map(|(kind, limit)| {
            Some((
                *kind,
                (limit - 1.0) * median_ns(figures, Config::Untraced, kind)?,
            ))
        })
        .collect();
    if budgets.is_empty() {
        return;
    }
    let described: Vec<String> = budgets
        .iter()
        .map(|(kind, budget)| {
            let floor = match added_ns(figures, Config::RawTracepointFloor, kind) {
                Some(ns) if ns > *budget => format!(
                    " (cowtrace's raw-tracepoint floor alone takes {ns:.0}: out of reach for \
                     any program on these tracepoints here)"
                ),
                Some(ns) if ns > 0.0 => format!(
                    " (cowtrace's raw-tracepoint floor takes {ns:.0} of it, leaving {:.0} for \
                     its own work)",
                    budget - ns
                ),
                Some(_) => {
                    " (cowtrace's raw-tracepoint floor takes nothing measurable of it)".to_string()
                }
                None => String::new(),
            };
            format!("{} {budget:.0} ns{floor}", kind_label(kind))
        })
        .collect();
    let largest_budget = budgets.iter().map(|(_, ns)| *ns).fold(0.0, f64::max);
    let _ = write!(
        out,
        "**In short.** The targets leave, per fault: {}.",
        described.join("; ")
    );
    let classic: Vec<String> = budgets
        .iter()
        .filter_map(|(kind, _)| {
            let ns = added_ns(figures, Config::TracepointFloor, kind)?;
            Some(format!("{} {ns:+.0} ns", kind_label(kind)))
        })
        .collect();
    if !classic.is_empty() {
        let _ = write!(
            out,
            " On the same tracepoints' classic form, which bpftrace and perf-based tools use, \
             the floor alone adds {}.",
            classic.join(", ")
        );
    }
    if let Ok(run) = &profile.cowtrace_programs {
        let in_programs: f64 = FaultPathRole::ALL
            .iter()
            .filter_map(|role| run.ns_per_fault(*role))
            .sum();
        let end = run.ns_per_fault(FaultPathRole::End).unwrap_or(0.0);
        if in_programs > 0.0 {
            let versus = if in_programs > largest_budget {
                "more than any of these budgets"
            } else {
                "within the largest of these budgets"
            };
            let _ = write!(
                out,
                " cowtrace's three fault-path programs alone run {in_programs:.0} ns per fault by \
                 the kernel's own account, {versus}; {end:.0} ns of it is `fault_end`, which \
                 emits the record."
            );
        }
        if let Ok(bpftrace) = &profile.bpftrace_programs {
            let theirs: f64 = FaultPathRole::ALL
                .iter()
                .filter_map(|role| bpftrace.ns_per_fault(*role))
                .sum();
            if theirs > 0.0 {
                let _ = write!(
                    out,
                    " The bpftrace script taking the same three steps without a record per fault \
                     runs {theirs:.0} ns (on classic tracepoints, whose filling of a perf record \
                     comes on top, outside its programs)."
                );
            }
        }
    }
    if let Ok(interrupts) = &profile.interrupts {
        let per_thousand = |name: &str| {
            let traced = interrupts.traced.get(name).copied().unwrap_or(0);
            let untraced = interrupts.untraced.get(name).copied().unwrap_or(0);
            traced.saturating_sub(untraced) as f64 * 1000.0 / interrupts.records.max(1) as f64
        };
        let _ = write!(
            out,
            " Outside the programs, the storm under cowtrace took {:.0} IRQ-work and {:.0} \
             function-call interrupts more per 1000 records than untraced, both CPUs together \
             (waking the reader takes IRQ work on the faulting CPU; fault records wake it only \
             once half the ring buffer waits){}.",
            per_thousand("IWI"),
            per_thousand("CAL"),
            if input.machine.virtual_machine {
                "; on a virtual machine, sending an interrupt usually exits to the hypervisor"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "\n");
}

fn profile_section(out: &mut String, input: &ReportInput<'_>) {
    let missed = input
        .targets
        .iter()
        .any(|row| row.verdict == Verdict::NotMet);
    let Some(profile) = input.profile else {
        if missed {
            let _ = writeln!(out, "## Profile\n\nNot taken (`--no-profile`).\n");
        }
        return;
    };
    let _ = writeln!(out, "## What bounds the overhead\n");
    let figures = input.figures;
    let added_by = |config: Config| -> Vec<(&str, f64)> {
        KINDS
            .iter()
            .filter_map(|(kind, label)| Some((*label, added_ns(figures, config, kind)?)))
            .collect()
    };
    let list = |values: &[(&str, f64)]| {
        values
            .iter()
            .map(|(label, ns)| format!("{label} {ns:+.0} ns"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added = added_by(Config::Cowtrace);
    for (config, what) in [
        (
            Config::Cowtrace,
            "cowtrace adds, per fault over untraced (medians)",
        ),
        (
            Config::CowtraceReaderPaused,
            "With cowtrace's reader stopped for the storm (its records wait in the ring buffer \
             and are read after it: the kernel side alone; what the line above adds beyond \
             this is the reader's work competing with the storm), cowtrace adds",
        ),
        (
            Config::BpftraceCounts,
            "The bpftrace script, counting in maps, adds",
        ),
        (
            Config::RawTracepointFloor,
            "A program that returns at once on cowtrace's four raw tracepoints (cowtrace's \
             floor, which no change to its programs can remove: the tracepoint fires and calls \
             the program with its arguments as they are) adds",
        ),
        (
            Config::TracepointFloor,
            "bpftrace programs that return at once on the same four tracepoints in their \
             classic form (the floor of bpftrace and of perf-based tools: the tracepoint fills \
             a perf record with every field, then calls the program) add",
        ),
    ] {
        let values = added_by(config);
        if !values.is_empty() {
            let _ = writeln!(out, "- {what}: {}.", list(&values));
        }
    }
    // What each tracer's own work adds beyond the floor it stands on.
    let beyond = |config: Config, floor: Config| -> Vec<(&str, f64)> {
        KINDS
            .iter()
            .filter_map(|(kind, label)| {
                Some((
                    *label,
                    added_ns(figures, config, kind)? - added_ns(figures, floor, kind)?,
                ))
            })
            .collect()
    };
    for (config, floor, what) in [
        (
            Config::Cowtrace,
            Config::RawTracepointFloor,
            "Beyond its raw-tracepoint floor, cowtrace's own work (its programs and what they \
             cause) adds",
        ),
        (
            Config::CowtraceReaderPaused,
            Config::RawTracepointFloor,
            "Beyond its raw-tracepoint floor, cowtrace's programs alone (reader stopped) add",
        ),
        (
            Config::BpftraceCounts,
            Config::TracepointFloor,
            "Beyond the classic floor, the bpftrace script's own work adds",
        ),
    ] {
        let values = beyond(config, floor);
        if !values.is_empty() {
            let _ = writeln!(out, "- {what}: {}.", list(&values));
        }
    }
    let _ = writeln!(out);
    bound_summary(out, input, profile);

    match &profile.cowtrace_programs {
        Ok(run) => {
            let _ = writeln!(
                out,
                "**The kernel's accounting of each BPF program** over one storm \
                 (`kernel.bpf_stats_enabled=1`, restored afterwards; the statistics themselves \
                 add two clock reads to every run). cowtrace's programs:\n"
            );
            programs_table(out, run);
            let bpftrace = profile.bpftrace_programs.as_ref().ok();
            let _ = writeln!(
                out,
                "Per traced fault, the same three steps taken by cowtrace and by the bpftrace \
                 script that classifies the same way (each program's run time over the faults \
                 its tracer reported; runs for untraced processes, which return early, are \
                 included):\n"
            );
            roles_table(out, run, bpftrace);
            if let Err(why) = &profile.bpftrace_programs {
                let _ = writeln!(out, "bpftrace's program statistics unavailable: {why}\n");
            }
            let in_programs: f64 = FaultPathRole::ALL
                .iter()
                .filter_map(|role| run.ns_per_fault(*role))
                .sum();
            if !added.is_empty() && in_programs > 0.0 {
                let mean_added = added.iter().map(|(_, ns)| ns).sum::<f64>() / added.len() as f64;
                let floor = added_by(Config::RawTracepointFloor);
                let floor_note = if floor.is_empty() {
                    String::new()
                } else {
                    let mean_floor =
                        floor.iter().map(|(_, ns)| ns).sum::<f64>() / floor.len() as f64;
                    format!(
                        ", {mean_floor:.0} ns of which is cowtrace's raw-tracepoint floor \
                         (calling any program there)"
                    )
                };
                let share = if in_programs >= mean_added / 2.0 {
                    "the programs' own run time is the largest part of the cost"
                } else {
                    "the programs' own run time is less than half of the cost"
                };
                let _ = writeln!(
                    out,
                    "cowtrace's three fault-path programs run {in_programs:.0} ns per fault by \
                     the kernel's account (taken in a run of its own, with statistics that add \
                     their own clock reads); the storms measured {mean_added:.0} ns per fault \
                     more than untraced (mean over the three kinds){floor_note}: {share}.\n"
                );
            }
        }
        Err(why) => {
            let _ = writeln!(out, "Program statistics unavailable: {why}\n");
        }
    }
    let _ = writeln!(out, "`bpftool prog profile`: {}\n", profile.prog_profile);

    match &profile.interrupts {
        Ok(interrupts) => {
            let _ = writeln!(
                out,
                "**Interrupts during one storm** (`/proc/interrupts`, both CPUs; the traced \
                 column spans cowtrace's whole session). Time spent taking them lands in the \
                 faults they interrupt, outside any program's run time:\n"
            );
            let _ = writeln!(
                out,
                "| interrupt | untraced | under cowtrace | per 1000 records |\n|---|---|---|---|"
            );
            for (name, meaning) in profile::INTERRUPTS_SHOWN {
                let untraced = interrupts.untraced.get(name).copied().unwrap_or(0);
                let traced = interrupts.traced.get(name).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "| `{name}` ({meaning}) | {} | {} | {:.0} |",
                    count(untraced as f64),
                    count(traced as f64),
                    traced as f64 * 1000.0 / interrupts.records.max(1) as f64
                );
            }
            let _ = writeln!(out);
        }
        Err(why) => {
            let _ = writeln!(out, "Interrupt counts unavailable: {why}\n");
        }
    }

    match (&profile.perf_traced, &profile.perf_untraced) {
        (Ok(traced), Ok(untraced)) => {
            let _ = writeln!(
                out,
                "**`perf record -e cpu-clock`** of one storm, the workload's own samples only \
                 (shares of them; a virtual machine's cpu-clock samples land where interrupts \
                 are next enabled, so single symbols are approximate). The tracing machinery \
                 (BPF programs and helpers, their maps and task storage, ring buffer, tracepoint \
                 glue, probe reads, clock reads) takes {:.1} % of the traced workload's samples among these, \
                 against {:.1} % untraced:\n",
                profile::tracing_share(traced),
                profile::tracing_share(untraced)
            );
            symbols_table(out, ("under cowtrace", traced), ("untraced", untraced));
        }
        (traced, untraced) => {
            for (tag, result) in [("traced", traced), ("untraced", untraced)] {
                if let Err(why) = result {
                    let _ = writeln!(out, "perf profile ({tag}) unavailable: {why}\n");
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "What cowtrace's programs do per fault, all on raw tracepoints (each program gets the \
         tracepoint's arguments as they are: no perf record is filled, no field copied): \
         `fault_start` looks the process up in the traced set (a hash map) and stores the fault \
         in the thread's task-local storage (created at the thread's first traced fault); \
         `page_alloc` runs on every page allocation in the system and looks for a fault in \
         flight in the allocating thread's task storage, which a thread that never faulted \
         under cowtrace does not have; `fault_end` runs on every memcg event, returns at once \
         unless the event counts a fault, finishes the fault in the thread's task storage and \
         writes a record of {FAULT_RECORD_BYTES} bytes into the ring buffer (reserve, copy, \
         submit). The submit wakes the reader only once half the ring buffer waits \
         (about {} records at the default size); otherwise the reader drains it every \
         {DRAIN_PERIOD_MS} ms. The bpftrace script takes the same steps on the classic \
         tracepoints, which fill a perf record with every field before calling it, and keeps \
         the fault in flight in hash maps keyed by thread id.\n",
        count(
            (DEFAULT_RING_BUFFER_MIB << 20) as f64 / WAKEUP_FRACTION as f64 / RECORD_BYTES as f64
        )
    );
}

fn spread_section(out: &mut String, input: &ReportInput<'_>) {
    let _ = writeln!(
        out,
        "## Spread\n\nns per fault, median (min–max) over the runs used:\n"
    );
    let _ = writeln!(
        out,
        "| configuration | first touch | COW copy | COW reuse |\n|---|---|---|---|"
    );
    for config in input.configs {
        let Some(figures) = input.figures.get(config) else {
            continue;
        };
        let cell = |kind: &str| {
            figures.ns_per_fault.get(kind).map_or("—".to_string(), |s| {
                format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max)
            })
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            config.label(),
            cell(KINDS[0].0),
            cell(KINDS[1].0),
            cell(KINDS[2].0)
        );
    }
    let _ = writeln!(out);
}

fn bpftrace_classification(out: &mut String, input: &ReportInput<'_>) {
    let Some(kinds) = input
        .samples
        .iter()
        .filter(|s| s.config == Config::BpftraceCounts)
        .find_map(|s| s.bpftrace_kinds.as_ref())
    else {
        return;
    };
    let counts: Vec<String> = kinds
        .iter()
        .map(|(code, n)| {
            format!(
                "{} {}",
                outputs::bpftrace_kind_name(*code),
                count(*n as f64)
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "The bpftrace script (`bench/fault-kinds.bt`) classifies like cowtrace; one of its runs \
         counted {} (the storm alone: {} of each of first touch, COW copy and COW reuse; the \
         rest is the process starting and exiting).\n",
        counts.join(", "),
        count(input.pages as f64)
    );
}

fn samples_section(out: &mut String, input: &ReportInput<'_>) {
    let _ = writeln!(
        out,
        "## Every run\n\nns per fault of each phase (both storms of a pair, `/`-separated), \
         losses, and how busy the machine was just before and just after.\n"
    );
    let _ = writeln!(
        out,
        "| run | configuration | first touch | COW copy | COW reuse | lost | busy before / after |\n\
         |---|---|---|---|---|---|---|"
    );
    for sample in input.samples {
        let cell = |kind: &str| {
            sample
                .ns_per_fault(kind)
                .map(|ns| format!("{ns:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.0} % / {:.0} %{}{} |",
            sample.repetition + 1,
            sample.config.label(),
            cell(KINDS[0].0),
            cell(KINDS[1].0),
            cell(KINDS[2].0),
            sample.lost.map_or("—".to_string(), |n| n.to_string()),
            sample.before.busy_share * 100.0,
            sample.after.busy_share * 100.0,
            match sample
                .before
                .tracing_programs
                .max(sample.after.tracing_programs)
            {
                0 => String::new(),
                n => format!(", {n} tracing programs of others"),
            },
            if sample.is_clean() {
                ""
            } else {
                " (disturbed)"
            }
        );
    }
}

pub fn render(input: &ReportInput<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# cowtrace performance\n");
    let _ = writeln!(
        out,
        "Written by `cargo xtask bench` on {} in {:.0} s; every figure below comes from that one \
         run. Regenerate with `cargo xtask bench`.\n",
        input.machine.date_utc,
        input.elapsed.as_secs_f64()
    );
    machine_section(&mut out, input);
    method_section(&mut out, input);

    let single: Vec<Config> = input
        .configs
        .iter()
        .copied()
        .filter(|c| c.storms() == 1)
        .collect();
    let pairs: Vec<Config> = input
        .configs
        .iter()
        .copied()
        .filter(|c| c.storms() == 2)
        .collect();
    let _ = writeln!(out, "## Overhead per fault kind, peers side by side\n");
    overhead_table(&mut out, input, &single);
    let _ = writeln!(
        out,
        "\n*Faults seen* is everything the tool reported for the run (the storm's {} faults \
         plus the process's start and exit); cowtrace and bpftrace lose records when their \
         buffer is full, perf trace loses events, `perf stat` only counts. cowtrace's ring \
         buffer ({DEFAULT_RING_BUFFER_MIB} MiB by default, about {} records of {RECORD_BYTES} \
         bytes with their headers) holds a whole storm of this size: no loss here says that \
         nothing was lost, not that the reader keeps up. The million-record storm under \
         *Collector* says that. Fault records wake cowtrace's reader only once half of \
         that buffer (about {} records) waits; otherwise the reader drains it every \
         {DRAIN_PERIOD_MS} ms.{}\n",
        count(3.0 * input.pages as f64),
        count((DEFAULT_RING_BUFFER_MIB << 20) as f64 / RECORD_BYTES as f64),
        count(
            (DEFAULT_RING_BUFFER_MIB << 20) as f64 / WAKEUP_FRACTION as f64 / RECORD_BYTES as f64
        ),
        if single
            .iter()
            .any(|c| matches!(c, Config::RawTracepointFloor | Config::TracepointFloor))
        {
            " The floors' programs do nothing: they see and lose nothing."
        } else {
            ""
        }
    );
    bpftrace_classification(&mut out, input);
    if !pairs.is_empty() {
        let _ = writeln!(
            out,
            "## Both cores faulting\n\nTwo storms started at once (one per core), against two \
             untraced storms started at once:\n"
        );
        overhead_table(&mut out, input, &pairs);
        let _ = writeln!(out);
    }
    targets_section(&mut out, input);
    collector_section(&mut out, input);
    profile_section(&mut out, input);
    spread_section(&mut out, input);
    samples_section(&mut out, input);
    out
}

/// The in-region check lines of `cowtrace run` output and its verdict, for the method section.
pub fn preflight_excerpt(run_output: &str) -> Option<String> {
    let verdict = run_output
        .lines()
        .find(|line| line.starts_with("RESULT:"))?;
    let mut lines: Vec<&str> = run_output
        .lines()
        .filter(|line| line.contains("in region") || line.contains("records lost"))
        .collect();
    lines.push(verdict);
    Some(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use cowtrace_workloads::report::{PhaseTiming, Role};

    use crate::bench::{analysis, machine::Quiet, runner::Failures};

    /// A sample of `config` whose storm took `ns` per fault of each kind.
    fn sample(config: Config, repetition: usize, ns: [f64; 3]) -> Sample {
        Sample {
            config,
            repetition,
            phases: KINDS
                .iter()
                .zip(ns)
                .map(|((kind, _), ns)| {
                    PhaseTiming::new(kind, Role::Parent, 1000, 0, (ns * 1000.0) as u64)
                })
                .collect(),
            faults_seen: None,
            lost: None,
            cowtrace: None,
            attach: None,
            bpftrace_kinds: None,
            before: Quiet::default(),
            after: Quiet::default(),
        }
    }

    /// A whole report from made-up figures: untraced 1000/2000/500 ns, the raw floor +50/+300/
    /// +20 ns (over the COW copy target's 200 ns), the classic floor +400/+900/+200 ns,
    /// cowtrace +600/+1000/+100 ns (first touch and COW copy missed).
    fn report() -> String {
        let configs = [
            (Config::Untraced, [1000.0, 2000.0, 500.0]),
            (Config::Cowtrace, [1600.0, 3000.0, 600.0]),
            (Config::BpftraceCounts, [1500.0, 3100.0, 800.0]),
            (Config::RawTracepointFloor, [1050.0, 2300.0, 520.0]),
            (Config::TracepointFloor, [1400.0, 2900.0, 700.0]),
        ];
        let samples: Vec<Sample> = (0..3)
            .flat_map(|repetition| {
                configs
                    .iter()
                    .map(move |(config, ns)| sample(*config, repetition, *ns))
            })
            .collect();
        let figures = analysis::figures(&samples, &Failures::new());
        let targets = analysis::targets(&figures, None);
        let profile = Profile {
            cowtrace_programs: Err("not taken".into()),
            bpftrace_programs: Err("not taken".into()),
            prog_profile: "not tried".into(),
            perf_traced: Err("not taken".into()),
            perf_untraced: Err("not taken".into()),
            interrupts: Err("not taken".into()),
        };
        let configs: Vec<Config> = configs.iter().map(|(config, _)| *config).collect();
        render(&ReportInput {
            machine: &MachineInfo::default(),
            pages: 1000,
            repetitions: 3,
            configs: &configs,
            preflight: &Err("not run".into()),
            figures: &figures,
            samples: &samples,
            collector: &Err("not run".into()),
            profile: Some(&profile),
            targets: &targets,
            elapsed: Duration::from_secs(1),
        })
    }

    #[test]
    fn the_report_bounds_cowtrace_by_its_raw_floor() {
        let report = report();
        assert!(
            report.contains("The 5 configurations below ran 3 times each"),
            "{report}"
        );
        assert!(report.contains("`cowtrace __probe-floor`"), "{report}");
        // The missed COW copy target, against the raw floor for copies.
        assert!(
            report.contains(
                "- **COW copy**: cowtrace is at 1.50× where the target is 1.10×: it adds 1000 ns \
                 per fault, the target allows 200 ns. A program that does nothing on cowtrace's \
                 raw tracepoints is already at 1.15× (+300 ns): the floor alone misses the \
                 target"
            ),
            "{report}"
        );
        assert!(report.contains("adds 700 ns beyond the floor"), "{report}");
        assert!(
            report.contains("the floor bpftrace and perf-based tools pay is 1.45×"),
            "{report}"
        );
        // First touch: the floor leaves room.
        assert!(
            report.contains("which leaves 200 ns per fault for cowtrace's own work"),
            "{report}"
        );
        assert!(!report.contains("- **COW reuse**"), "{report}");
        assert!(
            report.contains(
                "first touch 250 ns (cowtrace's raw-tracepoint floor takes 50 of it, leaving 200"
            ),
            "{report}"
        );
        assert!(
            report.contains("COW copy 200 ns (cowtrace's raw-tracepoint floor alone takes 300"),
            "{report}"
        );
        assert!(
            report.contains(
                "Beyond its raw-tracepoint floor, cowtrace's own work (its programs and what they \
                 cause) adds: first touch +550 ns, COW copy +700 ns, COW reuse +80 ns."
            ),
            "{report}"
        );
        for stale in [
            "hash map per",
            "per-thread hash map",
            "72-byte",
            "bare tracepoints",
        ] {
            assert!(!report.contains(stale), "{stale}: {report}");
        }
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(75585.0), "75\u{202f}585");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1_000_000.0), "1\u{202f}000\u{202f}000");
    }

    #[test]
    fn preflight_keeps_the_region_checks_and_the_verdict() {
        let output = "cowtrace summary: ...\n\
                      parent 9713    anon_first_touch in region    25013    25013  ok\n\
                      parent 9713    frames agree with /proc/PID/pagemap  25013 pages  25013 pages  ok\n\
                      all            records lost (dropped)   0   0  ok\n\
                      RESULT: PASS\n";
        let excerpt = preflight_excerpt(output).unwrap();
        assert_eq!(excerpt.lines().count(), 3);
        assert!(excerpt.ends_with("RESULT: PASS"));
        assert_eq!(preflight_excerpt("no verdict"), None);
    }

    #[test]
    fn ratio_cells_show_the_ratio_and_the_median() {
        let mut figures = ConfigFigures::default();
        figures.ratios.insert("cow_copy", 1.234);
        figures.ns_per_fault.insert(
            "cow_copy",
            crate::bench::stats::Spread {
                median: 2480.4,
                min: 2000.0,
                max: 3000.0,
                count: 7,
            },
        );
        assert_eq!(ratio_cell(Some(&figures), "cow_copy"), "1.23× (2480 ns)");
        assert_eq!(ratio_cell(Some(&figures), "cow_reuse"), "—");
        assert_eq!(ratio_cell(None, "cow_copy"), "—");
    }

    #[test]
    fn lost_cells_tell_counters_from_zero_and_losses() {
        let mut figures = ConfigFigures::default();
        assert_eq!(lost_cell(Config::PerfStat, &figures), "— (counters)");
        assert_eq!(lost_cell(Config::RawTracepointFloor, &figures), "—");
        figures.lost = vec![0, 0];
        assert_eq!(lost_cell(Config::Cowtrace, &figures), "0 in 2 runs");
        figures.lost = vec![0, 12, 3];
        assert_eq!(
            lost_cell(Config::Cowtrace, &figures),
            "**15 in 3 runs** (up to 12 per run)"
        );
    }
}
