//! The configurations the benchmark compares, and running one repetition of one: the
//! fault-storm workload under a tracer (or none), its own phase timings, and what the tracer
//! says it saw and lost.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fs::{self, File},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use cowtrace_workloads::{fault_storm::PAGES_VAR, report::FaultStormReport, report::PhaseTiming};

use super::{
    machine,
    outputs::{self, CowtraceSummary},
};
use crate::process;

/// One way of running the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Config {
    /// No tracer: the baseline.
    Untraced,
    /// `cowtrace trace -q --json /dev/null`: every fault classified, one record each, all the
    /// way to user space (decoded, modelled, serialised).
    Cowtrace,
    /// `perf stat -e page-faults,minor-faults,major-faults`: three counters, no records.
    PerfStat,
    /// `bench/fault-kinds.bt`, kinds counted in bpftrace maps: the same classification,
    /// aggregated in the kernel.
    BpftraceCounts,
    /// `bench/fault-kinds.bt` printing one line per fault: the same classification, a record
    /// per fault to user space, as cowtrace.
    BpftraceRecords,
    /// `perf trace -F all --no-syscalls`: a line per fault, no classification.
    PerfTrace,
    /// `cowtrace trace` as [`Config::Cowtrace`], with its reader stopped (SIGSTOP) for the
    /// storm: the records wait in the ring buffer, which holds a whole storm, and are read
    /// after it. What the kernel side alone costs, without the reader's work competing.
    CowtraceReaderPaused,
    /// `cowtrace __probe-floor`: a program that returns at once on each of the four RAW
    /// tracepoints cowtrace's fault path uses. cowtrace's floor: what the kernel charges for
    /// calling any program there, which no change to cowtrace's programs can remove.
    RawTracepointFloor,
    /// `bench/tracepoint-floor.bt`: bpftrace programs that return at once on the same four
    /// tracepoints in their CLASSIC form (bpftrace 0.17 cannot attach raw ones). The floor of
    /// bpftrace and of perf-based tracers, which fill a perf record before calling anything.
    TracepointFloor,
    /// Two storms at once, one per core, no tracer.
    UntracedPair,
    /// Two storms at once under one cowtrace: both cores faulting.
    CowtracePair,
}

impl Config {
    pub const ALL: [Config; 11] = [
        Config::Untraced,
        Config::Cowtrace,
        Config::CowtraceReaderPaused,
        Config::PerfStat,
        Config::BpftraceCounts,
        Config::BpftraceRecords,
        Config::PerfTrace,
        Config::RawTracepointFloor,
        Config::TracepointFloor,
        Config::UntracedPair,
        Config::CowtracePair,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Config::Untraced => "untraced",
            Config::Cowtrace => "cowtrace (full records)",
            Config::CowtraceReaderPaused => {
                "cowtrace, reader paused during the storm (the kernel side alone)"
            }
            Config::PerfStat => "perf stat -e page-faults,minor-faults,major-faults",
            Config::BpftraceCounts => "bpftrace, same classification (counts in maps)",
            Config::BpftraceRecords => "bpftrace, same classification (printf per fault)",
            Config::PerfTrace => "perf trace -F all",
            Config::RawTracepointFloor => {
                "floor: no-op BPF on cowtrace's 4 raw fault-path tracepoints"
            }
            Config::TracepointFloor => {
                "classic floor: no-op BPF on the same 4 classic tracepoints (what bpftrace and perf pay)"
            }
            Config::UntracedPair => "untraced, two storms at once",
            Config::CowtracePair => "cowtrace, two storms at once",
        }
    }

    /// Workload processes started at once.
    pub fn storms(self) -> usize {
        match self {
            Config::UntracedPair | Config::CowtracePair => 2,
            _ => 1,
        }
    }

    /// The configuration this one's ratios are taken against.
    pub fn baseline(self) -> Config {
        match self.storms() {
            2 => Config::UntracedPair,
            _ => Config::Untraced,
        }
    }

    /// The program this configuration needs besides the workload, to skip it when missing.
    pub fn tool(self) -> Option<&'static str> {
        match self {
            Config::Untraced | Config::UntracedPair => None,
            Config::Cowtrace
            | Config::CowtraceReaderPaused
            | Config::CowtracePair
            | Config::RawTracepointFloor => None,
            Config::PerfStat | Config::PerfTrace => Some("perf"),
            Config::BpftraceCounts | Config::BpftraceRecords | Config::TracepointFloor => {
                Some("bpftrace")
            }
        }
    }

    /// `cowtrace trace`, whose summary and debug log the run reads.
    fn is_cowtrace(self) -> bool {
        matches!(
            self,
            Config::Cowtrace | Config::CowtraceReaderPaused | Config::CowtracePair
        )
    }
}

/// Why the failed repetitions of each configuration failed.
pub type Failures = BTreeMap<Config, Vec<String>>;

/// Everything one repetition of one configuration produced.
#[derive(Clone, Debug)]
pub struct Sample {
    pub config: Config,
    pub repetition: usize,
    /// Every storm's phases (two storms' for a pair).
    pub phases: Vec<PhaseTiming>,
    /// Faults the tracer reported (all of them, not only the storm's), when it reports any.
    pub faults_seen: Option<u64>,
    /// Records or events the tracer lost; `None` where nothing can be lost (counters).
    pub lost: Option<u64>,
    pub cowtrace: Option<CowtraceSummary>,
    pub attach: Option<Duration>,
    /// bpftrace's kinds, by the script's kind number.
    pub bpftrace_kinds: Option<BTreeMap<u32, u64>>,
    /// The machine just before the run and just after it.
    pub before: machine::Quiet,
    pub after: machine::Quiet,
}

impl Sample {
    /// Whether others left the machine alone enough for this sample to count: idle before
    /// and after, and no tracer of theirs running its programs on our faults.
    pub fn is_clean(&self) -> bool {
        self.before.is_quiet()
            && self.after.busy_share < machine::BUSY_AFTER_SHARE
            && self.after.tracing_programs == 0
    }

    /// ns per fault of every phase of `kind` in this sample.
    pub fn ns_per_fault<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = f64> + 'a {
        self.phases
            .iter()
            .filter(move |phase| phase.kind == kind)
            .map(|phase| phase.ns_per_fault)
    }
}

/// Where everything the runs need is.
#[derive(Clone, Debug)]
pub struct Bench {
    pub cowtrace: PathBuf,
    pub workload: PathBuf,
    /// `bench/fault-kinds.bt`
    pub kinds_script: PathBuf,
    /// `bench/tracepoint-floor.bt`
    pub floor_script: PathBuf,
    /// Scratch directory for reports and tool output.
    pub scratch: PathBuf,
    pub pages: usize,
    /// `PGFAULT` of `enum vm_event_item` and `MIGRATE_MOVABLE`, for the bpftrace script.
    pub pgfault_item: i64,
    pub migrate_movable: i64,
}

/// Longest a single run may take (`perf trace` resolving every fault's symbol is the slowest).
const RUN_DEADLINE: Duration = Duration::from_secs(600);

/// Two storms at once, one on CPU 0 and one on CPU 1 (the workload pins itself to the CPU it
/// starts on, and two started at once could start on the same one):
/// `sh -c PAIR_SCRIPT WORKLOAD REPORT1 REPORT2`. Fails if either fails.
const PAIR_SCRIPT: &str = r#"taskset -c 0 "$0" fault-storm --report "$1" & first=$!
taskset -c 1 "$0" fault-storm --report "$2"; second=$?
wait "$first" && exit "$second""#;

/// `sh -c PAUSED_READER_SCRIPT STORM...` under `cowtrace trace`: the tracer (the shell's
/// parent) is stopped while the storm runs, and continued whatever the storm's outcome.
const PAUSED_READER_SCRIPT: &str = r#"kill -STOP "$PPID" || exit 1
"$0" "$@"; status=$?
kill -CONT "$PPID"; exit "$status""#;

impl Bench {
    /// The workload's command line, writing its reports to `reports`.
    fn storm_command(&self, reports: &[PathBuf]) -> Vec<OsString> {
        match reports {
            [report] => vec![
                self.workload.clone().into(),
                "fault-storm".into(),
                "--report".into(),
                report.into(),
            ],
            [first, second] => vec![
                "/bin/sh".into(),
                "-c".into(),
                PAIR_SCRIPT.into(),
                self.workload.clone().into(),
                first.into(),
                second.into(),
            ],
            _ => unreachable!("one or two storms"),
        }
    }

    fn vars(&self, config: Config) -> Vec<(OsString, OsString)> {
        let mut vars = vec![(PAGES_VAR.into(), self.pages.to_string().into())];
        if config.is_cowtrace() {
            // The attach time is only logged at debug level.
            vars.push(("RUST_LOG".into(), "cowtrace=debug".into()));
        }
        vars
    }

    /// The command that runs `storm` under `config`, its tool writing to `tool_output`.
    fn command(&self, config: Config, storm: &[OsString], tool_output: &Path) -> Result<Command> {
        let vars = self.vars(config);
        // bpftrace takes the command as one string and splits it at spaces.
        let joined = || -> Result<String> {
            let words: Vec<String> = storm
                .iter()
                .map(|word| word.to_string_lossy().into_owned())
                .collect();
            if words.iter().any(|word| word.contains(char::is_whitespace)) {
                bail!("bpftrace -c cannot run a command whose words contain spaces: {words:?}");
            }
            Ok(words.join(" "))
        };
        let cmd = match config {
            Config::Untraced | Config::UntracedPair => {
                let mut cmd = process::as_root(&storm[0], &vars)?;
                cmd.args(&storm[1..]);
                cmd
            }
            Config::Cowtrace | Config::CowtracePair => {
                let mut cmd = process::as_root(&self.cowtrace, &vars)?;
                cmd.args(["trace", "-q", "--json", "/dev/null", "--"])
                    .args(storm);
                cmd
            }
            Config::CowtraceReaderPaused => {
                // The traced shell stops its parent, the tracer, runs the storm, and lets the
                // tracer go on; the tracer then reads the storm's records from the ring buffer.
                let mut cmd = process::as_root(&self.cowtrace, &vars)?;
                cmd.args(["trace", "-q", "--json", "/dev/null", "--", "/bin/sh", "-c"])
                    .arg(PAUSED_READER_SCRIPT)
                    .args(storm);
                cmd
            }
            Config::RawTracepointFloor => {
                let mut cmd = process::as_root(&self.cowtrace, &vars)?;
                cmd.args(["__probe-floor", "--"]).args(storm);
                cmd
            }
            Config::PerfStat => {
                let mut cmd = process::as_root("perf", &vars)?;
                cmd.args(["stat", "-x", ",", "-o"])
                    .arg(tool_output)
                    .args(["-e", "page-faults,minor-faults,major-faults", "--"])
                    .args(storm);
                cmd
            }
            Config::PerfTrace => {
                let mut cmd = process::as_root("perf", &vars)?;
                cmd.args(["trace", "-F", "all", "--no-syscalls", "-o"])
                    .arg(tool_output)
                    .arg("--")
                    .args(storm);
                cmd
            }
            Config::BpftraceCounts | Config::BpftraceRecords => {
                let print_each = if config == Config::BpftraceRecords {
                    "1"
                } else {
                    "0"
                };
                let mut cmd = process::as_root("bpftrace", &vars)?;
                cmd.args(["-f", "json", "-o"])
                    .arg(tool_output)
                    .args(["-c", &joined()?])
                    .arg(&self.kinds_script)
                    .args([
                        self.pgfault_item.to_string(),
                        self.migrate_movable.to_string(),
                        print_each.to_string(),
                    ]);
                cmd
            }
            Config::TracepointFloor => {
                let mut cmd = process::as_root("bpftrace", &vars)?;
                cmd.args(["-f", "json", "-o"])
                    .arg(tool_output)
                    .args(["-c", &joined()?])
                    .arg(&self.floor_script);
                cmd
            }
        };
        Ok(cmd)
    }

    /// Runs one repetition of `config`; `before` is the machine's state when it starts.
    pub fn run_sample(
        &self,
        config: Config,
        repetition: usize,
        before: machine::Quiet,
    ) -> Result<Sample> {
        let reports: Vec<PathBuf> = (0..config.storms())
            .map(|index| self.scratch.join(format!("storm-{index}.json")))
            .collect();
        let tool_output = self.scratch.join("tool-output");
        let stdout_path = self.scratch.join("stdout.txt");
        let stderr_path = self.scratch.join("stderr.txt");
        for stale in reports.iter().chain([&tool_output]) {
            let _ = fs::remove_file(stale);
        }
        let storm = self.storm_command(&reports);
        let mut cmd = self.command(config, &storm, &tool_output)?;
        cmd.stdout(File::create(&stdout_path)?)
            .stderr(File::create(&stderr_path)?);
        let status = machine::run_to_completion(&mut cmd, RUN_DEADLINE)?;
        let after = machine::state_after_run()?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}); see {}",
                process::display(&cmd),
                stderr_path.display()
            );
        }

        let mut sample = Sample {
            config,
            repetition,
            phases: Vec::new(),
            faults_seen: None,
            lost: None,
            cowtrace: None,
            attach: None,
            bpftrace_kinds: None,
            before,
            after,
        };
        for report in &reports {
            sample.phases.extend(read_storm_report(report)?.phases);
        }
        let tool_text = || {
            fs::read_to_string(&tool_output)
                .with_context(|| format!("reading {}", tool_output.display()))
        };
        match config {
            // The floor's program does nothing: nothing seen, nothing to lose.
            Config::Untraced | Config::UntracedPair | Config::RawTracepointFloor => {}
            Config::Cowtrace | Config::CowtraceReaderPaused | Config::CowtracePair => {
                // The summary goes to standard error, the workload's lines to standard output.
                let stderr = fs::read_to_string(&stderr_path)?;
                let summary = outputs::cowtrace_summary(&stderr)
                    .with_context(|| format!("no `records:` line in {}", stderr_path.display()))?;
                sample.faults_seen = summary.faults;
                sample.lost = Some(summary.dropped);
                sample.attach = outputs::cowtrace_attach_time(&stderr);
                sample.cowtrace = Some(summary);
            }
            Config::PerfStat => {
                let counts = outputs::perf_stat_counts(&tool_text()?);
                sample.faults_seen = counts.get("page-faults").copied().flatten();
            }
            Config::PerfTrace => {
                let output = outputs::perf_trace_output(&tool_text()?);
                sample.faults_seen = Some(output.faults);
                sample.lost = Some(output.lost_events);
            }
            Config::BpftraceCounts | Config::BpftraceRecords | Config::TracepointFloor => {
                let output = outputs::bpftrace_output(&tool_text()?);
                sample.lost = Some(output.lost_events);
                if config != Config::TracepointFloor {
                    sample.faults_seen = Some(output.faults());
                    sample.bpftrace_kinds = Some(output.kinds);
                }
            }
        }
        Ok(sample)
    }
}

/// The report a fault-storm run wrote.
pub fn read_storm_report(path: &Path) -> Result<FaultStormReport> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("the workload wrote no report at {}", path.display()))?;
    let report: FaultStormReport = serde_json::from_str(&text)
        .with_context(|| format!("malformed fault-storm report {}", path.display()))?;
    if !report.common.ok {
        bail!("the workload's own checks failed; see {}", path.display());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench() -> Bench {
        Bench {
            cowtrace: "/t/cowtrace".into(),
            workload: "/t/cowtrace-workload".into(),
            kinds_script: "/b/fault-kinds.bt".into(),
            floor_script: "/b/tracepoint-floor.bt".into(),
            scratch: "/s".into(),
            pages: 101,
            pgfault_item: 23,
            migrate_movable: 1,
        }
    }

    fn words(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn pairs_compare_with_the_untraced_pair() {
        assert_eq!(Config::CowtracePair.baseline(), Config::UntracedPair);
        assert_eq!(Config::BpftraceRecords.baseline(), Config::Untraced);
        for config in Config::ALL {
            assert_eq!(config.storms(), config.baseline().storms());
        }
    }

    #[test]
    fn bpftrace_gets_the_enum_values_and_the_print_switch() {
        if !process::is_root() {
            return; // as_root would go through sudo and reorder the words
        }
        let bench = bench();
        let storm = bench.storm_command(&["/s/storm-0.json".into()]);
        let cmd = bench
            .command(Config::BpftraceRecords, &storm, Path::new("/s/out"))
            .unwrap();
        assert_eq!(
            words(&cmd),
            [
                "-f",
                "json",
                "-o",
                "/s/out",
                "-c",
                "/t/cowtrace-workload fault-storm --report /s/storm-0.json",
                "/b/fault-kinds.bt",
                "23",
                "1",
                "1"
            ]
        );
    }

    #[test]
    fn the_paused_reader_runs_the_storm_in_a_shell_that_stops_and_continues_the_tracer() {
        let bench = bench();
        let storm = bench.storm_command(&["/s/storm-0.json".into()]);
        let Ok(cmd) = bench.command(Config::CowtraceReaderPaused, &storm, Path::new("/s/out"))
        else {
            assert!(!process::is_root());
            return; // neither root nor sudo: as_root cannot build it
        };
        let words = words(&cmd);
        assert!(
            words.ends_with(&[
                "trace".to_string(),
                "-q".into(),
                "--json".into(),
                "/dev/null".into(),
                "--".into(),
                "/bin/sh".into(),
                "-c".into(),
                PAUSED_READER_SCRIPT.into(),
                "/t/cowtrace-workload".into(),
                "fault-storm".into(),
                "--report".into(),
                "/s/storm-0.json".into(),
            ]),
            "{words:?}"
        );
        // Stopped before the storm, continued after it even when it fails.
        let stop = PAUSED_READER_SCRIPT.find("-STOP").unwrap();
        let storm_runs = PAUSED_READER_SCRIPT.find(r#""$0" "$@""#).unwrap();
        let cont = PAUSED_READER_SCRIPT.find("-CONT").unwrap();
        assert!(stop < storm_runs && storm_runs < cont);
        assert!(!PAUSED_READER_SCRIPT.contains(r#""$@" &&"#));
    }

    #[test]
    fn the_raw_floor_runs_the_storm_under_cowtrace_probe_floor() {
        let bench = bench();
        let storm = bench.storm_command(&["/s/storm-0.json".into()]);
        let Ok(cmd) = bench.command(Config::RawTracepointFloor, &storm, Path::new("/s/out")) else {
            assert!(!process::is_root());
            return; // neither root nor sudo: as_root cannot build it
        };
        let words = words(&cmd);
        // As root the words are exactly these; through sudo, `-E env VARS... /t/cowtrace` first.
        assert!(
            words.ends_with(&[
                "__probe-floor".to_string(),
                "--".into(),
                "/t/cowtrace-workload".into(),
                "fault-storm".into(),
                "--report".into(),
                "/s/storm-0.json".into(),
            ]),
            "{words:?}"
        );
        // The storm's size, but not the debug log only `cowtrace trace` is read for.
        let vars: Vec<String> = cmd
            .get_envs()
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .chain(words.iter().cloned())
            .collect();
        assert!(
            vars.iter().any(|var| var.starts_with(PAGES_VAR)),
            "{vars:?}"
        );
        assert!(
            !vars.iter().any(|var| var.starts_with("RUST_LOG")),
            "{vars:?}"
        );
        if process::is_root() {
            assert_eq!(cmd.get_program(), "/t/cowtrace");
        }
    }

    #[test]
    fn each_floor_needs_its_own_tool() {
        assert_eq!(Config::RawTracepointFloor.tool(), None); // cowtrace, built by the bench
        assert_eq!(Config::TracepointFloor.tool(), Some("bpftrace"));
        assert_eq!(Config::RawTracepointFloor.baseline(), Config::Untraced);
        assert!(Config::RawTracepointFloor.label().contains("raw"));
        assert!(Config::TracepointFloor.label().contains("classic"));
    }

    #[test]
    fn every_configuration_is_listed_once_with_its_own_label() {
        let labels: std::collections::BTreeSet<&str> =
            Config::ALL.iter().map(|config| config.label()).collect();
        assert_eq!(labels.len(), Config::ALL.len());
        let configs: std::collections::BTreeSet<Config> = Config::ALL.into_iter().collect();
        assert_eq!(configs.len(), Config::ALL.len());
    }

    #[test]
    fn bpftrace_refuses_words_with_spaces() {
        let bench = Bench {
            workload: "/a dir/cowtrace-workload".into(),
            ..bench()
        };
        let storm = bench.storm_command(&["/s/storm-0.json".into()]);
        let err = bench
            .command(Config::BpftraceCounts, &storm, Path::new("/s/out"))
            .unwrap_err();
        assert!(err.to_string().contains("spaces"), "{err}");
    }

    #[test]
    fn a_pair_runs_both_storms_through_sh() {
        let storm = bench().storm_command(&["/s/a.json".into(), "/s/b.json".into()]);
        assert_eq!(storm[0], "/bin/sh");
        assert_eq!(
            &storm[3..],
            ["/t/cowtrace-workload", "/s/a.json", "/s/b.json"]
        );
    }
}
