//! Credentials in a base URL (`http://user:PASS@host/v1`): they stay in the URL requests are
//! sent to (reqwest turns them into HTTP basic authentication), and are masked everywhere the
//! URL is shown (`http://user:***@host/v1`): run records, error messages, `agent config`.

use std::borrow::Cow;

/// `url` with its password masked (`http://user:***@host/v1`), or, when it has a user name
/// only (`https://TOKEN@host/v1`, where the name is the credential), that name masked.
/// Works on the text, so a URL that does not parse is masked all the same.
pub fn display_url(url: &str) -> Cow<'_, str> {
    let Some((start, userinfo, _)) = userinfo(url) else {
        return Cow::Borrowed(url);
    };
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    Cow::Owned(format!(
        "{}{masked}{}",
        &url[..start],
        &url[start + userinfo.len()..]
    ))
}

/// The secret part of `url`'s credentials (the password, or a lone user name), as written
/// and percent-decoded, for the log scrubber.
pub fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, userinfo, _)) = userinfo(url) else {
        return Vec::new();
    };
    let secret = userinfo
        .split_once(':')
        .map_or(userinfo, |(_, password)| password);
    let mut secrets = vec![secret.to_owned()];
    let decoded = percent_decode(secret);
    if decoded != secret {
        secrets.push(decoded);
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// The userinfo of `url`: its start, its text, and the `@` after it.
fn userinfo(url: &str) -> Option<(usize, &str, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| start + at);
    let at = url[start..authority_end].rfind('@')? + start;
    Some((start, &url[start..at], at))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|b| char::from(*b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high * 16 + low);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_everything_else_kept() {
        assert_eq!(
            display_url("http://user:PASS@host:8080/v1"),
            "http://user:***@host:8080/v1"
        );
        assert_eq!(
            display_url("https://sk-token@gateway.example/v1?x=a@b"),
            "https://***@gateway.example/v1?x=a@b"
        );
        assert_eq!(
            display_url("http://u:p@ss:w%40rd@host/v1"),
            "http://u:***@host/v1",
            "the last @ ends the userinfo"
        );
        for plain in [
            "http://127.0.0.1:11434/v1",
            "https://api.openai.com/v1/a@b",
            "not a url",
        ] {
            assert_eq!(display_url(plain), plain);
        }
    }

    #[test]
    fn the_secret_part_is_the_password_or_a_lone_user_name() {
        assert_eq!(url_secrets("http://user:PASS@host/v1"), ["PASS"]);
        assert_eq!(url_secrets("https://sk-token@host/v1"), ["sk-token"]);
        assert_eq!(
            url_secrets("http://user:p%40ss%2Fword@host/v1"),
            ["p%40ss%2Fword", "p@ss/word"]
        );
        assert!(url_secrets("http://host/v1").is_empty());
        assert!(url_secrets("http://user:@host/v1").is_empty());
    }
}
