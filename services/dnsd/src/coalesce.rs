//! Identical questions in flight share one upstream query: the first
//! asker's question goes upstream, later ones wait beside it, and all get
//! the same answer (each rendered for its own client).

use std::collections::HashMap;

use crate::query::Key;

/// Questions waiting for an upstream answer, by key; `W` is whatever a
/// waiter needs to be answered.
#[derive(Debug)]
pub struct Inflight<W> {
    waiting: HashMap<Key, Vec<W>>,
}

impl<W> Default for Inflight<W> {
    fn default() -> Self {
        Self {
            waiting: HashMap::new(),
        }
    }
}

impl<W> Inflight<W> {
    /// Adds a waiter for `key`; true when it is the first, so the caller
    /// must ask upstream (and later call [`Inflight::finish`]).
    pub fn join(&mut self, key: Key, waiter: W) -> bool {
        let list = self.waiting.entry(key).or_default();
        list.push(waiter);
        list.len() == 1
    }

    /// The waiters for `key`, which is no longer in flight.
    pub fn finish(&mut self, key: &[u8]) -> Vec<W> {
        self.waiting.remove(key).unwrap_or_default()
    }

    /// Whether `key` is in flight.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.waiting.contains_key(key)
    }

    /// Number of questions in flight.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_asks_the_rest_wait() {
        let mut f = Inflight::default();
        let k: Key = Box::new([1, 2]);
        assert!(f.join(k.clone(), 'a'));
        assert!(!f.join(k.clone(), 'b'));
        assert!(f.join(Box::new([3]), 'c'));
        assert_eq!(f.len(), 2);
        assert!(f.contains(&k));
        assert_eq!(f.finish(&k), vec!['a', 'b']);
        assert!(f.finish(&k).is_empty());
        // After finishing, the next asker asks again.
        assert!(f.join(k, 'd'));
    }
}
