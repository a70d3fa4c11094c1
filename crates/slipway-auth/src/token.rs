//! API tokens and their scopes.
//!
//! A token is `slw_<id>_<secret>`: the id finds the row, the secret proves possession. With 256
//! random bits a slow hash buys nothing, so the store keeps SHA-256 of the secret and a lookup
//! costs one digest. The fixed shape lets us refuse anything else before touching the store,
//! and the prefix lets secret scanners recognise a leaked token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::level::Level;
use crate::{hex, random_bytes};

const PREFIX: &str = "slw_";
/// 6 random bytes as lowercase hex: no `_`, so the split is unambiguous even by eye.
const ID_LEN: usize = 12;
/// 32 random bytes as unpadded base64url.
const SECRET_LEN: usize = 43;

/// The scope kind that allows admin routes. A `*` kind does not include it: admin is asked for by name.
pub const ADMIN_KIND: &str = "admin";
/// Any kind (other than admin) or any object.
pub const ANY: &str = "*";

/// A freshly minted token: `token()` is shown to its owner once; `id` and `digest` are stored.
pub struct Minted {
    pub id: String,
    pub secret: String,
    pub digest: [u8; 32],
}

impl Minted {
    pub fn token(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }
}

// By hand: the secret must not reach a log.
impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted").field("id", &self.id).field("secret", &"***").finish_non_exhaustive()
    }
}

pub fn mint() -> Minted {
    let id = hex(&random_bytes::<6>());
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let digest = digest(&secret);
    Minted { id, secret, digest }
}

/// Splits a presented token into (id, secret); None unless it has exactly our shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN || rest.as_bytes()[ID_LEN] != b'_' {
        return None;
    }
    let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN + 1..)?);
    let id_ok = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    // Decoding also refuses a last character with stray low bits, so each secret has one spelling.
    let secret_ok = URL_SAFE_NO_PAD.decode(secret).is_ok_and(|bytes| bytes.len() == 32);
    (id_ok && secret_ok).then_some((id, secret))
}

/// SHA-256 of the secret's text, as stored.
pub fn digest(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether `secret` matches a digest stored as lowercase hex; constant time in its contents.
pub fn digest_hex_matches(secret: &str, stored_hex: &str) -> bool {
    bool::from(hex(&digest(secret)).as_bytes().ct_eq(stored_hex.as_bytes()))
}

/// What a token may touch, at most: `kind` (or `*`), `object` (or `*`) up to `level`. A token's
/// level on an object is the lower of its owner's and its best matching scope's, so scopes only
/// ever narrow what the owner may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub kind: String,
    pub object: String,
    pub level: Level,
}

impl Scope {
    /// The scope that allows admin routes (for an admin owner).
    pub fn admin() -> Scope {
        Scope { kind: ADMIN_KIND.to_owned(), object: ANY.to_owned(), level: Level::Manage }
    }

    fn covers_kind(&self, kind: &str) -> bool {
        self.kind == kind || (self.kind == ANY && kind != ADMIN_KIND)
    }

    fn covers(&self, child: &Scope) -> bool {
        self.covers_kind(&child.kind)
            && (self.object == ANY || self.object == child.object)
            && child.level <= self.level
    }
}

/// Every child scope is covered by some parent scope: a token minted with a token can only
/// narrow. A parent `*` kind does not cover the admin kind.
pub fn narrows(child: &[Scope], parent: &[Scope]) -> bool {
    child.iter().all(|c| parent.iter().any(|p| p.covers(c)))
}

/// The best level the scopes allow on one object, before the owner's own level caps it.
pub fn allows(scopes: &[Scope], kind: &str, object: &str) -> Option<Level> {
    scopes.iter().filter(|s| s.covers_kind(kind) && (s.object == ANY || s.object == object)).map(|s| s.level).max()
}

/// Whether the scopes allow admin routes (the owner must be an admin too).
pub fn allows_admin(scopes: &[Scope]) -> bool {
    scopes.iter().any(|s| s.kind == ADMIN_KIND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scope(kind: &str, object: &str, level: Level) -> Scope {
        Scope { kind: kind.into(), object: object.into(), level }
    }

    #[test]
    fn minted_tokens_parse_back_and_match_their_digest() {
        let m = mint();
        let token = m.token();
        assert_eq!(token.len(), 4 + 12 + 1 + 43);
        assert_eq!(parse(&token), Some((m.id.as_str(), m.secret.as_str())));
        assert_eq!(m.digest, digest(&m.secret));
        let stored = hex(&m.digest);
        assert!(digest_hex_matches(&m.secret, &stored));
        assert!(!digest_hex_matches(&m.secret, &stored[..62]));
        assert!(!digest_hex_matches(&m.secret, &stored.to_uppercase()));
        let other = mint();
        assert_ne!(other.id, m.id);
        assert!(!digest_hex_matches(&other.secret, &stored));
        assert!(!format!("{m:?}").contains(&m.secret));
    }

    #[test]
    fn digest_is_sha256_of_the_secret_text() {
        // SHA-256("abc"), FIPS 180-2.
        assert_eq!(hex(&digest("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn only_our_exact_shape_parses() {
        let m = mint();
        let good = m.token();
        assert!(parse(&good).is_some());
        let secret = "A".repeat(43); // "AAA…A": 256 zero bits, canonical
        for bad in [
            String::new(),
            good[4..].to_owned(),
            format!("SLW_{}", &good[4..]),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            format!("slw_0123456789aB_{secret}"),
            format!("slw_0123456789a_{secret}A"),
            format!("slw_0123456789ab-{secret}"),
            format!("slw_0123456789ab_{}B", &secret[..42]), // stray low bits in the last character
            format!("slw_0123456789ab_{}=", &secret[..42]),
            format!("slw_0123456789ab_{}+", &secret[..42]),
            format!("slw_0123456789ab_{}é", &secret[..41]),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
        assert_eq!(parse(&format!("slw_0123456789ab_{secret}")), Some(("0123456789ab", secret.as_str())));
        let with_underscores = format!("slw_0123456789ab__{}", &secret[..42]);
        assert_eq!(parse(&with_underscores).map(|(_, s)| s.starts_with('_')), Some(true));
    }

    #[test]
    fn allows_takes_the_best_matching_scope() {
        let scopes =
            [scope("experiment", "7", Level::Edit), scope("experiment", "*", Level::Read), scope("*", "*", Level::Use)];
        assert_eq!(allows(&scopes, "experiment", "7"), Some(Level::Edit));
        assert_eq!(allows(&scopes, "experiment", "8"), Some(Level::Use));
        assert_eq!(allows(&scopes, "deployment", "d"), Some(Level::Use));
        assert_eq!(allows(&scopes[..2], "deployment", "d"), None);
        assert_eq!(allows(&[], "experiment", "7"), None);
        assert!(!allows_admin(&scopes));
        assert_eq!(allows(&scopes, ADMIN_KIND, "*"), None, "a * kind must not reach admin routes");
        assert!(allows_admin(&[Scope::admin()]));
    }

    #[test]
    fn narrows_refuses_widening() {
        let parent = [scope("experiment", "7", Level::Edit), scope("deployment", "*", Level::Use)];
        assert!(narrows(&[], &parent));
        assert!(narrows(&[scope("experiment", "7", Level::Read)], &parent));
        assert!(narrows(&[scope("deployment", "fraud", Level::Use)], &parent));
        assert!(!narrows(&[scope("experiment", "7", Level::Manage)], &parent));
        assert!(!narrows(&[scope("experiment", "8", Level::Read)], &parent));
        assert!(!narrows(&[scope("experiment", "*", Level::Read)], &parent));
        assert!(!narrows(&[scope("*", "7", Level::Read)], &parent));
        assert!(!narrows(
            &[scope("experiment", "7", Level::Read), scope("registered_model", "m", Level::Read)],
            &parent
        ));
        let everything = [scope("*", "*", Level::Manage)];
        assert!(!narrows(&[Scope::admin()], &everything), "admin must be held to be passed on");
        assert!(narrows(&[Scope::admin()], &[Scope::admin()]));
    }

    #[test]
    fn scopes_serialize_with_level_names() {
        let json = serde_json::to_string(&scope("experiment", "7", Level::Edit)).unwrap();
        assert_eq!(json, r#"{"kind":"experiment","object":"7","level":"EDIT"}"#);
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope("experiment", "7", Level::Edit));
    }

    fn arb_level() -> impl Strategy<Value = Level> {
        prop::sample::select(Level::ALL.to_vec())
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        let kind = prop::sample::select(vec!["*", "experiment", "registered_model", "deployment", ADMIN_KIND]);
        let object = prop::sample::select(vec!["*", "1", "2", "m"]);
        (kind, object, arb_level()).prop_map(|(k, o, l)| scope(k, o, l))
    }

    /// Narrows one scope: a concrete kind for `*` (never admin), a concrete object for `*`, a lower level.
    fn narrowed(s: &Scope, kind_pick: usize, object_pick: usize, level_pick: usize) -> Scope {
        let kinds = ["experiment", "registered_model", "deployment"];
        let kind = if s.kind == ANY && kind_pick < kinds.len() { kinds[kind_pick].to_owned() } else { s.kind.clone() };
        let object =
            if s.object == ANY && object_pick < 3 { ["1", "2", "m"][object_pick].to_owned() } else { s.object.clone() };
        let lower: Vec<Level> = Level::ALL.into_iter().filter(|l| *l <= s.level).collect();
        Scope { kind, object, level: lower[level_pick % lower.len()] }
    }

    proptest! {
        #[test]
        fn narrowed_children_narrow_and_never_exceed_the_parent(
            parent in prop::collection::vec(arb_scope(), 1..5),
            picks in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, 0usize..4, 0usize..4), 0..6),
        ) {
            let child: Vec<Scope> = picks
                .iter()
                .map(|(i, k, o, l)| narrowed(i.get(&parent), *k, *o, *l))
                .collect();
            prop_assert!(narrows(&child, &parent));
            for kind in ["experiment", "registered_model", "deployment", ADMIN_KIND] {
                for object in ["1", "2", "m", "other"] {
                    prop_assert!(allows(&child, kind, object) <= allows(&parent, kind, object));
                }
            }
            prop_assert!(!allows_admin(&child) || allows_admin(&parent));
        }

        #[test]
        fn any_child_that_narrows_never_exceeds_the_parent(
            parent in prop::collection::vec(arb_scope(), 0..4),
            child in prop::collection::vec(arb_scope(), 0..4),
        ) {
            prop_assume!(narrows(&child, &parent));
            for kind in ["experiment", "registered_model", "deployment", ADMIN_KIND] {
                for object in ["1", "2", "m", "other"] {
                    prop_assert!(allows(&child, kind, object) <= allows(&parent, kind, object));
                }
            }
            prop_assert!(!allows_admin(&child) || allows_admin(&parent));
        }
    }
}
