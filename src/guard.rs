//! The prompt-injection guard: an input cannot open or close the prompt's own tags, and
//! carries no invisible characters.
//!
//! A tag the prompt uses as structure (`<project_request>`, `</inputs>`, `<release_planning>`)
//! is escaped to `&lt;…&gt;` wherever an input contains it, however it is written: in any
//! letter case; with any Unicode space, control or invisible character as its spacing; with
//! the full-width or another compatibility form of a bracket, the slash or a letter
//! (`＜／ｐｒｏｊｅｃｔ＿ｒｅｑｕｅｓｔ＞`, `﹤think﹥`, mathematical letters); with a bracket or
//! letter that only looks alike (`‹think›`, `〈think〉`, Cyrillic `р` for `p`). The tag is matched
//! on a normalised reading of the text, while the text itself is kept as written, so a
//! full-width character outside a tag is never touched. The rendered prompt keeps exactly the
//! tag structure its template has.
//!
//! Invisible characters are removed: they hide text from people while models still read it.
//! These are the default-ignorable code points and the format characters (Unicode category
//! Cf) that show nothing: zero-width spaces, bidi controls, tag characters, variation
//! selectors, the grapheme joiner, Mongolian selectors, Hangul fillers, interlinear
//! annotation marks. Scripts that need one keep it: a zero-width joiner or non-joiner between
//! two letters or symbols of a script or emoji (Persian, Devanagari, emoji sequences), one
//! variation selector after a non-ASCII character (emoji presentation, ideographic variants)
//! or in a keycap (`1️⃣`), a Hangul filler inside a run of conjoining jamo. A run of selectors
//! after one character smuggles data, so only the first stays.

use std::collections::BTreeSet;

use unicode_general_category::{GeneralCategory, get_general_category};

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

/// An invisible character, by what may keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invisible {
    /// Never needed in text a prompt carries.
    Always,
    /// A joiner (ZWJ, ZWNJ, the grapheme joiner): kept between two characters of a script
    /// or emoji.
    Joiner,
    /// A variation selector: one kept after a non-ASCII character, or in a keycap.
    Selector,
    /// A Hangul choseong or jungseong filler: kept next to a conjoining jamo.
    JamoFiller,
}

/// Is `ch` invisible, and what may keep it?
fn invisible(ch: char) -> Option<Invisible> {
    if ch.is_ascii() {
        return None;
    }
    Some(match ch {
        '\u{200c}' | '\u{200d}' | '\u{034f}' => Invisible::Joiner,
        '\u{fe00}'..='\u{fe0f}'
        | '\u{e0100}'..='\u{e01ef}'
        | '\u{180b}'..='\u{180d}'
        | '\u{180f}' => Invisible::Selector,
        '\u{115f}' | '\u{1160}' => Invisible::JamoFiller,
        // The default-ignorable code points that show nothing: soft hyphen, Arabic letter
        // mark, Khmer inherent vowels, Mongolian vowel separator, zero-width space,
        // directional marks, bidi embeddings, overrides and isolates, word joiner and
        // invisible operators, Hangul fillers, BOM, interlinear annotation, shorthand and
        // musical format controls, tag characters.
        '\u{00ad}'
        | '\u{061c}'
        | '\u{17b4}'
        | '\u{17b5}'
        | '\u{180e}'
        | '\u{200b}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{3164}'
        | '\u{feff}'
        | '\u{ffa0}'
        | '\u{fff0}'..='\u{fffb}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}' => Invisible::Always,
        // Format characters that are seen: Arabic and Syriac signs spanning numbers, Kaithi
        // number signs, Egyptian hieroglyph layout controls.
        '\u{0600}'..='\u{0605}'
        | '\u{06dd}'
        | '\u{070f}'
        | '\u{0890}'
        | '\u{0891}'
        | '\u{08e2}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1345f}' => return None,
        // Every other format character is listed above (a test checks it against Unicode's
        // tables), so no lookup is needed for the rest of the text.
        _ => return None,
    })
}

/// Can a joiner stand beside `ch`? Letters, marks, digits and symbols of a script or emoji,
/// never ASCII (a joiner inside an ASCII word only hides it) nor punctuation or spacing.
fn joinable(ch: char) -> bool {
    use GeneralCategory as C;
    !ch.is_ascii()
        && matches!(
            get_general_category(ch),
            C::UppercaseLetter
                | C::LowercaseLetter
                | C::TitlecaseLetter
                | C::ModifierLetter
                | C::OtherLetter
                | C::NonspacingMark
                | C::SpacingMark
                | C::EnclosingMark
                | C::DecimalNumber
                | C::LetterNumber
                | C::OtherNumber
                | C::OtherSymbol
                | C::ModifierSymbol
        )
}

/// Is `ch` a conjoining Hangul jamo (not a filler)?
fn is_jamo(ch: char) -> bool {
    matches!(ch, '\u{1100}'..='\u{11ff}' | '\u{a960}'..='\u{a97f}' | '\u{d7b0}'..='\u{d7ff}')
        && !matches!(ch, '\u{115f}' | '\u{1160}')
}

/// Remove invisible characters, keeping the ones a script needs where it needs them.
fn strip_invisible(value: &str) -> (String, usize) {
    let is_invisible = |ch: char| invisible(ch).is_some();
    // Most values hold none: they are copied whole.
    let Some((first, _)) = find_char(value, 0, None, is_invisible) else {
        return (value.to_owned(), 0);
    };
    let mut out = String::with_capacity(value.len());
    let mut removed = 0;
    let mut copied = 0;
    let mut next = Some(first);
    while let Some(at) = next {
        out.push_str(&value[copied..at]);
        let mut rest = value[at..].chars();
        let Some(ch) = rest.next() else {
            break;
        };
        let following = rest.next();
        let keep = match invisible(ch) {
            None => true,
            Some(Invisible::Always) => false,
            Some(Invisible::Joiner) => {
                out.chars().next_back().is_some_and(joinable) && following.is_some_and(joinable)
            }
            Some(Invisible::Selector) => match out.chars().next_back() {
                // One selector per base: a base already followed by one is no base.
                Some(base) if !base.is_ascii() => invisible(base).is_none(),
                Some('0'..='9' | '#' | '*') => following == Some('\u{20e3}'),
                _ => false,
            },
            Some(Invisible::JamoFiller) => {
                out.chars().next_back().is_some_and(is_jamo) || following.is_some_and(is_jamo)
            }
        };
        if keep {
            out.push(ch);
        } else {
            removed += 1;
        }
        copied = at + ch.len_utf8();
        next = find_char(value, copied, None, is_invisible).map(|(index, _)| index);
    }
    out.push_str(&value[copied..]);
    (out, removed)
}

/// How many bytes [`find_char`] checks for ASCII at once.
const ASCII_RUN: usize = 64;

/// The first character at or after byte `from` (a character boundary) that is the ASCII
/// byte `ascii` or a non-ASCII character `wanted` accepts. Runs of ASCII are skipped a block
/// at a time, so the guard costs prose little more than a copy.
fn find_char(
    value: &str,
    from: usize,
    ascii: Option<u8>,
    wanted: impl Fn(char) -> bool,
) -> Option<(usize, char)> {
    let bytes = value.as_bytes();
    let mut at = from;
    'blocks: while at < bytes.len() {
        let end = (at + ASCII_RUN).min(bytes.len());
        let block = &bytes[at..end];
        if block.is_ascii() {
            if let Some(found) = ascii.and_then(|byte| memchr::memchr(byte, block)) {
                return Some((at + found, char::from(block[found])));
            }
            // The block ends on a character boundary: every byte in it is a whole character.
            at = end;
            continue;
        }
        for (offset, ch) in value.get(at..)?.char_indices() {
            let index = at + offset;
            if index >= end {
                at = index;
                continue 'blocks;
            }
            let hit = if ch.is_ascii() {
                ascii.is_some_and(|byte| u32::from(byte) == u32::from(ch))
            } else {
                wanted(ch)
            };
            if hit {
                return Some((index, ch));
            }
        }
        return None;
    }
    None
}

/// The characters read as `<`: the ASCII one, its full-width and small forms, and brackets
/// that look like it.
fn opens(ch: char) -> bool {
    matches!(
        ch,
        '<' | '\u{ff1c}' // full-width
            | '\u{fe64}' // small
            | '\u{2039}' // single left-pointing angle quotation mark
            | '\u{2329}' | '\u{3008}' | '\u{27e8}' // angle brackets
            | '\u{02c2}' // modifier letter left arrowhead
            | '\u{1438}' // Canadian syllabics pa
            | '\u{276e}' | '\u{2770}' | '\u{29fc}' // ornaments and curved angle bracket
    )
}

/// The characters read as `>`.
fn closes(ch: char) -> bool {
    matches!(
        ch,
        '>' | '\u{ff1e}'
            | '\u{fe65}'
            | '\u{203a}'
            | '\u{232a}'
            | '\u{3009}'
            | '\u{27e9}'
            | '\u{02c3}'
            | '\u{1433}'
            | '\u{276f}'
            | '\u{2771}'
            | '\u{29fd}'
    )
}

/// The characters read as `/`.
fn is_slash(ch: char) -> bool {
    matches!(
        ch,
        '/' | '\u{ff0f}' // full-width
            | '\u{2044}' // fraction slash
            | '\u{2215}' // division slash
            | '\u{29f8}' // big solidus
            | '\u{2571}' // box drawing diagonal
    )
}

/// Spacing inside a tag: any Unicode space or line break, control characters, the Braille
/// blank, and invisible characters a script kept.
fn is_spacing(ch: char) -> bool {
    ch.is_whitespace() || ch.is_control() || ch == '\u{2800}' || invisible(ch).is_some()
}

/// Letters that look like Latin ones in a tag name: Cyrillic and Greek.
fn lookalike(ch: char) -> Option<char> {
    Some(match ch {
        'а' | 'α' => 'a',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        _ => return None,
    })
}

/// The longest tag name the guard reads; no prompt's tag comes near.
const NAME_LIMIT: usize = 64;

/// A tag name read as ASCII, lower case.
struct Name {
    bytes: [u8; NAME_LIMIT],
    len: usize,
}

impl Name {
    /// Append what `ch` stands for; `false` if it is no character of a tag name (or the name
    /// is too long to be a tag).
    fn push(&mut self, ch: char) -> bool {
        if ch.is_ascii() {
            return self.push_ascii(ch);
        }
        if let Some(latin) = lookalike(ch) {
            return self.push_ascii(latin);
        }
        // Compatibility forms (full-width, mathematical, circled, ligatures) decompose to
        // the letters they stand for; a character that decomposes to anything else (a letter
        // with an accent) ends the name, leaving it as it was.
        let before = self.len;
        for part in icu_normalizer::DecomposingNormalizerBorrowed::new_nfkd()
            .normalize_iter(std::iter::once(ch))
        {
            if !part.is_ascii() || !self.push_ascii(part) {
                self.len = before;
                return false;
            }
        }
        self.len > before
    }

    fn push_ascii(&mut self, ch: char) -> bool {
        let Ok(byte) = u8::try_from(ch) else {
            return false;
        };
        if !(byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
            || self.len == NAME_LIMIT
        {
            return false;
        }
        self.bytes[self.len] = byte.to_ascii_lowercase();
        self.len += 1;
        true
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// Escape every opening or closing tag whose name is one of `tags`.
fn escape_tags(value: &str, tags: &BTreeSet<String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut escaped = Vec::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(start) = next_opening(value, search) {
        let open_end = start + value[start..].chars().next().map_or(1, char::len_utf8);
        search = open_end;
        let Some((close_start, end)) = tag_at(value, open_end, tags) else {
            continue;
        };
        out.push_str(&value[copied..start]);
        out.push_str("&lt;");
        out.push_str(&value[open_end..close_start]);
        out.push_str("&gt;");
        escaped.push(value[start..end].to_owned());
        copied = end;
        search = end;
    }
    if escaped.is_empty() {
        return (value.to_owned(), escaped);
    }
    out.push_str(&value[copied..]);
    (out, escaped)
}

/// Where the next character read as `<` starts, at or after byte `from`.
fn next_opening(value: &str, from: usize) -> Option<usize> {
    find_char(value, from, Some(b'<'), opens).map(|(index, _)| index)
}

/// If a structural tag's name follows its opening bracket (ending at byte `at`), where its
/// closing bracket starts and ends.
fn tag_at(value: &str, at: usize, tags: &BTreeSet<String>) -> Option<(usize, usize)> {
    let mut chars = value[at..]
        .char_indices()
        .map(|(i, c)| (at + i, c))
        .peekable();
    let skip_spacing = |chars: &mut std::iter::Peekable<_>| {
        while chars
            .next_if(|&(_, c): &(usize, char)| is_spacing(c))
            .is_some()
        {}
    };
    skip_spacing(&mut chars);
    if chars.next_if(|&(_, c)| is_slash(c)).is_some() {
        skip_spacing(&mut chars);
    }
    let mut name = Name {
        bytes: [0; NAME_LIMIT],
        len: 0,
    };
    while let Some(&(_, ch)) = chars.peek() {
        // An invisible character a script kept cannot split a name.
        if invisible(ch).is_none() && !name.push(ch) {
            break;
        }
        chars.next();
    }
    if name.len == 0 || !tags.contains(name.as_str()) {
        return None;
    }
    // Spacing, attributes or a self-closing slash may follow the name, up to the `>`.
    let &(_, next) = chars.peek()?;
    if !(is_spacing(next) || closes(next) || is_slash(next)) {
        return None;
    }
    for (index, ch) in chars {
        if closes(ch) {
            return Some((index, index + ch.len_utf8()));
        }
        if opens(ch) {
            return None;
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
    fn invisible_characters_are_counted_and_the_escaped_tags_kept_as_written() {
        let guarded = guard(
            "</project\u{200d}_request>\u{202e}x\u{e0041} ＜\u{3000}／ｐｒｏｊｅｃｔ＿ｒｅｑｕｅｓｔ＞",
            &tags(),
        );
        assert_eq!(
            guarded.text,
            "&lt;/project_request&gt;x &lt;\u{3000}／ｐｒｏｊｅｃｔ＿ｒｅｑｕｅｓｔ&gt;"
        );
        assert_eq!(guarded.removed_invisible, 3);
        assert_eq!(
            guarded.escaped_tags,
            [
                "</project_request>",
                "＜\u{3000}／ｐｒｏｊｅｃｔ＿ｒｅｑｕｅｓｔ＞"
            ]
        );
    }

    #[test]
    fn characters_are_found_across_ascii_blocks() {
        // A character straddling a block boundary, and finds far past it.
        let padding = "a".repeat(ASCII_RUN - 1);
        let value = format!("{padding}é{padding}{padding}\u{200b}x<project_request>");
        let guarded = guard(&value, &tags());
        assert_eq!(
            guarded.text,
            format!("{padding}é{padding}{padding}x&lt;project_request&gt;")
        );
        assert_eq!(guarded.removed_invisible, 1);
        for at in [0, 1, ASCII_RUN - 1, ASCII_RUN, ASCII_RUN + 1] {
            let value = format!("{}＜project_request＞ {}", "b".repeat(at), "c".repeat(200));
            assert_eq!(
                guard(&value, &tags()).text,
                format!(
                    "{}&lt;project_request&gt; {}",
                    "b".repeat(at),
                    "c".repeat(200)
                )
            );
        }
        assert_eq!(find_char("ab", 2, Some(b'<'), opens), None);
    }

    #[test]
    fn every_format_character_is_classified() {
        let visible = |ch: char| {
            matches!(ch,
                '\u{0600}'..='\u{0605}' | '\u{06dd}' | '\u{070f}' | '\u{0890}' | '\u{0891}'
                | '\u{08e2}' | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1345f}')
        };
        let unclassified: Vec<String> = ('\u{80}'..=char::MAX)
            .filter(|&ch| get_general_category(ch) == GeneralCategory::Format)
            .filter(|&ch| invisible(ch).is_none() && !visible(ch))
            .map(|ch| format!("U+{:04X}", u32::from(ch)))
            .collect();
        assert!(unclassified.is_empty(), "{unclassified:?}");
    }

    #[test]
    fn a_name_longer_than_any_tag_is_no_tag() {
        let long = format!("<{}>", "a".repeat(NAME_LIMIT + 10));
        let tags: BTreeSet<String> = [long[1..long.len() - 1].to_owned()].into();
        assert_eq!(guard(&long, &tags).text, long);
    }
}
