//! Reports: a recorded trace (`--json` lines) turned into charts and a document a person would
//! rather look at than read. `cowtrace report FILE` and `cowtrace run WORKLOAD --report` use
//! it; it needs no privileges.
//!
//! The way through: [`trace_file`] reads the file (every problem an error naming the line; a
//! file without its `end` line is refused as truncated unless partial traces are allowed, then
//! rendered with a warning) → [`data`] builds what is shown, with the live tracer's own model →
//! [`charts`] draws SVG and PNG with plotters → [`document`] writes the content once →
//! [`html`] and [`markdown`] render it.
//!
//! The output depends on the trace (and the workload's report, when given) alone: no rendering
//! time, no absolute paths, a bundled font. So the example reports committed under `reports/`
//! can be checked byte for byte against what the current code produces.

pub mod charts;
pub mod data;
pub mod document;
pub mod html;
pub mod mappings;
pub mod markdown;
pub mod seed;
pub mod trace_file;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use cowtrace_workloads::report::WorkloadReport;
use indicatif::ProgressBar;

use self::{
    charts::{
        Chart, address_space::AddressSpace, latency::LatencyHistograms,
        pages_over_time::PagesOverTime, seed_diagram::SeedDiagram,
    },
    data::ReportData,
    trace_file::{Partial, TraceFile},
};

pub const HTML_FILE: &str = "report.html";
pub const MARKDOWN_FILE: &str = "report.md";

/// A rendered report, in memory.
pub struct Report {
    pub data: ReportData,
    pub charts: Vec<Chart>,
    pub html: String,
    pub markdown: String,
}

impl Report {
    /// Every file of the report: name and content.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![
            (HTML_FILE.to_string(), self.html.clone().into_bytes()),
            (
                MARKDOWN_FILE.to_string(),
                self.markdown.clone().into_bytes(),
            ),
        ];
        for chart in &self.charts {
            files.push((
                format!("{}.svg", chart.name),
                chart.svg.clone().into_bytes(),
            ));
            files.push((format!("{}.png", chart.name), chart.png.clone()));
        }
        files
    }

    /// Writes every file into `dir` (created if missing); returns their paths.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        self.files()
            .into_iter()
            .map(|(name, content)| {
                let path = dir.join(name);
                std::fs::write(&path, content)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(path)
            })
            .collect()
    }
}

/// Reads a trace file (and a workload's report, if given) and renders it. `progress` shows
/// bytes read, then charts drawn; pass [`ProgressBar::hidden`] for none.
pub fn render_file(
    trace_path: &Path,
    workload_report: Option<&Path>,
    partial: Partial,
    progress: &ProgressBar,
) -> Result<Report> {
    let file = std::fs::File::open(trace_path)
        .with_context(|| format!("cannot open {}", trace_path.display()))?;
    if let Ok(metadata) = file.metadata() {
        progress.set_length(metadata.len());
    }
    progress.set_message("reading the trace");
    let trace = trace_file::read(file, partial, |bytes| progress.set_position(bytes))
        .with_context(|| trace_path.display().to_string())?;
    let workload = workload_report
        .map(|path| -> Result<WorkloadReport> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a workload report", path.display()))
        })
        .transpose()?;
    let name = trace_path.file_name().map_or_else(
        || "trace".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    render(trace, &name, workload.as_ref(), progress)
}

/// Renders a trace already read.
pub fn render(
    trace: TraceFile,
    trace_name: &str,
    workload: Option<&WorkloadReport>,
    progress: &ProgressBar,
) -> Result<Report> {
    progress.set_message("building the model");
    let data = data::build(trace, trace_name, workload);
    // Four charts (the per-mapping ones are not drawn yet, see `mappings`).
    let drawers: [DrawChart; 4] = [
        pages_over_time_chart,
        latency_chart,
        address_space_chart,
        seed_diagram_chart,
    ];
    progress.set_length(drawers.len() as u64);
    progress.set_position(0);
    progress.set_message("drawing charts");
    // Each on a thread of its own: rasterizing them is much of the time left after reading the
    // trace, and they are independent. Their order, and so the report, stays the same.
    let drawn: Vec<Option<Result<Chart>>> = std::thread::scope(|scope| {
        let drawing: Vec<_> = drawers
            .iter()
            .map(|draw| {
                let data = &data;
                scope.spawn(move || {
                    let chart = draw(data);
                    progress.inc(1);
                    chart
                })
            })
            .collect();
        drawing
            .into_iter()
            .map(|chart| {
                chart
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut charts = drawn.into_iter().flatten().collect::<Result<Vec<_>>>()?;
    charts.extend(mappings::mapping_charts(&data));
    let workload_name = workload.map(|report| report.workload.as_str());
    let document = document::build(&data, &charts, workload_name);
    let html = html::render(&document, &charts);
    let markdown = markdown::render(&document, &charts);
    Ok(Report {
        data,
        charts,
        html,
        markdown,
    })
}

/// Draws one chart of the report; `None` when the trace has nothing for it.
type DrawChart = fn(&ReportData) -> Option<Result<Chart>>;

/// The pages-over-time chart; `None` when no process copied, reused or first touched a page.
fn pages_over_time_chart(data: &ReportData) -> Option<Result<Chart>> {
    let chart = PagesOverTime::new(data)?;
    let shown = chart.processes().len();
    let of = data.busiest_processes().len();
    Some(charts::render(
        &chart,
        "pages-over-time",
        "Pages copied, reused and first touched over time".into(),
        format!(
            "Cumulative pages per process: copied (a COW copy or a private file copy made a new \
             frame), reused (a COW write kept the frame: nobody else mapped it any more) and \
             first touched (fresh anonymous memory). Dashed lines mark forks. {}",
            if shown < of {
                format!("The {shown} processes with the most faults of {of} are drawn.")
            } else {
                "Every process with such pages is drawn.".to_string()
            }
        ),
    ))
}

/// The fault latency histograms; `None` when the trace has no fault.
fn latency_chart(data: &ReportData) -> Option<Result<Chart>> {
    let chart = LatencyHistograms::new(data)?;
    Some(charts::render(
        &chart,
        "fault-latency",
        "Fault latency per kind".into(),
        "How long faults took, from the fault's start to its end (probe cost included), one \
         histogram per kind, all processes together; both axes are logarithmic, so the rare \
         slow faults show next to the many fast ones. Faults whose start was not seen (taken \
         through get_user_pages) have no latency and are left out."
            .into(),
    ))
}

/// Faults over the address space and time; `None` when no fault has an address.
fn address_space_chart(data: &ReportData) -> Option<Result<Chart>> {
    let chart = AddressSpace::new(data)?;
    let thinned = if chart.thinned() {
        format!(
            " Panels with more than {} faults show an even sample of them.",
            charts::address_space::MAX_POINTS
        )
    } else {
        String::new()
    };
    Some(charts::render(
        &chart,
        "address-space",
        "Faults over the address space and time".into(),
        format!(
            "Each dot is a fault: when (x) and where (y). The address axis is cut into {} bands, \
             one per range of touched addresses (labelled with its start and length), so ranges \
             far apart all stay visible; within a band, higher is a higher address. The {} \
             busiest processes are drawn.{thinned}",
            chart.bands().len(),
            chart.processes().len()
        ),
    ))
}

/// The seed diagram; `None` when there is none (`data.seed` says why).
fn seed_diagram_chart(data: &ReportData) -> Option<Result<Chart>> {
    let chart = SeedDiagram::new(data)?;
    Some(charts::render(
        &chart,
        "seed-diagram",
        "Parent and child page tables after fork".into(),
        "Each row is a page of the region, at the same virtual address in both processes; \
         arrows lead to the physical frame (PFN) each maps. A page neither wrote still maps one \
         shared, read-only frame; a page one of them wrote points to a copy in the writer, while \
         the other keeps the original frame."
            .into(),
    ))
}
