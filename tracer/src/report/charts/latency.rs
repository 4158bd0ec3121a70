//! Fault latency histograms, one panel per fault kind, on a logarithmic time axis (latencies
//! span from a few hundred nanoseconds to milliseconds when a page is read from disk).

use cowtrace_common::FaultKind;
use plotters::{coord::Shift, prelude::*};

use super::{
    Draw, DrawResult, FINE_GRID, GRID, caption_style, format_ns, kind_color, label_style,
    small_style, title_style,
};
use crate::report::data::ReportData;

/// Histogram bins per factor of ten.
const BINS_PER_DECADE: u32 = 5;
const PANEL_SIZE: (u32, u32) = (600, 300);
/// Where bars start on the log count axis (a count of one must still show).
const BAR_BASE: f64 = 0.6;
const HEADER_HEIGHT: u32 = 50;

pub struct LatencyHistograms {
    kinds: Vec<KindLatencies>,
    /// Powers of ten bounding every latency: the shared x axis.
    low_exponent: i32,
    high_exponent: i32,
}

/// The latencies of one kind, sorted.
pub struct KindLatencies {
    pub kind: FaultKind,
    pub sorted_ns: Vec<u64>,
}

impl KindLatencies {
    /// The latency below which `fraction` of the faults fall (nearest rank).
    pub fn percentile(&self, fraction: f64) -> u64 {
        let rank = ((self.sorted_ns.len() as f64 * fraction).ceil() as usize).max(1);
        self.sorted_ns[rank.min(self.sorted_ns.len()) - 1]
    }
}

impl LatencyHistograms {
    /// `None` when the trace has no fault.
    pub fn new(data: &ReportData) -> Option<LatencyHistograms> {
        let kinds: Vec<KindLatencies> = FaultKind::ALL
            .iter()
            .map(|&kind| {
                let mut sorted_ns = data.latencies(kind);
                // Zero: the fault's start was not seen (get_user_pages faults), nothing timed.
                sorted_ns.retain(|&ns| ns > 0);
                sorted_ns.sort_unstable();
                KindLatencies { kind, sorted_ns }
            })
            .filter(|latencies| !latencies.sorted_ns.is_empty())
            .collect();
        let min = kinds.iter().map(|k| k.sorted_ns[0]).min()?;
        let max = *kinds.iter().filter_map(|k| k.sorted_ns.last()).max()?;
        let exponent = |ns: u64| (ns.max(1) as f64).log10();
        let low_exponent = exponent(min).floor() as i32;
        let high_exponent = (exponent(max).floor() as i32 + 1).max(low_exponent + 1);
        Some(LatencyHistograms {
            kinds,
            low_exponent,
            high_exponent,
        })
    }

    pub fn kinds(&self) -> &[KindLatencies] {
        &self.kinds
    }

    /// Bin edges from 10^low to 10^high, `BINS_PER_DECADE` per decade.
    fn edges(&self) -> Vec<f64> {
        let steps = (self.high_exponent - self.low_exponent) as u32 * BINS_PER_DECADE;
        (0..=steps)
            .map(|step| 10f64.powf(self.low_exponent as f64 + step as f64 / BINS_PER_DECADE as f64))
            .collect()
    }

    fn columns(&self) -> usize {
        if self.kinds.len() == 1 { 1 } else { 2 }
    }
}

impl Draw for LatencyHistograms {
    fn size(&self) -> (u32, u32) {
        let columns = self.columns() as u32;
        let rows = (self.kinds.len() as u32).div_ceil(columns);
        (PANEL_SIZE.0 * columns, HEADER_HEIGHT + PANEL_SIZE.1 * rows)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (header, body) = area.split_vertically(HEADER_HEIGHT);
        header.draw_text(
            "Fault latency per kind (fault start to end, log scale)",
            &title_style(),
            (20, 14),
        )?;
        let columns = self.columns();
        let rows = self.kinds.len().div_ceil(columns);
        let edges = self.edges();
        let x_range = edges[0]..edges[edges.len() - 1];
        for (panel, latencies) in body.split_evenly((rows, columns)).iter().zip(&self.kinds) {
            let mut counts = vec![0u64; edges.len() - 1];
            for &ns in &latencies.sorted_ns {
                let bin = edges[1..]
                    .partition_point(|&edge| edge <= ns as f64)
                    .min(counts.len() - 1);
                counts[bin] += 1;
            }
            let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
            // Counts on a log axis too, so that the rare slow faults (the tail) stay visible
            // next to thousands of fast ones; bars rise from just below one.
            let caption = format!(
                "{}: {} fault{}, median {}, p99 {}",
                latencies.kind.name(),
                latencies.sorted_ns.len(),
                if latencies.sorted_ns.len() == 1 {
                    ""
                } else {
                    "s"
                },
                format_ns(latencies.percentile(0.5) as f64),
                format_ns(latencies.percentile(0.99) as f64)
            );
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, caption_style())
                .margin(12)
                .margin_right(36)
                .x_label_area_size(42)
                .y_label_area_size(60)
                .build_cartesian_2d(
                    x_range.clone().log_scale(),
                    (BAR_BASE..top * 1.6).log_scale(),
                )?;
            chart
                .configure_mesh()
                .light_line_style(FINE_GRID)
                .bold_line_style(GRID.mix(1.0))
                .x_desc("fault latency")
                .y_desc("faults (log scale)")
                .axis_desc_style(label_style())
                .label_style(small_style())
                .x_labels(self.high_exponent as usize - self.low_exponent as usize + 1)
                .x_label_formatter(&|ns| format_ns(*ns))
                .y_labels(4)
                .y_label_formatter(&|count| {
                    // Whole counts only: the axis also has ticks between powers of ten.
                    if (count.round() - count).abs() < 1e-6 && *count >= 1.0 {
                        format!("{count:.0}")
                    } else {
                        String::new()
                    }
                })
                .draw()?;
            let color = kind_color(latencies.kind);
            chart.draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, count)| **count > 0)
                    .map(|(bin, &count)| {
                        Rectangle::new(
                            [(edges[bin], BAR_BASE), (edges[bin + 1], count as f64)],
                            color.mix(0.85).filled(),
                        )
                    }),
            )?;
            chart.draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, count)| **count > 0)
                    .map(|(bin, &count)| {
                        Rectangle::new(
                            [(edges[bin], BAR_BASE), (edges[bin + 1], count as f64)],
                            WHITE.stroke_width(1),
                        )
                    }),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let latencies = KindLatencies {
            kind: FaultKind::CowCopy,
            sorted_ns: (1..=100).collect(),
        };
        assert_eq!(latencies.percentile(0.5), 50);
        assert_eq!(latencies.percentile(0.99), 99);
        assert_eq!(latencies.percentile(1.0), 100);
        let one = KindLatencies {
            kind: FaultKind::CowCopy,
            sorted_ns: vec![7],
        };
        assert_eq!(one.percentile(0.5), 7);
    }
}
