//! The node's egress limit: one token bucket that every response draws from
//! in turns. Turns are handed out by a FIFO lock, so each sending client gets
//! one quantum in order and a fast client cannot starve a slow one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub(crate) struct EgressLimiter {
    /// 0 means no limit.
    bytes_per_sec: AtomicU64,
    bucket: tokio::sync::Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl EgressLimiter {
    pub(crate) fn new(bits_per_sec: Option<u64>) -> EgressLimiter {
        let limiter = EgressLimiter {
            bytes_per_sec: AtomicU64::new(0),
            bucket: tokio::sync::Mutex::new(Bucket {
                tokens: 0.0,
                refilled_at: Instant::now(),
            }),
        };
        limiter.set_limit(bits_per_sec);
        limiter
    }

    pub(crate) fn set_limit(&self, bits_per_sec: Option<u64>) {
        let bytes = bits_per_sec.map_or(0, |bits| (bits / 8).max(1));
        self.bytes_per_sec.store(bytes, Relaxed);
    }

    /// Waits for the right to send up to `want` bytes and returns how many
    /// may be sent now (at least 1, at most one quantum of about 10 ms of
    /// the limit). Without a limit returns `want` at once.
    pub(crate) async fn grant(&self, want: u64) -> u64 {
        let rate = self.bytes_per_sec.load(Relaxed);
        if rate == 0 || want == 0 {
            return want;
        }
        let quantum = (rate / 100).clamp(1500, 256 * 1024);
        let burst = (rate / 20).max(quantum) as f64;
        let ask = want.min(quantum);
        // Holding the lock while sleeping is the point: the clients behind
        // wait in line for their own turn.
        let mut bucket = self.bucket.lock().await;
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate as f64).min(burst);
            bucket.refilled_at = now;
            if bucket.tokens >= ask as f64 {
                bucket.tokens -= ask as f64;
                return ask;
            }
            let missing = ask as f64 - bucket.tokens;
            tokio::time::sleep(Duration::from_secs_f64(missing / rate as f64)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unlimited_grants_everything() {
        let l = EgressLimiter::new(None);
        assert_eq!(l.grant(10_000_000).await, 10_000_000);
    }

    #[tokio::test]
    async fn limited_grants_quanta_and_waits() {
        // 800 kbit/s = 100 kB/s: a quantum is 1500 bytes (10 ms is 1000).
        let l = EgressLimiter::new(Some(800_000));
        let start = Instant::now();
        let mut sent = 0;
        while sent < 30_000 {
            let n = l.grant(1 << 20).await;
            assert!(n <= 1500);
            sent += n;
        }
        // 30 kB at 100 kB/s takes at least 0.3 s minus the 5 kB burst.
        assert!(start.elapsed() >= Duration::from_millis(240));
    }
}
