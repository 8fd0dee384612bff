//! The answer cache: answers from upstreams by question, for as long as
//! their smallest TTL (negative answers: the SOA's, RFC 2308), served with
//! their TTLs counted down. Capacity is counted in records (a negative
//! answer counts one); when full, the clock hand sweeps the entries and
//! evicts the first not used since it last passed (second chance, close
//! to LRU at a fraction of the bookkeeping). Ages are whole seconds, so a
//! TTL may be counted down up to a second early, never late.
//!
//! Memory is what bounds a router's cache, so an entry is small: its
//! answer's bytes in the [`Store`] (read in place; their question
//! section is the entry's key, so the key is not stored twice), a
//! 20-byte slot in a slab (where the bytes are, times, a flag), and the
//! slot's number in a hash table of four-byte buckets. Freed slots are
//! reused; the slab never holds more slots than the capacity. Hashes
//! are SipHash with a random key per process: questions come from
//! clients, who must not be able to aim at one bucket.

use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use hashbrown::HashTable;

use crate::query::HEADER_LEN;
use crate::store::{Handle, Store};
use crate::wire::{self, Answer};

/// One cached answer. Times are whole seconds since the cache's epoch.
#[derive(Debug)]
struct Entry {
    answer: Handle,
    stored: u32,
    expires: u32,
    used: bool,
}

/// Bytes of an answer that count as one record against the capacity: an
/// answer costs its records or its size in these, whichever is more, so
/// the capacity bounds memory too (a client could otherwise fill it with
/// answers of one 64 KB record each).
const RECORD_BYTES: usize = 256;

/// Slack before the pools count as bloated (see
/// [`Cache::compact_if_bloated`]).
const COMPACT_SLACK: usize = 64 * 1024;

/// What `answer` costs against the capacity.
fn cost<B: AsRef<[u8]>>(answer: &Answer<B>) -> usize {
    answer
        .records()
        .max(answer.len().div_ceil(RECORD_BYTES))
        .max(1)
}

// The 20 bytes the module's documentation counts on.
const _: () = assert!(size_of::<Option<Entry>>() <= 20);

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

/// The cache.
pub struct Cache {
    epoch: Instant,
    hasher: RandomState,
    /// The slot of every entry, by its question.
    index: HashTable<u32>,
    /// Entries; a `None` slot is free and listed in `free`.
    slots: Vec<Option<Entry>>,
    /// The entries' answers.
    answers: Store,
    free: Vec<u32>,
    /// The clock hand: the next slot the eviction sweep looks at.
    hand: usize,
    records: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.index.len())
            .field("records", &self.records)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Whether two questions (wire name, type, class) are the same; names
/// compare in any case.
fn same_question(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    n == b.len()
        && n >= 4
        && a[..n - 4].eq_ignore_ascii_case(&b[..n - 4])
        && a[n - 4..] == b[n - 4..]
}

/// Does the stored answer `stored` answer the question `key`? Stored
/// questions are lower-cased at insert, like keys, and a wire name
/// delimits itself, so a byte match after the header says it.
fn answers(stored: &[u8], key: &[u8]) -> bool {
    stored.get(HEADER_LEN..HEADER_LEN + key.len()) == Some(key)
}

/// The question of the entry in `slot` (empty for a free slot).
fn question_of<'a>(slots: &[Option<Entry>], answers: &'a Store, slot: u32) -> &'a [u8] {
    match slots.get(slot as usize) {
        Some(Some(e)) => wire::question_section(answers.get(e.answer)),
        _ => &[],
    }
}

impl Cache {
    /// An empty cache of `capacity` records (0: nothing is cached).
    pub fn new(capacity: usize) -> Self {
        Self {
            epoch: Instant::now(),
            hasher: RandomState::new(),
            index: HashTable::new(),
            slots: Vec::new(),
            answers: Store::default(),
            free: Vec::new(),
            hand: 0,
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

    /// The slot holding the answer to `key` (lower-case), whose hash is
    /// `hash`.
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.index
            .find(hash, |&s| match &self.slots[s as usize] {
                Some(e) => answers(self.answers.get(e.answer), key),
                None => false,
            })
            .copied()
    }

    /// The answer for `key` and the whole seconds it has been stored, if
    /// it has not expired; counts a hit or a miss.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<(Answer<&[u8]>, u32)> {
        let now = self.secs(now);
        let hash = self.hasher.hash_one(key);
        let found = self.find(hash, key).map(|slot| {
            let live = matches!(&self.slots[slot as usize], Some(e) if now < e.expires);
            if !live {
                self.remove(slot, hash);
            }
            (slot, live)
        });
        match found {
            Some((slot, true)) => {
                self.hits += 1;
                let e = self.slots[slot as usize].as_mut()?;
                e.used = true;
                let age = now - e.stored;
                Some((Answer::stored(self.answers.get(e.answer)), age))
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    /// Stores a copy of `answer` to the question `key` for `ttl` seconds
    /// (0: not at all). An answer to another question is not stored.
    pub fn insert(&mut self, key: &[u8], answer: &Answer, ttl: u32, now: Instant) {
        let cost = cost(answer);
        if ttl == 0 || cost > self.capacity || !same_question(answer.question(), key) {
            return;
        }
        let hash = self.hasher.hash_one(key);
        if let Some(slot) = self.find(hash, key) {
            self.remove(slot, hash);
        }
        while self.records + cost > self.capacity && self.evict_one() {}
        let Some(handle) = self.answers.put(answer.bytes()) else {
            return;
        };
        // The stored question in the key's case, once, so that lookups
        // compare and hash bytes as they are (a reply takes the client's
        // case from its query).
        if let Some(name) = self
            .answers
            .get_mut(handle)
            .get_mut(HEADER_LEN..HEADER_LEN + key.len() - 4)
        {
            name.make_ascii_lowercase();
        }
        let stored = self.secs(now);
        let entry = Entry {
            answer: handle,
            stored,
            expires: stored.saturating_add(ttl),
            used: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                // Grow by doubling, but never past the capacity: an entry
                // costs at least one record.
                if self.slots.len() == self.slots.capacity() {
                    let room = self.capacity.saturating_sub(self.slots.len());
                    self.slots
                        .reserve_exact(self.slots.len().max(16).min(room.max(1)));
                }
                self.slots.push(Some(entry));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.records += cost;
        let Self {
            index,
            slots,
            answers,
            hasher,
            ..
        } = self;
        index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(question_of(slots, answers, s))
        });
        self.compact_if_bloated();
    }

    /// Copies the answers into new pools once the pools hold four times
    /// what the answers need: blocks freed in one size class are reused
    /// only by answers of that class, so answers of one size evicted for
    /// answers of another would otherwise keep their memory.
    fn compact_if_bloated(&mut self) {
        if self.answers.reserved() <= 4 * self.answers.used() + COMPACT_SLACK {
            return;
        }
        let mut fresh = Store::default();
        let moved: Option<Vec<Handle>> = self
            .slots
            .iter()
            .flatten()
            .map(|e| fresh.put(self.answers.get(e.answer)))
            .collect();
        // Every answer fitted once, so each fits again; if one did not,
        // the old pools stay.
        let Some(moved) = moved else {
            return;
        };
        for (e, handle) in self.slots.iter_mut().flatten().zip(moved) {
            e.answer = handle;
        }
        self.answers = fresh;
    }

    /// Empties `slot`, whose question's hash is `hash`.
    fn remove(&mut self, slot: u32, hash: u64) {
        let Some(Some(e)) = self.slots.get_mut(slot as usize).map(Option::take) else {
            return;
        };
        let answer = Answer::stored(self.answers.get(e.answer));
        self.records -= cost(&answer);
        if let Ok(found) = self.index.find_entry(hash, |&s| s == slot) {
            found.remove();
        }
        self.answers.free(e.answer);
        self.free.push(slot);
    }

    /// Evicts one entry (second chance); false when there is none.
    fn evict_one(&mut self) -> bool {
        if self.index.is_empty() {
            return false;
        }
        // Two sweeps at most: the first clears every used flag.
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let slot = self.hand;
            self.hand += 1;
            match &mut self.slots[slot] {
                Some(e) if e.used => e.used = false,
                Some(_) => {
                    let slot = u32::try_from(slot).unwrap_or(u32::MAX);
                    let hash = self
                        .hasher
                        .hash_one(question_of(&self.slots, &self.answers, slot));
                    self.remove(slot, hash);
                    return true;
                }
                None => {}
            }
        }
    }

    /// Empties the cache; returns how many entries it held.
    pub fn flush(&mut self) -> u64 {
        let n = self.index.len() as u64;
        *self = Self {
            epoch: self.epoch,
            hits: self.hits,
            misses: self.misses,
            ..Self::new(self.capacity)
        };
        n
    }

    /// Its statistics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.index.len() as u64,
            records: self.records as u64,
            capacity: self.capacity as u64,
            hits: self.hits,
            misses: self.misses,
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, TXT};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use std::time::Duration;

    use super::*;

    fn name(n: u8) -> String {
        format!("{}.example.", char::from(b'a' + n))
    }

    /// An answer to the question `key(n)` with `records` A records.
    fn answer_named(owner: &str, records: usize) -> Answer {
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        let owner = Name::from_ascii(owner).expect("name");
        m.add_query(Query::query(owner.clone(), RecordType::A));
        for i in 0..records {
            let rdata = RData::A(A::new(10, 0, 0, i as u8));
            m.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
        }
        Answer::from_message(m).expect("answer")
    }

    fn answer(n: u8, records: usize) -> Answer {
        answer_named(&name(n), records)
    }

    fn key(n: u8) -> Vec<u8> {
        let mut k = vec![1, b'a' + n, 7];
        k.extend_from_slice(b"example\0\0\x01\0\x01");
        k
    }

    #[test]
    fn expires_after_its_ttl_and_reports_its_age() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        c.insert(&key(0), &answer(0, 1), 30, t0);
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
        c.insert(&key(0), &answer(0, 2), 60, t0);
        c.insert(&key(1), &answer(1, 1), 60, t0);
        c.insert(&key(2), &answer(2, 1), 60, t0);
        assert!(c.get(&key(0), t0).is_some());
        // Needs room for 2: key 0 was used, so keys 1 and 2 go.
        c.insert(&key(3), &answer(3, 2), 60, t0);
        assert!(c.get(&key(0), t0).is_some());
        assert!(c.get(&key(1), t0).is_none());
        assert!(c.get(&key(2), t0).is_none());
        assert!(c.get(&key(3), t0).is_some());
        assert_eq!(c.stats().records, 4);
        // Larger than the whole cache: not stored.
        c.insert(&key(4), &answer(4, 5), 60, t0);
        assert!(c.get(&key(4), t0).is_none());
        assert_eq!(c.flush(), 2);
        assert_eq!(c.stats().records, 0);
        // A flush gives the answers' memory back.
        assert_eq!((c.answers.used(), c.answers.reserved()), (0, 0));
        assert_eq!(c.slots.capacity(), 0);
        // Usable after a flush.
        c.insert(&key(5), &answer(5, 1), 60, t0);
        assert!(c.get(&key(5), t0).is_some());
    }

    #[test]
    fn zero_capacity_or_ttl_caches_nothing() {
        let t0 = Instant::now();
        let mut c = Cache::new(0);
        c.insert(&key(0), &answer(0, 1), 60, t0);
        assert!(c.get(&key(0), t0).is_none());
        let mut c = Cache::new(10);
        c.insert(&key(0), &answer(0, 1), 0, t0);
        assert!(c.get(&key(0), t0).is_none());
    }

    #[test]
    fn the_key_is_the_answers_question_in_any_case_and_another_is_refused() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        c.insert(&key(0), &answer_named("A.Example.", 1), 60, t0);
        assert!(c.get(&key(0), t0).is_some());
        c.insert(&key(1), &answer(2, 1), 60, t0);
        assert!(c.get(&key(1), t0).is_none());
        assert!(c.get(&key(2), t0).is_none());
        // Same name, another type: another question.
        let mut aaaa = key(0);
        let at = aaaa.len() - 3;
        aaaa[at] = 28;
        assert!(c.get(&aaaa, t0).is_none());
        assert_eq!(c.stats().entries, 1);
    }

    /// An answer to `owner`'s TXT question with one record of `len`
    /// bytes of text.
    fn answer_txt(owner: &str, len: usize) -> Answer {
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        let owner = Name::from_ascii(owner).expect("name");
        m.add_query(Query::query(owner.clone(), RecordType::TXT));
        let text: Vec<String> = (0..len.div_ceil(255))
            .map(|i| "x".repeat(255.min(len - i * 255)))
            .collect();
        m.add_answer(Record::from_rdata(owner, 60, RData::TXT(TXT::new(text))));
        Answer::from_message(m).expect("answer")
    }

    #[test]
    fn large_answers_cost_their_size_and_their_pools_are_given_back() {
        let t0 = Instant::now();
        let mut c = Cache::new(100);
        let big = answer_txt("big.example.", 5000);
        assert_eq!(big.records(), 1);
        c.insert(big.question(), &big, 60, t0);
        assert_eq!(c.stats().records, big.len().div_ceil(RECORD_BYTES) as u64);
        // A capacity of 1000 records holds at most 1000 * 256 bytes of
        // answers, however few records they have.
        let mut c = Cache::new(1000);
        let each = cost(&answer_txt("t199.example.", 2000));
        for i in 0..200 {
            let a = answer_txt(&format!("t{i}.example."), 2000);
            c.insert(a.question(), &a, 60, t0);
        }
        assert!(c.answers.used() <= 1000 * RECORD_BYTES * 3 / 2);
        assert_eq!(c.stats().entries, (1000 / each) as u64);
        let large_pools = c.answers.reserved();
        // Small answers evict the large ones; the large ones' pool is
        // not kept.
        let small = |i: usize| answer_named(&format!("s{i}.example."), 1);
        for i in 0..5000 {
            let a = small(i);
            c.insert(a.question(), &a, 60, t0);
        }
        assert_eq!(c.stats().entries, 1000);
        assert!(
            c.answers.reserved() <= 4 * c.answers.used() + COMPACT_SLACK,
            "{} bytes held for {}",
            c.answers.reserved(),
            c.answers.used()
        );
        assert!(c.answers.reserved() < large_pools, "the large pool went");
        // Every entry left still has its own answer.
        let found = (0..5000)
            .filter(|&i| {
                let a = small(i);
                c.get(a.question(), t0)
                    .is_some_and(|(found, _)| found.bytes() == a.bytes())
            })
            .count();
        assert_eq!(found, 1000);
    }

    #[test]
    fn one_large_answer_reserves_its_size_and_never_keeps_the_pools_bloated() {
        let t0 = Instant::now();
        let mut c = Cache::new(10_000);
        let big = answer_txt("big.example.", 60_000);
        c.insert(big.question(), &big, 60, t0);
        assert!(
            c.answers.reserved() < 2 * 65_535,
            "{}",
            c.answers.reserved()
        );
        // Below the compaction bound after every insert, so no insert
        // copies the cache.
        for i in 0..300 {
            let a = answer_named(&format!("s{i}.example."), 1 + i % 20);
            c.insert(a.question(), &a, 60, t0);
            assert!(
                c.answers.reserved() <= 4 * c.answers.used() + COMPACT_SLACK,
                "after {i}: {} bytes held for {}",
                c.answers.reserved(),
                c.answers.used()
            );
        }
    }

    #[test]
    fn slots_are_reused_and_never_outnumber_the_capacity() {
        let t0 = Instant::now();
        let mut c = Cache::new(100);
        for i in 0..10_000u64 {
            c.insert(&key(0), &answer(0, 1), 1, t0 + Duration::from_secs(i));
        }
        assert_eq!(c.slots.len(), 1);
        assert_eq!(c.stats().records, 1);
        // Many names through a small cache: evictions free slots for the
        // next ones, and every entry left can be found.
        let mut c = Cache::new(50);
        let names: Vec<String> = (0..1000).map(|i| format!("n{i}.example.")).collect();
        for n in &names {
            let a = answer_named(n, 1);
            let k = a.question().to_vec();
            c.insert(&k, &a, 60, t0);
        }
        assert!(c.slots.len() <= 50, "{} slots", c.slots.len());
        assert_eq!(c.stats().entries, 50);
        let found = names
            .iter()
            .filter(|n| {
                let k = answer_named(n, 1).question().to_vec();
                c.get(&k, t0).is_some()
            })
            .count();
        assert_eq!(found, 50);
    }
}
