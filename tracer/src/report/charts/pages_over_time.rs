//! Pages copied, reused and first touched over time: one panel per process, cumulative counts,
//! with the forks marked where they happened.

use cowtrace_common::FaultKind;
use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    COPIED, Draw, DrawResult, FINE_GRID, FIRST_TOUCHED, FORK_MARK, GRID, REUSED, caption_style,
    format_ms, label_style, ms_since, small_style, thin, title_style,
};
use crate::report::data::ReportData;

/// Processes drawn at most (the busiest).
pub const MAX_PROCESSES: usize = 6;
/// Points per line at most: a cumulative line of a million faults looks the same with fewer.
const MAX_POINTS: usize = 2_000;
const PANEL_HEIGHT: u32 = 280;
const HEADER_HEIGHT: u32 = 50;
const LEGEND_WIDTH: u32 = 210;

pub struct PagesOverTime<'a> {
    data: &'a ReportData,
    processes: Vec<usize>,
}

/// One cumulative series of a panel.
struct Series {
    label: &'static str,
    color: RGBColor,
    /// (ms, cumulative pages), a step line.
    points: Vec<(f64, f64)>,
}

impl<'a> PagesOverTime<'a> {
    /// `None` when no process copied, reused or first-touched a page.
    pub fn new(data: &'a ReportData) -> Option<PagesOverTime<'a>> {
        let processes: Vec<usize> = data
            .busiest_processes()
            .into_iter()
            .filter(|&process| {
                data.faults[process]
                    .iter()
                    .any(|fault| page_series_of(fault.kind).is_some())
            })
            .take(MAX_PROCESSES)
            .collect();
        (!processes.is_empty()).then_some(PagesOverTime { data, processes })
    }

    pub fn processes(&self) -> &[usize] {
        &self.processes
    }

    fn series(&self, process: usize) -> [Series; 3] {
        let mut series = [
            Series {
                label: "copied",
                color: COPIED,
                points: vec![],
            },
            Series {
                label: "reused",
                color: REUSED,
                points: vec![],
            },
            Series {
                label: "first touched",
                color: FIRST_TOUCHED,
                points: vec![],
            },
        ];
        let mut counts = [0u64; 3];
        for fault in &self.data.faults[process] {
            if let Some(which) = page_series_of(fault.kind) {
                counts[which] += 1;
                series[which].points.push((
                    ms_since(self.data.origin_ns, fault.time_ns),
                    counts[which] as f64,
                ));
            }
        }
        let end_ms = ms_since(self.data.origin_ns, self.data.last_ns);
        for line in &mut series {
            let thinned = thin(&line.points, MAX_POINTS);
            // Steps: flat until the next page, then up. From zero, to the end of the trace.
            let mut steps = vec![(0.0, 0.0)];
            for (time, count) in thinned {
                let previous = steps.last().map_or(0.0, |&(_, count)| count);
                steps.push((time, previous));
                steps.push((time, count));
            }
            let last = steps.last().map_or(0.0, |&(_, count)| count);
            steps.push((end_ms, last));
            line.points = steps;
        }
        series
    }
}

/// Which series a fault adds a page to: 0 copied, 1 reused, 2 first touched.
fn page_series_of(kind: Option<FaultKind>) -> Option<usize> {
    match kind? {
        FaultKind::CowCopy | FaultKind::FilePrivateCopy => Some(0),
        FaultKind::CowReuse => Some(1),
        FaultKind::AnonFirstTouch => Some(2),
        _ => None,
    }
}

impl Draw for PagesOverTime<'_> {
    fn size(&self) -> (u32, u32) {
        (
            1200,
            HEADER_HEIGHT + PANEL_HEIGHT * self.processes.len() as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (header, body) = area.split_vertically(HEADER_HEIGHT);
        header.draw_text(
            "Pages copied, reused and first touched over time (cumulative, per process)",
            &title_style(),
            (20, 14),
        )?;
        let end_ms = ms_since(self.data.origin_ns, self.data.last_ns).max(0.001);
        let panels = body.split_evenly((self.processes.len(), 1));
        for (panel, &process) in panels.iter().zip(&self.processes) {
            // The legend goes beside the plot, where it hides no line.
            let (plot, legend) = panel.split_horizontally(1200 - LEGEND_WIDTH);
            let series = self.series(process);
            let top = series
                .iter()
                .filter_map(|line| line.points.last().map(|&(_, count)| count))
                .fold(1.0, f64::max)
                * 1.12;
            let stats = self.data.process(process);
            let role = match stats.parent {
                Some(parent) => format!(" (child of {parent})"),
                None => String::new(),
            };
            let mut chart = ChartBuilder::on(&plot)
                .caption(
                    format!("pid {} {}{role}", stats.pid, stats.comm),
                    caption_style(),
                )
                .margin_left(20)
                .margin_right(20)
                .margin_bottom(8)
                .x_label_area_size(42)
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..end_ms, 0.0..top)?;
            chart
                .configure_mesh()
                .light_line_style(FINE_GRID)
                .bold_line_style(GRID.mix(1.0))
                .x_desc("time since trace start (ms)")
                .y_desc("pages")
                .axis_desc_style(label_style())
                .label_style(small_style())
                .x_labels(10)
                .x_label_formatter(&|ms| format_ms(*ms, end_ms))
                .y_labels(6)
                .y_label_formatter(&|count| format!("{count:.0}"))
                .draw()?;
            // Forks first, under the lines: the ones this process made, and its own birth.
            let mut forks_marked = 0;
            for fork in &self.data.forks {
                let text = if fork.parent == process {
                    format!("fork → {}", self.data.process(fork.child).pid)
                } else if fork.child == process {
                    format!("forked by {}", self.data.process(fork.parent).pid)
                } else {
                    continue;
                };
                // Labels of forks close in time would overlap: each goes a line lower.
                let line_offset = 4 + (forks_marked % 3) * 16;
                forks_marked += 1;
                let at = ms_since(self.data.origin_ns, fork.time_ns);
                chart.draw_series(DashedLineSeries::new(
                    [(at, 0.0), (at, top)],
                    7,
                    5,
                    FORK_MARK.stroke_width(2),
                ))?;
                // The label left of the line when the line is near the right edge.
                let (anchor, offset) = if at > end_ms * 0.75 {
                    (Pos::new(HPos::Right, VPos::Top), -6)
                } else {
                    (Pos::new(HPos::Left, VPos::Top), 6)
                };
                chart.draw_series(std::iter::once(
                    EmptyElement::at((at, top))
                        + Text::new(text, (offset, line_offset), small_style().pos(anchor)),
                ))?;
            }
            let mut legend_entries = Vec::new();
            for line in &series {
                let total = line.points.last().map_or(0.0, |&(_, count)| count);
                legend_entries.push((format!("{}: {total}", line.label), line.color, false));
                if total > 0.0 {
                    chart.draw_series(LineSeries::new(
                        line.points.iter().copied(),
                        line.color.stroke_width(3),
                    ))?;
                }
            }
            if forks_marked > 0 {
                legend_entries.push(("fork".to_string(), FORK_MARK, true));
            }
            for (row, (text, color, dashed)) in legend_entries.iter().enumerate() {
                let y = 60 + row as i32 * 26;
                if *dashed {
                    for dash in [(8, 15), (20, 27)] {
                        legend.draw(&PathElement::new(
                            vec![(dash.0, y), (dash.1, y)],
                            color.stroke_width(2),
                        ))?;
                    }
                } else {
                    legend.draw(&PathElement::new(
                        vec![(8, y), (30, y)],
                        color.stroke_width(3),
                    ))?;
                }
                legend.draw_text(
                    text,
                    &label_style().pos(Pos::new(HPos::Left, VPos::Center)),
                    (40, y),
                )?;
            }
        }
        Ok(())
    }
}
