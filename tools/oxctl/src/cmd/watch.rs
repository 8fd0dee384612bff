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

/// One answer as the watch prints it.
fn show(r: &Reply, out: Out) -> String {
    match render::reading(r) {
        Ok(Some((_, json))) if out.json => format!("{json}\n"),
        Ok(Some((human, _))) => human,
        Ok(None) => format!("{r:?}\n"),
        Err(e) => format!("{e}\n"),
    }
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
