//! `oxctl watch [--interval S] [--count N] [VERB...]`: the router sends
//! the answer of a reading verb again every interval; each replaces the
//! last on a terminal, or follows it (a line of JSON each with `--json`).

use std::io::IsTerminal as _;
use std::time::Duration;

use bus_schema::control::{Call, DiagRequest, Empty, Reply, Request, WatchRequest};

use crate::remote::{Failure, Session, render};

use super::Out;

/// The reading call a watch repeats.
fn call_of(verb: &[String]) -> Result<Call, Failure> {
    let words: Vec<&str> = verb.iter().map(String::as_str).collect();
    Ok(match words.as_slice() {
        [] | ["status"] => Call::Status(Empty {}),
        ["services"] => Call::Services(Empty {}),
        ["rollback-list"] => Call::RollbackList(Empty {}),
        ["diag", what] => Call::Diag(DiagRequest {
            what: what.to_string(),
        }),
        _ => {
            return Err(Failure::Usage(format!(
                "watch repeats status, services, rollback-list or diag WHAT, not {:?}",
                words.join(" ")
            )));
        }
    })
}

fn show(r: &Reply, out: Out) -> String {
    let (human, json) = match r {
        Reply::Status(s) => (render::status(s), render::status_json(s)),
        Reply::Services(l) => (
            render::services(&l.services),
            render::services_json(&l.services),
        ),
        Reply::Snapshots(l) => (
            render::snapshots(&l.snapshots, l.running),
            render::snapshots_json(&l.snapshots, l.running),
        ),
        Reply::Diag(d) => {
            let v: serde_json::Value = serde_json::from_str(&d.json).unwrap_or_default();
            (render::diag(&v), v)
        }
        other => (format!("{other:?}\n"), serde_json::Value::Null),
    };
    if out.json { format!("{json}\n") } else { human }
}

/// Streams until interrupted, or `count` answers.
pub async fn run(
    s: &Session,
    interval: Duration,
    count: Option<u32>,
    verb: &[String],
    out: Out,
) -> Result<(), Failure> {
    let call = Call::Watch(Box::new(WatchRequest {
        interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        call: Some(Box::new(Request {
            call: Some(call_of(verb)?),
        })),
    }));
    let clear = !out.json && std::io::stdout().is_terminal();
    let mut seen = 0u32;
    s.stream(call, |r| {
        if clear {
            // Home and clear the screen.
            print!("\x1b[H\x1b[2J");
        } else if seen > 0 && !out.json {
            println!();
        }
        print!("{}", show(&r, out));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        seen += 1;
        count.is_none_or(|c| seen < c)
    })
    .await
}
