//! JSON as prompts write it to describe an answer: `"status": "pass|fail|warning"`,
//! `"signed": boolean`, `"order": number`, comments, `...` and trailing commas. Read leniently
//! into a small tree, then drafted into a JSON Schema ([`schema`]).

use serde_json::{Map, Value, json};

/// A value of a pseudo-JSON example.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `{ "key": value, … }`, keys in order.
    Object(Vec<(String, Node)>),
    /// `[ value, … ]`.
    Array(Vec<Node>),
    /// A quoted string: an example value or a type description.
    Text(String),
    /// An unquoted word or number: `boolean`, `number`, `42`, `true`.
    Bare(String),
}

/// Read the pseudo-JSON value that starts at `text`'s first `{` or `[`; the byte length read.
pub(crate) fn parse(text: &str) -> Option<(Node, usize)> {
    let start = text.find(['{', '['])?;
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        at: start,
    };
    let node = reader.value(0)?;
    Some((node, reader.at))
}

struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn skip(&mut self) {
        loop {
            while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
                self.at += 1;
            }
            let rest = &self.text[self.at..];
            if rest.starts_with("//") || rest.starts_with('#') {
                self.at += rest.find('\n').unwrap_or(rest.len());
            } else if rest.starts_with("/*") {
                self.at += rest.find("*/").map_or(rest.len(), |i| i + 2);
            } else {
                return;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<Node> {
        if depth > 64 {
            return None;
        }
        self.skip();
        match *self.bytes.get(self.at)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => self.string().map(Node::Text),
            _ => {
                let word = self.bare();
                (!word.is_empty()).then_some(Node::Bare(word))
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Node> {
        self.at += 1;
        let mut fields = Vec::new();
        loop {
            self.skip();
            match *self.bytes.get(self.at)? {
                b'}' => {
                    self.at += 1;
                    return Some(Node::Object(fields));
                }
                b',' => self.at += 1,
                b'"' => {
                    let key = self.string()?;
                    self.skip();
                    if self.bytes.get(self.at) != Some(&b':') {
                        return None;
                    }
                    self.at += 1;
                    let value = self.value(depth + 1)?;
                    fields.push((key, value));
                }
                b'.' => {
                    // `...`: more of the same.
                    while self.bytes.get(self.at) == Some(&b'.') {
                        self.at += 1;
                    }
                }
                _ => {
                    // An unquoted key (`status: "…"`), as some prompts write.
                    let key = self.bare_key();
                    if key.is_empty() {
                        return None;
                    }
                    self.skip();
                    if self.bytes.get(self.at) != Some(&b':') {
                        return None;
                    }
                    self.at += 1;
                    let value = self.value(depth + 1)?;
                    fields.push((key, value));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Node> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip();
            match *self.bytes.get(self.at)? {
                b']' => {
                    self.at += 1;
                    return Some(Node::Array(items));
                }
                b',' => self.at += 1,
                b'.' if self.text[self.at..].starts_with("...") => {
                    while self.bytes.get(self.at) == Some(&b'.') {
                        self.at += 1;
                    }
                }
                _ => items.push(self.value(depth + 1)?),
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.at += 1;
        let mut escaped = false;
        while let Some(&byte) = self.bytes.get(self.at) {
            self.at += 1;
            match byte {
                b'\\' if !escaped => escaped = true,
                b'"' if !escaped => {
                    let raw = &self.text[start..self.at];
                    return serde_json::from_str(raw)
                        .ok()
                        .or_else(|| Some(raw[1..raw.len() - 1].to_owned()));
                }
                b'\n' => return None,
                _ => escaped = false,
            }
        }
        None
    }

    fn bare(&mut self) -> String {
        let start = self.at;
        while let Some(&byte) = self.bytes.get(self.at) {
            if matches!(byte, b',' | b'}' | b']' | b'\n') {
                break;
            }
            self.at += 1;
        }
        self.text[start..self.at].trim().to_owned()
    }

    fn bare_key(&mut self) -> String {
        let start = self.at;
        while self
            .bytes
            .get(self.at)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.at += 1;
        }
        self.text[start..self.at].to_owned()
    }
}

/// What a drafted schema needs besides itself: words limits, and where they apply.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// `(pointer, max words)` from `"string <= 200 words"`.
    pub(crate) max_words: Vec<(String, u64)>,
    /// `(pointer, value)`: a key whose value is fixed (`"error": "insufficient_context"`).
    pub(crate) constants: Vec<(String, String)>,
}

/// The JSON Schema a pseudo-JSON example describes: every key required, no other keys, each
/// value's type read from how it is written.
pub(crate) fn schema(node: &Node, pointer: &str, extras: &mut Extras) -> Value {
    match node {
        Node::Object(fields) => {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (key, value) in fields {
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                properties.insert(key.clone(), nullable(schema(value, &child, extras)));
                required.push(json!(key));
            }
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": properties,
            })
        }
        Node::Array(items) => {
            // Within an array, a pointer would need an index: no word limits there.
            let mut ignored = Extras::default();
            let mut drafted = items.iter().map(|item| schema(item, "", &mut ignored));
            let Some(first) = drafted.next() else {
                return json!({ "type": "array" });
            };
            // Items that read differently (`["https://owasp.org/…", "CWE-89"]`) share only
            // their type: a format or an enum one item suggests would refuse the others.
            let items = if drafted.all(|other| other == first) {
                first
            } else {
                match first.get("type") {
                    Some(kind) => json!({ "type": kind }),
                    None => json!({}),
                }
            };
            json!({ "type": "array", "items": items })
        }
        Node::Bare(word) => bare_schema(word),
        Node::Text(text) => text_schema(text, pointer, extras),
    }
}

/// A value the prompt describes may be null where it does not apply (a rollback that never
/// started has no `started_at`); its type still holds when it is given. Objects, lists and
/// fixed values keep their shape.
fn nullable(schema: Value) -> Value {
    let Value::Object(mut map) = schema else {
        return schema;
    };
    if map.contains_key("const") {
        return Value::Object(map);
    }
    match map.get("type").cloned() {
        Some(Value::String(kind)) if kind != "object" && kind != "array" && kind != "null" => {
            map.insert("type".into(), json!([kind, "null"]));
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.push(Value::Null);
            }
            Value::Object(map)
        }
        _ => Value::Object(map),
    }
}

fn bare_schema(word: &str) -> Value {
    let lower = word.to_ascii_lowercase();
    let head = lower.split([' ', '(']).next().unwrap_or_default();
    match head {
        "boolean" | "bool" | "true" | "false" => json!({ "type": "boolean" }),
        "integer" | "int" => with_range(json!({ "type": "integer" }), word),
        "number" | "float" => with_range(json!({ "type": "number" }), word),
        "string" => json!({ "type": "string" }),
        "null" => json!({ "type": "null" }),
        _ if word.parse::<i64>().is_ok() => json!({ "type": "integer" }),
        _ if word.parse::<f64>().is_ok() => json!({ "type": "number" }),
        _ => json!({}),
    }
}

/// `number (0-100)`, `integer 1-5`: bounds written beside the type.
fn with_range(mut schema: Value, text: &str) -> Value {
    let digits: Vec<f64> = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|part| part.parse().ok())
        .collect();
    if let [min, max] = digits[..]
        && min <= max
        && let Value::Object(map) = &mut schema
    {
        map.insert("minimum".into(), json!(min));
        map.insert("maximum".into(), json!(max));
    }
    schema
}

/// The words a type description is made of, for matching.
fn words(text: &str) -> Vec<String> {
    text.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn text_schema(text: &str, pointer: &str, extras: &mut Extras) -> Value {
    let trimmed = text.trim();
    // `"pass|fail|warning"`, `"APPROVE | REQUEST_CHANGES | COMMENT"`: the choices.
    if trimmed.contains('|') {
        let choices: Vec<&str> = trimmed.split('|').map(str::trim).collect();
        let simple = choices
            .iter()
            .all(|c| !c.is_empty() && c.len() <= 40 && !c.contains(' ') || is_label(c));
        if simple {
            return json!({ "type": "string", "enum": choices });
        }
    }
    let lower = trimmed.to_ascii_lowercase();
    let words = words(trimmed);
    let has = |w: &str| words.iter().any(|x| x == w);
    if has("timestamp")
        || lower.contains("iso 8601")
        || lower.contains("iso-8601")
        || lower.contains("date-time")
        || lower.contains("datetime")
        || looks_like_timestamp(trimmed)
    {
        return json!({ "type": "string", "format": "date-time" });
    }
    if has("url") || has("uri") || lower.starts_with("http://") || lower.starts_with("https://") {
        return json!({ "type": "string", "format": "uri" });
    }
    if has("email") {
        return json!({ "type": "string", "format": "email" });
    }
    if lower == "yyyy-mm-dd" || (has("date") && words.len() <= 3) {
        return json!({ "type": "string", "format": "date" });
    }
    if let Some(limit) = word_limit(&lower) {
        if !pointer.is_empty() {
            extras.max_words.push((pointer.to_owned(), limit));
        }
        return json!({ "type": "string" });
    }
    match words.first().map(String::as_str) {
        Some("number" | "float") if words.len() <= 4 => {
            return with_range(json!({ "type": "number" }), trimmed);
        }
        Some("integer" | "int") if words.len() <= 4 => {
            return with_range(json!({ "type": "integer" }), trimmed);
        }
        Some("boolean" | "bool") if words.len() <= 2 => return json!({ "type": "boolean" }),
        _ => {}
    }
    // A code-like word that is not a type, such as `insufficient_context`: a fixed value.
    let code_like = !trimmed.is_empty()
        && trimmed.contains('_')
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if code_like && !pointer.is_empty() {
        extras
            .constants
            .push((pointer.to_owned(), trimmed.to_owned()));
        return json!({ "const": trimmed });
    }
    json!({ "type": "string" })
}

/// A choice written in words (`Needs Work`), up to three of them.
fn is_label(choice: &str) -> bool {
    let words = choice.split_whitespace().count();
    (1..=3).contains(&words)
        && choice
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-')
}

fn looks_like_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 16
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
}

/// `string <= 200 words`, `max 50 words`, `under 100 words`.
fn word_limit(lower: &str) -> Option<u64> {
    let at = lower.find("word")?;
    let before = &lower[..at];
    before
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|part| !part.is_empty())?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_that_read_differently_share_only_their_type() {
        let text = r#"{"references": ["https://owasp.org/www-community/attacks/SQL_Injection", "CWE-89"], "links": ["https://a.example", "https://b.example"]}"#;
        let (node, _) = parse(text).expect("parses");
        let drafted = schema(&node, "", &mut Extras::default());
        assert_eq!(
            drafted["properties"]["references"]["items"],
            json!({ "type": "string" })
        );
        assert_eq!(
            drafted["properties"]["links"]["items"]["format"],
            json!("uri")
        );
    }

    #[test]
    fn prompt_pseudo_json_is_read_leniently() {
        let text = "Return:\n{\n  \"status\": \"pass|fail|warning\", // one of three\n  \"signed\": boolean,\n  \"order\": number,\n  \"items\": [\"string\", ...],\n}\nthen stop";
        let (node, end) = parse(text).expect("parses");
        assert!(text[..end].ends_with('}'));
        let Node::Object(fields) = &node else {
            panic!("an object")
        };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["status", "signed", "order", "items"]);
    }

    #[test]
    fn the_words_of_a_pseudo_schema_become_types_formats_and_limits() {
        let text = r#"{"status": "pass|fail|warning", "summary": "string <= 200 words", "at": "ISO timestamp", "runbook": "string (URL)", "signed": boolean, "count": number, "score": "integer 1-5", "error": "insufficient_context", "note": "string"}"#;
        let (node, _) = parse(text).expect("parses");
        let mut extras = Extras::default();
        let drafted = schema(&node, "", &mut extras);
        let property = |name: &str| drafted["properties"][name].clone();
        assert_eq!(
            property("status")["enum"],
            json!(["pass", "fail", "warning", null])
        );
        assert_eq!(property("status")["type"], json!(["string", "null"]));
        assert_eq!(property("at")["format"], json!("date-time"));
        assert_eq!(property("runbook")["format"], json!("uri"));
        assert_eq!(property("signed")["type"], json!(["boolean", "null"]));
        assert_eq!(property("count")["type"], json!(["number", "null"]));
        assert_eq!(property("score")["maximum"], json!(5.0));
        assert_eq!(property("error")["const"], json!("insufficient_context"));
        assert_eq!(property("note")["type"], json!(["string", "null"]));
        assert_eq!(extras.max_words, [("/summary".to_owned(), 200)]);
        assert_eq!(drafted["additionalProperties"], json!(false));
        assert_eq!(drafted["required"].as_array().map(Vec::len), Some(9));
    }
}
