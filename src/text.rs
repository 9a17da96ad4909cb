//! Small text helpers shared by the stages: folding for comparison, line numbers, word counts.

/// Fold a heading or column name for comparison: Unicode spaces and dashes become their
/// ASCII forms, runs of white space collapse to one space, and letter case is ignored.
///
/// Seed prompts write "Release\u{202f}&\u{202f}Deployment Plan" and "Infrastructure\u{2011}as\u{2011}Code";
/// models answer with plain spaces and hyphens, and both must compare equal.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for ch in text.chars() {
        if is_space(ch) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if is_dash(ch) {
            out.push('-');
        } else {
            out.extend(ch.to_lowercase());
        }
    }
    out
}

/// Like [`fold`], and also drops every space, so that `Cloud / Region` and `Cloud/Region`
/// compare equal. Used for table columns, where spacing carries no meaning.
pub fn fold_tight(text: &str) -> String {
    fold(text).replace(' ', "")
}

/// White space, including the no-break and narrow spaces that seed prompts use.
pub fn is_space(ch: char) -> bool {
    ch.is_whitespace()
        || matches!(
            ch,
            '\u{00a0}' | '\u{2007}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{180e}'
        )
}

/// Hyphens and dashes of every width, and the minus sign.
pub fn is_dash(ch: char) -> bool {
    matches!(
        ch,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
            | '\u{fe58}'
            | '\u{fe63}'
            | '\u{ff0d}'
    )
}

/// The 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Count words the way word processors do: white-space separated runs, except that each
/// Chinese, Japanese or Korean character counts as a word of its own, since those scripts do
/// not separate words with spaces.
pub fn word_count(text: &str) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for ch in text.chars() {
        if is_space(ch) {
            in_word = false;
        } else if is_cjk(ch) {
            words += 1;
            in_word = false;
        } else if !in_word {
            words += 1;
            in_word = true;
        }
    }
    words
}

/// Han ideographs, kana, Hangul syllables and CJK punctuation-free blocks.
fn is_cjk(ch: char) -> bool {
    matches!(ch,
        '\u{3040}'..='\u{30ff}'   // hiragana, katakana
        | '\u{3400}'..='\u{4dbf}' // CJK extension A
        | '\u{4e00}'..='\u{9fff}' // CJK unified ideographs
        | '\u{f900}'..='\u{faff}' // compatibility ideographs
        | '\u{ac00}'..='\u{d7af}' // Hangul syllables
        | '\u{ff66}'..='\u{ff9f}' // half-width katakana
        | '\u{20000}'..='\u{2ffff}'
    )
}

/// Shorten `text` to at most `max` characters for a message, marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Show a value inside a message: clipped, on one line, with control characters escaped,
/// so a hostile reply cannot forge lines of our report.
pub fn quote(text: &str, max: usize) -> String {
    let mut escaped = String::with_capacity(text.len().min(max * 2));
    // Only what can be shown is escaped: a 50 MB body costs no more than a short one.
    for ch in text.chars().take(max.saturating_add(1)) {
        match ch {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.extend(c.escape_unicode()),
            c => escaped.push(c),
        }
    }
    clip(&escaped, max)
}

/// `text` with every line longer than `max` characters cut and marked, so that a report
/// quoting a file with a huge line (a minified document, a hostile input) stays readable.
pub fn clip_lines(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.lines().all(|line| line.len() <= max) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(64 * 1024));
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let count = body.chars().count();
        if count > max {
            out.extend(body.chars().take(max));
            out.push_str(&format!("… [{} more characters]", count - max));
        } else {
            out.push_str(body);
        }
        out.push_str(end);
    }
    std::borrow::Cow::Owned(out)
}

/// The edit distance between two short strings, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(previous + usize::from(ca != *cb));
            previous = current;
        }
    }
    row[b.len()]
}

/// A number of bytes, for people: `812 B`, `14.2 kB`, `3.1 MB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..=999 => format!("{n} B"),
        1_000..=999_999 => format!("{:.1} kB", n as f64 / 1_000.0),
        _ => format!("{:.1} MB", n as f64 / 1_000_000.0),
    }
}

/// An error and its causes on one line (`cannot write x: No space left on device`): many
/// errors' own message hides the cause.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_lines_are_cut_and_marked_and_short_ones_kept() {
        let text = format!("short\n{}\nend", "x".repeat(1000));
        let clipped = super::clip_lines(&text, 10);
        assert_eq!(clipped, "short\nxxxxxxxxxx… [990 more characters]\nend");
        assert!(matches!(
            super::clip_lines("a\nb", 10),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    use super::*;

    #[test]
    fn fold_treats_unicode_spaces_dashes_and_case_alike() {
        assert_eq!(
            fold("Release\u{202f}&\u{202f}Deployment Plan"),
            fold("release & deployment plan")
        );
        assert_eq!(
            fold("2. Infrastructure\u{2011}as\u{2011}Code"),
            "2. infrastructure-as-code"
        );
        assert_eq!(fold("  a \u{00a0}\t b  "), "a b");
        assert_ne!(fold("Data Stores"), fold("Datastore"));
    }

    #[test]
    fn fold_tight_ignores_spacing_only() {
        assert_eq!(fold_tight("Cloud / Region"), fold_tight("cloud/region"));
        assert_ne!(fold_tight("Cloud / Region"), fold_tight("Region"));
    }

    #[test]
    fn line_of_counts_from_one() {
        let text = "a\nb\nc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 4), 3);
        assert_eq!(line_of(text, 99), 3);
    }

    #[test]
    fn words_are_counted_across_unicode_spaces() {
        assert_eq!(word_count("one two\u{00a0}three\n four "), 4);
        assert_eq!(word_count(""), 0);
        assert_eq!(
            word_count("リリース2.4.0を展開"),
            8,
            "each CJK character is a word"
        );
        assert_eq!(word_count("Déploiement réussi 🚀"), 3);
    }

    #[test]
    fn quote_escapes_and_clips() {
        assert_eq!(quote("a\nb", 10), "a\\nb");
        assert_eq!(quote("say \"hi\"", 20), "say \"hi\"");
        assert_eq!(edit_distance("production", "prod"), 6);
        assert_eq!(edit_distance("canary", "Canary"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(quote("abcdef", 3), "abc…");
    }
}
