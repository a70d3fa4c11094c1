//! Browser login through the OpenID provider (the authorization-code flow with PKCE): the
//! secrets one login attempt carries from the redirect to the callback, and checks of what
//! comes back. The server keeps them in a short-lived cookie of the browser, not in memory, so
//! any replica can finish a login another one started.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::random_bytes;

/// One login attempt: `state` ties the callback to this browser, `nonce` the ID token to this
/// attempt, `verifier` the code to whoever asked for it (PKCE, RFC 7636).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Where to go once signed in: a path on this server.
    pub next: String,
}

const FIELDS: usize = 4;
const MAX_COOKIE: usize = 4096;

impl Attempt {
    /// A fresh attempt, 256 random bits in each secret; `next` as [`safe_next`] leaves it.
    pub fn new(next: &str) -> Attempt {
        let secret = || URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        Attempt { state: secret(), nonce: secret(), verifier: secret(), next: safe_next(next) }
    }

    /// The PKCE S256 challenge for the verifier.
    pub fn challenge(&self) -> String {
        pkce_challenge(&self.verifier)
    }

    /// The attempt as a cookie value: its fields joined by dots, `next` base64url-encoded.
    pub fn to_cookie(&self) -> String {
        format!("{}.{}.{}.{}", self.state, self.nonce, self.verifier, URL_SAFE_NO_PAD.encode(&self.next))
    }

    /// An attempt read back from its cookie; `None` when it is not one.
    pub fn from_cookie(value: &str) -> Option<Attempt> {
        if value.len() > MAX_COOKIE {
            return None;
        }
        let parts: Vec<&str> = value.split('.').collect();
        let [state, nonce, verifier, next] = parts[..] else { return None };
        if parts.len() != FIELDS || [state, nonce, verifier].iter().any(|p| p.len() != 43) {
            return None;
        }
        let next = String::from_utf8(URL_SAFE_NO_PAD.decode(next).ok()?).ok()?;
        Some(Attempt { state: state.into(), nonce: nonce.into(), verifier: verifier.into(), next: safe_next(&next) })
    }

    /// Whether the callback's `state` is this attempt's, compared in constant time.
    pub fn matches_state(&self, state: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.state.len() == state.len() && bool::from(self.state.as_bytes().ct_eq(state.as_bytes()))
    }
}

/// `BASE64URL(SHA256(verifier))`, RFC 7636's S256 method.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// A path on this server to return to after login: an absolute path, not a scheme-relative or
/// backslashed URL that a browser would take to another host; anything else is `/ui/`.
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2048;
    if ok { next.to_string() } else { "/ui/".to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn an_attempt_survives_its_cookie_and_nothing_else_passes_for_one() {
        let a = Attempt::new("/ui/lineage?x=1.2");
        assert_eq!(Attempt::from_cookie(&a.to_cookie()), Some(a.clone()));
        assert_ne!(Attempt::new("/").state, a.state, "each attempt has its own secrets");
        assert!(a.matches_state(&a.state.clone()));
        assert!(!a.matches_state(&Attempt::new("/").state));
        assert!(!a.matches_state(""));
        let cookie = a.to_cookie();
        for bad in ["", "a.b.c.d", &cookie.replacen('.', "", 1), &format!("{cookie}.x"), &"x".repeat(5000)] {
            assert_eq!(Attempt::from_cookie(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_paths_on_this_server_are_returned_to() {
        for ok in ["/ui/", "/ui/lineage/m/1?x=y", "/"] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in ["https://evil.example", "//evil.example/x", "/\\evil.example", "ui/", "/ui/\r\nSet-Cookie: x", ""] {
            assert_eq!(safe_next(bad), "/ui/", "{bad:?}");
        }
    }
}
