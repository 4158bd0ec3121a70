//! What the measured tools print, parsed: `perf stat`, `perf trace`, bpftrace, cowtrace's
//! summary and debug log, bpftool, `perf report`, `/proc/stat`. Pure functions over text, so
//! each format is pinned by a test.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Deserialize;

/// `perf stat -x ,` output: each event's count; `None` for `<not counted>` or
/// `<not supported>`. Comment and blank lines are skipped.
pub fn perf_stat_counts(text: &str) -> BTreeMap<String, Option<u64>> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            // value,unit,event,run time,percentage,...
            let fields: Vec<&str> = line.split(',').collect();
            let event = fields.get(2)?.trim();
            (!event.is_empty()).then(|| (event.to_string(), fields[0].trim().parse().ok()))
        })
        .collect()
}

/// The kinds `bench/fault-kinds.bt` counts, by the number it uses for each.
pub const BPFTRACE_KINDS: [(u32, &str); 6] = [
    (1, "anon_first_touch"),
    (2, "zero_page"),
    (3, "cow_copy"),
    (4, "cow_reuse"),
    (5, "gup_fault"),
    (6, "other"),
];

pub fn bpftrace_kind_name(code: u32) -> &'static str {
    BPFTRACE_KINDS
        .iter()
        .find(|(number, _)| *number == code)
        .map_or("unknown", |(_, name)| name)
}

/// What `bpftrace -f json` wrote while running `bench/fault-kinds.bt` (or any script).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BpftraceOutput {
    /// `@kinds[pid, kind]` summed over processes: kind number → faults.
    pub kinds: BTreeMap<u32, u64>,
    /// Events the perf buffer could not take (bpftrace's `lost_events`).
    pub lost_events: u64,
    /// `printf` lines received.
    pub printed_lines: u64,
}

impl BpftraceOutput {
    pub fn faults(&self) -> u64 {
        self.kinds.values().sum()
    }
}

#[derive(Deserialize)]
struct BpftraceLine {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: serde_json::Value,
}

pub fn bpftrace_output(text: &str) -> BpftraceOutput {
    let mut output = BpftraceOutput::default();
    // Lines that are not JSON (a warning that reached the file) carry nothing we count.
    for line in text
        .lines()
        .filter_map(|line| serde_json::from_str::<BpftraceLine>(line).ok())
    {
        match line.kind.as_str() {
            "printf" => output.printed_lines += 1,
            "lost_events" => {
                output.lost_events += line.data["events"].as_u64().unwrap_or(0);
            }
            "map" => {
                let Some(kinds) = line.data.get("@kinds").and_then(|map| map.as_object()) else {
                    continue;
                };
                for (key, count) in kinds {
                    // The key is "pid,kind".
                    let kind = key.rsplit(',').next().and_then(|kind| kind.parse().ok());
                    if let (Some(kind), Some(count)) = (kind, count.as_u64()) {
                        *output.kinds.entry(kind).or_default() += count;
                    }
                }
            }
            _ => {}
        }
    }
    output
}

/// What `perf trace -F all --no-syscalls -o FILE` wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerfTraceOutput {
    /// Lines reporting a fault (`majfault` or `minfault`).
    pub faults: u64,
    /// Sum of the `LOST n events!` lines.
    pub lost_events: u64,
}

pub fn perf_trace_output(text: &str) -> PerfTraceOutput {
    let mut output = PerfTraceOutput::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if line.trim_start().starts_with("LOST ") {
            output.lost_events += words.nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        } else if words.any(|word| word == "majfault" || word == "minfault") {
            output.faults += 1;
        }
    }
    output
}

/// The figures of cowtrace's closing summary (`cowtrace trace -q`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CowtraceSummary {
    pub produced: u64,
    pub received: u64,
    pub dropped: u64,
    /// `cowtrace summary: P processes, F faults in S s`.
    pub faults: Option<u64>,
    pub seconds: Option<f64>,
}

/// The number written right before `word` in `line` (`"75651 produced,"`).
fn number_before(line: &str, word: &str) -> Option<f64> {
    let tokens: Vec<&str> = line
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|token| !token.is_empty())
        .collect();
    tokens
        .windows(2)
        .find(|pair| pair[1] == word)
        .and_then(|pair| pair[0].parse().ok())
}

/// Reads the `records: N produced, N received, N dropped` line (required) and the
/// `cowtrace summary:` line (optional) of cowtrace's standard output.
pub fn cowtrace_summary(stdout: &str) -> Option<CowtraceSummary> {
    let records = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("records:"))?;
    let mut summary = CowtraceSummary {
        produced: number_before(records, "produced")? as u64,
        received: number_before(records, "received")? as u64,
        dropped: number_before(records, "dropped")? as u64,
        ..Default::default()
    };
    if let Some(line) = stdout
        .lines()
        .find(|line| line.starts_with("cowtrace summary:"))
    {
        summary.faults = number_before(line, "faults").map(|n| n as u64);
        summary.seconds = number_before(line, "s");
    }
    Some(summary)
}

/// A [`Duration`] as Rust's `Debug` prints it: `149.258431ms`, `1.5s`, `950µs`, `12ns`.
pub fn parse_debug_duration(text: &str) -> Option<Duration> {
    // Longest suffixes first: "ms" also ends with "s".
    const UNITS: [(&str, f64); 5] = [
        ("ns", 1e-9),
        ("µs", 1e-6),
        ("us", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
    ];
    let text = text.trim();
    UNITS.iter().find_map(|(unit, seconds)| {
        let value: f64 = text.strip_suffix(unit)?.parse().ok()?;
        (value >= 0.0).then(|| Duration::from_secs_f64(value * seconds))
    })
}

/// The attach time cowtrace logs at `RUST_LOG=cowtrace=debug`.
pub fn cowtrace_attach_time(stderr: &str) -> Option<Duration> {
    const MARKER: &str = "probes loaded and attached after ";
    stderr.lines().find_map(|line| {
        let (_, rest) = line.split_once(MARKER)?;
        parse_debug_duration(rest.split_whitespace().next()?)
    })
}

/// The value of enumerator `name` in `bpftool btf dump file ... format raw` output, whose
/// enumerator lines read `\t'PGFAULT' val=23`.
pub fn btf_enum_value(raw_dump: &str, name: &str) -> Option<i64> {
    let prefix = format!("'{name}' val=");
    raw_dump
        .lines()
        .find_map(|line| line.trim().strip_prefix(&prefix)?.trim().parse().ok())
}

/// One BPF program of `bpftool prog show -j`; the run statistics are present while
/// `kernel.bpf_stats_enabled` is (or was) on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ProgramStats {
    pub id: u32,
    #[serde(default)]
    pub name: String,
    /// `tracepoint`, `kprobe`, `cgroup_skb`, ...
    #[serde(rename = "type", default)]
    pub program_type: String,
    #[serde(default)]
    pub run_cnt: u64,
    #[serde(default)]
    pub run_time_ns: u64,
    /// Unix time in seconds.
    #[serde(default)]
    pub loaded_at: u64,
    #[serde(default)]
    pub map_ids: Vec<u32>,
}

impl ProgramStats {
    pub fn ns_per_run(&self) -> Option<f64> {
        (self.run_cnt > 0).then(|| self.run_time_ns as f64 / self.run_cnt as f64)
    }

    /// A program of a type that hooks kernel events (tracepoints, probes, perf events): one
    /// on the fault path runs on every fault of every process, traced or not.
    pub fn is_tracing(&self) -> bool {
        matches!(
            self.program_type.as_str(),
            "tracepoint" | "raw_tracepoint" | "tracing" | "kprobe" | "perf_event"
        )
    }
}

pub fn bpf_programs(json: &str) -> Result<Vec<ProgramStats>> {
    serde_json::from_str(json).context("parsing `bpftool prog show -j` output")
}

/// One line of `perf report --stdio --sort sym -g none`: `    12.71%  [k] copy_page`.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolShare {
    pub percent: f64,
    /// `[k]`: kernel; `[.]`: user space.
    pub kernel: bool,
    pub symbol: String,
}

pub fn perf_report_symbols(text: &str) -> Vec<SymbolShare> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (percent, rest) = line.trim().split_once('%')?;
            let percent = percent.trim().parse().ok()?;
            let rest = rest.trim_start();
            let (kernel, symbol) = if let Some(symbol) = rest.strip_prefix("[k]") {
                (true, symbol)
            } else {
                (false, rest.strip_prefix("[.]")?)
            };
            Some(SymbolShare {
                percent,
                kernel,
                symbol: symbol.trim().to_string(),
            })
        })
        .collect()
}

/// CPU time of the whole machine from the first line of `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Everything but idle and I/O wait (steal included: the hypervisor gave the time to
    /// someone else).
    pub busy: u64,
    pub total: u64,
}

pub fn cpu_times(proc_stat: &str) -> Option<CpuTimes> {
    let line = proc_stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user already)
    let values: Vec<u64> = fields
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 8 {
        return None;
    }
    let idle = values[3] + values[4];
    let total: u64 = values.iter().sum();
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// The counters of a trace file's `end` line (`cowtrace trace --json FILE`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TraceEnd {
    pub records_produced: u64,
    pub records_received: u64,
    pub records_dropped: u64,
    pub duration_ns: u64,
}

/// The `end` line among the last lines of a trace file.
pub fn trace_end(tail: &str) -> Option<TraceEnd> {
    tail.lines().rev().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        if value["type"] != "end" {
            return None;
        }
        serde_json::from_value(value).ok()
    })
}

/// The architecture's interrupt counts of `/proc/interrupts` (rows named by letters, such as
/// `IWI` or `CAL`), summed over the CPUs. Numbered rows (devices) are left out.
pub fn interrupt_counts(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim_start().split_once(':')?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase()) {
                return None;
            }
            // Per-CPU counts come first; the description follows.
            let total = rest
                .split_whitespace()
                .map_while(|field| field.parse::<u64>().ok())
                .sum();
            Some((name.to_string(), total))
        })
        .collect()
}

/// `VmHWM` of a `/proc/PID/status`: the process's peak resident set, in KiB.
pub fn peak_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_stat_csv() {
        let text = "# started on Sun Nov 22 05:45:01 2026\n\n\
                    75601,,page-faults,860419,100.00,,\n\
                    75600,,minor-faults,860419,100.00,,\n\
                    <not counted>,,major-faults,0,0.00,,\n";
        let counts = perf_stat_counts(text);
        assert_eq!(counts["page-faults"], Some(75601));
        assert_eq!(counts["minor-faults"], Some(75600));
        assert_eq!(counts["major-faults"], None);
        assert_eq!(counts.len(), 3);
    }

    #[test]
    fn bpftrace_json_counts_kinds_lost_events_and_lines() {
        let text = r#"{"type": "attached_probes", "data": {"probes": 8}}
{"type": "printf", "data": "7957 7957 5561bba570a0 4 11880\n"}
{"type": "printf", "data": "7957 7957 7f427f4f2ad0 2 6462\n"}
{"type": "lost_events", "data": {"events": 948}}
{"type": "lost_events", "data": {"events": 2}}
ERROR: something not JSON
{"type": "map", "data": {"@kinds": {"7957,5": 1, "7961,3": 509, "7957,3": 301, "7957,1": 1077}}}
"#;
        let output = bpftrace_output(text);
        assert_eq!(output.printed_lines, 2);
        assert_eq!(output.lost_events, 950);
        assert_eq!(output.kinds[&3], 810);
        assert_eq!(output.kinds[&1], 1077);
        assert_eq!(output.faults(), 1888);
        assert_eq!(bpftrace_kind_name(3), "cow_copy");
        assert_eq!(bpftrace_kind_name(99), "unknown");
    }

    #[test]
    fn bpftrace_without_output_is_empty() {
        assert_eq!(bpftrace_output(""), BpftraceOutput::default());
    }

    #[test]
    fn perf_trace_fault_lines_and_losses() {
        let text = "     0.000 ( 0.000 ms): :7836/7836 majfault [elf_load+0x28a] => 0x5635f15831e0 (?k)\n\
                    0.068 ( 0.000 ms): :7836/7836 minfault [elf_load+0x28a] => 0x7ff7d2513110 (?k)\n\
                    LOST 4096 events!\n\
                    0.094 ( 0.000 ms): cowtrace-worklo/7836 minfault [timed+0x10] => //anon@0x10 (d.)\n\
                    LOST 4 events!\n";
        assert_eq!(
            perf_trace_output(text),
            PerfTraceOutput {
                faults: 3,
                lost_events: 4100
            }
        );
    }

    #[test]
    fn cowtrace_summary_lines() {
        let stdout = "fault-storm: parent pid 1 ...\n\
                      cowtrace summary: 2 processes, 75585 faults in 1.735 s\n\
                      records: 75651 produced, 75640 received, 11 dropped (LOST: raise --ringbuf-mb)   incomplete faults: 0\n";
        let summary = cowtrace_summary(stdout).unwrap();
        assert_eq!(
            (summary.produced, summary.received, summary.dropped),
            (75651, 75640, 11)
        );
        assert_eq!(summary.faults, Some(75585));
        assert_eq!(summary.seconds, Some(1.735));
        assert_eq!(cowtrace_summary("no summary here"), None);
    }

    #[test]
    fn debug_durations() {
        assert_eq!(
            parse_debug_duration("149.258431ms"),
            Some(Duration::from_nanos(149_258_431))
        );
        assert_eq!(
            parse_debug_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_debug_duration("950µs"),
            Some(Duration::from_micros(950))
        );
        assert_eq!(parse_debug_duration("12ns"), Some(Duration::from_nanos(12)));
        assert_eq!(parse_debug_duration("soon"), None);
        assert_eq!(parse_debug_duration("-1s"), None);
    }

    #[test]
    fn attach_time_from_the_debug_log() {
        let stderr = "[2026-11-22T05:36:36Z DEBUG cowtrace::commands::trace] probes loaded and attached after 149.258431ms\n\
                      [2026-11-22T05:36:38Z DEBUG cowtrace::commands::trace] detached and drained after 1.419140245s\n";
        assert_eq!(
            cowtrace_attach_time(stderr),
            Some(Duration::from_nanos(149_258_431))
        );
        assert_eq!(cowtrace_attach_time("nothing logged"), None);
    }

    #[test]
    fn btf_enumerators() {
        let dump = "[1234] ENUM 'vm_event_item' encoding=UNSIGNED size=4 vlen=120\n\
                    \t'PGPGIN' val=0\n\t'PGFAULT' val=23\n\t'PGMAJFAULT' val=24\n\
                    [77] ENUM 'migratetype' encoding=UNSIGNED size=4 vlen=6\n\
                    \t'MIGRATE_MOVABLE' val=1\n";
        assert_eq!(btf_enum_value(dump, "PGFAULT"), Some(23));
        assert_eq!(btf_enum_value(dump, "MIGRATE_MOVABLE"), Some(1));
        // Whole names only: PGFAULT is not PGMAJFAULT.
        assert_eq!(btf_enum_value(dump, "FAULT"), None);
    }

    #[test]
    fn bpftool_program_statistics() {
        let json = r#"[{"id": 1509, "type": "tracepoint", "name": "fault_end", "run_time_ns": 79785646,
                        "run_cnt": 128946, "loaded_at": 1795326095, "map_ids": [1216, 1211]},
                       {"id": 7, "type": "cgroup_device", "name": "sd_devices", "loaded_at": 1}]"#;
        let programs = bpf_programs(json).unwrap();
        assert_eq!(programs[0].name, "fault_end");
        assert_eq!(programs[0].map_ids, [1216, 1211]);
        let ns = programs[0].ns_per_run().unwrap();
        assert!((ns - 618.75).abs() < 0.01, "{ns}");
        // Without statistics there is no per-run figure.
        assert_eq!(programs[1].run_cnt, 0);
        assert_eq!(programs[1].ns_per_run(), None);
        assert!(programs[0].is_tracing());
        assert!(!programs[1].is_tracing());
    }

    #[test]
    fn perf_report_lines() {
        let text = "# Samples: 4K of event 'cpu-clock'\n#\n\
                    \x20   12.71%  [k] copy_mc_enhanced_fast_string\n\
                    \x20    7.88%  [.] cowtrace_workloads::fault_storm::timed\n\
                    \n";
        let symbols = perf_report_symbols(text);
        assert_eq!(
            symbols,
            [
                SymbolShare {
                    percent: 12.71,
                    kernel: true,
                    symbol: "copy_mc_enhanced_fast_string".into()
                },
                SymbolShare {
                    percent: 7.88,
                    kernel: false,
                    symbol: "cowtrace_workloads::fault_storm::timed".into()
                }
            ]
        );
    }

    #[test]
    fn proc_stat_busy_and_total() {
        let text = "cpu  100 5 50 1000 20 3 2 10 0 0\ncpu0 50 2 25 500 10 1 1 5 0 0\n";
        let times = cpu_times(text).unwrap();
        assert_eq!(times.total, 1190);
        assert_eq!(times.busy, 170);
        assert_eq!(cpu_times("intr 1 2 3"), None);
    }

    #[test]
    fn architecture_interrupts_summed_over_cpus() {
        let text = "           CPU0       CPU1\n\
                    \x20 1:          9          0   IO-APIC   1-edge      i8042\n\
                    NMI:          0          0   Non-maskable interrupts\n\
                    IWI:    1113955     880255   IRQ work interrupts\n\
                    CAL:    1655673    1667627   Function call interrupts\n\
                    ERR:          0\n";
        let counts = interrupt_counts(text);
        assert_eq!(counts["IWI"], 1_994_210);
        assert_eq!(counts["CAL"], 3_323_300);
        assert_eq!(counts["ERR"], 0);
        assert!(!counts.contains_key("1"));
        assert!(!counts.contains_key("CPU0       CPU1"));
    }

    #[test]
    fn peak_rss_from_proc_status() {
        let status =
            "Name:\tcowtrace\nVmPeak:\t  812345 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30000 kB\n";
        assert_eq!(peak_rss_kib(status), Some(40960));
        assert_eq!(peak_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn trace_end_line() {
        let tail = r#"{"type":"fault","time_ns":1}
{"type":"end","records_produced":10,"records_received":9,"records_dropped":1,"faults_incomplete":0,"inflight_map_full":0,"traced_set_full":0,"duration_ns":1734920114,"command_exit_code":0}
"#;
        let end = trace_end(tail).unwrap();
        assert_eq!(
            (
                end.records_produced,
                end.records_received,
                end.records_dropped
            ),
            (10, 9, 1)
        );
        assert_eq!(end.duration_ns, 1_734_920_114);
        assert_eq!(trace_end(r#"{"type":"fault","time_ns":1}"#), None);
    }
}
