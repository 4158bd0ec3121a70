//! The Markdown report: the same document as the HTML one, the charts linked as the SVG files
//! written beside it.

use std::fmt::Write as _;

use super::{
    charts::Chart,
    document::{Block, Document, Table},
};

pub fn render(document: &Document, charts: &[Chart]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&document.title));
    for warning in &document.warnings {
        let _ = writeln!(out, "> **Warning:** {}\n", escape(warning));
    }
    for section in &document.sections {
        let _ = writeln!(out, "## {}\n", escape(&section.title));
        for block in &section.blocks {
            match block {
                Block::Text(text) => {
                    let _ = writeln!(out, "{}\n", escape(text));
                }
                Block::Facts(facts) => {
                    out.push_str("| | |\n|---|---|\n");
                    for (label, value) in facts {
                        let _ = writeln!(out, "| {} | {} |", escape(label), escape(value));
                    }
                    out.push('\n');
                }
                Block::Table(table) => write_table(&mut out, table),
                Block::Chart(index) => {
                    let chart = &charts[*index];
                    let _ = writeln!(
                        out,
                        "![{}]({name}.svg)\n\n{} ([PNG]({name}.png))\n",
                        escape(&chart.title),
                        escape(&chart.description),
                        name = chart.name
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "---\nRendered by cowtrace {} from a recorded trace.",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn write_table(out: &mut String, table: &Table) {
    let cells = |cells: &[String]| {
        cells
            .iter()
            .map(|cell| escape(cell))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let _ = writeln!(out, "| {} |", cells(&table.headers));
    let alignments: Vec<&str> = (0..table.headers.len())
        .map(|column| {
            if table.numeric.get(column).copied().unwrap_or(false) {
                "---:"
            } else {
                "---"
            }
        })
        .collect();
    let _ = writeln!(out, "|{}|", alignments.join("|"));
    for row in &table.rows {
        let _ = writeln!(out, "| {} |", cells(row));
    }
    out.push('\n');
}

/// Text as Markdown that shows it literally: every character a Markdown renderer could read
/// as markup (emphasis, code, links, tables, HTML like `<script>`, entities) is
/// backslash-escaped, as CommonMark allows for any ASCII punctuation; line breaks become spaces
/// so a table row stays one row. Parentheses need no escape: a link needs a `[` first.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' => {
                escaped.push('\\');
                escaped.push(character);
            }
            '\n' | '\r' => escaped.push(' '),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_shows_hostile_text_literally() {
        assert_eq!(
            escape("<script>alert(1)</script>"),
            r"\<script\>alert(1)\</script\>"
        );
        assert_eq!(escape("a|b\nc"), r"a\|b c");
        assert_eq!(escape("plain 1.5 µs"), "plain 1.5 µs");
    }
}
