//! `oxctl logs SERVICE [-f] [-n N]`.

use bus_schema::control::{Call, LogsRequest, Reply};

use crate::remote::{Failure, Session};

use super::unexpected;

/// Prints the last `lines` lines, then with `follow` each new one until
/// interrupted.
pub async fn run(s: &Session, service: &str, lines: u32, follow: bool) -> Result<(), Failure> {
    let call = Call::Logs(LogsRequest {
        service: service.to_string(),
        lines,
        follow,
    });
    let mut bad = None;
    s.stream(call, |r| match r {
        Reply::Logs(l) => {
            for line in l.lines {
                println!("{line}");
            }
            follow
        }
        r => {
            bad = Some(unexpected(&r));
            false
        }
    })
    .await?;
    bad.map_or(Ok(()), Err)
}
