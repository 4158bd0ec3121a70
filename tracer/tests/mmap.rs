//! The mmap workloads under the real probes: every fault in each mapping counted by kind (as
//! cowtrace refines it with the mapping), pages read from disk, pages fault-around scanned and
//! huge pages, exactly where the workload's arithmetic is exact; each JSON fault line names
//! its mapping. Then cowtrace's minor and major totals against `perf stat` on the same run.

mod support;

use std::{collections::BTreeSet, process::Command};

use cowtrace::records::json::{FaultLine, JsonLine};
use cowtrace_workloads::report::{MappingReport, WorkloadReport};
use support::*;

/// Runs `cowtrace run WORKLOAD` and returns its JSON lines, the workload's report and stdout.
fn run_workload(workload: &str) -> (Vec<JsonLine>, WorkloadReport, String) {
    let scratch = Scratch::new();
    let (json, report_path) = (scratch.path("trace.jsonl"), scratch.path("report.json"));
    let output = cowtrace(&[
        "run",
        workload,
        "--json",
        json.to_str().unwrap(),
        "--workload-report",
        report_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.contains("RESULT: PASS"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = read_json_lines(&json);
    assert_nothing_lost(&lines);
    let report = read_report(&report_path);
    assert!(report.ok, "the workload's own checks: {report:?}");
    (lines, report, stdout)
}

/// The faults of the mapping's thread inside the mapping.
fn faults_in<'a>(
    lines: &'a [JsonLine],
    report: &WorkloadReport,
    mapping: &MappingReport,
) -> Vec<&'a FaultLine> {
    let end = mapping.start + mapping.pages * report.page_size;
    faults(lines)
        .into_iter()
        .filter(|fault| fault.tid == mapping.tid && (mapping.start..end).contains(&fault.address))
        .collect()
}

fn count(faults: &[&FaultLine], kind: &str) -> u64 {
    faults.iter().filter(|fault| fault.kind == kind).count() as u64
}

/// Recounts every expectation of every mapping from the JSON lines (independently of
/// `cowtrace run`'s own checks), and checks each fault names its mapping.
fn assert_mappings_match_the_report(lines: &[JsonLine], report: &WorkloadReport) {
    assert!(!report.mappings.is_empty());
    for mapping in &report.mappings {
        let inside = faults_in(lines, report, mapping);
        let label = &mapping.label;
        for (kind, expected) in &mapping.faults {
            let traced = count(&inside, kind);
            assert!(
                expected.admits(traced),
                "{label}: {kind}: traced {traced}, expected {expected}"
            );
        }
        let total = inside.len() as u64;
        assert!(
            mapping.total_faults.admits(total),
            "{label}: {total} faults"
        );
        let sum = |pages: fn(&FaultLine) -> u32| -> u64 {
            inside.iter().map(|fault| u64::from(pages(fault))).sum()
        };
        if let Some(expected) = mapping.cache_fill_pages {
            let read = sum(|fault| fault.cache_fill_pages);
            assert!(expected.admits(read), "{label}: {read} pages read");
        }
        if let Some(expected) = mapping.fault_around_window_pages {
            let scanned = sum(|fault| fault.fault_around_window_pages);
            assert!(expected.admits(scanned), "{label}: {scanned} pages scanned");
        }
        if let Some(expected) = mapping.huge_page_faults {
            let huge = inside
                .iter()
                .filter(|fault| fault.alloc_order == Some(9))
                .count() as u64;
            assert!(expected.admits(huge), "{label}: {huge} huge-page faults");
        }
        let names: BTreeSet<Option<&str>> = inside
            .iter()
            .map(|fault| fault.mapping.as_deref())
            .collect();
        if total > 0 {
            assert_eq!(
                names,
                BTreeSet::from([Some(mapping.name.as_str())]),
                "{label}"
            );
        }
        for measurement in &mapping.ground_truth {
            assert!(measurement.ok(), "{label}: {measurement:?}");
        }
    }
}

fn mapping<'a>(report: &'a WorkloadReport, label: &str) -> &'a MappingReport {
    report
        .mappings
        .iter()
        .find(|mapping| mapping.label == label)
        .unwrap_or_else(|| panic!("no mapping {label} in {report:?}"))
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn madv_random_reads_are_one_major_fault_per_page_touched() {
    require_root();
    let (lines, report, _) = run_workload("mmap-random");
    assert_mappings_match_the_report(&lines, &report);
    let random = mapping(&report, "random");
    let inside = faults_in(&lines, &report, random);
    // 251 distinct pages touched, no readahead: each one major fault reading one page.
    assert_eq!(inside.len(), 251);
    assert_eq!(count(&inside, "file_major"), 251);
    assert!(
        inside
            .iter()
            .all(|fault| fault.major && fault.cache_fill_pages == 1)
    );
    assert!(inside.iter().all(|fault| fault.file_offset.is_some()));
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn readahead_and_fault_around_take_fewer_faults_than_pages() {
    require_root();
    let (lines, report, _) = run_workload("mmap-sequential");
    assert_mappings_match_the_report(&lines, &report);
    for label in ["sequential", "read-around"] {
        let file = mapping(&report, label);
        let inside = faults_in(&lines, &report, file);
        assert!(inside.len() < 1009, "{label}: {} faults", inside.len());
        assert!(count(&inside, "file_major") >= 1, "{label}");
        let read: u64 = inside
            .iter()
            .map(|fault| u64::from(fault.cache_fill_pages))
            .sum();
        assert_eq!(read, 1009, "{label}: every page read once");
        // Fault-around mapped the pages that took no fault of their own.
        let scanned: u64 = inside
            .iter()
            .map(|fault| u64::from(fault.fault_around_window_pages))
            .sum();
        assert!(scanned >= 1009 - inside.len() as u64, "{label}: {scanned}");
    }
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn fault_around_reports_the_range_it_scanned_not_the_pages_it_mapped() {
    require_root();
    let (lines, report, _) = run_workload("mmap-fault-around");
    assert_mappings_match_the_report(&lines, &report);
    let cached = faults_in(&lines, &report, mapping(&report, "cached"));
    assert_eq!((cached.len(), count(&cached, "file_minor")), (64, 64));
    let scanned: u32 = cached
        .iter()
        .map(|fault| fault.fault_around_window_pages)
        .sum();
    assert_eq!(scanned, 1009);
    let half = mapping(&report, "half-cached");
    let faults = faults_in(&lines, &report, half);
    let scanned: u32 = faults
        .iter()
        .map(|fault| fault.fault_around_window_pages)
        .sum();
    let present = half
        .ground_truth
        .iter()
        .find(|measurement| measurement.what.starts_with("pages present"))
        .unwrap();
    // 8 faults, 127 pages scanned, 64 mapped (pagemap): the range, not the pages mapped.
    assert_eq!((faults.len(), scanned, present.measured), (8, 127, 64));
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn map_populate_leaves_no_fault_in_the_mapping() {
    require_root();
    let (lines, report, _) = run_workload("mmap-populate");
    assert_mappings_match_the_report(&lines, &report);
    let populate = mapping(&report, "populate");
    assert!(faults_in(&lines, &report, populate).is_empty());
    // mmap faulted the pages in itself, through get_user_pages: faults without an address,
    // at least one per 16-page fault-around window, inside the mmap call.
    // The last mmap that returned the mapping's address: the workload first reserves an
    // aligned range (a plain mmap that returns the same address whenever it happens to land
    // aligned) and then maps the file over it with MAP_FIXED | MAP_POPULATE.
    let call = lines
        .iter()
        .rev()
        .find_map(|line| match line {
            JsonLine::Syscall(call)
                if call.syscall == "mmap" && call.ret as u64 == populate.start =>
            {
                Some(call)
            }
            _ => None,
        })
        .expect("the populating mmap");
    const MAP_POPULATE: u64 = 0x8000;
    assert_ne!(call.args[3] & MAP_POPULATE, 0);
    let during = faults(&lines)
        .into_iter()
        .filter(|fault| {
            fault.tid == call.tid
                && fault.kind == "gup_fault"
                && (call.time_ns - call.latency_ns..=call.time_ns).contains(&fault.time_ns)
        })
        .count();
    assert!(
        during >= 257_usize.div_ceil(16),
        "{during} get_user_pages faults"
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn private_file_writes_copy_the_page() {
    require_root();
    let (lines, report, _) = run_workload("mmap-private-write");
    assert_mappings_match_the_report(&lines, &report);
    let inside = faults_in(&lines, &report, mapping(&report, "private"));
    assert_eq!(count(&inside, "file_private_copy"), 251);
    assert_eq!(count(&inside, "file_minor"), 17);
    assert_eq!(count(&inside, "cow_copy"), 257);
    assert_eq!(inside.len(), 525);
    // Every copy allocated the frame pagemap shows as anonymous.
    assert!(
        inside
            .iter()
            .filter(|fault| fault.kind != "file_minor")
            .all(|fault| fault.new_pfn.is_some())
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn shared_file_writes_are_write_shared_never_reuses() {
    require_root();
    let (lines, report, _) = run_workload("mmap-shared-write");
    assert_mappings_match_the_report(&lines, &report);
    let inside = faults_in(&lines, &report, mapping(&report, "shared"));
    assert_eq!(count(&inside, "write_shared"), 508);
    assert_eq!(count(&inside, "file_minor"), 17);
    assert_eq!(count(&inside, "cow_reuse"), 0);
    // The kernel side cannot tell a write-notify from a COW reuse; the mapping can.
    let notified = inside
        .iter()
        .filter(|fault| fault.kernel_kind.as_deref() == Some("cow_reuse"))
        .count();
    assert_eq!(notified, 257);
    assert!(
        inside.iter().all(|fault| fault.new_pfn.is_none()),
        "no copies"
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn anonymous_reads_map_the_zero_page_and_the_next_write_copies_it() {
    require_root();
    let (lines, report, _) = run_workload("mmap-anon-zero");
    assert_mappings_match_the_report(&lines, &report);
    let inside = faults_in(&lines, &report, mapping(&report, "anon"));
    assert_eq!(count(&inside, "zero_page"), 503);
    assert_eq!(count(&inside, "cow_copy"), 503);
    assert_eq!(count(&inside, "anon_first_touch"), 257);
    assert!(
        inside
            .iter()
            .all(|fault| fault.mapping.as_deref() == Some("[anon]"))
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn madv_hugepage_takes_one_fault_per_two_mib() {
    require_root();
    let (lines, report, stdout) = run_workload("mmap-hugepage");
    assert_mappings_match_the_report(&lines, &report);
    let inside = faults_in(&lines, &report, mapping(&report, "huge"));
    assert_eq!(inside.len(), 5);
    assert!(
        inside
            .iter()
            .all(|fault| fault.kind == "anon_first_touch" && fault.alloc_order == Some(9))
    );
    assert!(
        stdout.contains("huge-page faults (2 MiB allocations)"),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn shared_anonymous_reads_allocate_and_rereads_come_from_shmem() {
    require_root();
    let (lines, report, _) = run_workload("mmap-shared-anon");
    assert_mappings_match_the_report(&lines, &report);
    let inside = faults_in(&lines, &report, mapping(&report, "shmem"));
    assert_eq!(count(&inside, "anon_first_touch"), 251);
    assert_eq!(count(&inside, "file_minor"), 16);
    assert_eq!(count(&inside, "zero_page"), 0);
    // Refined: the first page of each 16-page window finds no cached neighbour (the kernel
    // side already says first touch); the 235 others saw fault-around's event.
    let refined = inside
        .iter()
        .filter(|fault| {
            fault.kind == "anon_first_touch" && fault.kernel_kind.as_deref() == Some("file_minor")
        })
        .count();
    assert_eq!(refined, 235);
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn trace_summary_lists_faults_by_mapping() {
    require_root();
    let scratch = Scratch::new();
    let output = cowtrace(&[
        "trace",
        "--quiet",
        "--",
        cowtrace_bin(),
        "__workload",
        "mmap-random",
        "--report",
        scratch.path("report.json").to_str().unwrap(),
    ]);
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{summary}");
    let report = read_report(&scratch.path("report.json"));
    let file = &report.mappings[0].name;
    let file_name = file.rsplit('/').next().unwrap();
    let row = summary
        .lines()
        .skip_while(|line| !line.starts_with("faults by mapping"))
        .find(|line| line.contains(file_name))
        .unwrap_or_else(|| panic!("no row for {file}:\n{summary}"));
    // FAULTS, then F-MAJ among the kind columns, and 251 pages read.
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[1], "251", "{row}");
    assert!(row.contains("1004 KiB"), "{row}");
    assert!(summary.contains("major-fault latency"), "{summary}");
}

/// `perf stat` output (`-x,`): the count of each event.
fn perf_counts(text: &str) -> (u64, u64) {
    let event = |name: &str| {
        text.lines()
            .find(|line| line.split(',').nth(2) == Some(name))
            .and_then(|line| line.split(',').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in perf's output:\n{text}"))
    };
    (event("minor-faults"), event("major-faults"))
}

/// cowtrace's minor and major faults for what perf counted: the command perf started, from
/// the moment perf enables its counters (when the exec replaces the image, right after the
/// exec copied its arguments with get_user_pages), and its descendants; get_user_pages faults
/// excluded (perf's software events skip faults without user registers).
fn cowtrace_counts_for_perf_child(lines: &[JsonLine]) -> (u64, u64) {
    let JsonLine::Start(start) = &lines[0] else {
        panic!("no start line")
    };
    let perf = start.pids[0];
    let forks: Vec<_> = lines
        .iter()
        .filter_map(|line| match line {
            JsonLine::Fork(fork) => Some(fork),
            _ => None,
        })
        .collect();
    let child = forks
        .iter()
        .find(|fork| fork.pid == perf && fork.fork_kind == "fork")
        .expect("perf forks the command")
        .child_pid;
    let mut family = BTreeSet::from([child]);
    while let Some(next) = forks
        .iter()
        .find(|fork| family.contains(&fork.pid) && !family.contains(&fork.child_pid))
    {
        family.insert(next.child_pid);
    }
    let exec_ns = lines
        .iter()
        .find_map(|line| match line {
            JsonLine::Exec(exec) if exec.pid == child => Some(exec.time_ns),
            _ => None,
        })
        .expect("the command's exec");
    let all = faults(lines);
    let counters_enabled_ns = all
        .iter()
        .filter(|fault| fault.pid == child && fault.kind == "gup_fault" && fault.time_ns < exec_ns)
        .map(|fault| fault.time_ns)
        .max()
        .expect("the exec's argument copies");
    const PGMAJFAULT: u32 = 8;
    let counted: Vec<&&FaultLine> = all
        .iter()
        .filter(|fault| fault.kind != "gup_fault" && family.contains(&fault.pid))
        .filter(|fault| fault.pid != child || fault.time_ns > counters_enabled_ns)
        .collect();
    let major = counted
        .iter()
        .filter(|fault| fault.flags & PGMAJFAULT != 0)
        .count() as u64;
    (counted.len() as u64 - major, major)
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn minor_and_major_totals_agree_with_perf_stat() {
    require_root();
    let perf = ["/usr/bin/perf", "/usr/local/bin/perf"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("perf is installed (Debian linux-perf, `cargo xtask setup`)");
    // One run heavy in major faults, one heavy in minor faults.
    for workload in ["mmap-random", "mmap-anon-zero"] {
        let scratch = Scratch::new();
        let (json, perf_out) = (scratch.path("trace.jsonl"), scratch.path("perf.csv"));
        let output = Command::new(cowtrace_bin())
            .args(["trace", "--quiet", "--json"])
            .arg(&json)
            .args(["--", perf, "stat", "-x,", "-o"])
            .arg(&perf_out)
            .args(["-e", "minor-faults,major-faults", "--"])
            .args([cowtrace_bin(), "__workload", workload])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines = read_json_lines(&json);
        assert_nothing_lost(&lines);
        let (perf_minor, perf_major) = perf_counts(&std::fs::read_to_string(&perf_out).unwrap());
        let (minor, major) = cowtrace_counts_for_perf_child(&lines);
        let within = |ours: u64, theirs: u64| ours.abs_diff(theirs) * 1000 <= theirs * 5;
        assert!(
            within(minor, perf_minor) && within(major, perf_major),
            "{workload}: cowtrace {minor} minor, {major} major; perf {perf_minor} minor, \
             {perf_major} major"
        );
        if workload == "mmap-random" {
            assert!(perf_major >= 251, "{perf_major}");
        }
    }
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn json_fault_lines_can_be_selected_by_mapping_with_jq() {
    require_root();
    let scratch = Scratch::new();
    let json = scratch.path("trace.jsonl");
    let output = cowtrace(&["run", "mmap-anon-zero", "--json", json.to_str().unwrap()]);
    assert!(output.status.success());
    let jq = Command::new("jq")
        .args([
            "-r",
            r#"select(.type == "fault" and .mapping == "[anon]") | .kind"#,
        ])
        .arg(&json)
        .output()
        .expect("jq is installed (cargo xtask setup)");
    let kinds = String::from_utf8_lossy(&jq.stdout);
    assert!(jq.status.success());
    assert!(kinds.lines().filter(|kind| *kind == "zero_page").count() >= 503);
}
