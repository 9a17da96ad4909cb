//! [`Pacer`]: a shared hold on new requests after a 429, so a rate limit slows every request
//! sharing the endpoint, not only the one that met it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A shared "not before" time for requests to one endpoint.
#[derive(Debug, Default)]
pub struct Pacer {
    resume_at: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer with no hold.
    pub fn new() -> Pacer {
        Pacer::default()
    }

    /// Hold new requests for `wait` from now (a longer hold already in place stays). A wait
    /// past the end of time is no hold: the caller refuses such waits before holding.
    pub fn hold(&self, wait: Duration) {
        let Some(until) = Instant::now().checked_add(wait) else {
            return;
        };
        let mut resume_at = self.resume_at.lock().unwrap_or_else(|e| e.into_inner());
        if resume_at.is_none_or(|at| at < until) {
            *resume_at = Some(until);
        }
    }

    /// Wait until no hold is in place.
    pub async fn ready(&self) {
        loop {
            let until = *self.resume_at.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_waiter() {
        let pacer = std::sync::Arc::new(Pacer::new());
        pacer.hold(Duration::from_secs(2));
        pacer.hold(Duration::from_secs(1));
        let start = Instant::now();
        let (a, b) = tokio::join!(pacer.ready(), pacer.ready());
        let _ = (a, b);
        assert_eq!(start.elapsed().as_secs(), 2);
        let again = Instant::now();
        pacer.ready().await;
        assert_eq!(again.elapsed(), Duration::ZERO);
    }
}
