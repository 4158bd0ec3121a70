//! The seed diagram, from real data: the parent's and the child's page tables side by side,
//! an arrow from each page to the physical frame it maps. A frame both still map is shared and
//! read-only; a page one of them wrote while shared points to a copy.

use plotters::{
    coord::Shift,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    Draw, DrawResult, FONT, caption_style, label_style, ms_since, small_style, title_style,
};
use crate::report::{
    data::ReportData,
    seed::{PageState, SeedData, SeedPage},
};

const WIDTH: u32 = 1200;
const HEADER_HEIGHT: i32 = 128;
const FOOTER_HEIGHT: i32 = 120;
/// One frame box, and the space between two pages.
const SLOT: i32 = 30;
const PAGE_GAP: i32 = 10;
const TABLE_LEFT: (i32, i32) = (40, 330);
const FRAMES: (i32, i32) = (440, 760);
const TABLE_RIGHT: (i32, i32) = (870, 1160);

const SHARED_FILL: RGBColor = RGBColor(222, 232, 245);
const SHARED_EDGE: RGBColor = RGBColor(70, 110, 170);
const COPY_FILL: RGBColor = RGBColor(253, 224, 200);
const COPY_EDGE: RGBColor = RGBColor(213, 94, 0);
const KEPT_FILL: RGBColor = RGBColor(214, 240, 228);
const KEPT_EDGE: RGBColor = RGBColor(0, 130, 95);
const UNKNOWN_FILL: RGBColor = RGBColor(240, 240, 240);
const UNKNOWN_EDGE: RGBColor = RGBColor(150, 150, 150);
const TABLE_FILL: RGBColor = RGBColor(248, 248, 248);
const TABLE_EDGE: RGBColor = RGBColor(110, 110, 110);
const ARROW: RGBColor = RGBColor(60, 60, 60);

pub struct SeedDiagram<'a> {
    data: &'a ReportData,
    seed: &'a SeedData,
}

/// A frame box of the middle column.
struct FrameBox {
    text: String,
    fill: RGBColor,
    edge: RGBColor,
}

impl<'a> SeedDiagram<'a> {
    pub fn new(data: &'a ReportData) -> Option<SeedDiagram<'a>> {
        Some(SeedDiagram {
            data,
            seed: data.seed.as_ref().ok()?,
        })
    }

    /// Frame slots a page takes: one shared frame, or one frame each.
    fn slots(page: &SeedPage) -> i32 {
        if page.state == PageState::Shared {
            1
        } else {
            2
        }
    }

    fn body_height(&self) -> i32 {
        self.seed
            .drawn
            .iter()
            .map(|&page| Self::slots(&self.seed.pages[page]) * SLOT + PAGE_GAP)
            .sum()
    }

    /// The frame boxes of a page: the parent's first (top), the child's second.
    fn frames(page: &SeedPage) -> Vec<FrameBox> {
        let pfn = |frame: Option<u64>| {
            frame.map_or_else(|| "PFN ?".to_string(), |pfn| format!("PFN {pfn}"))
        };
        let copy = |frame, who: &str| FrameBox {
            text: format!("{}  copy made by the {who}", pfn(frame)),
            fill: COPY_FILL,
            edge: COPY_EDGE,
        };
        let kept = |frame, who: &str, reused: bool| FrameBox {
            text: if reused {
                format!("{}  original, reused by the {who}", pfn(frame))
            } else {
                format!("{}  original, now the {who}'s only", pfn(frame))
            },
            fill: KEPT_FILL,
            edge: KEPT_EDGE,
        };
        match page.state {
            PageState::Shared => vec![FrameBox {
                text: format!("{}  shared, read-only", pfn(page.parent_frame)),
                fill: SHARED_FILL,
                edge: SHARED_EDGE,
            }],
            PageState::CopiedByChild => vec![
                kept(page.parent_frame, "parent", page.parent_reused),
                copy(page.child_frame, "child"),
            ],
            PageState::CopiedByParent => vec![
                copy(page.parent_frame, "parent"),
                kept(page.child_frame, "child", false),
            ],
            PageState::CopiedByBoth => vec![
                copy(page.parent_frame, "parent"),
                copy(page.child_frame, "child"),
            ],
            PageState::Unknown => vec![
                FrameBox {
                    text: pfn(page.parent_frame),
                    fill: UNKNOWN_FILL,
                    edge: UNKNOWN_EDGE,
                },
                FrameBox {
                    text: pfn(page.child_frame),
                    fill: UNKNOWN_FILL,
                    edge: UNKNOWN_EDGE,
                },
            ],
        }
    }
}

fn draw_box<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (left, right): (i32, i32),
    top: i32,
    fill: RGBColor,
    edge: RGBColor,
    text: &str,
) -> DrawResult<DB> {
    let corners = [(left, top + 2), (right, top + SLOT - 2)];
    area.draw(&Rectangle::new(corners, fill.filled()))?;
    area.draw(&Rectangle::new(corners, edge.stroke_width(1)))?;
    area.draw_text(
        text,
        &small_style()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center)),
        (left + 10, top + SLOT / 2),
    )
}

/// A line from `from` to `to` with a filled head at `to`.
fn draw_arrow<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    from: (i32, i32),
    to: (i32, i32),
) -> DrawResult<DB> {
    area.draw(&PathElement::new(vec![from, to], ARROW.stroke_width(2)))?;
    let (dx, dy) = ((to.0 - from.0) as f64, (to.1 - from.1) as f64);
    let length = dx.hypot(dy).max(1.0);
    let (ux, uy) = (dx / length, dy / length);
    let point = |along: f64, across: f64| {
        (
            (to.0 as f64 - ux * along - uy * across).round() as i32,
            (to.1 as f64 - uy * along + ux * across).round() as i32,
        )
    };
    area.draw(&Polygon::new(
        vec![to, point(11.0, 5.0), point(11.0, -5.0)],
        ARROW.filled(),
    ))
}

impl Draw for SeedDiagram<'_> {
    fn size(&self) -> (u32, u32) {
        (
            WIDTH,
            (HEADER_HEIGHT + self.body_height() + FOOTER_HEIGHT) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let seed = self.seed;
        let parent = self.data.process(seed.parent);
        let child = self.data.process(seed.child);
        area.draw_text(
            &format!(
                "Parent {} and child {} after the fork at {:.3} ms: page tables and frames",
                parent.pid,
                child.pid,
                ms_since(self.data.origin_ns, seed.fork_time_ns)
            ),
            &title_style(),
            (20, 14),
        )?;
        let region_note = format!(
            "Region {:#x}, {} pages; frames as last seen in the trace. {}",
            seed.region.start,
            seed.region.pages,
            if seed.sampled() {
                format!(
                    "Only {} drawn: a sample, spread evenly within each kind (totals below).",
                    seed.drawn.len()
                )
            } else {
                "Every page drawn.".to_string()
            }
        );
        area.draw_text(&region_note, &label_style(), (20, 50))?;
        let heading = caption_style();
        let centered = |(left, right): (i32, i32)| (left + right) / 2;
        let top_center = Pos::new(HPos::Center, VPos::Top);
        for (text, column) in [
            (format!("parent {} page table", parent.pid), TABLE_LEFT),
            ("physical frames".to_string(), FRAMES),
            (format!("child {} page table", child.pid), TABLE_RIGHT),
        ] {
            area.draw_text(&text, &heading.pos(top_center), (centered(column), 90))?;
        }

        let mut top = HEADER_HEIGHT;
        for &index in &seed.drawn {
            let page = &seed.pages[index];
            let slots = Self::slots(page);
            let height = slots * SLOT;
            let entry = format!("{:#x}  page {index}", page.address);
            // Each page table entry spans the page's frame slots, so arrows stay level.
            let entry_top = top + (height - SLOT) / 2;
            draw_box(area, TABLE_LEFT, entry_top, TABLE_FILL, TABLE_EDGE, &entry)?;
            draw_box(area, TABLE_RIGHT, entry_top, TABLE_FILL, TABLE_EDGE, &entry)?;
            let frames = Self::frames(page);
            for (slot, frame) in frames.iter().enumerate() {
                draw_box(
                    area,
                    FRAMES,
                    top + slot as i32 * SLOT,
                    frame.fill,
                    frame.edge,
                    &frame.text,
                )?;
            }
            let middle = |slot: i32| top + slot * SLOT + SLOT / 2;
            let entry_middle = entry_top + SLOT / 2;
            let child_slot = if frames.len() == 1 { 0 } else { 1 };
            draw_arrow(
                area,
                (TABLE_LEFT.1, entry_middle),
                (FRAMES.0 - 2, middle(0)),
            )?;
            draw_arrow(
                area,
                (TABLE_RIGHT.0, entry_middle),
                (FRAMES.1 + 2, middle(child_slot)),
            )?;
            top += height + PAGE_GAP;
        }

        // Legend and totals.
        let legend_top = top + 12;
        let swatches = [
            (
                SHARED_FILL,
                SHARED_EDGE,
                "shared frame: mapped read-only by both",
            ),
            (COPY_FILL, COPY_EDGE, "copy: a new frame, made by a write"),
            (
                KEPT_FILL,
                KEPT_EDGE,
                "original frame, now mapped by one only",
            ),
            (UNKNOWN_FILL, UNKNOWN_EDGE, "frame not seen in the trace"),
        ];
        let mut x = 40;
        for (fill, edge, text) in swatches {
            area.draw(&Rectangle::new(
                [(x, legend_top), (x + 22, legend_top + 16)],
                fill.filled(),
            ))?;
            area.draw(&Rectangle::new(
                [(x, legend_top), (x + 22, legend_top + 16)],
                edge.stroke_width(1),
            ))?;
            area.draw_text(
                text,
                &small_style().pos(Pos::new(HPos::Left, VPos::Center)),
                (x + 30, legend_top + 8),
            )?;
            x += 30 + area.estimate_text_size(text, &small_style())?.0 as i32 + 28;
        }
        let counts: Vec<String> = PageState::ALL
            .iter()
            .filter(|&&state| seed.count(state) > 0)
            .map(|&state| format!("{} {}", seed.count(state), state.describe()))
            .collect();
        let reused = seed.pages.iter().filter(|page| page.parent_reused).count();
        let mut totals = format!("All {} pages: {}", seed.pages.len(), counts.join(", "));
        if reused > 0 {
            totals.push_str(&format!("; the parent reused {reused} in place"));
        }
        area.draw_text(
            &totals,
            &(FONT, 15).into_font().color(&BLACK),
            (40, legend_top + 36),
        )?;
        if let Some(pagemap) = seed.pagemap {
            area.draw_text(
                &format!(
                    "Checked against /proc/PID/pagemap: parent {} of {} frames agree, child {} of {}.",
                    pagemap.parent_agree, pagemap.pages, pagemap.child_agree, pagemap.pages
                ),
                &(FONT, 15).into_font().color(&BLACK),
                (40, legend_top + 62),
            )?;
        }
        Ok(())
    }
}
