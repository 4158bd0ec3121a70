//! The fork workloads of the `cowtrace-workload` binary, run for real: each one's pagemap
//! check (every page shared or copied as its model says, across every process alive at the
//! checkpoint) must hold, and taskstats must be there for every live process.

use std::path::PathBuf;
use std::process::Command;

use cowtrace_workloads::oracle::taskstats::DelayAccountingGuard;
use cowtrace_workloads::report::{Role, WorkloadReport, fault_kind};

const BINARY: &str = env!("CARGO_BIN_EXE_cowtrace-workload");

const FORK_WORKLOADS: [&str; 8] = [
    "fork-partial",
    "fork-parent-after-exit",
    "fork-tree",
    "fork-siblings-read",
    "fork-exec",
    "vfork",
    "threads",
    "fork-file-private",
];

#[test]
fn every_fork_workload_is_listed() {
    let output = Command::new(BINARY).arg("--list").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    for name in FORK_WORKLOADS {
        assert!(
            stdout
                .lines()
                .any(|line| line.split_whitespace().next() == Some(name)),
            "{name} missing from:\n{stdout}"
        );
    }
}

/// Runs one workload with delay accounting on and returns its report.
fn run(name: &str) -> WorkloadReport {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "cowtrace-workload-{name}-{}.json",
        std::process::id()
    ));
    let _accounting = DelayAccountingGuard::enable().unwrap();
    let output = Command::new(BINARY)
        .args([name, "--report"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: WorkloadReport = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{name}: no report ({err}):\n{stdout}")),
    )
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        output.status.success(),
        "{name}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with(&format!("{name}: region")), "{stdout}");
    assert!(report.ok, "{name}: {:?}", report.pagemap_check);
    assert!(
        report.pagemap_check.ok,
        "{name}: {:?}",
        report.pagemap_check
    );
    assert_eq!(report.pagemap_check.misplaced_pages, 0);
    assert_eq!(report.workload, name);
    check_processes(&report);
    report
}

/// What holds for every process of every fork workload.
fn check_processes(report: &WorkloadReport) {
    let name = &report.workload;
    let root = &report.processes[0];
    assert_eq!(root.role, Role::Parent, "{name}");
    assert_eq!(
        root.pid, root.tid,
        "{name}: a binary works on its main thread"
    );
    assert!(root.taskstats_baseline.is_some(), "{name}");
    for process in &report.processes {
        let who = format!("{name}/{}", process.name);
        assert!(!process.name.is_empty(), "{who}");
        match process.checkpoint_ns {
            // Alive at the checkpoint: taskstats read then, and the PFNs unless it exec'd.
            Some(checkpoint) => {
                let stats = process
                    .taskstats
                    .as_ref()
                    .unwrap_or_else(|| panic!("{who}: {:?}", process.taskstats_error));
                assert!(stats.measured_at_ns >= checkpoint, "{who}");
                // Taskstats counts copies anywhere (stack, libc data), never fewer than the
                // region's.
                let baseline = process
                    .taskstats_baseline
                    .as_ref()
                    .map_or(0, |base| base.wpcopy_count);
                let region_copies = process.expected[fault_kind::COW_COPY];
                assert!(
                    stats.wpcopy_count - baseline >= region_copies,
                    "{who}: {} copies, {region_copies} in the region",
                    stats.wpcopy_count - baseline
                );
                if process.expected_exclusive_pages.is_some() {
                    assert_eq!(
                        process.region_pfns.len() as u64,
                        report.region_pages,
                        "{who}"
                    );
                    assert_eq!(
                        Some(process.region_exclusive_pages),
                        process.expected_exclusive_pages,
                        "{who}"
                    );
                    assert_eq!(process.shared_pages, process.expected_shared_pages, "{who}");
                } else {
                    assert!(process.region_pfns.is_empty(), "{who}");
                    assert!(process.note.as_ref().unwrap().contains("exec'd"), "{who}");
                }
            }
            // Gone before the checkpoint: nothing read, and the report says why.
            None => {
                assert!(process.region_pfns.is_empty(), "{who}");
                assert!(process.taskstats.is_none(), "{who}");
                assert!(process.taskstats_error.is_some(), "{who}");
                assert!(process.note.is_some(), "{who}");
            }
        }
    }
}

fn named<'r>(
    report: &'r WorkloadReport,
    name: &str,
) -> &'r cowtrace_workloads::report::ProcessReport {
    report
        .processes
        .iter()
        .find(|process| process.name == name)
        .unwrap()
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn fork_partial_shares_what_the_child_left_alone() {
    let report = run("fork-partial");
    let check = &report.pagemap_check;
    assert_eq!((check.shared_pages, check.copied_pages), (682, 331));
    assert_eq!(named(&report, "child").expected[fault_kind::COW_COPY], 331);
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn fork_parent_after_exit_reuses_every_page() {
    let report = run("fork-parent-after-exit");
    // The parent's frames now equal its frames before the fork: every write reused.
    let check = &report.pagemap_check;
    assert_eq!(check.views, ["parent", "parent before fork"]);
    assert_eq!((check.shared_pages, check.copied_pages), (1019, 0));
    let parent = named(&report, "parent");
    assert_eq!(parent.expected[fault_kind::COW_REUSE], 1019);
    assert_eq!(parent.region_exclusive_pages, 1019);
    assert!(named(&report, "child").checkpoint_ns.is_none());
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn fork_tree_holds_three_generations_at_the_checkpoint() {
    let report = run("fork-tree");
    assert_eq!(report.processes.len(), 4);
    let child_1 = named(&report, "child 1");
    let grandchild = named(&report, "grandchild");
    assert_eq!(grandchild.role, Role::Grandchild);
    assert_eq!(grandchild.parent_pid, Some(child_1.pid));
    assert_eq!(child_1.shared_pages.as_ref().unwrap()["with_children"], 857);
    let check = &report.pagemap_check;
    assert_eq!((check.shared_pages, check.copied_pages), (569, 462));
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn fork_siblings_read_copies_nothing() {
    let report = run("fork-siblings-read");
    assert_eq!(report.processes.len(), 8);
    let check = &report.pagemap_check;
    assert_eq!((check.shared_pages, check.copied_pages), (1021, 0));
    // Every PFN identical in all eight.
    let first = &report.processes[0].region_pfns;
    assert!(report.processes.iter().all(|p| &p.region_pfns == first));
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn fork_exec_leaves_the_parent_its_frames() {
    let report = run("fork-exec");
    let check = &report.pagemap_check;
    assert_eq!((check.shared_pages, check.copied_pages), (1033, 0));
    let child = named(&report, "child");
    assert!(child.checkpoint_ns.is_some() && child.region_pfns.is_empty());
    assert_eq!(child.expected.values().sum::<u64>(), 0);
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn vfork_children_write_into_the_parent() {
    let report = run("vfork");
    let check = &report.pagemap_check;
    assert_eq!(
        (
            check.shared_pages,
            check.copied_pages,
            check.not_present_pages
        ),
        (1009, 0, 30)
    );
    let child = named(&report, "vfork child 1");
    assert_eq!(child.role, Role::VforkChild);
    assert_eq!(child.expected[fault_kind::ANON_FIRST_TOUCH], 23);
    // Present in the parent: the pages the child first touched.
    let parent = named(&report, "parent");
    assert!(parent.region_pfns[1009..1032].iter().all(|&pfn| pfn != 0));
    assert!(parent.region_pfns[1032..].iter().all(|&pfn| pfn == 0));
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn threads_share_one_page_table() {
    let report = run("threads");
    assert_eq!(report.processes.len(), 5);
    let main = &report.processes[0];
    for thread in &report.processes[1..] {
        assert_eq!(thread.role, Role::Thread);
        assert_eq!(thread.pid, main.pid);
        assert_ne!(thread.tid, main.tid);
        assert_eq!(thread.region_pfns, main.region_pfns);
        // No thread makes a COW copy, anywhere.
        assert_eq!(thread.taskstats.as_ref().unwrap().wpcopy_count, 0);
    }
}

#[test]
#[ignore = "needs root: run with cargo xtask test"]
fn fork_file_private_copies_from_the_page_cache() {
    let report = run("fork-file-private");
    let check = &report.pagemap_check;
    assert_eq!(
        (
            check.shared_pages,
            check.copied_pages,
            check.not_present_pages
        ),
        (121, 195, 188)
    );
    let child = named(&report, "child");
    assert_eq!(child.expected[fault_kind::FILE_PRIVATE_COPY], 53);
    // Segment A was not copied at fork: the child maps only what it wrote there.
    assert_eq!(
        child.region_pfns[..241]
            .iter()
            .filter(|&&pfn| pfn != 0)
            .count(),
        53
    );
    assert_eq!(child.region_file_pages.len(), 115);
    assert_eq!(named(&report, "parent").region_file_pages.len(), 325);
}
