//! A report as data — headings, paragraphs, tables, figures, preformatted text — rendered to a
//! self-contained HTML page and to Markdown from the same blocks.

use std::fmt::Write;

pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A PNG beside the page.
    Figure {
        file: String,
        caption: String,
    },
    Pre(String),
    /// Small PNGs beside the page, side by side, each with its own caption.
    Gallery(Vec<Tile>),
}

/// One picture of a gallery.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Tile {
    /// The PNG, relative to the page.
    pub file: String,
    pub caption: String,
}

#[derive(Default)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn new(title: impl Into<String>) -> Self {
        Document {
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    pub fn heading(&mut self, level: u8, text: impl Into<String>) {
        self.blocks.push(Block::Heading(level, text.into()));
    }

    pub fn paragraph(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Paragraph(text.into()));
    }

    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows,
        });
    }

    pub fn figure(&mut self, file: impl Into<String>, caption: impl Into<String>) {
        self.blocks.push(Block::Figure {
            file: file.into(),
            caption: caption.into(),
        });
    }

    pub fn pre(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Pre(text.into()));
    }

    pub fn gallery(&mut self, tiles: Vec<Tile>) {
        self.blocks.push(Block::Gallery(tiles));
    }

    /// The figures in order: (number, file, caption).
    pub fn figures(&self) -> Vec<(usize, String, String)> {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Figure { file, caption } => Some((file.clone(), caption.clone())),
                _ => None,
            })
            .enumerate()
            .map(|(i, (f, c))| (i + 1, f, c))
            .collect()
    }

    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{}</style></head><body>\n<h1>{}</h1>\n",
            escape(&self.title),
            STYLE,
            escape(&self.title)
        );
        let mut figure = 0;
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => {
                    let l = (*level).clamp(2, 4);
                    let _ = writeln!(out, "<h{l}>{}</h{l}>", escape(text));
                }
                Block::Paragraph(text) => {
                    let _ = writeln!(out, "<p>{}</p>", escape(text));
                }
                Block::Table { header, rows } => {
                    out.push_str("<table><thead><tr>");
                    for h in header {
                        let _ = write!(out, "<th>{}</th>", escape(h));
                    }
                    out.push_str("</tr></thead><tbody>\n");
                    for row in rows {
                        out.push_str("<tr>");
                        for cell in row {
                            let _ = write!(out, "<td>{}</td>", escape(cell));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</tbody></table>\n");
                }
                Block::Figure { file, caption } => {
                    figure += 1;
                    let _ = writeln!(
                        out,
                        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>Figure {figure}. {}</figcaption></figure>",
                        escape(file),
                        escape(caption),
                        escape(caption)
                    );
                }
                Block::Pre(text) => {
                    let _ = writeln!(out, "<pre>{}</pre>", escape(text));
                }
                Block::Gallery(tiles) => {
                    out.push_str("<div class=\"gallery\">\n");
                    for t in tiles {
                        let _ = writeln!(
                            out,
                            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                            escape(&t.file),
                            escape(&t.caption),
                            escape(&t.caption)
                        );
                    }
                    out.push_str("</div>\n");
                }
            }
        }
        out.push_str("</body></html>\n");
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n\n", self.title);
        let mut figure = 0;
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => {
                    let _ = writeln!(
                        out,
                        "{} {text}\n",
                        "#".repeat(usize::from((*level).clamp(2, 4)))
                    );
                }
                Block::Paragraph(text) => {
                    let _ = writeln!(out, "{text}\n");
                }
                Block::Table { header, rows } => {
                    let cell = |s: &String| s.replace('|', "\\|");
                    let _ = writeln!(
                        out,
                        "| {} |",
                        header.iter().map(cell).collect::<Vec<_>>().join(" | ")
                    );
                    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
                    for row in rows {
                        let _ = writeln!(
                            out,
                            "| {} |",
                            row.iter().map(cell).collect::<Vec<_>>().join(" | ")
                        );
                    }
                    out.push('\n');
                }
                Block::Figure { file, caption } => {
                    figure += 1;
                    let _ = writeln!(
                        out,
                        "![{caption}]({file})\n\n*Figure {figure}. {caption}*\n"
                    );
                }
                Block::Pre(text) => {
                    let _ = writeln!(out, "```\n{}\n```\n", text.trim_end());
                }
                Block::Gallery(tiles) => {
                    // Inline images wrap into rows; each is followed by its caption.
                    for t in tiles {
                        let _ = writeln!(out, "![{}]({}) *{}*  ", t.caption, t.file, t.caption);
                    }
                    out.push('\n');
                }
            }
        }
        out
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:left}\
th{background:#eee}figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}\
figcaption{color:#555;font-size:90%}\
.gallery{display:flex;flex-wrap:wrap;gap:8px}.gallery figure{margin:0;width:180px}.gallery img{width:180px}pre{background:#f6f6f6;padding:8px;overflow-x:auto}";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
