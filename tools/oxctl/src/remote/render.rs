//! Human output (aligned tables, durations, times) and `--json` output
//! of the control plane's answers.

use bus_schema::control::{Applied, AuditEntry, Reply, Service, Snapshot, Status};
use serde_json::{Value, json};

/// Rows under headers, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `1d 2h 3m 4s`, largest units first, zero units left out.
pub fn duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    let s: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if s.is_empty() {
        "0s".into()
    } else {
        s.join(" ")
    }
}

/// A Unix time as RFC 3339 UTC; `-` for 0.
pub fn time(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .filter(|t| *t > 0)
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map_or_else(
            || "-".into(),
            |ts| ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

fn services_rows(s: &[Service]) -> Vec<Vec<String>> {
    s.iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.state.clone(),
                if s.pid == 0 {
                    "-".into()
                } else {
                    s.pid.to_string()
                },
                s.restarts.to_string(),
                s.last_exit.clone(),
            ]
        })
        .collect()
}

/// `services`.
pub fn services(s: &[Service]) -> String {
    table(
        &["SERVICE", "STATE", "PID", "RESTARTS", "LAST EXIT"],
        &services_rows(s),
    )
}

/// `services --json`.
pub fn services_json(s: &[Service]) -> Value {
    Value::Array(
        s.iter()
            .map(|s| {
                json!({"name": s.name, "state": s.state, "pid": s.pid,
                       "restarts": s.restarts, "last_exit": s.last_exit})
            })
            .collect(),
    )
}

/// `status`.
pub fn status(s: &Status) -> String {
    let mut out = String::new();
    out.push_str(&format!("hostname     {}\n", s.hostname));
    out.push_str(&format!("uptime       {}\n", duration(s.uptime_secs)));
    let hash: String = s.hash.chars().take(12).collect();
    out.push_str(&format!("generation   {} ({hash})", s.generation));
    if s.confirm_deadline > 0 {
        out.push_str(&format!(
            ", reverts at {} UTC unless confirmed",
            time(s.confirm_deadline)
        ));
    }
    out.push('\n');
    out.push_str(&format!("lan clients  {}\n", s.lan_clients));
    if !s.wan.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = s
            .wan
            .iter()
            .map(|w| {
                vec![
                    w.network.clone(),
                    w.device.clone(),
                    w.state.clone(),
                    if w.address.is_empty() {
                        "-".into()
                    } else {
                        w.address.clone()
                    },
                    if w.active { "yes".into() } else { "no".into() },
                ]
            })
            .collect();
        out.push_str(&table(
            &["WAN", "DEVICE", "STATE", "ADDRESS", "ACTIVE"],
            &rows,
        ));
    }
    out.push('\n');
    out.push_str(&services(&s.services));
    out
}

/// `status --json`.
pub fn status_json(s: &Status) -> Value {
    json!({
        "hostname": s.hostname,
        "uptime_secs": s.uptime_secs,
        "generation": s.generation,
        "hash": s.hash,
        "confirm_deadline": s.confirm_deadline,
        "lan_clients": s.lan_clients,
        "wan": s.wan.iter().map(|w| json!({"network": w.network, "device": w.device,
            "state": w.state, "address": w.address, "active": w.active})).collect::<Vec<_>>(),
        "services": services_json(&s.services),
    })
}

/// `reload`, `rollback`, `restore`.
pub fn applied(a: &Applied, dry_run: bool) -> String {
    let mut out = String::new();
    for d in &a.diff {
        out.push_str(&d.diff);
        if !d.diff.ends_with('\n') {
            out.push('\n');
        }
    }
    if !a.warnings.is_empty() {
        out.push_str(&a.warnings);
        if !a.warnings.ends_with('\n') {
            out.push('\n');
        }
    }
    let changed = if a.changed.is_empty() {
        "nothing changed".to_string()
    } else {
        format!("changed: {}", a.changed.join(", "))
    };
    if dry_run {
        out.push_str(&format!(
            "dry run: {changed}; the router still runs generation {}\n",
            a.generation
        ));
    } else {
        out.push_str(&format!(
            "generation {} -> {} ({changed})\n",
            a.generation_before, a.generation
        ));
        if a.confirm_deadline > 0 {
            out.push_str(&format!(
                "reverts at {} UTC unless `oxctl confirm` comes first\n",
                time(a.confirm_deadline)
            ));
        }
    }
    if a.leases_restored > 0 || !a.leases_skipped.is_empty() {
        out.push_str(&format!(
            "leases: {} restored, {} left out\n",
            a.leases_restored,
            a.leases_skipped.len()
        ));
        for why in &a.leases_skipped {
            out.push_str(&format!("  {why}\n"));
        }
    }
    out
}

/// `reload --json`.
pub fn applied_json(a: &Applied) -> Value {
    json!({
        "generation_before": a.generation_before,
        "generation": a.generation,
        "hash": a.hash,
        "changed": a.changed,
        "diff": a.diff.iter().map(|d| json!({"section": d.section, "diff": d.diff})).collect::<Vec<_>>(),
        "confirm_deadline": a.confirm_deadline,
        "warnings": a.warnings,
        "leases_restored": a.leases_restored,
        "leases_skipped": a.leases_skipped,
    })
}

/// `rollback-list`.
pub fn snapshots(list: &[Snapshot], running: u64) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.index.to_string(),
                format!(
                    "{}{}",
                    s.generation,
                    if s.generation == running { " *" } else { "" }
                ),
                time(s.time),
                s.who.clone(),
                s.comment.clone(),
            ]
        })
        .collect();
    table(
        &["INDEX", "GENERATION", "TIME (UTC)", "WHO", "COMMENT"],
        &rows,
    )
}

/// `rollback-list --json`.
pub fn snapshots_json(list: &[Snapshot], running: u64) -> Value {
    json!({
        "running": running,
        "snapshots": list.iter().map(|s| json!({"index": s.index, "generation": s.generation,
            "time": s.time, "who": s.who, "comment": s.comment, "hash": s.hash})).collect::<Vec<_>>(),
    })
}

/// `audit`.
pub fn audit(list: &[AuditEntry]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                time(e.time),
                e.client.clone(),
                e.fingerprint.clone(),
                e.rpc.clone(),
                format!("{} -> {}", e.generation_before, e.generation_after),
                e.result.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TIME (UTC)",
            "CLIENT",
            "KEY",
            "CALL",
            "GENERATION",
            "RESULT",
        ],
        &rows,
    )
}

/// `audit --json`.
pub fn audit_json(list: &[AuditEntry]) -> Value {
    Value::Array(
        list.iter()
            .map(|e| {
                json!({"time": e.time, "client": e.client, "fingerprint": e.fingerprint,
                       "rpc": e.rpc, "result": e.result,
                       "generation_before": e.generation_before,
                       "generation_after": e.generation_after})
            })
            .collect(),
    )
}

/// The answer of a reading verb, for people and for `--json`; `None`
/// for an answer no reading verb gets.
pub fn reading(r: &Reply) -> Result<Option<(String, Value)>, String> {
    Ok(Some(match r {
        Reply::Status(s) => (status(s), status_json(s)),
        Reply::Services(l) => (services(&l.services), services_json(&l.services)),
        Reply::Snapshots(l) => (
            snapshots(&l.snapshots, l.running),
            snapshots_json(&l.snapshots, l.running),
        ),
        Reply::Audit(a) => (audit(&a.entries), audit_json(&a.entries)),
        Reply::Diag(d) => {
            let v: Value =
                serde_json::from_str(&d.json).map_err(|e| format!("diag answer: {e}"))?;
            (diag(&v), v)
        }
        _ => return Ok(None),
    }))
}

/// A `diag` answer: an array of flat objects as a table (columns from
/// the first row's keys), a string as itself, anything else as JSON.
pub fn diag(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(rows) if rows.iter().all(Value::is_object) => {
            let Some(Value::Object(first)) = rows.first() else {
                return "(none)\n".into();
            };
            let keys: Vec<&String> = first.keys().collect();
            let headers: Vec<String> = keys.iter().map(|k| k.to_uppercase()).collect();
            let cell = |v: Option<&Value>| match v {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(","),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| keys.iter().map(|k| cell(r.get(k.as_str()))).collect())
                .collect();
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            table(&headers, &rows)
        }
        other => serde_json::to_string_pretty(other).unwrap_or_default() + "\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_durations_read_well() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(90_061), "1d 1h 1m 1s");
        assert_eq!(time(0), "-");
        assert_eq!(time(86_400), "1970-01-02 00:00:00");
    }

    #[test]
    fn a_diag_array_becomes_a_table() {
        let v = json!([{"name": "br-lan", "addresses": ["192.168.1.1/24"], "mtu": 1500}]);
        assert_eq!(
            diag(&v),
            "NAME    ADDRESSES       MTU\nbr-lan  192.168.1.1/24  1500\n"
        );
        assert_eq!(
            diag(&json!("table inet oxwrt {}\n")),
            "table inet oxwrt {}\n"
        );
    }
}
