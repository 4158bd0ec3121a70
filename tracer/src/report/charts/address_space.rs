//! Faults over the address space and time: which parts of memory faulted when, one panel per
//! process, one dot per fault coloured by kind.
//!
//! A process's faults sit in a few ranges billions of bytes apart (program, heap, mappings,
//! stack), so a linear address axis would flatten each range to a line. The axis is cut into
//! bands instead, one per range of touched addresses, each stretched to the same height and
//! labelled with its addresses. The ranges come from the faults themselves: the tracer has no
//! model of mappings yet (see `report::mappings`).

use cowtrace_common::FaultKind;
use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    Draw, DrawResult, FINE_GRID, GRID, caption_style, format_ms, kind_color, label_style, ms_since,
    small_style, title_style,
};
use crate::report::data::ReportData;

pub const MAX_PROCESSES: usize = 4;
/// Dots per panel at most; more are thinned evenly (and the description says so).
pub const MAX_POINTS: usize = 8_000;
/// Address bands at most.
const MAX_BANDS: usize = 6;
/// Touched pages closer than this are one band.
const BAND_GAP_BYTES: u64 = 1 << 20;
const PANEL_HEIGHT: u32 = 300;
const HEADER_HEIGHT: u32 = 84;
const BAND_LABEL_WIDTH: u32 = 170;

pub struct AddressSpace<'a> {
    data: &'a ReportData,
    processes: Vec<usize>,
    bands: Vec<Band>,
    kinds: Vec<FaultKind>,
}

/// A range of addresses drawn as one horizontal band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    pub first: u64,
    /// One past the last byte of the last touched page.
    pub end: u64,
}

impl<'a> AddressSpace<'a> {
    pub fn new(data: &'a ReportData) -> Option<AddressSpace<'a>> {
        let processes: Vec<usize> = data
            .busiest_processes()
            .into_iter()
            .filter(|&process| data.faults[process].iter().any(|fault| fault.address != 0))
            .take(MAX_PROCESSES)
            .collect();
        let addresses: Vec<u64> = processes
            .iter()
            .flat_map(|&process| &data.faults[process])
            .filter(|fault| fault.address != 0)
            .map(|fault| fault.address)
            .collect();
        let bands = bands(&addresses, data.page_size());
        let kinds = FaultKind::ALL
            .into_iter()
            .filter(|&kind| {
                processes.iter().any(|&process| {
                    data.faults[process]
                        .iter()
                        .any(|fault| fault.kind == Some(kind) && fault.address != 0)
                })
            })
            .collect();
        (!bands.is_empty()).then_some(AddressSpace {
            data,
            processes,
            bands,
            kinds,
        })
    }

    pub fn processes(&self) -> &[usize] {
        &self.processes
    }

    pub fn bands(&self) -> &[Band] {
        &self.bands
    }

    /// Panels whose dots were thinned.
    pub fn thinned(&self) -> bool {
        self.processes
            .iter()
            .any(|&process| self.data.faults[process].len() > MAX_POINTS)
    }

    /// Height on the y axis: band `i` spans `i + 0.05 .. i + 0.95`, low addresses at the bottom.
    fn y_of(&self, address: u64) -> Option<f64> {
        let band = self
            .bands
            .iter()
            .position(|band| (band.first..band.end).contains(&address))?;
        let Band { first, end } = self.bands[band];
        Some(band as f64 + 0.05 + 0.9 * (address - first) as f64 / (end - first) as f64)
    }
}

/// Groups the touched pages into bands: split at the widest gaps (at most `MAX_BANDS` bands,
/// and only at gaps of at least `BAND_GAP_BYTES`).
pub fn bands(addresses: &[u64], page_size: u64) -> Vec<Band> {
    let mut pages: Vec<u64> = addresses
        .iter()
        .map(|address| address / page_size)
        .collect();
    pages.sort_unstable();
    pages.dedup();
    if pages.is_empty() {
        return Vec::new();
    }
    let mut gaps: Vec<(u64, usize)> = pages
        .windows(2)
        .enumerate()
        .map(|(index, pair)| ((pair[1] - pair[0]) * page_size, index))
        .filter(|&(gap, _)| gap >= BAND_GAP_BYTES)
        .collect();
    // Widest first; on equal width the lower address first, so the result is deterministic.
    gaps.sort_by_key(|&(gap, index)| (std::cmp::Reverse(gap), index));
    let mut splits: Vec<usize> = gaps
        .iter()
        .take(MAX_BANDS - 1)
        .map(|&(_, index)| index)
        .collect();
    splits.sort_unstable();
    let mut bands = Vec::new();
    let mut first = 0;
    for split in splits.into_iter().chain(std::iter::once(pages.len() - 1)) {
        bands.push(Band {
            first: pages[first] * page_size,
            end: (pages[split] + 1) * page_size,
        });
        first = split + 1;
    }
    bands
}

/// `0x7f6e…e000 +3.9 MiB`: where a band starts and how long it is.
pub fn band_label(band: &Band) -> (String, String) {
    (
        format!("{:#x}", band.first),
        format_bytes(band.end - band.first),
    )
}

pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Draw for AddressSpace<'_> {
    fn size(&self) -> (u32, u32) {
        (
            1200,
            HEADER_HEIGHT + PANEL_HEIGHT * self.processes.len() as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (header, body) = area.split_vertically(HEADER_HEIGHT);
        header.draw_text(
            "Faults over the address space and time (one dot per fault, by kind)",
            &title_style(),
            (20, 14),
        )?;
        // One legend for every panel (the colours are the same), where it hides no dot.
        let mut x = 40;
        for &kind in &self.kinds {
            header.draw(&Circle::new((x, 64), 5, kind_color(kind).filled()))?;
            header.draw_text(
                kind.name(),
                &label_style().pos(Pos::new(HPos::Left, VPos::Center)),
                (x + 12, 64),
            )?;
            x += 12 + header.estimate_text_size(kind.name(), &label_style())?.0 as i32 + 30;
        }
        let end_ms = ms_since(self.data.origin_ns, self.data.last_ns).max(0.001);
        let band_count = self.bands.len() as f64;
        for (panel, &process) in body
            .split_evenly((self.processes.len(), 1))
            .iter()
            .zip(&self.processes)
        {
            let stats = self.data.process(process);
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!(
                        "pid {} {}: {} faults",
                        stats.pid,
                        stats.comm,
                        stats.faults()
                    ),
                    caption_style(),
                )
                .margin_left(20)
                .margin_right(30)
                .margin_bottom(8)
                .x_label_area_size(42)
                .y_label_area_size(BAND_LABEL_WIDTH)
                .build_cartesian_2d(0.0..end_ms, 0.0..band_count)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .light_line_style(FINE_GRID)
                .bold_line_style(GRID.mix(1.0))
                .x_desc("time since trace start (ms)")
                .y_desc("address")
                .axis_desc_style(label_style())
                .label_style(small_style())
                .x_labels(12)
                .x_label_formatter(&|ms| format_ms(*ms, end_ms))
                // The bands are labelled below, not by value.
                .y_labels(0)
                .draw()?;
            // Band edges and labels (start address, and size) left of the axis.
            for (index, band) in self.bands.iter().enumerate() {
                let (start, size) = band_label(band);
                let y = index as f64;
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, y), (end_ms, y)],
                    RGBColor(190, 190, 190).stroke_width(1),
                )))?;
                let middle = y + 0.5;
                chart.draw_series(std::iter::once(
                    EmptyElement::at((0.0, middle))
                        + Text::new(
                            start,
                            (-8, -9),
                            small_style().pos(Pos::new(HPos::Right, VPos::Center)),
                        )
                        + Text::new(
                            format!("{size} range"),
                            (-8, 8),
                            small_style().pos(Pos::new(HPos::Right, VPos::Center)),
                        ),
                ))?;
            }
            let faults = &self.data.faults[process];
            let step = faults.len().div_ceil(MAX_POINTS).max(1);
            for &kind in &self.kinds {
                let color = kind_color(kind);
                let dots = faults
                    .iter()
                    .step_by(step)
                    .filter(|fault| fault.kind == Some(kind))
                    .filter_map(|fault| {
                        let y = self.y_of(fault.address)?;
                        Some(Circle::new(
                            (ms_since(self.data.origin_ns, fault.time_ns), y),
                            2,
                            color.filled(),
                        ))
                    });
                chart.draw_series(dots)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_split_at_the_widest_gaps() {
        let page = 4096;
        let addresses = [
            0x5555_0000_0000,
            0x5555_0000_1000,
            0x5555_0010_0000, // 1 MiB - 4 KiB further: the same band
            0x7f00_0000_0000,
            0x7ffd_0000_0000,
        ];
        let bands = bands(&addresses, page);
        assert_eq!(
            bands,
            vec![
                Band {
                    first: 0x5555_0000_0000,
                    end: 0x5555_0010_1000
                },
                Band {
                    first: 0x7f00_0000_0000,
                    end: 0x7f00_0000_1000
                },
                Band {
                    first: 0x7ffd_0000_0000,
                    end: 0x7ffd_0000_1000
                },
            ]
        );
        assert!(super::bands(&[], page).is_empty());
    }

    #[test]
    fn no_more_bands_than_the_limit() {
        let addresses: Vec<u64> = (0..20u64).map(|i| i << 32).collect();
        assert_eq!(bands(&addresses, 4096).len(), MAX_BANDS);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(format_bytes(4096), "4.0 KiB");
        assert_eq!(format_bytes(1009 * 4096), "3.9 MiB");
        assert_eq!(format_bytes(100), "100 B");
    }
}
