//! A fake set of daemons for the transaction and core tests.

use std::sync::Mutex;
use std::time::Duration;

use bus_schema::config::Sections;

use super::{Participants, Timeouts};
use crate::store::Pair;

/// Short timeouts for tests.
pub const FAST: Timeouts = Timeouts {
    check: Duration::from_millis(200),
    apply: Duration::from_millis(200),
};

/// A small valid pair: `system.hostname` and `dns.cache_size` vary.
pub fn pair(hostname: &str, cache: u32) -> Pair {
    Pair {
        public: format!(
            "version = 1\n[system]\nhostname = \"{hostname}\"\n[dns]\ncache_size = {cache}\n"
        ),
        secrets: String::new(),
    }
}

/// Records every call; fails or hangs where told.
#[derive(Default)]
pub struct Fake {
    pub calls: Mutex<Vec<String>>,
    pub fail_apply: Option<(&'static str, u64)>,
    pub fail_check: Option<&'static str>,
    pub hang: Option<&'static str>,
    pub offline: Vec<&'static str>,
}

impl Fake {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
    fn record(&self, what: &str, name: &str, generation: u64, sections: &Sections) {
        let names: Vec<&str> = sections.keys().map(String::as_str).collect();
        self.calls
            .lock()
            .expect("lock")
            .push(format!("{what} {name} {generation} {}", names.join(",")));
    }
}

impl Participants for Fake {
    async fn online(&self, name: &'static str) -> bool {
        !self.offline.contains(&name)
    }
    async fn check(&self, name: &'static str, g: u64, s: Sections) -> Result<(), String> {
        self.record("check", name, g, &s);
        match self.fail_check {
            Some(n) if n == name => Err("cannot".into()),
            _ => Ok(()),
        }
    }
    async fn apply(&self, name: &'static str, g: u64, s: Sections) -> Result<(), String> {
        self.record("apply", name, g, &s);
        if self.hang == Some(name) {
            std::future::pending::<()>().await;
        }
        match self.fail_apply {
            Some((n, fg)) if n == name && fg == g => Err("boom".into()),
            _ => Ok(()),
        }
    }
}
