//! Read a prompt's `argument_hint` usage line into input declarations.
//!
//! `NOTES=<release notes> ENVIRONMENT=<staging|production> [WINDOW="maintenance window"]`:
//! a bare `NAME=…` is required, a bracketed one optional; `<a|b>` lists the allowed values,
//! any other `<…>` or `"…"` describes the input.

use super::input_spec::InputSpec;

/// Parse the hint; `Err` carries what could not be read.
pub(crate) fn parse(hint: &str) -> Result<Vec<InputSpec>, String> {
    let mut specs = Vec::new();
    let mut rest = hint.trim();
    while !rest.is_empty() {
        let optional = rest.starts_with('[');
        let token;
        if optional {
            let end = rest
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in `{rest}`"))?;
            token = &rest[1..end];
            rest = rest[end + 1..].trim_start();
        } else {
            let value_end = token_end(rest)?;
            token = &rest[..value_end];
            rest = rest[value_end..].trim_start();
        }
        specs.push(parse_token(token.trim(), optional)?);
    }
    Ok(specs)
}

/// The end of one `NAME=value` token, where the value may be `<…>` or `"…"` with spaces inside.
fn token_end(text: &str) -> Result<usize, String> {
    let eq = match text.find('=') {
        Some(eq) if !text[..eq].contains(char::is_whitespace) => eq,
        _ => return Ok(text.find(char::is_whitespace).unwrap_or(text.len())),
    };
    let value = &text[eq + 1..];
    let closing = match value.chars().next() {
        Some('<') => Some('>'),
        Some('"') => Some('"'),
        _ => None,
    };
    let end = match closing {
        Some(close) => {
            let close_at = value[1..]
                .find(close)
                .ok_or_else(|| format!("unclosed value in `{text}`"))?;
            eq + 1 + 1 + close_at + 1
        }
        None => eq + 1 + value.find(char::is_whitespace).unwrap_or(value.len()),
    };
    Ok(end)
}

fn parse_token(token: &str, optional: bool) -> Result<InputSpec, String> {
    let (name, value) = token.split_once('=').unwrap_or((token, ""));
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        return Err(format!("`{token}` does not start with an input name"));
    }
    let mut spec = InputSpec::new(name);
    spec.required = !optional;
    let inner = value
        .trim()
        .trim_start_matches(['<', '"'])
        .trim_end_matches(['>', '"'])
        .trim();
    if inner.contains('|') && value.trim_start().starts_with('<') {
        spec.allowed = inner.split('|').map(|v| v.trim().to_owned()).collect();
    } else if !inner.is_empty() {
        spec.description = Some(inner.to_owned());
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_deployment_plan_hint() {
        let specs = parse(
            r#"NOTES=<release notes/change summary> ENVIRONMENT=<staging|production> [WINDOW="maintenance window"] [FLAG="feature flag (optional)"]"#,
        )
        .expect("parses");
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["NOTES", "ENVIRONMENT", "WINDOW", "FLAG"]);
        assert!(specs[0].required && specs[1].required);
        assert!(!specs[2].required && !specs[3].required);
        assert_eq!(
            specs[0].description.as_deref(),
            Some("release notes/change summary")
        );
        assert_eq!(specs[1].allowed, ["staging", "production"]);
        assert_eq!(
            specs[3].description.as_deref(),
            Some("feature flag (optional)")
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse("[WINDOW=\"x\"").is_err());
        assert!(parse("NOTES=<never closed").is_err());
        assert!(parse("=<x>").is_err());
    }
}
