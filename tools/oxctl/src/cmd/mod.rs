//! One module per verb (the remote ones grouped by what they touch).

pub mod apply;
pub mod backup;
pub mod config;
pub mod diag;
pub mod docs;
pub mod dump_config;
pub mod keys;
pub mod logs;
pub mod ping;
pub mod schema;
pub mod status;
pub mod validate;
pub mod watch;
pub mod wizard;

use bus_schema::control::Reply;

use crate::remote::Failure;

/// How a reading verb prints: human tables, or JSON for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// `--json`.
    pub json: bool,
}

impl Out {
    /// Prints `human`, or `json` with `--json`.
    pub fn print(self, human: String, json: serde_json::Value) -> Result<(), Failure> {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        } else {
            print!("{human}");
        }
        Ok(())
    }
}

impl Out {
    /// Prints the answer of a reading verb.
    pub fn reply(self, r: &Reply) -> Result<(), Failure> {
        match crate::remote::render::reading(r).map_err(Failure::Remote)? {
            Some((human, json)) => self.print(human, json),
            None => Err(unexpected(r)),
        }
    }
}

/// An answer of the wrong kind: a router speaking another dialect.
pub fn unexpected(r: &Reply) -> Failure {
    Failure::Remote(format!("unexpected answer from the router: {r:?}"))
}
