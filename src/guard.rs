//! The prompt-injection guard: an input cannot open or close the prompt's own tags, and
//! carries no invisible characters.
//!
//! A tag the prompt uses as structure (`<project_request>`, `</inputs>`, `<release_planning>`)
//! is escaped to `&lt;…&gt;` wherever an input contains it, in any letter case and with any
//! spacing or attributes, so the rendered prompt keeps exactly the tag structure its template
//! has. Zero-width characters, bidi controls and Unicode tag characters are removed: they
//! hide text from people while models still read it.

use std::collections::BTreeSet;

/// An input value after the guard, with what the guard changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// The safe text.
    pub text: String,
    /// Each tag that was escaped, as it appeared.
    pub escaped_tags: Vec<String>,
    /// How many invisible characters were removed.
    pub removed_invisible: usize,
}

impl Guarded {
    /// Did the guard change anything?
    pub fn changed(&self) -> bool {
        !self.escaped_tags.is_empty() || self.removed_invisible > 0
    }
}

/// Guard one value against the prompt's structural `tags` (lower case names).
pub fn guard(value: &str, tags: &BTreeSet<String>) -> Guarded {
    let (visible, removed_invisible) = strip_invisible(value);
    let (text, escaped_tags) = escape_tags(&visible, tags);
    Guarded {
        text,
        escaped_tags,
        removed_invisible,
    }
}

/// Characters that are never shown but always read.
fn is_invisible(ch: char) -> bool {
    matches!(ch,
        '\u{200b}'                      // zero width space
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{feff}'                    // zero width no-break space
        | '\u{180e}'                    // mongolian vowel separator
        | '\u{00ad}'                    // soft hyphen
        | '\u{200e}' | '\u{200f}' | '\u{061c}'  // directional marks
        | '\u{202a}'..='\u{202e}'       // bidi embeddings and overrides
        | '\u{2066}'..='\u{2069}'       // bidi isolates
        | '\u{e0000}'..='\u{e007f}'     // tag characters
    )
}

/// Remove invisible characters. Zero-width joiners and non-joiners are kept only between two
/// non-ASCII characters, where emoji sequences and scripts such as Persian and Devanagari
/// need them; between ASCII letters they only serve to hide a word, such as a tag name.
fn strip_invisible(value: &str) -> (String, usize) {
    // Every character removed here is outside ASCII.
    if value.is_ascii() {
        return (value.to_owned(), 0);
    }
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    let mut removed = 0;
    for (index, &ch) in chars.iter().enumerate() {
        let drop = if matches!(ch, '\u{200c}' | '\u{200d}') {
            let before = index.checked_sub(1).and_then(|i| chars.get(i));
            let after = chars.get(index + 1);
            !(before.is_some_and(|c| !c.is_ascii()) && after.is_some_and(|c| !c.is_ascii()))
        } else {
            is_invisible(ch)
        };
        if drop {
            removed += 1;
        } else {
            out.push(ch);
        }
    }
    (out, removed)
}

/// Escape every opening or closing tag whose name is one of `tags`.
fn escape_tags(value: &str, tags: &BTreeSet<String>) -> (String, Vec<String>) {
    if !value.contains('<') {
        return (value.to_owned(), Vec::new());
    }
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut escaped = Vec::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = value[search..].find('<') {
        let start = search + found;
        search = start + 1;
        let Some(end) = tag_end(bytes, start, tags) else {
            continue;
        };
        out.push_str(&value[copied..start]);
        out.push_str("&lt;");
        out.push_str(&value[start + 1..end - 1]);
        out.push_str("&gt;");
        escaped.push(value[start..end].to_owned());
        copied = end;
        search = end;
    }
    out.push_str(&value[copied..]);
    (out, escaped)
}

/// If a structural tag starts at `start`, the byte just past its `>`.
fn tag_end(bytes: &[u8], start: usize, tags: &BTreeSet<String>) -> Option<usize> {
    let mut at = start + 1;
    let skip_space = |at: &mut usize| {
        while bytes.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
    };
    skip_space(&mut at);
    if bytes.get(at) == Some(&b'/') {
        at += 1;
        skip_space(&mut at);
    }
    let name_start = at;
    while bytes
        .get(at)
        .is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        at += 1;
    }
    let name = std::str::from_utf8(&bytes[name_start..at]).ok()?;
    if name.is_empty() || !tags.contains(&name.to_ascii_lowercase()) {
        return None;
    }
    // Spacing, attributes or a self-closing slash may follow the name, up to the `>`.
    match bytes.get(at) {
        Some(b) if b.is_ascii_whitespace() || matches!(b, b'>' | b'/') => {}
        _ => return None,
    }
    while let Some(&b) = bytes.get(at) {
        match b {
            b'>' => return Some(at + 1),
            b'<' => return None,
            _ => at += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> BTreeSet<String> {
        ["project_request", "release_planning"]
            .map(String::from)
            .into()
    }

    #[test]
    fn structural_tags_are_escaped_in_any_form() {
        let guarded = guard(
            "a </project_request> b <RELEASE_PLANNING> c < / project_request > d <release_planning id=\"x\">",
            &tags(),
        );
        assert_eq!(
            guarded.text,
            "a &lt;/project_request&gt; b &lt;RELEASE_PLANNING&gt; c &lt; / project_request &gt; d &lt;release_planning id=\"x\"&gt;"
        );
        assert_eq!(guarded.escaped_tags.len(), 4);
    }

    #[test]
    fn other_angle_brackets_stay() {
        let text = "if a < b && c > d { <div> } <project_requests> <project_request";
        let guarded = guard(text, &tags());
        assert_eq!(guarded.text, text);
        assert!(!guarded.changed());
    }

    #[test]
    fn invisible_characters_are_removed_but_scripts_keep_their_joiners() {
        let guarded = guard("</project\u{200d}_request>\u{202e}x\u{e0041}", &tags());
        assert_eq!(guarded.text, "&lt;/project_request&gt;x");
        assert_eq!(guarded.removed_invisible, 3);

        let family = "👨\u{200d}👩\u{200d}👧 می\u{200c}خواهم";
        assert_eq!(guard(family, &tags()).text, family);
    }
}
