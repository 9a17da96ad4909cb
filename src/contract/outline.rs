//! The outline of a markdown document: headings, tables, code blocks, list items, task
//! markers and thematic breaks, each with its byte offset. Parsed once with pulldown-cmark.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// A heading.
#[derive(Debug, Clone)]
pub(crate) struct Heading {
    pub(crate) level: usize,
    pub(crate) text: String,
    pub(crate) offset: usize,
}

/// A table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: usize,
    pub(crate) offset: usize,
}

/// A fenced or indented code block.
#[derive(Debug, Clone)]
pub(crate) struct CodeBlock {
    pub(crate) language: Option<String>,
    pub(crate) offset: usize,
    /// Where the block ends (after its closing fence).
    pub(crate) end: usize,
}

/// Everything the scaffold checks look at.
#[derive(Debug, Default)]
pub(crate) struct Outline {
    pub(crate) headings: Vec<Heading>,
    pub(crate) tables: Vec<Table>,
    pub(crate) code_blocks: Vec<CodeBlock>,
    /// Offsets of list items not nested in another list.
    pub(crate) top_items: Vec<usize>,
    /// Whether each of `top_items` is in a numbered list.
    pub(crate) top_numbered: Vec<bool>,
    /// Offsets of task list markers.
    pub(crate) tasks: Vec<usize>,
    /// Offsets of thematic breaks.
    pub(crate) breaks: Vec<usize>,
}

impl Outline {
    pub(crate) fn parse(text: &str) -> Outline {
        let options =
            Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS | Options::ENABLE_STRIKETHROUGH;
        let mut outline = Outline::default();
        let mut heading: Option<Heading> = None;
        let mut table: Option<Table> = None;
        let mut in_head = false;
        let mut cell: Option<String> = None;
        let mut list_depth = 0usize;
        let mut numbered = false;
        for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
            match event {
                Event::Start(Tag::Heading { level, .. }) => {
                    heading = Some(Heading {
                        level: level as usize,
                        text: String::new(),
                        offset: range.start,
                    });
                }
                Event::End(TagEnd::Heading(_)) => {
                    if let Some(mut done) = heading.take() {
                        done.text = done.text.trim().to_owned();
                        outline.headings.push(done);
                    }
                }
                Event::Start(Tag::Table(_)) => {
                    table = Some(Table {
                        columns: Vec::new(),
                        rows: 0,
                        offset: range.start,
                    });
                }
                Event::End(TagEnd::Table) => outline.tables.extend(table.take()),
                Event::Start(Tag::TableHead) => in_head = true,
                Event::End(TagEnd::TableHead) => in_head = false,
                Event::Start(Tag::TableRow) => {
                    if let Some(table) = &mut table {
                        table.rows += 1;
                    }
                }
                Event::Start(Tag::TableCell) if in_head => cell = Some(String::new()),
                Event::End(TagEnd::TableCell) => {
                    if let (Some(done), Some(table)) = (cell.take(), &mut table) {
                        table.columns.push(done.trim().to_owned());
                    }
                }
                Event::Start(Tag::CodeBlock(kind)) => {
                    let language = match kind {
                        CodeBlockKind::Fenced(info) => info
                            .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
                            .next()
                            .filter(|word| !word.is_empty())
                            .map(str::to_ascii_lowercase),
                        CodeBlockKind::Indented => None,
                    };
                    outline.code_blocks.push(CodeBlock {
                        language,
                        offset: range.start,
                        end: range.end,
                    });
                }
                Event::Start(Tag::List(first)) => {
                    list_depth += 1;
                    if list_depth == 1 {
                        numbered = first.is_some();
                    }
                }
                Event::End(TagEnd::List(_)) => list_depth = list_depth.saturating_sub(1),
                Event::Start(Tag::Item) if list_depth == 1 => {
                    outline.top_items.push(range.start);
                    outline.top_numbered.push(numbered);
                }
                Event::TaskListMarker(_) => outline.tasks.push(range.start),
                Event::Rule => outline.breaks.push(range.start),
                Event::Text(content) | Event::Code(content) => {
                    if let Some(heading) = &mut heading {
                        heading.text.push_str(&content);
                    } else if let Some(cell) = &mut cell {
                        cell.push_str(&content);
                    }
                }
                _ => {}
            }
        }
        outline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_what_the_checks_need() {
        let text = "# Title\n\n## 1. **Environments**\n\n| Stage | Cloud / Region |\n|---|---|\n| Local | Docker |\n\n```yaml\na: 1\n```\n\n- a\n  - nested\n- [ ] task\n\n---\n";
        let outline = Outline::parse(text);
        let headings: Vec<_> = outline
            .headings
            .iter()
            .map(|h| (h.level, h.text.as_str()))
            .collect();
        assert_eq!(headings, [(1, "Title"), (2, "1. Environments")]);
        assert_eq!(outline.tables[0].columns, ["Stage", "Cloud / Region"]);
        assert_eq!(outline.tables[0].rows, 1);
        assert_eq!(outline.code_blocks[0].language.as_deref(), Some("yaml"));
        assert_eq!(
            &text[outline.code_blocks[0].offset..outline.code_blocks[0].end],
            "```yaml\na: 1\n```"
        );
        assert_eq!(outline.top_items.len(), 2);
        assert_eq!(outline.tasks.len(), 1);
        assert_eq!(outline.breaks.len(), 1);
    }
}
