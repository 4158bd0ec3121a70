//! The charts, drawn with plotters as SVG (embedded in the HTML report), then rasterized to PNG
//! by resvg.
//!
//! Text is measured and drawn with the DejaVu Sans font shipped in `tracer/assets/fonts`
//! (plotters' `ab_glyph` feature, and resvg's font database), never a system font: the same
//! trace gives the same bytes on every machine, which is what lets the committed example
//! reports be checked.

pub mod address_space;
pub mod latency;
pub mod pages_over_time;
pub mod seed_diagram;

use std::sync::{Once, OnceLock};

use anyhow::{Context as _, Result, anyhow};
use cowtrace_common::FaultKind;
use plotters::{
    coord::Shift,
    prelude::*,
    style::{FontStyle, register_font},
};

/// One rendered chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// File name without extension: `NAME.svg`, `NAME.png`.
    pub name: &'static str,
    pub title: String,
    /// What the chart shows and how to read it, for the text around it.
    pub description: String,
    pub svg: String,
    pub png: Vec<u8>,
}

/// A chart that can draw itself on any plotters backend.
pub trait Draw {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

pub const FONT: &str = "sans-serif";
const DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// The font every chart uses, registered once per process.
fn register_fonts() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_err() {
            // The font is compiled in: only a corrupt build gets here.
            log::error!("the bundled DejaVu Sans font cannot be read");
        }
    });
}

/// Draws `chart` as SVG and PNG.
pub fn render(
    chart: &impl Draw,
    name: &'static str,
    title: String,
    description: String,
) -> Result<Chart> {
    register_fonts();
    let (width, height) = chart.size();
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        area.fill(&WHITE)
            .and_then(|()| chart.draw(&area))
            .and_then(|()| area.present())
            .map_err(|error| anyhow!("drawing {name}.svg: {error:?}"))?;
    }
    let png = rasterize(&svg, width, height).with_context(|| format!("drawing {name}.png"))?;
    Ok(Chart {
        name,
        title,
        description,
        svg,
        png,
    })
}

/// The PNG of an SVG chart, its text in the bundled font: plotters' own bitmap text places
/// glyphs unevenly, and one drawing for both formats keeps them identical.
fn rasterize(svg: &str, width: u32, height: u32) -> Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    let options = OPTIONS.get_or_init(|| {
        let mut options = usvg::Options::default();
        let fonts = options.fontdb_mut();
        fonts.load_font_data(DEJAVU_SANS.to_vec());
        fonts.set_sans_serif_family("DejaVu Sans");
        options
    });
    let tree = usvg::Tree::from_str(svg, options)?;
    let mut pixmap = tiny_skia::Pixmap::new(width, height).context("the chart has no pixels")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    Ok(pixmap.encode_png()?)
}

/// One colour per fault kind, the same in every chart (a colour-blind-safe palette for the
/// kinds that matter most: first touch, copy, reuse).
pub fn kind_color(kind: FaultKind) -> RGBColor {
    match kind {
        FaultKind::AnonFirstTouch => RGBColor(0, 114, 178),
        FaultKind::ZeroPage => RGBColor(86, 180, 233),
        FaultKind::CowCopy => RGBColor(213, 94, 0),
        FaultKind::CowReuse => RGBColor(0, 158, 115),
        FaultKind::FileMinor => RGBColor(204, 121, 167),
        FaultKind::FileMajor => RGBColor(120, 60, 140),
        FaultKind::FilePrivateCopy => RGBColor(230, 159, 0),
        FaultKind::WriteShared => RGBColor(150, 150, 40),
        FaultKind::GupFault => RGBColor(120, 120, 120),
        FaultKind::Other => RGBColor(40, 40, 40),
    }
}

/// Colours of the three page series (the fault kinds behind them).
pub const COPIED: RGBColor = RGBColor(213, 94, 0);
pub const REUSED: RGBColor = RGBColor(0, 158, 115);
pub const FIRST_TOUCHED: RGBColor = RGBColor(0, 114, 178);
pub const FORK_MARK: RGBColor = RGBColor(90, 90, 90);
/// Major grid lines; minor ones are fainter still.
pub const GRID: RGBColor = RGBColor(222, 222, 222);
pub const FINE_GRID: RGBColor = RGBColor(243, 243, 243);

/// Text styles.
pub fn title_style() -> TextStyle<'static> {
    (FONT, 24).into_font().color(&BLACK)
}

pub fn caption_style() -> TextStyle<'static> {
    (FONT, 17).into_font().color(&BLACK)
}

pub fn label_style() -> TextStyle<'static> {
    (FONT, 14).into_font().color(&RGBColor(50, 50, 50))
}

pub fn small_style() -> TextStyle<'static> {
    (FONT, 13).into_font().color(&RGBColor(50, 50, 50))
}

/// Milliseconds since the trace's time zero.
pub fn ms_since(origin_ns: u64, time_ns: u64) -> f64 {
    time_ns.saturating_sub(origin_ns) as f64 / 1e6
}

/// A time axis label in milliseconds, with as many decimals as the axis's span needs.
pub fn format_ms(ms: f64, span_ms: f64) -> String {
    if span_ms >= 100.0 {
        format!("{ms:.0}")
    } else if span_ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// `1.5 µs`, `320 ns`, `2 ms`: latencies for labels.
pub fn format_ns(ns: f64) -> String {
    let (value, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else if value >= 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.2} {unit}")
    }
}

/// At most `limit` of `items`, evenly spread, always keeping the last (for cumulative lines,
/// which must end at their total).
pub fn thin<T: Copy>(items: &[T], limit: usize) -> Vec<T> {
    if items.len() <= limit || limit < 2 {
        return items.to_vec();
    }
    let step = items.len().div_ceil(limit - 1);
    let mut kept: Vec<T> = items.iter().step_by(step).copied().collect();
    if items.len() % step != 1 {
        kept.push(items[items.len() - 1]);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_naturally() {
        assert_eq!(format_ns(320.0), "320 ns");
        assert_eq!(format_ns(1_000.0), "1 µs");
        assert_eq!(format_ns(2_940.0), "2.94 µs");
        assert_eq!(format_ns(17_300.0), "17.3 µs");
        assert_eq!(format_ns(1e7), "10 ms");
    }

    #[test]
    fn thinning_keeps_the_last_item() {
        let items: Vec<u32> = (0..1000).collect();
        let kept = thin(&items, 100);
        assert!(kept.len() <= 101, "{}", kept.len());
        assert_eq!(kept.first(), Some(&0));
        assert_eq!(kept.last(), Some(&999));
        assert_eq!(thin(&items[..10], 100).len(), 10);
    }
}
