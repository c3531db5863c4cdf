//! Byte-weighted eviction policies. The cache uses [`S3Fifo`]; [`Lru`] is the
//! baseline it was measured against (`bench/cache/eviction-sim.sh`, results in
//! docs/benchmarks.md). Both are public so the simulation runs this code, not
//! a copy of it.
//!
//! Entries are removed lazily from the queues: a queue slot remembers the
//! sequence number the entry had when it was queued, and a slot whose entry has
//! since been removed or re-queued is skipped when it reaches the front. Queues
//! are compacted when stale slots outnumber live ones.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// What the cache needs from a policy. Capacity is the caller's business: it
/// calls [`EvictionPolicy::evict`] until the bytes it needs fit.
pub trait EvictionPolicy<K> {
    /// Adds an entry (which must not be present).
    fn insert(&mut self, key: K, bytes: u64);
    /// Records a hit. Returns false when the key is not present.
    fn touch(&mut self, key: &K) -> bool;
    fn contains(&self, key: &K) -> bool;
    /// Removes an entry outside eviction (object dropped, drive removed).
    fn remove(&mut self, key: &K) -> Option<u64>;
    /// Chooses, removes and returns a victim.
    fn evict(&mut self) -> Option<(K, u64)>;
    /// Bytes of all entries.
    fn bytes(&self) -> u64;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Tells the policy the capacity it works within (S3-FIFO sizes its small
    /// queue from it).
    fn set_capacity(&mut self, bytes: u64);
}

const COMPACT_SLACK: usize = 1024;

/// Least recently used, by bytes.
pub struct Lru<K> {
    entries: HashMap<K, (u64, u64)>,
    queue: VecDeque<(K, u64)>,
    bytes: u64,
    next_seq: u64,
}

impl<K: Hash + Eq + Clone> Default for Lru<K> {
    fn default() -> Self {
        Lru {
            entries: HashMap::new(),
            queue: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
        }
    }
}

impl<K: Hash + Eq + Clone> Lru<K> {
    fn push(&mut self, key: K) -> u64 {
        self.next_seq += 1;
        self.queue.push_back((key, self.next_seq));
        if self.queue.len() > 2 * self.entries.len() + COMPACT_SLACK {
            let entries = &self.entries;
            self.queue
                .retain(|(k, seq)| entries.get(k).is_some_and(|(_, s)| s == seq));
        }
        self.next_seq
    }
}

impl<K: Hash + Eq + Clone> EvictionPolicy<K> for Lru<K> {
    fn insert(&mut self, key: K, bytes: u64) {
        let seq = self.push(key.clone());
        if let Some((old, _)) = self.entries.insert(key, (bytes, seq)) {
            self.bytes -= old;
        }
        self.bytes += bytes;
    }

    fn touch(&mut self, key: &K) -> bool {
        if !self.entries.contains_key(key) {
            return false;
        }
        let seq = self.push(key.clone());
        if let Some(entry) = self.entries.get_mut(key) {
            entry.1 = seq;
        }
        true
    }

    fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn remove(&mut self, key: &K) -> Option<u64> {
        let (bytes, _) = self.entries.remove(key)?;
        self.bytes -= bytes;
        Some(bytes)
    }

    fn evict(&mut self) -> Option<(K, u64)> {
        while let Some((key, seq)) = self.queue.pop_front() {
            if self.entries.get(&key).is_some_and(|(_, s)| *s == seq) {
                let (bytes, _) = self.entries.remove(&key).expect("checked above");
                self.bytes -= bytes;
                return Some((key, bytes));
            }
        }
        None
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn set_capacity(&mut self, _bytes: u64) {}
}

struct S3Entry {
    bytes: u64,
    seq: u64,
    freq: u8,
    in_main: bool,
}

/// S3-FIFO (Yang et al., SOSP 2023), weighted by bytes: new entries go to a
/// small FIFO (10% of capacity); those hit again before they leave it move to
/// the main FIFO, the rest leave a ghost so that a quick return goes straight
/// to main. Main is a FIFO with reinsertion (CLOCK-like, frequency capped at 3).
/// One-hit wonders (a single download of a big game) pass through the small
/// queue without flushing what is popular.
pub struct S3Fifo<K> {
    capacity: u64,
    small_ratio_percent: u64,
    promote_threshold: u8,
    entries: HashMap<K, S3Entry>,
    small: VecDeque<(K, u64)>,
    main: VecDeque<(K, u64)>,
    small_bytes: u64,
    main_bytes: u64,
    ghost: HashMap<K, u64>,
    ghost_queue: VecDeque<(K, u64)>,
    next_seq: u64,
}

impl<K: Hash + Eq + Clone> Default for S3Fifo<K> {
    fn default() -> Self {
        S3Fifo::with_parameters(10, 1)
    }
}

impl<K: Hash + Eq + Clone> S3Fifo<K> {
    /// `small_ratio_percent`: the small queue's share of capacity.
    /// `promote_threshold`: hits needed in the small queue to move to main.
    pub fn with_parameters(small_ratio_percent: u64, promote_threshold: u8) -> Self {
        S3Fifo {
            capacity: 0,
            small_ratio_percent,
            promote_threshold,
            entries: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            ghost: HashMap::new(),
            ghost_queue: VecDeque::new(),
            next_seq: 0,
        }
    }

    fn enqueue(&mut self, key: K, to_main: bool) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        let queue = if to_main {
            &mut self.main
        } else {
            &mut self.small
        };
        queue.push_back((key, seq));
        if queue.len() > 2 * self.entries.len() + COMPACT_SLACK {
            let entries = &self.entries;
            let live = |(k, s): &(K, u64)| entries.get(k).is_some_and(|e| e.seq == *s);
            self.small.retain(live);
            self.main.retain(live);
        }
        seq
    }

    fn remember_ghost(&mut self, key: K) {
        self.next_seq += 1;
        self.ghost.insert(key.clone(), self.next_seq);
        self.ghost_queue.push_back((key, self.next_seq));
        // The ghost remembers about as many entries as main holds.
        let limit = self.entries.len().max(16);
        while self.ghost.len() > limit {
            match self.ghost_queue.pop_front() {
                Some((k, seq)) => {
                    if self.ghost.get(&k) == Some(&seq) {
                        self.ghost.remove(&k);
                    }
                }
                None => break,
            }
        }
        if self.ghost_queue.len() > 2 * self.ghost.len() + COMPACT_SLACK {
            let ghost = &self.ghost;
            self.ghost_queue.retain(|(k, s)| ghost.get(k) == Some(s));
        }
    }

    fn take(&mut self, key: &K) -> u64 {
        let entry = self.entries.remove(key).expect("caller checked presence");
        if entry.in_main {
            self.main_bytes -= entry.bytes;
        } else {
            self.small_bytes -= entry.bytes;
        }
        entry.bytes
    }

    fn evict_small(&mut self) -> Option<(K, u64)> {
        while let Some((key, seq)) = self.small.pop_front() {
            let Some(entry) = self.entries.get(&key) else {
                continue;
            };
            if entry.seq != seq || entry.in_main {
                continue;
            }
            if entry.freq >= self.promote_threshold {
                let bytes = entry.bytes;
                let seq = self.enqueue(key.clone(), true);
                let entry = self.entries.get_mut(&key).expect("present");
                entry.in_main = true;
                entry.freq = 0;
                entry.seq = seq;
                self.small_bytes -= bytes;
                self.main_bytes += bytes;
                continue;
            }
            let bytes = self.take(&key);
            self.remember_ghost(key.clone());
            return Some((key, bytes));
        }
        None
    }

    fn evict_main(&mut self) -> Option<(K, u64)> {
        while let Some((key, seq)) = self.main.pop_front() {
            let Some(entry) = self.entries.get(&key) else {
                continue;
            };
            if entry.seq != seq || !entry.in_main {
                continue;
            }
            if entry.freq > 0 {
                let new_seq = self.enqueue(key.clone(), true);
                let entry = self.entries.get_mut(&key).expect("present");
                entry.freq -= 1;
                entry.seq = new_seq;
                continue;
            }
            let bytes = self.take(&key);
            return Some((key, bytes));
        }
        None
    }
}

impl<K: Hash + Eq + Clone> EvictionPolicy<K> for S3Fifo<K> {
    fn insert(&mut self, key: K, bytes: u64) {
        if self.entries.contains_key(&key) {
            self.remove(&key);
        }
        let to_main = self.ghost.remove(&key).is_some();
        let seq = self.enqueue(key.clone(), to_main);
        if to_main {
            self.main_bytes += bytes;
        } else {
            self.small_bytes += bytes;
        }
        self.entries.insert(
            key,
            S3Entry {
                bytes,
                seq,
                freq: 0,
                in_main: to_main,
            },
        );
    }

    fn touch(&mut self, key: &K) -> bool {
        match self.entries.get_mut(key) {
            Some(entry) => {
                entry.freq = (entry.freq + 1).min(3);
                true
            }
            None => false,
        }
    }

    fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn remove(&mut self, key: &K) -> Option<u64> {
        if !self.entries.contains_key(key) {
            return None;
        }
        Some(self.take(key))
    }

    fn evict(&mut self) -> Option<(K, u64)> {
        let small_target = self.capacity / 100 * self.small_ratio_percent;
        if self.small_bytes > small_target || self.main_bytes == 0 {
            if let Some(victim) = self.evict_small() {
                return Some(victim);
            }
        }
        self.evict_main().or_else(|| self.evict_small())
    }

    fn bytes(&self) -> u64 {
        self.small_bytes + self.main_bytes
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn set_capacity(&mut self, bytes: u64) {
        self.capacity = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill<P: EvictionPolicy<u32>>(policy: &mut P, capacity: u64, key: u32) -> Vec<u32> {
        let mut evicted = Vec::new();
        while policy.bytes() + 1 > capacity {
            evicted.push(policy.evict().unwrap().0);
        }
        policy.insert(key, 1);
        evicted
    }

    #[test]
    fn lru_evicts_least_recent() {
        let mut lru = Lru::default();
        for k in 0..3 {
            fill(&mut lru, 3, k);
        }
        lru.touch(&0);
        assert_eq!(fill(&mut lru, 3, 3), vec![1]);
        assert_eq!(lru.len(), 3);
        assert_eq!(lru.remove(&0), Some(1));
        assert_eq!(lru.evict().map(|v| v.0), Some(2));
        assert_eq!(lru.bytes(), 1);
    }

    #[test]
    fn s3fifo_keeps_reused_entries_through_a_scan() {
        let mut s3 = S3Fifo::default();
        s3.set_capacity(100);
        for k in 0..100 {
            fill(&mut s3, 100, k);
        }
        // Keys 90..100 are hot.
        for _ in 0..3 {
            for k in 90..100 {
                assert!(s3.touch(&k));
            }
        }
        // A scan of one-hit wonders twice the capacity.
        for k in 1000..1200 {
            fill(&mut s3, 100, k);
        }
        for k in 90..100 {
            assert!(s3.contains(&k), "hot key {k} was evicted by a scan");
        }
        assert!(s3.bytes() <= 100);
    }

    #[test]
    fn s3fifo_accounts_bytes_exactly() {
        let mut s3 = S3Fifo::default();
        s3.set_capacity(1000);
        for k in 0..50u32 {
            s3.insert(k, u64::from(k) + 1);
        }
        let total: u64 = (1..=50).sum();
        assert_eq!(s3.bytes(), total);
        assert_eq!(s3.remove(&9), Some(10));
        let mut evicted = 10;
        while let Some((_, b)) = s3.evict() {
            evicted += b;
        }
        assert_eq!(evicted, total);
        assert_eq!(s3.bytes(), 0);
        assert!(s3.is_empty());
    }

    #[test]
    fn ghost_hit_goes_to_main() {
        let mut s3 = S3Fifo::default();
        s3.set_capacity(10);
        for k in 0..10 {
            fill(&mut s3, 10, k);
        }
        // Key 0 was evicted to the ghost by this insert.
        assert_eq!(fill(&mut s3, 10, 10), vec![0]);
        fill(&mut s3, 10, 0);
        assert!(s3.entries.get(&0).unwrap().in_main);
    }
}
