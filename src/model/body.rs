//! Reading a response body within limits: a byte cap (`--max-reply-bytes`) and, for readers
//! that want one, a longest pause between two chunks. One reader for every body the
//! transport takes in, whole replies now and streamed (SSE) replies later, so the limits
//! live in one place: [`BodyReader::next_chunk`] enforces them chunk by chunk, and
//! [`BodyReader::read_to_end`] and [`BodyReader::read_prefix`] are built on it.
//!
//! A body is refused as soon as it is known to be too large: at once when its declared
//! `Content-Length` is over the cap, else at the chunk that would pass it. Nothing past the
//! cap is ever held in memory.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// The default cap on a response body: 16 MiB, some thirty times the largest real reply (a
/// 128k-token completion is about 0.5 MB of JSON), small enough that a hostile body cannot
/// take the memory of the machine.
pub const DEFAULT_MAX_REPLY_BYTES: u64 = 16 * 1024 * 1024;

/// How much of an error body (4xx, 5xx) is read: enough for any JSON error object, and for a
/// message excerpt from anything else.
pub(crate) const ERROR_BODY_PREFIX: usize = 64 * 1024;

/// The limits a body is read within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    /// The most bytes read.
    pub(crate) max_bytes: u64,
    /// The longest wait for the next chunk; none waits as long as the request's own timeout
    /// allows (a whole reply). A streaming reader sets it.
    pub(crate) idle_timeout: Option<Duration>,
}

impl BodyLimits {
    /// A cap and no idle timeout.
    pub(crate) fn capped(max_bytes: u64) -> BodyLimits {
        BodyLimits {
            max_bytes,
            idle_timeout: None,
        }
    }
}

/// A body that could not be read within its limits.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Over the cap (declared, or counted as it came).
    #[error("the response body is over the {limit}-byte limit")]
    TooLarge {
        /// The cap.
        limit: u64,
        /// The length the server declared, when it declared one over the cap.
        declared: Option<u64>,
    },
    /// The connection broke while the body was arriving.
    #[error("the response body was cut off")]
    Interrupted(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No chunk came within the idle timeout.
    #[error("no data arrived for {} s", idle.as_secs_f64())]
    Idle {
        /// The idle timeout.
        idle: Duration,
    },
}

type Chunks<'a> = Pin<
    Box<dyn Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send + 'a>,
>;

/// Reads a body chunk by chunk within [`BodyLimits`].
pub(crate) struct BodyReader<'a> {
    chunks: Chunks<'a>,
    limits: BodyLimits,
    declared: Option<u64>,
    read: u64,
}

impl BodyReader<'static> {
    /// The reader of `response`'s body; an error at once when its declared length is over
    /// the cap, before any of it is read.
    pub(crate) fn of(
        response: reqwest::Response,
        limits: BodyLimits,
    ) -> Result<BodyReader<'static>, BodyError> {
        let declared = response.content_length();
        let chunks = futures::stream::unfold(response, |mut response| async move {
            match response.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), response)),
                Ok(None) => None,
                Err(error) => Some((Err(error.without_url().into()), response)),
            }
        });
        BodyReader::new(Box::pin(chunks), declared, limits)
    }
}

impl<'a> BodyReader<'a> {
    /// A reader of `chunks`, whose length the server declared as `declared`.
    pub(crate) fn new(
        chunks: Chunks<'a>,
        declared: Option<u64>,
        limits: BodyLimits,
    ) -> Result<BodyReader<'a>, BodyError> {
        if let Some(length) = declared.filter(|&length| length > limits.max_bytes) {
            return Err(BodyError::TooLarge {
                limit: limits.max_bytes,
                declared: Some(length),
            });
        }
        Ok(BodyReader {
            chunks,
            limits,
            declared,
            read: 0,
        })
    }

    /// The next chunk, or none at the end of the body; an error past the cap, on a broken
    /// connection, or after the idle timeout.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        let next = match self.limits.idle_timeout {
            Some(idle) => tokio::time::timeout(idle, self.chunks.next())
                .await
                .map_err(|_| BodyError::Idle { idle })?,
            None => self.chunks.next().await,
        };
        let Some(chunk) = next.transpose().map_err(BodyError::Interrupted)? else {
            return Ok(None);
        };
        self.read = self.read.saturating_add(chunk.len() as u64);
        if self.read > self.limits.max_bytes {
            return Err(BodyError::TooLarge {
                limit: self.limits.max_bytes,
                declared: None,
            });
        }
        Ok(Some(chunk))
    }

    /// The whole body, within the limits.
    pub(crate) async fn read_to_end(mut self) -> Result<Bytes, BodyError> {
        // The declared length is at most the cap here, so reserving it is safe.
        let capacity = usize::try_from(self.declared.unwrap_or(0)).unwrap_or(0);
        let mut body = BytesMut::with_capacity(capacity);
        while let Some(chunk) = self.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// The first `max` bytes of the body at most (fewer when it is shorter); the rest is
    /// never read. What arrived before a broken connection is kept.
    pub(crate) async fn read_prefix(mut self, max: usize) -> Bytes {
        let mut body = BytesMut::new();
        while body.len() < max {
            match self.next_chunk().await {
                Ok(Some(chunk)) => {
                    let take = chunk.len().min(max - body.len());
                    body.extend_from_slice(&chunk[..take]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        body.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<Result<&'static [u8], &'static str>>) -> Chunks<'static> {
        Box::pin(futures::stream::iter(parts.into_iter().map(|part| {
            part.map(Bytes::from_static)
                .map_err(|message| message.to_owned().into())
        })))
    }

    fn reader(parts: Vec<Result<&'static [u8], &'static str>>, max: u64) -> BodyReader<'static> {
        BodyReader::new(chunks(parts), None, BodyLimits::capped(max)).expect("no declared length")
    }

    #[tokio::test]
    async fn a_body_up_to_the_cap_is_read_whole_and_one_byte_more_is_refused() {
        let body = reader(vec![Ok(b"abc"), Ok(b"de")], 5)
            .read_to_end()
            .await
            .expect("at the cap");
        assert_eq!(&body[..], b"abcde");
        let error = reader(vec![Ok(b"abc"), Ok(b"def"), Ok(b"never read")], 5)
            .read_to_end()
            .await
            .expect_err("over the cap");
        assert!(
            matches!(
                error,
                BodyError::TooLarge {
                    limit: 5,
                    declared: None
                }
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let error = BodyReader::new(chunks(vec![]), Some(6), BodyLimits::capped(5))
            .err()
            .expect("refused at once");
        assert!(matches!(
            error,
            BodyError::TooLarge {
                limit: 5,
                declared: Some(6)
            }
        ));
    }

    #[tokio::test]
    async fn a_broken_body_is_an_interruption_and_a_prefix_keeps_what_came() {
        let error = reader(vec![Ok(b"abc"), Err("connection reset by peer")], 100)
            .read_to_end()
            .await
            .expect_err("broken");
        assert!(
            matches!(&error, BodyError::Interrupted(source) if source.to_string().contains("reset")),
            "{error:?}"
        );
        let prefix = reader(vec![Ok(b"abc"), Err("reset")], 100)
            .read_prefix(10)
            .await;
        assert_eq!(&prefix[..], b"abc");
        let prefix = reader(vec![Ok(b"abcdef"), Ok(b"ghi")], 100)
            .read_prefix(4)
            .await;
        assert_eq!(&prefix[..], b"abcd");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_idle_timeout_ends_the_read() {
        let stalled: Chunks<'static> = Box::pin(
            futures::stream::iter([Ok(Bytes::from_static(b"data: 1\n\n"))])
                .chain(futures::stream::pending()),
        );
        let mut reader = BodyReader::new(
            stalled,
            None,
            BodyLimits {
                max_bytes: 100,
                idle_timeout: Some(Duration::from_secs(5)),
            },
        )
        .expect("reader");
        assert!(reader.next_chunk().await.expect("first chunk").is_some());
        let error = reader.next_chunk().await.expect_err("stalls");
        assert!(matches!(error, BodyError::Idle { .. }), "{error:?}");
    }
}
