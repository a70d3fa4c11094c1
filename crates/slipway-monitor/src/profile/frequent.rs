//! Frequent items by Misra-Gries with `k` counters, mergeable as in Agarwal et al.,
//! "Mergeable summaries" (2012).
//!
//! Every kept count is a lower bound: the true count of a value lies in
//! `[count, count + max_error]`, and a value not kept occurred at most `max_error` times.
//! `max_error` is certified, not estimated: each decrement step adds the amount it took off
//! every counter, and it never exceeds `(n - Σ counts) / (k + 1)` <= `n / (k + 1)`. While no
//! value has been dropped (at most `k` distinct values), `max_error` is 0 and the counts are
//! exact, which is what makes categorical drift from profiles exact.
//!
//! Nothing depends on hash order: the decrement amount is a function of the counts only and
//! the items serialise sorted, so building and merging are deterministic.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// Default counter budget: columns with at most this many distinct values are exact.
pub const DEFAULT_CAPACITY: usize = 128;

/// A number used as a frequent-items key: equal when the numbers are equal (-0.0 is 0.0),
/// ordered numerically, serialised as a plain JSON number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NumKey(pub f64);

impl NumKey {
    fn bits(self) -> u64 {
        if self.0 == 0.0 { 0 } else { self.0.to_bits() }
    }
}

impl PartialEq for NumKey {
    fn eq(&self, other: &Self) -> bool {
        self.bits() == other.bits()
    }
}
impl Eq for NumKey {}
impl Hash for NumKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bits().hash(state);
    }
}
impl PartialOrd for NumKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for NumKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self == other { std::cmp::Ordering::Equal } else { self.0.total_cmp(&other.0) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "K: Serialize + Ord + Clone", deserialize = "K: Deserialize<'de> + Hash + Eq"))]
#[serde(try_from = "Wire<K>", into = "Wire<K>")]
pub struct FrequentItems<K: Hash + Eq> {
    capacity: usize,
    n: u64,
    max_error: u64,
    counts: HashMap<K, u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<K> {
    capacity: usize,
    n: u64,
    max_error: u64,
    /// (value, count), most frequent first, ties by value.
    items: Vec<(K, u64)>,
}

impl<K: Hash + Eq + Ord + Clone> From<FrequentItems<K>> for Wire<K> {
    fn from(f: FrequentItems<K>) -> Wire<K> {
        let items = f.sorted_items();
        Wire { capacity: f.capacity, n: f.n, max_error: f.max_error, items }
    }
}

impl<K: Hash + Eq> TryFrom<Wire<K>> for FrequentItems<K> {
    type Error = String;
    fn try_from(w: Wire<K>) -> Result<Self, String> {
        if w.capacity == 0 || w.items.len() > w.capacity {
            return Err(format!("frequent items: {} items for capacity {}", w.items.len(), w.capacity));
        }
        let kept: u64 = w.items.iter().map(|i| i.1).sum();
        if kept > w.n || (w.max_error == 0 && kept != w.n) {
            return Err("frequent items: counts do not add up to n".into());
        }
        let counts: HashMap<K, u64> = w.items.into_iter().collect();
        Ok(FrequentItems { capacity: w.capacity, n: w.n, max_error: w.max_error, counts })
    }
}

impl<K: Hash + Eq + Ord + Clone> FrequentItems<K> {
    pub fn new(capacity: usize) -> Self {
        FrequentItems { capacity: capacity.max(1), n: 0, max_error: 0, counts: HashMap::new() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Values counted (kept or not).
    pub fn total(&self) -> u64 {
        self.n
    }

    /// The certified bound on how much any count is under its true value.
    pub fn max_error(&self) -> u64 {
        self.max_error
    }

    /// Whether every count is exact (no value was ever dropped).
    pub fn is_exact(&self) -> bool {
        self.max_error == 0
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The kept count of a value (a lower bound on its true count; 0 if not kept).
    pub fn count<Q>(&self, key: &Q) -> u64
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// The kept (value, count) pairs, most frequent first, ties by value.
    pub fn sorted_items(&self) -> Vec<(K, u64)> {
        let mut items: Vec<(K, u64)> = self.counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items
    }

    pub fn counts(&self) -> &HashMap<K, u64> {
        &self.counts
    }

    /// Counts one occurrence; borrows the key so a kept string is not allocated again.
    pub fn insert<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.n += 1;
        if let Some(c) = self.counts.get_mut(key) {
            *c += 1;
        } else if self.counts.len() < self.capacity {
            self.counts.insert(key.to_owned(), 1);
        } else {
            // The new value and every counter lose one: k + 1 occurrences cancelled.
            self.max_error += 1;
            self.counts.retain(|_, c| {
                *c -= 1;
                *c > 0
            });
        }
    }

    /// Adds another summary: counts add, then, if more than `capacity` values are kept, the
    /// (capacity + 1)-th largest count is taken off every counter.
    pub fn merge(&mut self, other: &FrequentItems<K>) {
        self.n += other.n;
        self.max_error += other.max_error;
        for (k, c) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += c;
        }
        self.prune();
    }

    fn prune(&mut self) {
        if self.counts.len() <= self.capacity {
            return;
        }
        let mut values: Vec<u64> = self.counts.values().copied().collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        let cut = values[self.capacity];
        self.max_error += cut;
        self.counts.retain(|_, c| {
            *c = c.saturating_sub(cut);
            *c > 0
        });
    }

    /// Re-keys every counter (numbers to their text, when a column turns out to be text).
    /// Keys that collide add their counts.
    pub fn map_keys<J: Hash + Eq + Ord + Clone>(&self, f: impl Fn(&K) -> J) -> FrequentItems<J> {
        let mut out = FrequentItems::<J>::new(self.capacity);
        out.n = self.n;
        out.max_error = self.max_error;
        for (k, c) in &self.counts {
            *out.counts.entry(f(k)).or_insert(0) += c;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zipf_stream(n: usize, seed: u64) -> Vec<u32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Heavy-tailed: small values are frequent.
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (1.0 / (u + 0.002)) as u32
            })
            .collect()
    }

    fn truth(values: &[u32]) -> HashMap<u32, u64> {
        let mut t = HashMap::new();
        for v in values {
            *t.entry(*v).or_insert(0) += 1;
        }
        t
    }

    fn check_bound(f: &FrequentItems<u32>, t: &HashMap<u32, u64>) {
        let n: u64 = t.values().sum();
        assert_eq!(f.total(), n);
        assert!(f.max_error() * (f.capacity() as u64 + 1) <= n, "bound n/(k+1) broken");
        for (v, &c) in t {
            let kept = f.count(v);
            assert!(kept <= c && c <= kept + f.max_error(), "value {v}: kept {kept}, true {c}, err {}", f.max_error());
        }
    }

    #[test]
    fn exact_while_distinct_values_fit() {
        let mut f = FrequentItems::<String>::new(4);
        for s in ["a", "b", "a", "c", "d", "a"] {
            f.insert(s);
        }
        assert!(f.is_exact());
        assert_eq!(f.sorted_items()[0], ("a".to_string(), 3));
        f.insert("e");
        assert!(!f.is_exact());
        assert_eq!(f.count("a"), 2);
        assert_eq!(f.max_error(), 1);
    }

    #[test]
    fn streaming_and_merged_counts_keep_the_bound() {
        let values = zipf_stream(60_000, 7);
        let t = truth(&values);
        let mut whole = FrequentItems::<u32>::new(32);
        for v in &values {
            whole.insert(v);
        }
        check_bound(&whole, &t);
        assert!(!whole.is_exact());
        // Any value above n/(k+1) must be kept.
        for (v, &c) in &t {
            if c > values.len() as u64 / 33 {
                assert!(whole.count(v) > 0);
            }
        }
        // Parts of uneven sizes, merged as a chain and as a tree.
        let cuts = [0, 5_000, 5_001, 22_000, 40_000, 60_000];
        let parts: Vec<FrequentItems<u32>> = cuts
            .windows(2)
            .map(|w| {
                let mut f = FrequentItems::new(32);
                for v in &values[w[0]..w[1]] {
                    f.insert(v);
                }
                f
            })
            .collect();
        let mut chain = parts[0].clone();
        for p in &parts[1..] {
            chain.merge(p);
        }
        check_bound(&chain, &t);
        let mut left = parts[0].clone();
        left.merge(&parts[1]);
        let mut right = parts[2].clone();
        right.merge(&parts[3]);
        right.merge(&parts[4]);
        left.merge(&right);
        check_bound(&left, &t);
    }

    #[test]
    fn exact_parts_merge_to_the_exact_whole_and_round_trip() {
        let values: Vec<u32> = (0..1000).map(|i| (i * 7) % 50).collect();
        let mut whole = FrequentItems::<u32>::new(64);
        let (mut a, mut b) = (FrequentItems::new(64), FrequentItems::new(64));
        for (i, v) in values.iter().enumerate() {
            whole.insert(v);
            if i < 300 { a.insert(v) } else { b.insert(v) }
        }
        a.merge(&b);
        assert_eq!(a, whole);
        assert!(a.is_exact());
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<FrequentItems<u32>>(&text).unwrap(), whole);
        let bad = r#"{"capacity":2,"n":5,"max_error":0,"items":[[1,2],[2,2]]}"#;
        assert!(serde_json::from_str::<FrequentItems<u32>>(bad).is_err());
    }
}
