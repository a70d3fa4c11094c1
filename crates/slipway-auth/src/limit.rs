//! The failed-login throttle: per address and per user name, in memory fixed at start.
//!
//! Keys are attacker-chosen (any user name, existing or not; any address), so a map per key
//! would grow with the attack. Instead a count-min sketch of token buckets: `ROWS` rows of
//! `width` cells, each key hashed to one cell per row. A failure takes a token from each of its
//! cells; a key is throttled only when all its cells are empty. Two keys sharing a cell can only
//! make each other empty sooner, so collisions throttle more, never less. The hash is keyed
//! with a per-process secret, so nobody can choose names that collide with a victim's on purpose.
//!
//! Each cell is one `AtomicU64` updated by compare-exchange, so checks never lock or wait:
//! tokens spent (16 bits; a zero cell is a full bucket) and the last refill time (48 bits of
//! milliseconds since the throttle was made, about 8900 years).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ring::hmac;

use crate::random_bytes;

const ROWS: usize = 4;
const CELL_BYTES: usize = size_of::<AtomicU64>();
const STAMP_BITS: u32 = 48;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;

pub struct Throttle {
    cells: Box<[AtomicU64]>,
    width: usize,
    burst: u64,
    refill_ms: u64,
    key: hmac::Key,
    epoch: Instant,
}

impl Throttle {
    pub const DEFAULT_BUDGET_BYTES: usize = 1 << 20;
    pub const DEFAULT_BURST: u32 = 10;
    pub const DEFAULT_REFILL: Duration = Duration::from_secs(10);

    /// `budget_bytes` of cells (at least one per row); a key may fail `burst` times (1..=65535)
    /// in a row and gets one try back per `refill`.
    pub fn new(budget_bytes: usize, burst: u32, refill: Duration) -> Self {
        let width = (budget_bytes / (ROWS * CELL_BYTES)).max(1);
        let cells = (0..ROWS * width).map(|_| AtomicU64::new(0)).collect();
        let refill_ms = u64::try_from(refill.as_millis()).unwrap_or(STAMP_MASK).clamp(1, STAMP_MASK);
        Throttle {
            cells,
            width,
            burst: u64::from(burst.clamp(1, u32::from(u16::MAX))),
            refill_ms,
            key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
            epoch: Instant::now(),
        }
    }

    /// Err(retry_after) when the key has no tokens left in every row (count-min: the min over rows); does not take a token.
    pub fn check(&self, key: &[u8]) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// A failure takes one token from the key's cell in every row.
    pub fn fail(&self, key: &[u8]) {
        self.fail_at(key, Instant::now());
    }

    /// [`check`](Self::check) at a given time, so tests can move the clock instead of sleeping.
    pub fn check_at(&self, key: &[u8], now: Instant) -> Result<(), Duration> {
        let now = self.millis(now);
        let mut wait = u64::MAX;
        for i in self.cells_of(key) {
            let (spent, stamp) = self.refilled(self.cells[i].load(Ordering::Relaxed), now);
            if spent < self.burst {
                return Ok(());
            }
            // The next token in this cell comes one period after its last refill.
            wait = wait.min((stamp + self.refill_ms).saturating_sub(now));
        }
        Err(Duration::from_millis(wait))
    }

    /// [`fail`](Self::fail) at a given time.
    pub fn fail_at(&self, key: &[u8], now: Instant) {
        let now = self.millis(now);
        for i in self.cells_of(key) {
            let cell = &self.cells[i];
            let mut current = cell.load(Ordering::Relaxed);
            loop {
                let (spent, stamp) = self.refilled(current, now);
                // An empty bucket stays empty: tokens cannot go below zero.
                let next = ((spent + 1).min(self.burst) << STAMP_BITS) | stamp;
                if next == current {
                    break;
                }
                match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
        }
    }

    /// The cells' memory, fixed at construction.
    pub fn memory_bytes(&self) -> usize {
        self.cells.len() * CELL_BYTES
    }

    fn millis(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(ms).unwrap_or(STAMP_MASK).min(STAMP_MASK)
    }

    /// One cell index per row, from one keyed MAC split into four 64-bit hashes.
    fn cells_of(&self, key: &[u8]) -> [usize; ROWS] {
        let tag = hmac::sign(&self.key, key);
        let bytes = tag.as_ref();
        let width = self.width as u64;
        std::array::from_fn(|row| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[row * 8..row * 8 + 8]);
            // `% width` is below `width`, a usize, so the cast cannot truncate.
            row * self.width + (u64::from_le_bytes(word) % width) as usize
        })
    }

    /// The cell's (spent, stamp) with the refills due by `now` applied.
    fn refilled(&self, cell: u64, now: u64) -> (u64, u64) {
        let (spent, stamp) = (cell >> STAMP_BITS, cell & STAMP_MASK);
        if spent == 0 {
            // A full bucket's clock starts at its next failure.
            return (0, now);
        }
        let periods = now.saturating_sub(stamp) / self.refill_ms;
        if periods >= spent { (0, now) } else { (spent - periods, stamp + periods * self.refill_ms) }
    }
}

impl Default for Throttle {
    /// The server's defaults: 1 MiB, 10 failures, one back per 10 s.
    fn default() -> Self {
        Throttle::new(Self::DEFAULT_BUDGET_BYTES, Self::DEFAULT_BURST, Self::DEFAULT_REFILL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_S: Duration = Duration::from_secs(10);

    #[test]
    fn ten_failures_block_and_one_comes_back_per_period() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(t.check_at(b"alice", t0), Ok(()));
            t.fail_at(b"alice", t0);
        }
        assert_eq!(t.check_at(b"alice", t0), Err(TEN_S));
        assert_eq!(t.check_at(b"alice", t0 + Duration::from_secs(3)), Err(Duration::from_secs(7)));
        // One period later one more try, and failing it blocks again for a full period.
        let t1 = t0 + TEN_S;
        assert_eq!(t.check_at(b"alice", t1), Ok(()));
        t.fail_at(b"alice", t1);
        assert_eq!(t.check_at(b"alice", t1), Err(TEN_S));
        // Checking takes nothing: many checks later the count is unchanged.
        let t2 = t1 + TEN_S;
        for _ in 0..100 {
            assert_eq!(t.check_at(b"alice", t2), Ok(()));
        }
        t.fail_at(b"alice", t2);
        assert!(t.check_at(b"alice", t2).is_err());
        // After ten idle periods the bucket is full again: ten more failures allowed.
        let t3 = t2 + 10 * TEN_S;
        for _ in 0..10 {
            assert_eq!(t.check_at(b"alice", t3), Ok(()));
            t.fail_at(b"alice", t3);
        }
        assert!(t.check_at(b"alice", t3).is_err());
    }

    #[test]
    fn other_keys_are_unaffected() {
        let t = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..20 {
            t.fail_at(b"mallory", t0);
        }
        assert!(t.check_at(b"mallory", t0).is_err());
        for other in [b"alice".as_slice(), b"bob", b"mallorx", b"", b"10.0.0.1"] {
            assert_eq!(t.check_at(other, t0), Ok(()), "{other:?}");
        }
    }

    #[test]
    fn collisions_only_throttle_more() {
        // One cell per row: every key shares every cell.
        let t = Throttle::new(1, 3, TEN_S);
        assert_eq!(t.memory_bytes(), ROWS * CELL_BYTES);
        let t0 = Instant::now();
        for _ in 0..3 {
            t.fail_at(b"attacker", t0);
        }
        assert!(t.check_at(b"attacker", t0).is_err());
        assert!(t.check_at(b"innocent", t0).is_err(), "a shared cell is shared");
    }

    #[test]
    fn memory_is_fixed_by_the_budget() {
        let t = Throttle::default();
        assert_eq!(t.memory_bytes(), 1 << 20);
        assert_eq!(t.cells.len(), (1 << 20) / 8);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            t.fail_at(&i.to_le_bytes(), t0);
        }
        assert_eq!(t.memory_bytes(), 1 << 20);
        assert_eq!(Throttle::new(1000, 10, TEN_S).memory_bytes(), 992, "rounded down to whole rows");
    }

    #[test]
    fn concurrent_failures_are_all_counted() {
        let t = Throttle::new(1 << 12, 60_000, TEN_S);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        t.fail_at(b"key", t0);
                    }
                });
            }
        });
        for i in t.cells_of(b"key") {
            assert_eq!(t.cells[i].load(Ordering::Relaxed) >> STAMP_BITS, 4000);
        }
    }

    #[test]
    fn a_clock_before_the_epoch_or_far_ahead_does_not_panic() {
        let t = Throttle::new(64, 1, Duration::MAX);
        let before = t.epoch.checked_sub(Duration::from_secs(1)).unwrap_or(t.epoch);
        t.fail_at(b"k", before);
        assert!(t.check_at(b"k", before).is_err());
        let far = t.epoch + Duration::from_secs(1 << 40);
        assert!(t.check_at(b"k", far).is_ok());
        t.fail_at(b"k", far);
        assert!(t.check_at(b"k", far).is_err());
    }
}
