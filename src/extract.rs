//! Stage 5, extract: split a reply into its private reasoning and its deliverable.
//!
//! The rules, applied in one pass over the reply:
//! 1. A reasoning block is `<tag>…</tag>` for any of the agent's reasoning tags, in any
//!    letter case, with optional spaces inside the brackets and attributes on the opening tag.
//!    Every block is taken out, in order; nested blocks of the same tag end with their
//!    outermost close.
//! 2. Inside a fenced code block or an inline code span of the deliverable, tags are
//!    content: they are left in place (and the contract's reasoning-leak rule will flag them).
//!    A prose mention of `` `<think>` `` must not swallow the rest of the reply.
//! 3. An opening tag that is never closed takes the rest of the reply; this is reported,
//!    since the deliverable it swallowed is lost.
//! 4. A closing tag with no opening tag ends a block that began at the start of the reply
//!    (or just after the previous block): models whose chat template opens `<think>` for
//!    them emit only the close.
//! 5. Text before and after the blocks is the deliverable, trimmed at both ends; the line
//!    break that follows a block goes with it.
//! 6. Reasoning a server returns in its own field (`reasoning_content`, `reasoning`) comes
//!    first.
//! 7. For a JSON deliverable ([`Syntax::Json`]), a tag inside a JSON string of the
//!    deliverable is content, as in a code fence: `{"note": "strip </think> first"}` is one
//!    object, not reasoning up to the tag. Strings are told apart once an object or array
//!    has opened, so a block before or after the JSON is still taken out.

use serde::Serialize;

/// A reply, split.
#[derive(Debug, Clone, Serialize)]
pub struct Extracted {
    /// What the agent delivers: the reply without its reasoning blocks.
    pub deliverable: String,
    /// The reasoning blocks, in order.
    pub reasoning: Vec<ReasoningBlock>,
    /// Irregularities worth reporting.
    pub issues: Vec<ExtractIssue>,
    /// Where each stretch of the deliverable came from in the reply, to point at reply lines.
    #[serde(skip)]
    pieces: Vec<Piece>,
}

/// One block of reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasoningBlock {
    /// The tag, lower case, or `server` for a server's reasoning field.
    pub tag: String,
    /// The block's text, without its tags.
    pub text: String,
    /// The reply line the block starts on (0 for a server field).
    pub line: usize,
    /// The block had no opening tag: it ran from the start of the reply (or the previous
    /// block) to a stray closing tag.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unopened: bool,
}

/// Something irregular in the reply's reasoning markup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ExtractIssue {
    /// An opening tag never closed.
    Unclosed {
        /// The tag.
        tag: String,
        /// Its reply line.
        line: usize,
    },
    /// A block inside a line of the deliverable, with text on both sides: cutting it out
    /// changed the text around it (a reasoning block inside a JSON string, say).
    Inline {
        /// The tag.
        tag: String,
        /// Its reply line.
        line: usize,
    },
    /// A closing tag with no opening tag.
    UnopenedClose {
        /// The tag.
        tag: String,
        /// Its reply line.
        line: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    deliverable_start: usize,
    reply_start: usize,
}

impl Extracted {
    /// All reasoning text, blocks separated by a blank line.
    pub fn reasoning_text(&self) -> String {
        self.reasoning
            .iter()
            .map(|block| block.text.trim())
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The reply line of a byte offset in the deliverable.
    pub fn reply_line(&self, reply: &str, deliverable_offset: usize) -> usize {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|piece| piece.deliverable_start <= deliverable_offset);
        match piece {
            Some(piece) => crate::text::line_of(
                reply,
                piece.reply_start + (deliverable_offset - piece.deliverable_start),
            ),
            None => crate::text::line_of(&self.deliverable, deliverable_offset),
        }
    }
}

/// What kind of text the deliverable is, which decides where a tag is content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Syntax {
    /// Markdown or plain text: tags in code fences and code spans are content.
    #[default]
    Text,
    /// JSON: tags inside JSON strings are content too.
    Json,
}

/// Split `reply`, taking out blocks of `tags`; `server_reasoning` is a server's own field.
pub fn extract(reply: &str, server_reasoning: Option<&str>, tags: &[String]) -> Extracted {
    extract_with(reply, server_reasoning, tags, Syntax::Text)
}

/// [`extract`] for a deliverable of `syntax`.
pub fn extract_with(
    reply: &str,
    server_reasoning: Option<&str>,
    tags: &[String],
    syntax: Syntax,
) -> Extracted {
    let tags: Vec<String> = tags.iter().map(|tag| tag.to_ascii_lowercase()).collect();
    // No reasoning tag anywhere: the whole reply is the deliverable (most JSON replies).
    if next_tag(reply, &tags).is_none() {
        let start = reply.len() - reply.trim_start().len();
        return Extracted {
            deliverable: reply.trim().to_owned(),
            reasoning: server_reasoning
                .filter(|text| !text.trim().is_empty())
                .map(|text| ReasoningBlock {
                    tag: "server".into(),
                    text: text.to_owned(),
                    line: 0,
                    unopened: false,
                })
                .into_iter()
                .collect(),
            issues: Vec::new(),
            pieces: vec![Piece {
                deliverable_start: 0,
                reply_start: start,
            }],
        };
    }
    let mut splitter = Splitter {
        reply,
        tags: &tags,
        reasoning: Vec::new(),
        issues: Vec::new(),
        raw: String::with_capacity(reply.len()),
        pieces: Vec::new(),
        block: None,
        block_floor: 0,
        skip_newline: false,
        json: (syntax == Syntax::Json).then(JsonState::default),
        json_floor: JsonState::default(),
    };
    if let Some(text) = server_reasoning.filter(|text| !text.trim().is_empty()) {
        splitter.reasoning.push(ReasoningBlock {
            tag: "server".into(),
            text: text.to_owned(),
            line: 0,
            unopened: false,
        });
    }
    splitter.run();
    splitter.finish()
}

struct OpenBlock {
    tag: String,
    depth: usize,
    start: usize,
    content_start: usize,
    /// Non-blank text precedes the opening tag on its line.
    text_before: bool,
}

struct Splitter<'a> {
    reply: &'a str,
    tags: &'a [String],
    reasoning: Vec<ReasoningBlock>,
    issues: Vec<ExtractIssue>,
    /// The deliverable before trimming.
    raw: String,
    pieces: Vec<Piece>,
    block: Option<OpenBlock>,
    /// Where an unopened close would start its block: the reply start or the last block's end.
    block_floor: usize,
    skip_newline: bool,
    /// For a JSON deliverable: where the deliverable kept so far leaves off.
    json: Option<JsonState>,
    /// The JSON state at `block_floor`, restored when an unopened close takes the text since.
    json_floor: JsonState,
}

/// How far into JSON the deliverable's text stands: objects and arrays open, inside a string.
#[derive(Debug, Clone, Copy, Default)]
struct JsonState {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonState {
    fn advance(&mut self, text: &str) {
        for byte in text.bytes() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                // Quotes in prose around the JSON open no string.
                b'"' if self.depth > 0 => self.in_string = true,
                _ => {}
            }
        }
    }
}

impl Splitter<'_> {
    fn run(&mut self) {
        let mut fence: Option<(u8, usize)> = None;
        let mut offset = 0;
        let reply = self.reply;
        for line in reply.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            // A JSON string that runs over lines (raw newlines) holds no fence.
            let in_json_string = self.json.is_some_and(|json| json.in_string);
            if self.block.is_none() && !in_json_string {
                if let Some((marker, length)) = fence {
                    self.keep_fenced(start, line);
                    if closes_fence(line, marker, length) {
                        fence = None;
                    }
                    continue;
                }
                if let Some(opened) = opens_fence(line) {
                    fence = Some(opened);
                    self.keep_fenced(start, line);
                    continue;
                }
            }
            self.scan_line(start, line);
        }
        if let Some(block) = self.block.take() {
            self.issues.push(ExtractIssue::Unclosed {
                tag: block.tag.clone(),
                line: crate::text::line_of(reply, block.start),
            });
            self.reasoning.push(ReasoningBlock {
                text: reply[block.content_start..].to_owned(),
                line: crate::text::line_of(reply, block.start),
                tag: block.tag,
                unopened: false,
            });
        }
    }

    /// Find tags in one line outside fences, moving text to the deliverable or a block.
    fn scan_line(&mut self, start: usize, line: &str) {
        let code_spans = inline_code_spans(line);
        let mut at = 0;
        while at < line.len() {
            let mut from = at;
            // The JSON state at each candidate tag, advanced over the text before it.
            let mut probe = self.json;
            let mut probed_to = at;
            let found = loop {
                let Some((found, tag_len, tag, closing)) = next_tag(&line[from..], self.tags)
                else {
                    break None;
                };
                let tag_start = from + found;
                if self.block.is_none() {
                    let in_string = probe.as_mut().is_some_and(|json| {
                        json.advance(&line[probed_to..tag_start]);
                        probed_to = tag_start;
                        json.in_string
                    });
                    // A JSON string holds no raw line break, so a tag alone on its line is
                    // a tag, whatever an odd quote in reasoning before it made of the state.
                    let alone = line.trim() == &line[tag_start..tag_start + tag_len];
                    if (in_string && !alone) || code_spans.iter().any(|s| s.contains(&tag_start)) {
                        from = tag_start + tag_len;
                        continue;
                    }
                }
                break Some((tag_start, tag_len, tag, closing));
            };
            let Some((tag_start, tag_len, tag, closing)) = found else {
                break;
            };
            let tag_end = tag_start + tag_len;
            match &mut self.block {
                None if !closing => {
                    self.keep(start + at, &line[at..tag_start]);
                    self.block = Some(OpenBlock {
                        tag,
                        depth: 1,
                        start: start + tag_start,
                        content_start: start + tag_end,
                        text_before: !line[..tag_start].trim().is_empty(),
                    });
                }
                None => {
                    // A close with no open: the block began at the floor.
                    self.keep(start + at, &line[at..tag_start]);
                    let floor = self.block_floor;
                    let text = self.take_deliverable_since(floor, start + tag_start);
                    if let Some(json) = &mut self.json {
                        *json = self.json_floor;
                    }
                    self.issues.push(ExtractIssue::UnopenedClose {
                        tag: tag.clone(),
                        line: crate::text::line_of(self.reply, start + tag_start),
                    });
                    self.reasoning.push(ReasoningBlock {
                        tag,
                        text,
                        line: crate::text::line_of(self.reply, floor),
                        unopened: true,
                    });
                    self.end_block(start + tag_end);
                }
                Some(block) if block.tag == tag && !closing => block.depth += 1,
                Some(block) if block.tag == tag => {
                    block.depth -= 1;
                    if block.depth == 0 {
                        let block = self.block.take().expect("an open block");
                        if block.text_before && !line[tag_end..].trim().is_empty() {
                            self.issues.push(ExtractIssue::Inline {
                                tag: block.tag.clone(),
                                line: crate::text::line_of(self.reply, block.start),
                            });
                        }
                        self.reasoning.push(ReasoningBlock {
                            text: self.reply[block.content_start..start + tag_start].to_owned(),
                            line: crate::text::line_of(self.reply, block.start),
                            tag: block.tag,
                            unopened: false,
                        });
                        self.end_block(start + tag_end);
                    }
                }
                Some(_) => {}
            }
            at = tag_end;
        }
        if self.block.is_none() {
            let rest = &line[at..];
            let rest = if self.skip_newline && rest.trim().is_empty() {
                ""
            } else {
                rest
            };
            self.skip_newline = false;
            self.keep(start + at, rest);
        }
    }

    fn end_block(&mut self, end: usize) {
        self.block_floor = end;
        self.skip_newline = true;
        if let Some(json) = self.json {
            self.json_floor = json;
        }
    }

    /// Add reply text at `reply_start` to the deliverable.
    fn keep(&mut self, reply_start: usize, text: &str) {
        if let Some(json) = &mut self.json {
            json.advance(text);
        }
        self.keep_fenced(reply_start, text);
    }

    /// Add a fenced line to the deliverable: content, whatever its braces and quotes.
    fn keep_fenced(&mut self, reply_start: usize, text: &str) {
        if text.is_empty() {
            return;
        }
        self.skip_newline = false;
        // Text that continues the last piece in the reply extends it: one piece per stretch
        // between reasoning blocks, not one per line.
        let continues = self.pieces.last().is_some_and(|last| {
            last.reply_start + (self.raw.len() - last.deliverable_start) == reply_start
        });
        if !continues {
            self.pieces.push(Piece {
                deliverable_start: self.raw.len(),
                reply_start,
            });
        }
        self.raw.push_str(text);
    }

    /// Remove from the deliverable what the reply held between `from` and `to`, returning it.
    fn take_deliverable_since(&mut self, from: usize, to: usize) -> String {
        let cut = self
            .pieces
            .iter()
            .find(|piece| piece.reply_start >= from)
            .map_or(self.raw.len(), |piece| piece.deliverable_start);
        self.pieces.retain(|piece| piece.deliverable_start < cut);
        self.raw.truncate(cut);
        self.reply[from..to].to_owned()
    }

    fn finish(self) -> Extracted {
        let leading = self.raw.len() - self.raw.trim_start().len();
        let deliverable = self.raw.trim().to_owned();
        let pieces = self
            .pieces
            .into_iter()
            .map(|piece| {
                let shift = leading.min(piece.deliverable_start);
                let skipped = leading.saturating_sub(piece.deliverable_start);
                Piece {
                    deliverable_start: piece.deliverable_start - shift,
                    reply_start: piece.reply_start + skipped,
                }
            })
            .collect();
        Extracted {
            deliverable,
            reasoning: self.reasoning,
            issues: self.issues,
            pieces,
        }
    }
}

/// The next reasoning tag in `text`: (offset, length, tag, is closing).
/// The inline code spans of one line: a run of backticks up to the next run of the same
/// length (CommonMark); an unmatched run is literal.
fn inline_code_spans(line: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = line.as_bytes();
    let run_end = |mut at: usize| {
        while bytes.get(at) == Some(&b'`') {
            at += 1;
        }
        at
    };
    let mut spans = Vec::new();
    let mut at = memchr::memchr(b'`', bytes).unwrap_or(bytes.len());
    while at < bytes.len() {
        let open_end = run_end(at);
        let length = open_end - at;
        let mut search = open_end;
        let mut close = None;
        while let Some(next) = memchr::memchr(b'`', &bytes[search..]) {
            let run_start = search + next;
            search = run_end(run_start);
            if search - run_start == length {
                close = Some(search);
                break;
            }
        }
        let next_from = match close {
            Some(end) => {
                spans.push(at..end);
                end
            }
            None => open_end,
        };
        at = memchr::memchr(b'`', &bytes[next_from..]).map_or(bytes.len(), |i| next_from + i);
    }
    spans
}

fn next_tag(text: &str, tags: &[String]) -> Option<(usize, usize, String, bool)> {
    let bytes = text.as_bytes();
    let mut search = 0;
    while let Some(found) = text[search..].find('<') {
        let start = search + found;
        search = start + 1;
        let mut at = start + 1;
        let skip_space = |at: &mut usize| {
            while bytes.get(*at).is_some_and(|b| *b == b' ' || *b == b'\t') {
                *at += 1;
            }
        };
        skip_space(&mut at);
        let closing = bytes.get(at) == Some(&b'/');
        if closing {
            at += 1;
            skip_space(&mut at);
        }
        let name_start = at;
        while bytes
            .get(at)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            at += 1;
        }
        let name = text[name_start..at].to_ascii_lowercase();
        if !tags.contains(&name) {
            continue;
        }
        // Attributes are allowed on an opening tag only.
        let end = if closing {
            skip_space(&mut at);
            (bytes.get(at) == Some(&b'>')).then_some(at + 1)
        } else {
            match bytes.get(at) {
                Some(b'>') => Some(at + 1),
                Some(b' ' | b'\t') => text[at..].find('>').map(|i| at + i + 1),
                _ => None,
            }
        };
        if let Some(end) = end {
            return Some((start, end - start, name, closing));
        }
    }
    None
}

/// A line that opens a fenced code block: up to three spaces, then three or more backticks
/// or tildes. Returns the marker and its length.
fn opens_fence(line: &str) -> Option<(u8, usize)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let marker = *trimmed.as_bytes().first()?;
    if marker != b'`' && marker != b'~' {
        return None;
    }
    let length = trimmed.bytes().take_while(|&b| b == marker).count();
    if length < 3 {
        return None;
    }
    // A backtick fence's info string may not contain backticks (that is inline code).
    if marker == b'`' && trimmed[length..].contains('`') {
        return None;
    }
    Some((marker, length))
}

fn closes_fence(line: &str, marker: u8, length: usize) -> bool {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return false;
    }
    let run = trimmed.bytes().take_while(|&b| b == marker).count();
    run >= length && trimmed[run..].trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> Vec<String> {
        vec!["release_planning".into(), "think".into()]
    }

    fn split(reply: &str) -> Extracted {
        extract(reply, None, &tags())
    }

    #[test]
    fn a_block_before_the_deliverable_is_taken_out() {
        let out = split("<release_planning>\nnotes\n</release_planning>\n# Plan\nbody\n");
        assert_eq!(out.deliverable, "# Plan\nbody");
        assert_eq!(out.reasoning.len(), 1);
        assert_eq!(out.reasoning[0].text, "\nnotes\n");
        assert!(out.issues.is_empty());
    }

    #[test]
    fn several_blocks_are_all_taken_in_order() {
        let out = split("<think>a</think>\n# Plan\n<release_planning>b</release_planning>\ntail\n");
        assert_eq!(out.deliverable, "# Plan\ntail");
        let texts: Vec<_> = out.reasoning.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["a", "b"]);
        assert_eq!(out.reasoning_text(), "a\n\nb");
    }

    #[test]
    fn text_before_and_after_stays_in_the_deliverable() {
        let out = split("Sure, here it is. <release_planning>x</release_planning> # Plan\nend");
        assert_eq!(out.deliverable, "Sure, here it is.  # Plan\nend");
        assert_eq!(
            out.issues,
            [ExtractIssue::Inline {
                tag: "release_planning".into(),
                line: 1
            }]
        );
        let out = split("Sure:\n<think>x</think>\n# Plan");
        assert!(
            out.issues.is_empty(),
            "a block on lines of its own is not inline"
        );
    }

    #[test]
    fn letter_case_and_spacing_do_not_hide_a_tag() {
        let out = split("<Release_Planning >x</ RELEASE_PLANNING>\n# Plan");
        assert_eq!(out.deliverable, "# Plan");
        assert_eq!(out.reasoning[0].tag, "release_planning");
    }

    #[test]
    fn a_tag_inside_a_code_fence_of_the_deliverable_is_content() {
        let reply = "<release_planning>r</release_planning>\n# Plan\n```xml\n<release_planning>quoted</release_planning>\n```\n";
        let out = split(reply);
        assert_eq!(out.reasoning.len(), 1);
        assert!(
            out.deliverable
                .contains("<release_planning>quoted</release_planning>")
        );
    }

    #[test]
    fn a_tag_inside_inline_code_of_the_deliverable_is_content() {
        let reply = "<release_planning>r</release_planning>\n# Plan\nNotes were kept in `<release_planning>`, and ``a `</think>` b`` too.\n## 2. Next\nend\n";
        let out = split(reply);
        assert_eq!(out.reasoning.len(), 1);
        assert!(out.issues.is_empty(), "{:?}", out.issues);
        assert!(
            out.deliverable
                .contains("kept in `<release_planning>`, and")
        );
        assert!(out.deliverable.ends_with("## 2. Next\nend"));
        // An unmatched backtick opens no span: the tag after it is a tag.
        let out = split("# Plan ` <think>x</think>\nend");
        assert_eq!(out.reasoning.len(), 1);
        assert_eq!(
            inline_code_spans("a `b` c ``d`e`` f ` g"),
            [2..5, 8..15],
            "spans run to a run of the same length"
        );
    }

    #[test]
    fn a_fence_inside_a_block_does_not_hide_its_close() {
        let out = split("<release_planning>\n```yaml\na: 1\n</release_planning>\n# Plan");
        assert_eq!(out.deliverable, "# Plan");
        assert!(out.issues.is_empty());
    }

    #[test]
    fn an_unclosed_block_takes_the_rest_and_is_reported() {
        let out = split("intro\n<release_planning>\nnotes\n# Plan\n");
        assert_eq!(out.deliverable, "intro");
        assert_eq!(out.reasoning[0].text, "\nnotes\n# Plan\n");
        assert_eq!(
            out.issues,
            [ExtractIssue::Unclosed {
                tag: "release_planning".into(),
                line: 2
            }]
        );
    }

    #[test]
    fn a_close_without_an_open_ends_a_block_from_the_start() {
        let out = split("thinking about it\nstill\n</think>\n# Plan");
        assert_eq!(out.deliverable, "# Plan");
        assert_eq!(out.reasoning[0].text, "thinking about it\nstill\n");
        assert_eq!(
            out.issues,
            [ExtractIssue::UnopenedClose {
                tag: "think".into(),
                line: 3
            }]
        );
    }

    #[test]
    fn nested_blocks_of_one_tag_end_at_the_outer_close() {
        let out = split("<think>a<think>b</think>c</think>\n# Plan");
        assert_eq!(out.deliverable, "# Plan");
        assert_eq!(out.reasoning[0].text, "a<think>b</think>c");
    }

    #[test]
    fn other_tags_and_similar_names_are_left_alone() {
        let out = split("<release_planning_notes>x</release_planning_notes> <b>y</b>");
        assert_eq!(
            out.deliverable,
            "<release_planning_notes>x</release_planning_notes> <b>y</b>"
        );
        assert!(out.reasoning.is_empty());
    }

    #[test]
    fn a_server_reasoning_field_comes_first() {
        let out = extract(
            "<think>inline</think>\n{}",
            Some("from the server"),
            &tags(),
        );
        let texts: Vec<_> = out
            .reasoning
            .iter()
            .map(|b| (b.tag.as_str(), b.text.as_str()))
            .collect();
        assert_eq!(texts, [("server", "from the server"), ("think", "inline")]);
        assert_eq!(out.deliverable, "{}");
    }

    #[test]
    fn issue_12_a_reasoning_tag_inside_a_json_string_is_content() {
        let json = |reply: &str| extract_with(reply, None, &tags(), Syntax::Json);
        // A lone close inside a string value ended a block "from the start": the whole
        // object before it went to the reasoning.
        let reply = "{\"summary\": \"the model writes </think> before answering\",\n \"steps\": [\"a\", \"b\"]}";
        let out = json(reply);
        assert!(out.reasoning.is_empty(), "{:?}", out.reasoning);
        assert!(out.issues.is_empty(), "{:?}", out.issues);
        assert_eq!(out.deliverable, reply);
        // An opening tag in a string, escaped quotes before it, on a later line.
        let reply = "{\n  \"a\": \"say \\\"hi\\\" <think> then\",\n  \"b\": \"</think>\"\n}";
        let out = json(reply);
        assert!(out.reasoning.is_empty(), "{:?}", out.reasoning);
        assert_eq!(out.deliverable, reply);
        // Blocks around the JSON, and before it with quotes in them, are still reasoning.
        let out =
            json("<think>I \"think\" {so</think>\n{\"a\": \"<think>\"}\n<think>after</think>");
        let texts: Vec<_> = out.reasoning.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["I \"think\" {so", "after"]);
        assert_eq!(out.deliverable, "{\"a\": \"<think>\"}");
        // A template that opens `<think>` for the model: only the close, then the JSON.
        let out = json("plan \"x\" [1\n</think>\n{\"a\": \"b</think>c\"}");
        assert_eq!(out.reasoning.len(), 1);
        assert_eq!(out.reasoning[0].text, "plan \"x\" [1\n");
        assert_eq!(out.deliverable, "{\"a\": \"b</think>c\"}");
        // Reasoning with an odd quote inside a brace still ends at a close on its own line.
        let out = json("draft {\"status\": \"ok\n</think>\n{\"a\": 1}");
        assert_eq!(out.reasoning.len(), 1);
        assert_eq!(out.deliverable, "{\"a\": 1}");
        // Text deliverables are split as before.
        let out = split("{\"summary\": \"x </think> y\"}");
        assert_eq!(out.reasoning.len(), 1);
    }

    #[test]
    fn deliverable_offsets_map_back_to_reply_lines() {
        let reply = "<release_planning>\na\nb\n</release_planning>\n\n# Plan\n## One\n";
        let out = split(reply);
        let at = out.deliverable.find("## One").expect("heading");
        assert_eq!(out.reply_line(reply, at), 7);
        assert_eq!(out.reply_line(reply, 0), 6);
    }
}
