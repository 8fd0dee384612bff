//! The answer cache: answers from upstreams by question, for as long as
//! their smallest TTL (negative answers: the SOA's, RFC 2308), served with
//! their TTLs counted down. Capacity is counted in records (a negative
//! answer counts one); when full, the oldest entry not used since the
//! clock hand last passed is evicted (second chance, close to LRU at a
//! fraction of the bookkeeping). Ages are whole seconds, so a TTL may be
//! counted down up to a second early, never late.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::wire::Answer;

/// One cached answer. Times are whole seconds since the cache's epoch,
/// which keeps an entry small (the map holds thousands).
#[derive(Debug)]
struct Entry {
    answer: Answer,
    stored: u32,
    expires: u32,
    used: bool,
    cost: u32,
    seq: u32,
}

/// Cache statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held.
    pub entries: u64,
    /// Records held (what the capacity counts).
    pub records: u64,
    /// Capacity in records.
    pub capacity: u64,
    /// Answers served from the cache.
    pub hits: u64,
    /// Questions that went upstream.
    pub misses: u64,
}

/// The cache. Keys are shared between the map and the clock.
pub struct Cache {
    epoch: Instant,
    map: HashMap<Arc<[u8]>, Entry>,
    /// Keys in insertion order with their entry's sequence number; a pair
    /// whose entry was replaced or removed is stale and skipped.
    clock: VecDeque<(Arc<[u8]>, u32)>,
    next_seq: u32,
    records: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.map.len())
            .field("records", &self.records)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// An empty cache of `capacity` records (0: nothing is cached).
    pub fn new(capacity: usize) -> Self {
        Self {
            epoch: Instant::now(),
            map: HashMap::new(),
            clock: VecDeque::new(),
            next_seq: 0,
            records: 0,
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    /// Seconds from the epoch to `now` (0 before it).
    fn secs(&self, now: Instant) -> u32 {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Changes the capacity, evicting what no longer fits.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.records > self.capacity && self.evict_one() {}
    }

    /// The answer for `key` and the whole seconds it has been stored, if
    /// it has not expired; counts a hit or a miss.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<(Answer, u32)> {
        let now = self.secs(now);
        let hit = match self.map.get_mut(key) {
            Some(e) if now < e.expires => {
                e.used = true;
                Some((e.answer.clone(), now - e.stored))
            }
            Some(_) => {
                self.remove(key);
                None
            }
            None => None,
        };
        if hit.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        hit
    }

    /// Stores `answer` for `ttl` seconds (0: not at all).
    pub fn insert(&mut self, key: &[u8], answer: Answer, ttl: u32, now: Instant) {
        let cost = answer.records().max(1);
        if ttl == 0 || cost > self.capacity {
            return;
        }
        self.remove(key);
        while self.records + cost > self.capacity && self.evict_one() {}
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let key: Arc<[u8]> = Arc::from(key);
        self.clock.push_back((key.clone(), seq));
        self.records += cost;
        let stored = self.secs(now);
        self.map.insert(
            key,
            Entry {
                answer,
                stored,
                expires: stored.saturating_add(ttl),
                used: false,
                cost: u32::try_from(cost).unwrap_or(u32::MAX),
                seq,
            },
        );
        // Stale pairs (replaced or expired entries) are dropped once they
        // outnumber the live ones.
        if self.clock.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.clock
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(e) = self.map.remove(key) {
            self.records -= e.cost as usize;
        }
    }

    /// Evicts one entry (second chance); false when there is none.
    fn evict_one(&mut self) -> bool {
        while let Some((key, seq)) = self.clock.pop_front() {
            match self.map.get_mut(&key) {
                Some(e) if e.seq == seq && e.used => {
                    e.used = false;
                    self.clock.push_back((key, seq));
                }
                Some(e) if e.seq == seq => {
                    self.remove(&key);
                    return true;
                }
                _ => {}
            }
        }
        false
    }

    /// Empties the cache; returns how many entries it held.
    pub fn flush(&mut self) -> u64 {
        let n = self.map.len() as u64;
        self.map = HashMap::new();
        self.clock = VecDeque::new();
        self.records = 0;
        n
    }

    /// Its statistics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.map.len() as u64,
            records: self.records as u64,
            capacity: self.capacity as u64,
            hits: self.hits,
            misses: self.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::{Name, RData, Record, rdata::A};

    use std::time::Duration;

    use super::*;

    fn answer(records: usize) -> Answer {
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        let owner = Name::from_ascii("x.example.").expect("name");
        for i in 0..records {
            let rdata = RData::A(A::new(10, 0, 0, i as u8));
            m.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
        }
        Answer::from_message(&m).expect("answer")
    }

    fn key(n: u8) -> Vec<u8> {
        vec![1, b'a' + n, 0, 0, 1, 0, 1]
    }

    #[test]
    fn expires_after_its_ttl_and_reports_its_age() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        c.insert(&key(0), answer(1), 30, t0);
        let (_, age) = c.get(&key(0), t0 + Duration::from_secs(12)).expect("hit");
        assert_eq!(age, 12);
        assert!(c.get(&key(0), t0 + Duration::from_secs(30)).is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.records), (1, 1, 0, 0));
    }

    #[test]
    fn capacity_counts_records_and_used_entries_get_a_second_chance() {
        let t0 = Instant::now();
        let mut c = Cache::new(4);
        c.insert(&key(0), answer(2), 60, t0);
        c.insert(&key(1), answer(1), 60, t0);
        c.insert(&key(2), answer(1), 60, t0);
        assert!(c.get(&key(0), t0).is_some());
        // Needs room for 2: key 0 was used, so keys 1 and 2 go.
        c.insert(&key(3), answer(2), 60, t0);
        assert!(c.get(&key(0), t0).is_some());
        assert!(c.get(&key(1), t0).is_none());
        assert!(c.get(&key(2), t0).is_none());
        assert!(c.get(&key(3), t0).is_some());
        assert_eq!(c.stats().records, 4);
        // Larger than the whole cache: not stored.
        c.insert(&key(4), answer(5), 60, t0);
        assert!(c.get(&key(4), t0).is_none());
        assert_eq!(c.flush(), 2);
        assert_eq!(c.stats().records, 0);
    }

    #[test]
    fn zero_capacity_or_ttl_caches_nothing() {
        let t0 = Instant::now();
        let mut c = Cache::new(0);
        c.insert(&key(0), answer(1), 60, t0);
        assert!(c.get(&key(0), t0).is_none());
        let mut c = Cache::new(10);
        c.insert(&key(0), answer(1), 0, t0);
        assert!(c.get(&key(0), t0).is_none());
    }

    #[test]
    fn reinserting_does_not_grow_the_clock_without_bound() {
        let t0 = Instant::now();
        let mut c = Cache::new(100);
        for i in 0..10_000u64 {
            c.insert(&key(0), answer(1), 1, t0 + Duration::from_secs(i));
        }
        assert!(c.clock.len() <= 2 * c.map.len() + 65);
        assert_eq!(c.stats().records, 1);
    }
}
