//! Per-key token buckets: `rate` calls per second, up to `burst` at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One key's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every key's bucket.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: HashMap<[u8; 32], Bucket>,
}

impl RateLimit {
    /// `rate` calls per second, `burst` at once (at least `rate`, as the
    /// config's validation makes it, and at least 1).
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(rate).max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Changes the rate, keeping every bucket's tokens (up to the new
    /// burst).
    pub fn set(&mut self, rate: u32, burst: u32) {
        let new = Self::new(rate, burst);
        self.rate = new.rate;
        self.burst = new.burst;
        for b in self.buckets.values_mut() {
            b.tokens = b.tokens.min(self.burst);
        }
    }

    /// Takes a token for `key` at `now`, or says how long until one is
    /// there.
    pub fn take(&mut self, key: &[u8; 32], now: Instant) -> Result<(), Duration> {
        let burst = self.burst;
        let b = self.buckets.entry(*key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }

    /// Forgets keys whose buckets are full again (idle clients), so the
    /// table does not grow with every key ever seen.
    pub fn prune(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_calls_wait_for_the_rate_and_keys_are_apart() {
        let mut rl = RateLimit::new(10, 12);
        let t0 = Instant::now();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for _ in 0..12 {
            assert!(rl.take(&a, t0).is_ok());
        }
        let wait = rl.take(&a, t0).expect_err("limited");
        assert_eq!(wait, Duration::from_millis(100));
        // Another key has its own bucket.
        assert!(rl.take(&b, t0).is_ok());
        // 100 ms later one more token is there, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert!(rl.take(&a, t1).is_ok());
        assert!(rl.take(&a, t1).is_err());
        // Idle keys are forgotten once their buckets are full again.
        rl.prune(t1 + Duration::from_secs(2));
        assert!(rl.buckets.is_empty());
    }

    #[test]
    fn lowering_the_burst_caps_the_saved_tokens() {
        let mut rl = RateLimit::new(1, 10);
        let t0 = Instant::now();
        assert!(rl.take(&[0; 32], t0).is_ok());
        // Nine tokens saved; the new burst keeps two of them.
        rl.set(1, 2);
        assert!(rl.take(&[0; 32], t0).is_ok());
        assert!(rl.take(&[0; 32], t0).is_ok());
        assert!(rl.take(&[0; 32], t0).is_err());
    }
}
