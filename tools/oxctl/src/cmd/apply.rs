//! `oxctl reload`, `confirm`, `rollback` and `rollback-list`.

use std::time::Duration;

use bus_schema::config::value::parse_duration_secs;
use bus_schema::control::{Call, Empty, ReloadRequest, Reply, RollbackRequest};

use crate::remote::{Failure, Session, render};

use super::{Out, unexpected};

/// `90`, `90s`, `5m`, `1h`: the config's duration syntax.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_secs(s).map(Duration::from_secs)
}

/// `reload [--dry-run] [--confirm-within DURATION] [--comment TEXT]`.
pub async fn reload(
    s: &Session,
    dry_run: bool,
    confirm_within: Option<Duration>,
    comment: &str,
    out: Out,
) -> Result<(), Failure> {
    let confirm_secs = confirm_within.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let call = Call::Reload(ReloadRequest {
        dry_run,
        confirm_secs,
        comment: comment.to_string(),
    });
    match s.call(call).await? {
        Reply::Applied(a) => out.print(render::applied(&a, dry_run), render::applied_json(&a)),
        r => Err(unexpected(&r)),
    }
}

/// `confirm`.
pub async fn confirm(s: &Session) -> Result<(), Failure> {
    match s.call(Call::Confirm(Empty {})).await? {
        Reply::Done(d) => {
            println!("{}", d.message);
            Ok(())
        }
        r => Err(unexpected(&r)),
    }
}

/// `rollback --confirm [--to N]`.
pub async fn rollback(s: &Session, to: u32, confirm: bool, out: Out) -> Result<(), Failure> {
    match s
        .call(Call::Rollback(RollbackRequest { to, confirm }))
        .await?
    {
        Reply::Applied(a) => out.print(render::applied(&a, false), render::applied_json(&a)),
        r => Err(unexpected(&r)),
    }
}

/// `rollback-list`.
pub async fn list(s: &Session, out: Out) -> Result<(), Failure> {
    out.reply(&s.call(Call::RollbackList(Empty {})).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
