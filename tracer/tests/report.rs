//! Reports, without privileges: a small trace recorded for real (`tests/fixtures/small.jsonl`:
//! `sh -c 'x=$(echo hi); echo $x'`, one fork) renders the expected charts and numbers; broken
//! files get one clear error; names from the trace cannot inject markup; the HTML opens in
//! headless Chromium; and the committed example reports are what the code renders.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use cowtrace::report::{
    self, Report,
    seed::{PageState, RegionSource},
    trace_file::{self, Partial},
};
use cowtrace_common::FaultKind;
use cowtrace_workloads::report::{Role, WorkloadReport};
use indicatif::ProgressBar;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small.jsonl")
}

fn render_text(text: &str) -> Report {
    let trace = trace_file::read(text.as_bytes(), Partial::Refuse, |_| {}).unwrap();
    report::render(trace, "small.jsonl", None, &ProgressBar::hidden()).unwrap()
}

fn cowtrace(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_cowtrace"))
        .args(args)
        .output()
        .expect("cowtrace runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "cowtrace panicked: {stderr}");
    output
}

#[test]
fn the_fixture_renders_the_expected_charts_and_numbers() {
    let rendered =
        report::render_file(&fixture(), None, Partial::Refuse, &ProgressBar::hidden()).unwrap();
    let names: Vec<&str> = rendered.charts.iter().map(|chart| chart.name).collect();
    assert_eq!(
        names,
        [
            "pages-over-time",
            "fault-latency",
            "address-space",
            "seed-diagram"
        ]
    );

    // The per-process numbers of the recorded run.
    let data = &rendered.data;
    let processes = data.table.processes();
    assert_eq!(processes.len(), 2);
    let (parent, child) = (&processes[0], &processes[1]);
    assert_eq!((parent.pid, parent.comm.as_str()), (831, "sh"));
    assert_eq!((child.pid, child.parent), (832, Some(831)));
    assert_eq!(parent.faults(), 73);
    assert_eq!(parent.count(FaultKind::AnonFirstTouch), 12);
    assert_eq!(parent.count(FaultKind::CowCopy), 12);
    assert_eq!(parent.count(FaultKind::CowReuse), 5);
    assert_eq!(parent.count(FaultKind::FileMinor), 34);
    assert_eq!(child.faults(), 23);
    assert_eq!(child.count(FaultKind::CowCopy), 7);
    assert_eq!(child.count(FaultKind::CowReuse), 3);
    assert_eq!(data.end.as_ref().unwrap().records_produced, 120);

    // The fork and what it cost.
    assert_eq!(data.forks.len(), 1);
    let fork = &data.forks[0];
    assert_eq!(fork.syscall_ns, Some(83_240));
    assert_eq!((fork.parent_copies.pages, fork.child_copies.pages), (3, 7));

    // The seed diagram: the region inferred from the COW writes after the fork.
    let seed = data.seed.as_ref().unwrap();
    assert_eq!(seed.region_source, RegionSource::Inferred);
    assert_eq!(seed.region.start, 0x7f37_f25d_8000);
    assert_eq!(seed.region.pages, 87);
    assert_eq!(seed.count(PageState::Shared), 8);
    assert_eq!(seed.count(PageState::CopiedByChild), 3);
    assert_eq!(seed.drawn.len(), 11, "every page with a frame seen");
    assert_eq!(seed.pages[0].parent_frame, Some(1_964_039));
    assert_eq!(seed.pages[0].child_frame, Some(1_118_789));
    assert!(seed.pages[0].parent_reused);

    // The same numbers in both documents.
    let html = &rendered.html;
    for text in [
        "<td class=\"number\">831</td><td>sh</td>",
        "<td class=\"number\">73</td>",
        "83.2 µs",
        "received + dropped = produced",
        "Not measured in this trace.",
        "6.18.44-fc-v769",
        "data:image/svg+xml;base64,",
    ] {
        assert!(html.contains(text), "HTML lacks {text:?}");
    }
    let markdown = &rendered.markdown;
    for text in [
        "| 831 | sh |  | 73 | 12 | 3 | 12 | 5 | 34 |",
        "| 832 | sh | 831 | 23 | 1 | 0 | 7 | 3 | 12 |",
        "| 1.107 | 831 sh | 832 sh | fork (copy-on-write) | 83.2 µs | 3 (8.28 µs) | 7 (24.1 µs) |",
        "![Parent and child page tables after fork](seed-diagram.svg)",
    ] {
        assert!(
            markdown.contains(text),
            "Markdown lacks {text:?}:\n{markdown}"
        );
    }

    // Every chart is a real SVG and a real PNG of the same size.
    for chart in &rendered.charts {
        assert!(chart.svg.starts_with("<svg"), "{}", chart.name);
        let decoder = png::Decoder::new(std::io::Cursor::new(&chart.png));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, 1200, "{}", chart.name);
        assert!(chart.svg.contains(&format!("height=\"{}\"", info.height)));
    }
}

#[test]
fn rendering_is_deterministic() {
    let text = std::fs::read_to_string(fixture()).unwrap();
    let (first, second) = (render_text(&text), render_text(&text));
    assert_eq!(first.files(), second.files());
}

#[test]
fn malformed_and_truncated_traces_get_one_clear_error() {
    let scratch = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let write = |name: &str, content: &str| {
        let path = scratch.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let error_of = |path: &str, extra: &[&str]| {
        let mut args = vec!["report", path, "-o"];
        let out = scratch.path().join("out");
        args.push(out.to_str().unwrap());
        args.extend(extra);
        let output = cowtrace(&args);
        assert_eq!(output.status.code(), Some(2), "{path}: {output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("cowtrace: error: "), "{stderr}");
        stderr
    };

    // A line that is not JSON, in the middle: its number.
    let mut broken = lines.clone();
    broken[5] = "{\"type\":\"fault\",\"time_ns\":";
    let stderr = error_of(&write("broken.jsonl", &broken.join("\n")), &[]);
    assert!(
        stderr.contains("line 6 is not a cowtrace JSON line"),
        "{stderr}"
    );
    // A line of an unknown type.
    let mut unknown = lines.clone();
    unknown[3] = "{\"type\":\"teleport\"}";
    let stderr = error_of(&write("unknown.jsonl", &unknown.join("\n")), &[]);
    assert!(stderr.contains("line 4 "), "{stderr}");
    // Not a trace at all.
    let stderr = error_of(&write("empty.jsonl", ""), &[]);
    assert!(stderr.contains("the trace is empty"), "{stderr}");
    let stderr = error_of(&write("headless.jsonl", &lines[1..].join("\n")), &[]);
    assert!(stderr.contains("not the `start` line"), "{stderr}");
    let output = cowtrace(&["report", "/nonexistent/trace.jsonl"]);
    assert_eq!(output.status.code(), Some(2));

    // Cut off mid-line, as when the tracer is killed while writing: truncated, and refused...
    let cut = &text[..text.len() / 2];
    let cut_path = write("cut.jsonl", cut);
    let stderr = error_of(&cut_path, &[]);
    assert!(stderr.contains("truncated"), "{stderr}");
    assert!(stderr.contains("cut off mid-write"), "{stderr}");
    assert!(stderr.contains("--partial"), "{stderr}");
    // ... unless asked to render it anyway, with a warning in the report and on stderr.
    let out = scratch.path().join("partial");
    let output = cowtrace(&[
        "report",
        &cut_path,
        "-o",
        out.to_str().unwrap(),
        "--partial",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning: the trace is truncated"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("Incomplete: the trace is truncated"),
        "{html}"
    );
    // Whole lines but no end line: truncated too.
    let stderr = error_of(
        &write("no-end.jsonl", &lines[..lines.len() - 1].join("\n")),
        &[],
    );
    assert!(stderr.contains("has no `end` line"), "{stderr}");
}

/// The fixture, with a process named like markup and a command line full of it.
fn hostile_trace() -> String {
    std::fs::read_to_string(fixture())
        .unwrap()
        .replace("\"comm\":\"sh\"", "\"comm\":\"<script>alert(1)</script>\"")
        .replace(
            "\"x=$(echo hi); echo $x\"",
            "\"</td><script>alert(2)</script><img src=x onerror=alert(3)>\"",
        )
}

#[test]
fn names_and_paths_from_the_trace_are_escaped() {
    let rendered = render_text(&hostile_trace());
    // The command name is the kernel's: at most 16 bytes.
    assert_eq!(rendered.data.table.processes()[0].comm, "<script>alert(1)");
    let html = &rendered.html;
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
    assert!(html.contains("&lt;/td&gt;&lt;script&gt;alert(2)"), "{html}");
    for chart in &rendered.charts {
        assert!(!chart.svg.contains("<script"), "{}", chart.name);
    }
    assert!(rendered.charts[0].svg.contains("&lt;script&gt;alert(1)"));
    let markdown = &rendered.markdown;
    // Every `<` is escaped, so no renderer reads HTML into it.
    assert!(
        markdown
            .match_indices('<')
            .all(|(at, _)| markdown[..at].ends_with('\\')),
        "{markdown}"
    );
    assert!(markdown.contains(r"\<script\>alert(1)"), "{markdown}");
}

/// What headless Chromium printed and how it ended.
struct Browser {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium on `page` with `mode` (`--screenshot=…` or `--dump-dom`), killing it
/// if it hangs. Its output goes to files: it logs a lot, and a full pipe would stall it.
fn chromium(page: &Path, mode: &str, scratch: &Path) -> Browser {
    let run = tempfile::tempdir_in(scratch).unwrap();
    let (stdout, stderr) = (run.path().join("stdout"), run.path().join("stderr"));
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            // Needed as root; harmless otherwise for a local file of our own.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--window-size=1280,3000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            run.path().join("profile").display()
        ))
        .arg(mode)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("chromium is installed by `cargo xtask setup` (Debian package chromium)");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "chromium did not finish within 120 s: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Browser {
        success: status.success(),
        stdout: std::fs::read_to_string(&stdout).unwrap(),
        stderr: std::fs::read_to_string(&stderr).unwrap(),
    }
}

#[test]
fn the_html_report_opens_in_headless_chromium() {
    let scratch = tempfile::tempdir().unwrap();
    let rendered = render_text(&std::fs::read_to_string(fixture()).unwrap());
    let dir = scratch.path().join("report");
    rendered.write_to(&dir).unwrap();
    let page = dir.join("report.html");

    let screenshot = scratch.path().join("screenshot.png");
    let browser = chromium(
        &page,
        &format!("--screenshot={}", screenshot.display()),
        scratch.path(),
    );
    let stderr = &browser.stderr;
    assert!(browser.success, "chromium failed: {stderr}");
    // The page has no script; any console message or failed load is an error of the report.
    for problem in [
        "CONSOLE",
        "Uncaught",
        "Failed to load",
        "Not allowed to load",
    ] {
        assert!(!stderr.contains(problem), "{problem}: {stderr}");
    }

    // Not blank: many colours, and enough spread (text, tables, charts).
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&screenshot).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let luma: Vec<f64> = pixels[..frame.buffer_size()]
        .chunks(channels)
        .map(|pixel| 0.299 * pixel[0] as f64 + 0.587 * pixel[1] as f64 + 0.114 * pixel[2] as f64)
        .collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let variance = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / luma.len() as f64;
    let dark = luma.iter().filter(|&&l| l < 128.0).count() as f64 / luma.len() as f64;
    assert!(
        variance > 100.0,
        "screenshot looks blank: variance {variance:.1}"
    );
    assert!(dark > 0.005, "screenshot has almost no ink: {:.4}", dark);

    // A hostile report, as the browser parsed it: no script element anywhere.
    let hostile = render_text(&hostile_trace());
    let hostile_dir = scratch.path().join("hostile");
    hostile.write_to(&hostile_dir).unwrap();
    let browser = chromium(
        &hostile_dir.join("report.html"),
        "--dump-dom",
        scratch.path(),
    );
    let dom = &browser.stdout;
    assert!(browser.success, "chromium failed: {}", browser.stderr);
    assert!(dom.contains("&lt;script&gt;alert(1)"), "{dom}");
    assert!(!dom.to_lowercase().contains("<script"), "{dom}");
    assert!(!dom.contains("<img src=\"x\""), "{dom}");
}

#[test]
fn the_committed_example_reports_are_what_the_code_renders() {
    let reports = repository().join("reports");
    let mut checked = 0;
    for entry in std::fs::read_dir(&reports).unwrap() {
        let dir = entry.unwrap().path();
        let trace = dir.join("trace.jsonl");
        if !trace.exists() {
            continue;
        }
        let workload_report = dir.join("workload-report.json");
        let workload_report = workload_report.exists().then_some(workload_report);
        if let Some(path) = &workload_report {
            // It must at least be a workload report of this version.
            let _: WorkloadReport =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        }
        let rendered = report::render_file(
            &trace,
            workload_report.as_deref(),
            Partial::Refuse,
            &ProgressBar::hidden(),
        )
        .unwrap();
        let regenerate = format!(
            "run `cargo xtask report` (or, to keep the committed trace, `cowtrace report {0}/trace.jsonl \
             --workload-report {0}/workload-report.json -o {0}`)",
            dir.display()
        );
        let mut expected: Vec<String> =
            rendered.files().into_iter().map(|(name, _)| name).collect();
        for (name, content) in rendered.files() {
            let committed = std::fs::read(dir.join(&name))
                .unwrap_or_else(|_| panic!("{}/{name} is missing: {regenerate}", dir.display()));
            assert!(
                committed == content,
                "{}/{name} differs from what the code renders: {regenerate}",
                dir.display()
            );
        }
        expected.extend(["trace.jsonl".into(), "workload-report.json".into()]);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                expected.contains(&name),
                "{}/{name} is not part of the report any more: {regenerate}",
                dir.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no example report under {}", reports.display());
}

#[test]
#[ignore = "needs root and loads BPF programs: run with `cargo xtask test`"]
fn run_with_report_traces_checks_and_renders_in_one_go() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("fork-cow");
    let output = cowtrace(&["run", "fork-cow", "-q", "--report", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("RESULT: PASS"), "{stdout}");
    assert!(stdout.contains("report.html"), "{stdout}");
    for name in [
        "trace.jsonl",
        "workload-report.json",
        "report.html",
        "report.md",
    ] {
        assert!(dir.join(name).exists(), "{name} missing");
    }
    // The seed diagram is the workload's fork and region, and every frame matches pagemap.
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("The region is the workload's own"),
        "{markdown}"
    );
    let rendered = report::render_file(
        &dir.join("trace.jsonl"),
        Some(&dir.join("workload-report.json")),
        Partial::Refuse,
        &ProgressBar::hidden(),
    )
    .unwrap();
    let workload: WorkloadReport =
        serde_json::from_str(&std::fs::read_to_string(dir.join("workload-report.json")).unwrap())
            .unwrap();
    let expected_copies = |role| {
        workload
            .processes
            .iter()
            .find(|process| process.role == role)
            .map(|process| process.expected["cow_copy"] as usize)
            .unwrap()
    };
    let seed = rendered.data.seed.as_ref().unwrap();
    assert_eq!(seed.region_source, RegionSource::Workload);
    assert_eq!(seed.pages.len() as u64, workload.region_pages);
    assert_eq!(
        seed.count(PageState::Shared) as u64,
        workload.pagemap_check.expected_shared
    );
    assert_eq!(
        seed.count(PageState::CopiedByChild),
        expected_copies(Role::Child)
    );
    assert_eq!(
        seed.count(PageState::CopiedByParent),
        expected_copies(Role::Parent)
    );
    let pagemap = seed.pagemap.unwrap();
    assert_eq!(
        (pagemap.parent_agree, pagemap.child_agree),
        (seed.pages.len(), seed.pages.len())
    );
    // Rendering the kept files again gives the same report.
    assert_eq!(
        std::fs::read(dir.join("report.html")).unwrap(),
        rendered.html.into_bytes()
    );
}
