//! Permission levels and how the grants on one object combine into what a caller may do.
//!
//! The names and their order are MLflow's (READ < USE < EDIT < MANAGE), so grants imported
//! from MLflow and its admin API keep their meaning. Levels are stored as integers so a SQL
//! predicate can compare them (`level >= 1` is "can read").

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// What a caller may do with an object; each level includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Read = 1,
    /// Invoke a deployment (or a model served directly) and send it ground truth.
    Use = 2,
    Edit = 3,
    /// Delete, rename, grant, and move aliases a deployment follows.
    Manage = 4,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Read, Level::Use, Level::Edit, Level::Manage];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "READ",
            Level::Use => "USE",
            Level::Edit => "EDIT",
            Level::Manage => "MANAGE",
        }
    }

    /// The exact uppercase name, as MLflow writes it.
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn from_i64(v: i64) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_i64() == v)
    }

    pub fn as_i64(self) -> i64 {
        self as i64
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// By name, not number: scopes are stored as JSON and shown to people.
impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Level;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of READ, USE, EDIT, MANAGE")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Level, E> {
                Level::parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(Name)
    }
}

/// A grant's permission as MLflow names it: a level, DENY (beats every grant) or NO_PERMISSIONS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Level(Level),
    Deny,
    NoPermissions,
}

impl Permission {
    /// The exact uppercase name; MLflow's API is case-sensitive and so are we.
    pub fn parse(s: &str) -> Option<Permission> {
        match s {
            "DENY" => Some(Permission::Deny),
            "NO_PERMISSIONS" => Some(Permission::NoPermissions),
            _ => Level::parse(s).map(Permission::Level),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Level(l) => l.as_str(),
            Permission::Deny => "DENY",
            Permission::NoPermissions => "NO_PERMISSIONS",
        }
    }

    /// Levels as 1..=4, `NoPermissions` 0 and `Deny` -1, so `>= 1` in SQL means "can read".
    pub fn as_i64(self) -> i64 {
        match self {
            Permission::Level(l) => l.as_i64(),
            Permission::NoPermissions => 0,
            Permission::Deny => -1,
        }
    }

    pub fn from_i64(v: i64) -> Option<Permission> {
        match v {
            -1 => Some(Permission::Deny),
            0 => Some(Permission::NoPermissions),
            _ => Level::from_i64(v).map(Permission::Level),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Effective level from the grants that apply to one object (on it and on `*` of its kind) and a default:
/// None when any is Deny; else the max of the levels and `default` (NoPermissions counts as nothing).
///
/// Deny wins over everything, the default included, so an admin can fence one object off from a
/// team that holds `*` on its kind.
pub fn effective(grants: impl IntoIterator<Item = Permission>, default: Option<Level>) -> Option<Level> {
    let mut best = default;
    for grant in grants {
        match grant {
            Permission::Deny => return None,
            Permission::NoPermissions => {}
            Permission::Level(l) => best = best.max(Some(l)),
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
            assert_eq!(Level::from_i64(l.as_i64()), Some(l));
            assert_eq!(Permission::parse(l.as_str()), Some(Permission::Level(l)));
        }
        for p in [Permission::Deny, Permission::NoPermissions, Permission::Level(Level::Edit)] {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(Permission::from_i64(p.as_i64()), Some(p));
        }
        assert_eq!(Level::Read.as_i64(), 1);
        assert_eq!(Level::Manage.as_i64(), 4);
        assert_eq!(Permission::Deny.as_i64(), -1);
        assert_eq!(Permission::NoPermissions.as_i64(), 0);
    }

    #[test]
    fn parsing_is_exact() {
        for bad in ["read", "Read", " READ", "READ ", "", "ADMIN", "deny", "NO-PERMISSIONS"] {
            assert_eq!(Permission::parse(bad), None, "{bad:?}");
        }
        for bad in [0, 5, -2, i64::MAX, i64::MIN] {
            assert_eq!(Level::from_i64(bad), None);
        }
        assert_eq!(Permission::from_i64(-2), None);
        assert_eq!(Permission::from_i64(5), None);
    }

    #[test]
    fn levels_are_ordered_as_mlflow_orders_them() {
        assert!(Level::Read < Level::Use && Level::Use < Level::Edit && Level::Edit < Level::Manage);
    }

    #[test]
    fn effective_takes_the_max_and_deny_beats_all() {
        use {Level as L, Permission as P};
        assert_eq!(effective([], None), None);
        assert_eq!(effective([], Some(L::Read)), Some(L::Read));
        assert_eq!(effective([P::NoPermissions], None), None);
        assert_eq!(effective([P::NoPermissions], Some(L::Use)), Some(L::Use));
        assert_eq!(effective([P::Level(L::Use), P::Level(L::Edit)], None), Some(L::Edit));
        assert_eq!(effective([P::Level(L::Use)], Some(L::Edit)), Some(L::Edit));
        assert_eq!(effective([P::Level(L::Manage), P::Deny], Some(L::Read)), None);
        assert_eq!(effective([P::Deny, P::Level(L::Manage)], None), None);
    }

    #[test]
    fn serde_uses_names() {
        assert_eq!(serde_json::to_string(&Level::Use).unwrap(), "\"USE\"");
        assert_eq!(serde_json::from_str::<Level>("\"MANAGE\"").unwrap(), Level::Manage);
        assert!(serde_json::from_str::<Level>("\"manage\"").is_err());
        assert!(serde_json::from_str::<Level>("4").is_err());
    }
}
