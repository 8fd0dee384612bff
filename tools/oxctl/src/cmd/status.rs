//! `oxctl status`, `services` and `restart SERVICE`.

use bus_schema::control::{Call, Empty, Reply, ServiceName};

use crate::remote::{Failure, Session, render};

use super::{Out, unexpected};

/// `status`: hostname, uptime, generation, WAN, LAN clients, services.
pub async fn status(s: &Session, out: Out) -> Result<(), Failure> {
    match s.call(Call::Status(Empty {})).await? {
        Reply::Status(st) => {
            let w = &s.welcome;
            let you = format!("client       {} ({})\n", w.client, w.role);
            out.print(you + &render::status(&st), render::status_json(&st))
        }
        r => Err(unexpected(&r)),
    }
}

/// `services`.
pub async fn services(s: &Session, out: Out) -> Result<(), Failure> {
    out.reply(&s.call(Call::Services(Empty {})).await?)
}

/// `restart SERVICE`.
pub async fn restart(s: &Session, service: &str) -> Result<(), Failure> {
    match s
        .call(Call::Restart(ServiceName {
            name: service.to_string(),
        }))
        .await?
    {
        Reply::Done(d) => {
            println!("{}", d.message);
            Ok(())
        }
        r => Err(unexpected(&r)),
    }
}
