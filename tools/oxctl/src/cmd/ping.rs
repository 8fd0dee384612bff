//! `oxctl ping [-c N] [-i S]`: round trips of `status` over one
//! connection, as ping(8) times echo requests. It answers "is the
//! router's control plane there, and how fast" and is what
//! `cargo xtask bench control` measures with.

use std::time::{Duration, Instant};

use bus_schema::control::{Call, Empty, Reply};

use crate::remote::{Failure, Session};

use super::{Out, unexpected};

/// `count` status calls, `every` apart; one line each (human), then the
/// summary.
pub async fn run(s: &Session, count: u32, every: Duration, out: Out) -> Result<(), Failure> {
    let address = s.address();
    if !out.json {
        println!(
            "{address}: connected in {} (handshake and hello)",
            ms(s.connected_in)
        );
    }
    let mut times = Vec::with_capacity(count as usize);
    for seq in 1..=count {
        if seq > 1 && !every.is_zero() {
            tokio::time::sleep(every).await;
        }
        let start = Instant::now();
        match s.call(Call::Status(Empty {})).await? {
            Reply::Status(_) => {}
            r => return Err(unexpected(&r)),
        }
        let rtt = start.elapsed();
        if !out.json {
            println!("status from {address}: seq={seq} time={}", ms(rtt));
        }
        times.push(rtt);
    }
    let summary = Summary::of(times);
    let human = format!(
        "--- {address}: {} calls, round trip min/p50/p99/max = {}/{}/{}/{}\n",
        count,
        ms(summary.min),
        ms(summary.p50),
        ms(summary.p99),
        ms(summary.max)
    );
    let json = serde_json::json!({
        "address": address.to_string(),
        "connect_ms": millis(s.connected_in),
        "calls": count,
        "min_ms": millis(summary.min),
        "p50_ms": millis(summary.p50),
        "p99_ms": millis(summary.p99),
        "max_ms": millis(summary.max),
    });
    out.print(human, json)
}

/// Round-trip figures of a run.
#[derive(Debug, PartialEq)]
struct Summary {
    min: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Summary {
    /// Nearest-rank percentiles; all zero for no calls.
    fn of(mut times: Vec<Duration>) -> Summary {
        times.sort_unstable();
        let rank = |p: usize| {
            let i = (times.len() * p).div_ceil(100).max(1) - 1;
            times.get(i).copied().unwrap_or_default()
        };
        Summary {
            min: rank(0),
            p50: rank(50),
            p99: rank(99),
            max: rank(100),
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", millis(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let times = (1..=200).rev().map(Duration::from_millis).collect();
        assert_eq!(
            Summary::of(times),
            Summary {
                min: Duration::from_millis(1),
                p50: Duration::from_millis(100),
                p99: Duration::from_millis(198),
                max: Duration::from_millis(200),
            }
        );
        let one = Summary::of(vec![Duration::from_millis(7)]);
        assert_eq!(
            (one.min, one.p99),
            (Duration::from_millis(7), Duration::from_millis(7))
        );
        assert_eq!(Summary::of(Vec::new()).max, Duration::ZERO);
    }
}
