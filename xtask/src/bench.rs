//! `cargo xtask bench`: builds, then measures in one run what tracing page faults costs the
//! traced program, under cowtrace and its peers, and writes `reports/performance.md`.
//!
//! 1. `cowtrace run fault-storm` checks that cowtrace classifies the storm exactly.
//! 2. Every configuration ([`runner::Config`]) runs the fault-storm workload `repetitions`
//!    times, interleaved; the workload times its own phases.
//! 3. A million-record storm traced to a file gives the collector's figures.
//! 4. When a target is missed, a profile says where the time goes.

mod analysis;
mod collector;
mod machine;
mod markdown;
mod outputs;
mod profile;
mod runner;
mod stats;

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use cowtrace_workloads::fault_storm::PAGES_VAR;

use self::{
    runner::{Bench, Config, Failures, Sample},
    stats::Verdict,
};
use crate::process;

/// The storm's size unless `--pages` says otherwise: a prime, about 98 MiB of 4 KiB pages,
/// 75 039 faults; long enough for a stable time per fault, short enough that the ring buffer
/// holds it whole.
pub const STORM_PAGES: usize = 25013;

/// What `cargo xtask bench` was asked for.
pub struct Options {
    pub repetitions: usize,
    pub pages: usize,
    /// Profile when a target is missed.
    pub profile: bool,
}

/// How long to wait for a quiet machine before each run.
const QUIET_PATIENCE: Duration = Duration::from_secs(90);

/// A configuration that fails this often is not run again.
const MAX_FAILURES: usize = 2;

pub fn run(root: &Path, options: &Options) -> Result<()> {
    if options.repetitions < 1 || options.pages < 1 {
        bail!("--repetitions and --pages must be at least 1");
    }
    let started = Instant::now();
    let cowtrace = crate::build(root, false)?;
    let release = cowtrace
        .parent()
        .context("the cowtrace binary has no directory")?;
    let workload = release.join("cowtrace-workload");
    let collector_bench = release.join("cowtrace-collector-bench");
    for binary in [&workload, &collector_bench] {
        if !binary.exists() {
            bail!("the build succeeded but {} is missing", binary.display());
        }
    }
    let scratch = release
        .parent()
        .context("the release directory has no parent")?
        .join("bench");
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    // bpftrace compares raw enum values: take them from this kernel's BTF, as cowtrace does.
    let btf = process::stdout(Command::new("bpftool").args([
        "btf",
        "dump",
        "file",
        "/sys/kernel/btf/vmlinux",
        "format",
        "raw",
    ]))?;
    let enum_value = |name| {
        outputs::btf_enum_value(&btf, name)
            .with_context(|| format!("no enumerator {name} in the kernel's BTF"))
    };
    let bench = Bench {
        cowtrace: cowtrace.clone(),
        workload,
        kinds_script: root.join("bench/fault-kinds.bt"),
        floor_script: root.join("bench/tracepoint-floor.bt"),
        scratch,
        pages: options.pages,
        pgfault_item: enum_value("PGFAULT")?,
        migrate_movable: enum_value("MIGRATE_MOVABLE")?,
    };
    drop(btf);

    let machine = machine::describe(root);
    let configs: Vec<Config> = Config::ALL
        .into_iter()
        .filter(|config| match config.tool() {
            Some(tool) if which::which(tool).is_err() => {
                println!("bench: {tool} not found: skipping {}", config.label());
                false
            }
            _ => true,
        })
        .collect();

    let preflight = preflight(&bench);
    match &preflight {
        Ok(_) => println!("bench: cowtrace run fault-storm: PASS"),
        Err(why) => println!("bench: cowtrace run fault-storm did not pass: {why}"),
    }

    let (samples, failures) = measure(&bench, &configs, options.repetitions)?;

    wait_for_quiet()?;
    let collector = collector::run(&bench, &collector_bench).map_err(|err| format!("{err:#}"));
    if let Err(why) = &collector {
        println!("bench: collector run failed: {why}");
    }
    let figures = analysis::figures(&samples, &failures);
    let targets = analysis::targets(&figures, collector.as_ref().ok());
    let missed = targets.iter().any(|row| row.verdict == Verdict::NotMet);
    let profile = if options.profile && missed {
        wait_for_quiet()?;
        Some(profile::run(&bench))
    } else {
        None
    };

    let report = markdown::render(&markdown::ReportInput {
        machine: &machine,
        pages: options.pages,
        repetitions: options.repetitions,
        configs: &configs,
        preflight: &preflight,
        figures: &figures,
        samples: &samples,
        collector: &collector,
        profile: profile.as_ref(),
        targets: &targets,
        elapsed: started.elapsed(),
    });
    let path = root.join("reports/performance.md");
    fs::create_dir_all(root.join("reports"))?;
    fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;

    println!();
    for row in &targets {
        println!(
            "bench: {:<58} {:<44} {}",
            row.target,
            row.measured,
            row.verdict.label().replace("**", "")
        );
    }
    println!("bench: wrote {}", crate::shown(root, &path).display());
    Ok(())
}

/// `cowtrace run fault-storm`: the check lines and verdict when it passes.
fn preflight(bench: &Bench) -> Result<String, String> {
    let vars = [(PAGES_VAR.into(), bench.pages.to_string().into())];
    let output = process::as_root(&bench.cowtrace, &vars)
        .and_then(|mut cmd| {
            cmd.args(["run", "fault-storm"]);
            println!("bench: preflight: {}", process::display(&cmd));
            cmd.output().context("running cowtrace run fault-storm")
        })
        .map_err(|err| format!("{err:#}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match markdown::preflight_excerpt(&stdout) {
        Some(excerpt) if output.status.success() => Ok(excerpt),
        Some(excerpt) => Err(format!("{}:\n{excerpt}", output.status)),
        None => Err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// Runs every configuration `repetitions` times. Repetition `r` starts at the `r`-th
/// configuration, so that none always runs first or always follows the same neighbour.
fn measure(
    bench: &Bench,
    configs: &[Config],
    repetitions: usize,
) -> Result<(Vec<Sample>, Failures)> {
    // A first storm warms the page allocator and the binary's page cache; not counted.
    let _ = bench.run_sample(Config::Untraced, 0, machine::Quiet::default());
    let mut samples = Vec::new();
    let mut failures = Failures::new();
    for repetition in 0..repetitions {
        for offset in 0..configs.len() {
            let config = configs[(repetition + offset) % configs.len()];
            if failures.get(&config).map_or(0, Vec::len) >= MAX_FAILURES {
                continue;
            }
            let quiet = wait_for_quiet()?;
            match bench.run_sample(config, repetition, quiet) {
                Ok(sample) => {
                    println!("{}", progress_line(&sample, repetitions));
                    samples.push(sample);
                }
                Err(err) => {
                    let why = format!("{err:#}");
                    println!(
                        "bench: {}/{repetitions} {}: FAILED: {why}",
                        repetition + 1,
                        config.label()
                    );
                    failures.entry(config).or_default().push(why);
                }
            }
        }
    }
    Ok((samples, failures))
}

/// [`machine::wait_until_quiet`], saying so when the machine stayed busy.
fn wait_for_quiet() -> Result<machine::Quiet> {
    let quiet = machine::wait_until_quiet(QUIET_PATIENCE)?;
    if !quiet.is_quiet() {
        println!(
            "bench: after {QUIET_PATIENCE:?} the machine is still {:.0} % busy with {} tracing \
             BPF programs of others loaded; measuring anyway",
            quiet.busy_share * 100.0,
            quiet.tracing_programs
        );
    }
    Ok(quiet)
}

fn progress_line(sample: &Sample, repetitions: usize) -> String {
    let phases: Vec<String> = analysis::KINDS
        .iter()
        .map(|(kind, label)| {
            let ns: Vec<String> = sample
                .ns_per_fault(kind)
                .map(|ns| format!("{ns:.0}"))
                .collect();
            format!("{label} {} ns", ns.join("/"))
        })
        .collect();
    format!(
        "bench: {}/{repetitions} {}: {}; lost {}; busy {:.0} % before, {:.0} % after{}",
        sample.repetition + 1,
        sample.config.label(),
        phases.join(", "),
        sample.lost.map_or("-".to_string(), |n| n.to_string()),
        sample.before.busy_share * 100.0,
        sample.after.busy_share * 100.0,
        if sample.is_clean() {
            ""
        } else {
            " (disturbed)"
        }
    )
}
