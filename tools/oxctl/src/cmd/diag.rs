//! `oxctl diag links|routes|firewall|leases|dns|conntrack` and `audit`.

use bus_schema::control::{AuditRequest, Call, DiagRequest};

use crate::remote::{Failure, Session};

use super::Out;

/// `diag WHAT`.
pub async fn diag(s: &Session, what: &str, out: Out) -> Result<(), Failure> {
    let call = Call::Diag(DiagRequest {
        what: what.to_string(),
    });
    out.reply(&s.call(call).await?)
}

/// `audit [-n N]`.
pub async fn audit(s: &Session, limit: u32, out: Out) -> Result<(), Failure> {
    out.reply(&s.call(Call::Audit(AuditRequest { limit })).await?)
}
