//! [`RetryPolicy`]: when and how long to wait before trying a request again, as the official
//! OpenAI SDKs do.

use std::time::{Duration, SystemTime};

/// The transport retry policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub max_retries: u32,
    /// The first backoff; each retry doubles it.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest wait a server may ask for; a longer one fails at once.
    pub max_retry_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0-based): exponential, capped, with up to 25%
    /// jitter taken off so that many clients do not retry in step.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponential = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(16)));
        let capped = exponential.min(self.max_backoff);
        capped.mul_f64(1.0 - 0.25 * fastrand::f64())
    }
}

/// Is a response with this status worth another try? 408, 409, 429 and 5xx are; a 429 that
/// says the quota is exhausted is not, since waiting will not refill it.
pub(crate) fn is_retryable(status: u16, body: &str) -> bool {
    match status {
        408 | 409 | 500..=599 => true,
        429 => !body.contains("insufficient_quota"),
        _ => false,
    }
}

/// The wait a server asks for: `retry-after-ms` (milliseconds), else `Retry-After` (seconds,
/// or an HTTP date). A number no [`Duration`] can hold (`Retry-After: 99999999999999999999`,
/// `inf`) is [`Duration::MAX`], which is over any cap; a negative one, NaN or text that is no
/// number or date is no request at all.
pub(crate) fn requested_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(wait) = header("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| seconds(ms / 1000.0))
    {
        return Some(wait);
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A server's number of seconds as a wait, saturating where a [`Duration`] ends.
fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn the_server_wait_is_read_in_every_form() {
        assert_eq!(
            requested_wait(&headers(&[("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            requested_wait(&headers(&[("retry-after", "3")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            requested_wait(&headers(&[("retry-after-ms", "100"), ("retry-after", "3")])),
            Some(Duration::from_millis(100))
        );
        let later = SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(later);
        let wait = requested_wait(&headers(&[("retry-after", &date)])).expect("a date");
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(requested_wait(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(requested_wait(&headers(&[("retry-after", "-5")])), None);
        assert_eq!(requested_wait(&headers(&[("retry-after", "NaN")])), None);
        assert_eq!(requested_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn a_huge_retry_after_is_a_wait_over_any_cap_not_a_panic() {
        for pairs in [
            &[("retry-after", "99999999999999999999")][..],
            &[("retry-after", "1e300")][..],
            &[("retry-after", "inf")][..],
            &[("retry-after-ms", "99999999999999999999999")][..],
            &[("retry-after-ms", "1e308"), ("retry-after", "1")][..],
        ] {
            assert_eq!(
                requested_wait(&headers(pairs)),
                Some(Duration::MAX),
                "{pairs:?}"
            );
        }
        let far = httpdate::fmt_http_date(
            httpdate::parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT").expect("a date"),
        );
        assert!(
            requested_wait(&headers(&[("retry-after", &far)]))
                .is_some_and(|wait| wait > Duration::from_secs(1 << 32))
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_below() {
        let policy = RetryPolicy::default();
        for retry in 0..8 {
            let full = Duration::from_millis(500 * 2u64.pow(retry)).min(Duration::from_secs(8));
            let wait = policy.backoff(retry);
            assert!(
                wait <= full && wait >= full.mul_f64(0.75),
                "retry {retry}: {wait:?}"
            );
        }
    }

    #[test]
    fn retryable_statuses_follow_the_sdks() {
        for status in [408, 409, 429, 500, 502, 503, 504] {
            assert!(is_retryable(status, ""), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!is_retryable(status, ""), "{status}");
        }
        assert!(!is_retryable(
            429,
            r#"{"error":{"code":"insufficient_quota"}}"#
        ));
    }
}
