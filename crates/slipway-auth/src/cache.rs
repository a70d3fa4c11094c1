//! Verified credentials, remembered for a while so the mlflow client, which sends its password
//! with every request, costs one argon2id hash per `ttl` rather than one per request.
//!
//! Entries are keyed by HMAC-SHA-256 under a per-process random key, so neither a password nor
//! an offline-attackable hash of one is ever in memory past the request. Each entry also
//! remembers the auth epoch it was built at; any change to who someone is or may do bumps the
//! epoch, which retires every entry at once.
//!
//! Eviction is first-in first-out: with one `ttl` for all, insertion order is expiry order, so
//! the front of the queue is always the entry to drop (expired first, else the oldest), and a
//! hot entry costs at most one re-verification per `ttl`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ring::hmac;

use crate::random_bytes;

type Key = [u8; 32];

pub struct CredentialCache<V: Clone> {
    key: hmac::Key,
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    map: HashMap<Key, Entry<V>>,
    /// Insertion order; an item whose `seq` no longer matches its entry is a leftover of a
    /// replaced or removed entry and is skipped.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
}

struct Entry<V> {
    value: V,
    epoch: u64,
    at: Instant,
    seq: u64,
}

impl<V: Clone> CredentialCache<V> {
    /// At most `capacity` entries (at least one), each valid for `ttl` after insertion.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        CredentialCache {
            key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
            capacity: capacity.max(1),
            ttl,
            inner: Mutex::new(Inner { map: HashMap::new(), order: VecDeque::new(), next_seq: 0 }),
        }
    }

    pub fn get(&self, user: &str, password: &str, epoch: u64) -> Option<V> {
        self.get_at(user, password, epoch, Instant::now())
    }

    pub fn insert(&self, user: &str, password: &str, epoch: u64, value: V) {
        self.insert_at(user, password, epoch, value, Instant::now());
    }

    /// HMAC-SHA-256 of `user \0 password` under this cache's key. The NUL cannot occur in a
    /// parsed user name, so no two pairs share an input.
    pub fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`get`](Self::get) at a given time, so tests can move the clock instead of sleeping.
    pub fn get_at(&self, user: &str, password: &str, epoch: u64, now: Instant) -> Option<V> {
        let key = self.key(user, password);
        let mut inner = self.lock();
        let entry = inner.map.get(&key)?;
        if entry.epoch == epoch && !self.expired(entry, now) {
            return Some(entry.value.clone());
        }
        // Epochs only move forward, so a stale entry can never be valid again.
        inner.map.remove(&key);
        None
    }

    /// [`insert`](Self::insert) at a given time.
    pub fn insert_at(&self, user: &str, password: &str, epoch: u64, value: V, now: Instant) {
        let key = self.key(user, password);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.map.insert(key, Entry { value, epoch, at: now, seq });
        inner.order.push_back((key, seq));
        while let Some(&(front, front_seq)) = inner.order.front() {
            let live = inner.map.get(&front).filter(|e| e.seq == front_seq);
            let drop = match live {
                None => false,
                Some(e) => inner.map.len() > self.capacity || self.expired(e, now),
            };
            if live.is_some() && !drop {
                break;
            }
            inner.order.pop_front();
            if drop {
                inner.map.remove(&front);
            }
        }
        // Re-inserting live keys leaves leftovers behind the front; keep the queue bounded.
        if inner.order.len() > 2 * self.capacity + 16 {
            let map = &inner.map;
            inner.order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    fn expired(&self, entry: &Entry<V>, now: Instant) -> bool {
        now.saturating_duration_since(entry.at) >= self.ttl
    }

    /// A panic while holding the lock cannot leave the map inconsistent (each step is one std
    /// call), so a poisoned lock is still a usable cache.
    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn hits_only_for_the_same_user_password_and_epoch() {
        let c = CredentialCache::new(10, TTL);
        c.insert("alice", "right password", 7, 42u64);
        assert_eq!(c.get("alice", "right password", 7), Some(42));
        assert_eq!(c.get("alice", "wrong password", 7), None);
        assert_eq!(c.get("bob", "right password", 7), None);
        assert_eq!(c.get("alice", "right password", 8), None);
        // The stale entry is gone for good, even at its own epoch.
        assert_eq!(c.get("alice", "right password", 7), None);
        assert!(c.is_empty());
    }

    #[test]
    fn entries_expire_after_ttl() {
        let c = CredentialCache::new(10, TTL);
        let t0 = Instant::now();
        c.insert_at("alice", "pw", 1, "principal", t0);
        assert_eq!(c.get_at("alice", "pw", 1, t0 + TTL - Duration::from_millis(1)), Some("principal"));
        assert_eq!(c.get_at("alice", "pw", 1, t0 + TTL), None);
    }

    #[test]
    fn capacity_bounds_the_entries_and_the_oldest_go_first() {
        let c = CredentialCache::new(3, TTL);
        let t0 = Instant::now();
        for i in 0..10u32 {
            c.insert_at(&format!("user{i}"), "pw", 1, i, t0 + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(c.len(), 3);
        let now = t0 + Duration::from_secs(10);
        for i in 0..7u32 {
            assert_eq!(c.get_at(&format!("user{i}"), "pw", 1, now), None);
        }
        for i in 7..10u32 {
            assert_eq!(c.get_at(&format!("user{i}"), "pw", 1, now), Some(i));
        }
    }

    #[test]
    fn expired_entries_are_dropped_before_live_ones() {
        let c = CredentialCache::new(2, TTL);
        let t0 = Instant::now();
        c.insert_at("a", "pw", 1, 'a', t0);
        c.insert_at("b", "pw", 1, 'b', t0 + TTL / 2);
        c.insert_at("c", "pw", 1, 'c', t0 + TTL);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get_at("b", "pw", 1, t0 + TTL), Some('b'));
        assert_eq!(c.get_at("c", "pw", 1, t0 + TTL), Some('c'));
    }

    #[test]
    fn reinserting_one_key_keeps_memory_bounded() {
        let c = CredentialCache::new(4, TTL);
        let t0 = Instant::now();
        for i in 0..1000u64 {
            c.insert_at("alice", "pw", 1, i, t0);
        }
        assert_eq!(c.len(), 1);
        assert!(c.lock().order.len() <= 2 * 4 + 16);
        // A re-inserted key is as new as its last insertion: when room is needed, an entry
        // inserted after its first insertion but before its last goes first.
        for u in ["b", "c", "d"] {
            c.insert_at(u, "pw", 1, 0, t0);
        }
        c.insert_at("alice", "pw", 1, 1000, t0);
        c.insert_at("e", "pw", 1, 0, t0);
        assert_eq!(c.len(), 4);
        assert_eq!(c.get_at("b", "pw", 1, t0), None);
        assert_eq!(c.get_at("alice", "pw", 1, t0), Some(1000));
    }

    #[test]
    fn keys_separate_user_from_password_and_differ_per_process_key() {
        let c: CredentialCache<()> = CredentialCache::new(1, TTL);
        assert_eq!(c.key("alice", "pw"), c.key("alice", "pw"));
        assert_ne!(c.key("a", "b:c"), c.key("a:b", "c"));
        assert_ne!(c.key("ab", "c"), c.key("a", "bc"));
        let other: CredentialCache<()> = CredentialCache::new(1, TTL);
        assert_ne!(c.key("alice", "pw"), other.key("alice", "pw"));
    }
}
