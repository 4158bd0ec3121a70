//! The HTML report: one self-contained file, charts embedded as SVG data URIs.
//!
//! maud escapes every string it interpolates, so a process named `<script>` is shown, never
//! run. The charts go in as `<img>` data URIs rather than inline SVG: an image cannot run
//! script whatever its content, which keeps names inside the charts harmless too.

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{
    charts::Chart,
    document::{Block, Document, Table},
};

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Verdana, sans-serif; margin: 2em auto; max-width: 1240px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
nav a { margin-right: 1em; }
.warning { background: #fff3cd; border: 1px solid #e0b000; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { font-weight: bold; }
table.facts tr:last-child td { font-weight: normal; }
table.facts th { width: 14em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.95em; margin-top: 0.4em; }
footer { margin-top: 3em; color: #666; font-size: 0.85em; }
";

pub fn render(document: &Document, charts: &[Chart]) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (document.title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (document.title) }
                nav {
                    @for section in &document.sections {
                        a href={ "#" (section.id) } { (section.title) }
                    }
                }
                @for warning in &document.warnings {
                    p.warning { strong { "Warning: " } (warning) }
                }
                @for section in &document.sections {
                    section id=(section.id) {
                        h2 { (section.title) }
                        @for block in &section.blocks {
                            (render_block(block, charts))
                        }
                    }
                }
                footer {
                    "Rendered by cowtrace " (env!("CARGO_PKG_VERSION"))
                    " from a recorded trace; the charts are also beside this file as SVG and PNG."
                }
            }
        }
    };
    page.into_string()
}

fn render_block(block: &Block, charts: &[Chart]) -> Markup {
    match block {
        Block::Text(text) => html! { p { (text) } },
        Block::Facts(facts) => html! {
            table.facts {
                @for (label, value) in facts {
                    tr { th { (label) } td { (value) } }
                }
            }
        },
        Block::Table(table) => render_table(table),
        Block::Chart(index) => {
            let chart = &charts[*index];
            let data_uri = format!("data:image/svg+xml;base64,{}", BASE64.encode(&chart.svg));
            html! {
                figure {
                    img src=(data_uri) alt=(chart.title);
                    figcaption { (chart.description) }
                }
            }
        }
    }
}

fn render_table(table: &Table) -> Markup {
    html! {
        table {
            thead {
                tr { @for header in &table.headers { th { (header) } } }
            }
            tbody {
                @for row in &table.rows {
                    tr {
                        @for (column, cell) in row.iter().enumerate() {
                            @if table.numeric.get(column).copied().unwrap_or(false) {
                                td.number { (cell) }
                            } @else {
                                td { (cell) }
                            }
                        }
                    }
                }
            }
        }
    }
}
