//! What the middleware remembers between requests, so an authenticated request costs no query
//! when nothing changed: each principal's access and each token's record at the auth epoch they
//! were read at, and the experiment of each run and logged model (which never changes).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use slipway_auth::token::Scope;
use slipway_store::auth::{Access, Child, TokenRecord};

/// A bounded map: full, it starts over (entries are cheap to read again).
pub struct Memo<K, V> {
    map: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), capacity }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, value);
    }
}

/// A token as the middleware needs it, with the epoch it was read at.
#[derive(Clone)]
pub struct KnownToken {
    pub record: Arc<TokenRecord>,
    pub scopes: Arc<Vec<Scope>>,
    pub epoch: u64,
}

pub struct Memos {
    pub access: Memo<i64, Arc<Access>>,
    /// A principal's access widened by the groups an OpenID token names.
    pub claimed: Memo<(i64, Vec<String>), Arc<Access>>,
    pub tokens: Memo<String, KnownToken>,
    /// Runs and logged models only: their experiment is fixed at creation.
    pub parents: Memo<Child, String>,
    /// When each token's use was last written (at most once a minute).
    pub touched: Memo<String, i64>,
}

impl Memos {
    pub fn new() -> Self {
        Self {
            access: Memo::new(10_000),
            claimed: Memo::new(10_000),
            tokens: Memo::new(10_000),
            parents: Memo::new(100_000),
            touched: Memo::new(10_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn a_full_memo_starts_over_and_never_grows_past_its_capacity() {
        let m = Memo::new(2);
        m.insert(1, "a");
        m.insert(2, "b");
        assert_eq!((m.get(&1), m.get(&2)), (Some("a"), Some("b")));
        m.insert(3, "c");
        assert_eq!((m.get(&1), m.get(&3)), (None, Some("c")));
    }
}
