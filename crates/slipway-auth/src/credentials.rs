//! The `Authorization` header, parsed once and strictly, before anything else looks at it.
//!
//! Every request of the mlflow client carries it, and it is the one header an attacker fully
//! controls before being known to us, so anything odd is refused as malformed rather than
//! interpreted: two headers, an unknown scheme, lax base64, control bytes, oversize parts.
//! The input is never echoed back, in errors or in `Debug`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const MAX_HEADER_BYTES: usize = 8 * 1024;
const MAX_USER_BYTES: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_BEARER_CHARS: usize = 8192;

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

// By hand, so a logged request or a failed assertion never prints a secret.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => {
                f.debug_struct("Basic").field("user", user).field("password", &"***").finish()
            }
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&"***").finish(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("malformed credentials")]
    Malformed,
    #[error("more than one authorization header")]
    Repeated,
}

/// `values`: every Authorization header value of the request, as raw bytes. None when there are none.
///
/// Exactly one header (two or more: [`Malformed::Repeated`]) of at most 8 KiB; scheme `Basic`
/// or `Bearer`, case-insensitive, then one space (RFC 7235); other schemes are malformed.
/// Basic: padded standard base64 (no whitespace, canonical padding and trailing bits), UTF-8,
/// split at the first colon, no ASCII control characters, user 1..=256 bytes, password at most
/// 1024 bytes. Bearer: an RFC 6750 `b64token` of 1..=8192 characters.
pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<Credentials>, Malformed> {
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Malformed::Repeated);
    }
    parse_one(value).map(Some).ok_or(Malformed::Malformed)
}

fn parse_one(value: &[u8]) -> Option<Credentials> {
    if value.len() > MAX_HEADER_BYTES {
        return None;
    }
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = (&value[..space], &value[space + 1..]);
    if scheme.eq_ignore_ascii_case(b"basic") {
        basic(rest)
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        bearer(rest)
    } else {
        None
    }
}

fn basic(encoded: &[u8]) -> Option<Credentials> {
    // The STANDARD engine rejects whitespace, missing or extra padding and non-zero trailing bits.
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    let clean = |s: &str| !s.chars().any(|c| c.is_ascii_control());
    let fits = !user.is_empty() && user.len() <= MAX_USER_BYTES && password.len() <= MAX_PASSWORD_BYTES;
    if !fits || !clean(user) || !clean(password) {
        return None;
    }
    Some(Credentials::Basic { user: user.to_owned(), password: password.to_owned() })
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn bearer(token: &[u8]) -> Option<Credentials> {
    let body_len = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    let (body, padding) = token.split_at(body_len);
    let body_ok = body.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    let ok = !body.is_empty() && token.len() <= MAX_BEARER_CHARS && body_ok && padding.iter().all(|&b| b == b'=');
    // Only ASCII gets this far, so the conversion cannot fail.
    if ok { String::from_utf8(token.to_vec()).ok().map(Credentials::Bearer) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(value: &str) -> Result<Option<Credentials>, Malformed> {
        parse([value.as_bytes()])
    }

    fn basic_header(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    fn basic_of(user: &str, password: &str) -> Credentials {
        Credentials::Basic { user: user.to_owned(), password: password.to_owned() }
    }

    #[test]
    fn no_header_is_no_credentials_and_two_are_refused() {
        assert_eq!(parse(std::iter::empty()), Ok(None));
        let h = basic_header("alice", "pw");
        assert_eq!(parse([h.as_bytes(), h.as_bytes()]), Err(Malformed::Repeated));
        assert_eq!(parse([b"Bearer a".as_slice(), b"junk".as_slice(), b"".as_slice()]), Err(Malformed::Repeated));
    }

    #[test]
    fn basic_splits_at_the_first_colon() {
        assert_eq!(one("Basic YWxpY2U6c2VjcmV0"), Ok(Some(basic_of("alice", "secret"))));
        assert_eq!(one(&basic_header("alice", "a:b:c")), Ok(Some(basic_of("alice", "a:b:c"))));
        assert_eq!(one(&basic_header("token", "")), Ok(Some(basic_of("token", ""))));
        assert_eq!(one(&basic_header("zoë", "pässwörd")), Ok(Some(basic_of("zoë", "pässwörd"))));
        assert_eq!(one("bAsIc YWxpY2U6c2VjcmV0"), Ok(Some(basic_of("alice", "secret"))));
        assert_eq!(one("Basic YWxpY2U6c2VjcmU="), Ok(Some(basic_of("alice", "secre"))));
    }

    #[test]
    fn lax_basic_is_malformed() {
        let m = Err(Malformed::Malformed);
        for bad in [
            "Basic",
            "Basic ",
            "Basic  YWxpY2U6c2VjcmV0",  // two spaces
            "Basic YWxpY2U6c2VjcmV0 ",  // trailing space
            "Basic\tYWxpY2U6c2VjcmV0",  // tab instead of space
            "Basic YWxp Y2U6c2VjcmV0",  // space inside
            "Basic YWxpY2U6c2VjcmV0\n", // newline
            "Basic YWxpY2U6c2VjcmV",    // unpadded
            "Basic YWxpY2U6c2VjcmV0=",  // extra padding
            "Basic YWxpY2U6c2VjcmV=",   // non-zero trailing bits ("alice:secre" is ...cmU=)
            "Basic YWxpY2U-c2VjcmV0",   // url-safe alphabet
            "Basic YWxpY2U=",           // no colon ("alice")
            "Basic OnNlY3JldA==",       // empty user (":secret")
            "Basicx YWxpY2U6c2VjcmV0",  // other scheme
            "Digest YWxpY2U6c2VjcmV0",  // other scheme
            "YWxpY2U6c2VjcmV0",         // no scheme
        ] {
            assert_eq!(one(bad), m, "{bad:?}");
        }
        for (user, password) in [("al\0ice", "pw"), ("alice", "p\0w"), ("alice", "p\x7fw"), ("al\tice", "pw")] {
            assert_eq!(one(&basic_header(user, password)), m, "{user:?}:{password:?}");
        }
        assert_eq!(one(&basic_header(&"u".repeat(257), "pw")), m);
        assert!(one(&basic_header(&"u".repeat(256), "pw")).is_ok());
        assert_eq!(one(&basic_header("alice", &"p".repeat(1025))), m);
        assert!(one(&basic_header("alice", &"p".repeat(1024))).is_ok());
        let not_utf8 = format!("Basic {}", STANDARD.encode(b"al\xffice:pw"));
        assert_eq!(one(&not_utf8), m);
        assert_eq!(parse([b"Basic \xff\xfe".as_slice()]), m);
    }

    #[test]
    fn bearer_tokens_are_b64token() {
        let t = "slw_0123456789ab_abc-DEF_ghi.jkl~mno+pqr/stu==";
        assert_eq!(one(&format!("Bearer {t}")), Ok(Some(Credentials::Bearer(t.to_owned()))));
        assert_eq!(one("bearer x"), Ok(Some(Credentials::Bearer("x".to_owned()))));
        for bad in
            ["Bearer", "Bearer ", "Bearer =", "Bearer a=b", "Bearer a b", "Bearer a,b", "Bearer \"a\"", "Bearer  a"]
        {
            assert_eq!(one(bad), Err(Malformed::Malformed), "{bad:?}");
        }
        assert!(one(&format!("Bearer {}", "a".repeat(8192 - 7))).is_ok());
        assert_eq!(one(&format!("Bearer {}", "a".repeat(8192 - 6))), Err(Malformed::Malformed), "over 8 KiB");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?} {:?}", basic_of("alice", "hunter2hunter2"), Credentials::Bearer("slw_tok".into()));
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2") && !shown.contains("slw_tok"), "{shown}");
    }

    proptest! {
        #[test]
        fn never_panics(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..3)) {
            let _ = parse(values.iter().map(Vec::as_slice));
        }

        #[test]
        fn never_panics_on_near_miss_basic(tail in proptest::collection::vec(any::<u8>(), 0..64), scheme in "(?i)basic|bearer") {
            let mut value = format!("{scheme} ").into_bytes();
            value.extend(tail);
            let _ = parse([value.as_slice()]);
        }

        #[test]
        fn basic_round_trips(user in "[^\\x00-\\x1f\\x7f:]{1,40}", password in "[^\\x00-\\x1f\\x7f]{0,80}") {
            let header = basic_header(&user, &password);
            prop_assert_eq!(one(&header), Ok(Some(basic_of(&user, &password))));
        }
    }
}
