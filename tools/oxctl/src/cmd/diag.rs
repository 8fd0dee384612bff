//! `oxctl diag links|routes|firewall|leases|dns|conntrack` and `audit`.

use bus_schema::control::{AuditRequest, Call, DiagRequest, Reply};

use crate::remote::{Failure, Session, render};

use super::{Out, unexpected};

/// `diag WHAT`.
pub async fn diag(s: &Session, what: &str, out: Out) -> Result<(), Failure> {
    let call = Call::Diag(DiagRequest {
        what: what.to_string(),
    });
    match s.call(call).await? {
        Reply::Diag(d) => {
            let v: serde_json::Value = serde_json::from_str(&d.json)
                .map_err(|e| Failure::Remote(format!("diag answer: {e}")))?;
            out.print(render::diag(&v), v)
        }
        r => Err(unexpected(&r)),
    }
}

/// `audit [-n N]`.
pub async fn audit(s: &Session, limit: u32, out: Out) -> Result<(), Failure> {
    match s.call(Call::Audit(AuditRequest { limit })).await? {
        Reply::Audit(a) => out.print(render::audit(&a.entries), render::audit_json(&a.entries)),
        r => Err(unexpected(&r)),
    }
}
