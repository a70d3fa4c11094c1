//! Password hashes: argon2id for every password we set, and verification of the werkzeug
//! hashes MLflow's basic-auth app stored, so imported users keep their passwords until their
//! next login rehashes them.
//!
//! The PHC string is written and parsed here rather than by the `password-hash` crate: the
//! format is one line of `format!`, and parsing it ourselves lets every number be bounded
//! before any work is done, since a stored hash decides how much memory and time a login costs.

use std::ops::RangeInclusive;

use argon2::{Algorithm, Argon2, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use subtle::ConstantTimeEq;

use crate::{hex, random_bytes};

mod werkzeug;

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;
/// Longer than anything werkzeug or an argon2 library writes; bounds parsing work.
const MAX_STORED_LEN: usize = 1024;
const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id cost parameters: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for Argon2Params {
    /// OWASP's floor for argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Argon2Params { m_kib: 19 * 1024, t: 2, p: 1 }
    }
}

impl Argon2Params {
    pub const M_KIB: RangeInclusive<u32> = 8192..=262_144;
    pub const T: RangeInclusive<u32> = 1..=10;
    pub const P: RangeInclusive<u32> = 1..=8;

    /// Bounds the work one verification may cost, for our configuration and for stored hashes alike.
    pub fn validate(&self) -> Result<(), PasswordError> {
        let within = |name: &str, v: u32, range: RangeInclusive<u32>| {
            if range.contains(&v) {
                Ok(())
            } else {
                Err(PasswordError::Unsupported(format!(
                    "argon2 {name}={v} outside {}..={}",
                    range.start(),
                    range.end()
                )))
            }
        };
        within("m", self.m_kib, Self::M_KIB)?;
        within("t", self.t, Self::T)?;
        within("p", self.p, Self::P)
    }

    fn clamped(self) -> Self {
        let clamp = |v: u32, r: RangeInclusive<u32>| v.clamp(*r.start(), *r.end());
        Argon2Params { m_kib: clamp(self.m_kib, Self::M_KIB), t: clamp(self.t, Self::T), p: clamp(self.p, Self::P) }
    }
}

/// Hashes a new password as an argon2id PHC string with a fresh 16-byte salt.
///
/// Parameters outside [`Argon2Params::validate`]'s bounds are clamped into them (the server
/// validates its configuration at start, so this only guards against a caller that did not).
///
/// # Panics
/// If the hash's memory cannot be allocated, as any `Vec` of that size would.
pub fn hash(password: &str, params: Argon2Params) -> String {
    let params = params.clamped();
    let salt: [u8; SALT_LEN] = random_bytes();
    let mut out = [0u8; OUTPUT_LEN];
    #[allow(clippy::expect_used, reason = "argon2 accepts every clamped parameter set; only allocation can fail")]
    argon2id(password.as_bytes(), &salt, params, &mut out).expect("argon2id with clamped parameters");
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_kib,
        params.t,
        params.p,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

/// The outcome of a verification that could be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Match,
    /// Right password, but the stored hash is imported or on other parameters: store `hash()` now.
    MatchNeedsRehash,
    Mismatch,
}

/// Verifies `password` against a stored hash: our argon2id PHC strings (MatchNeedsRehash when its params differ from `current`), werkzeug `scrypt:N:r:p$salt$hexhash` and `pbkdf2:sha256:ITER$salt$hex` / `pbkdf2:sha512:ITER$salt$hex` (always MatchNeedsRehash on match).
///
/// Work bounds: scrypt N <= 2^17, r <= 16, p <= 4; pbkdf2 iterations <= 2,000,000; argon2
/// within [`Argon2Params::validate`]. Beyond them, or an unparsable string:
/// [`PasswordError::Unsupported`], before any hashing. The error text never contains the
/// stored salt or hash.
pub fn verify(password: &str, stored: &str, current: Argon2Params) -> Result<Verified, PasswordError> {
    if stored.len() > MAX_STORED_LEN {
        return Err(unsupported("stored hash longer than 1024 bytes"));
    }
    if let Some(phc) = stored.strip_prefix("$argon2id$") {
        return verify_argon2(password, phc, current);
    }
    let matched = werkzeug::verify(password, stored)?;
    Ok(if matched { Verified::MatchNeedsRehash } else { Verified::Mismatch })
}

/// Whether a hash imported from elsewhere (MLflow's werkzeug hashes, or ours) can be verified
/// against, without computing it: well formed and within the work bounds [`verify`] keeps.
pub fn check_stored(stored: &str) -> Result<(), PasswordError> {
    if stored.len() > MAX_STORED_LEN {
        return Err(unsupported("stored hash longer than 1024 bytes"));
    }
    match stored.strip_prefix("$argon2id$") {
        Some(phc) => {
            let fields: Vec<&str> = phc.split('$').collect();
            let [_, params, _, _] = fields[..] else {
                return Err(unsupported("argon2id string not of the form v=19$m=..,t=..,p=..$salt$hash"));
            };
            phc_params(params)
                .ok_or_else(|| unsupported("argon2id parameters not of the form m=..,t=..,p=.."))?
                .validate()
        }
        None => werkzeug::check(stored),
    }
}

/// A hash of a random password made once at start, so an unknown user costs one verification like a known one.
pub fn dummy_hash(params: Argon2Params) -> String {
    hash(&hex(&random_bytes::<32>()), params)
}

/// MLflow's rule: at least 12 characters; also at most 1024 bytes.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::Weak(format!("password must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Weak(format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("{0}")]
    Weak(String),
    #[error("unsupported password hash: {0}")]
    Unsupported(String),
}

fn unsupported(why: &str) -> PasswordError {
    PasswordError::Unsupported(why.to_owned())
}

fn argon2id(password: &[u8], salt: &[u8], params: Argon2Params, out: &mut [u8]) -> Result<(), argon2::Error> {
    let params = argon2::Params::new(params.m_kib, params.t, params.p, Some(out.len()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into(password, salt, out)
}

/// `v=19$m=M,t=T,p=P$salt$hash`, the part after `$argon2id$`.
fn verify_argon2(password: &str, phc: &str, current: Argon2Params) -> Result<Verified, PasswordError> {
    let fields: Vec<&str> = phc.split('$').collect();
    let [version, params, salt, expected] = fields[..] else {
        return Err(unsupported("argon2id string not of the form v=19$m=..,t=..,p=..$salt$hash"));
    };
    if version != "v=19" {
        return Err(unsupported("argon2id version other than 19"));
    }
    let stored = phc_params(params).ok_or_else(|| unsupported("argon2id parameters not of the form m=..,t=..,p=.."))?;
    stored.validate()?;
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| unsupported("argon2id salt is not unpadded base64"))?;
    let expected = STANDARD_NO_PAD.decode(expected).map_err(|_| unsupported("argon2id hash is not unpadded base64"))?;
    if !(8..=64).contains(&salt.len()) || !(16..=64).contains(&expected.len()) {
        return Err(unsupported("argon2id salt or hash length out of bounds"));
    }
    let mut actual = vec![0u8; expected.len()];
    argon2id(password.as_bytes(), &salt, stored, &mut actual)
        .map_err(|e| PasswordError::Unsupported(format!("argon2id: {e}")))?;
    if !bool::from(actual.ct_eq(&expected)) {
        return Ok(Verified::Mismatch);
    }
    let ours = stored == current && salt.len() == SALT_LEN && expected.len() == OUTPUT_LEN;
    Ok(if ours { Verified::Match } else { Verified::MatchNeedsRehash })
}

/// `m=M,t=T,p=P`, in that order and nothing else, as every argon2 library writes it.
fn phc_params(s: &str) -> Option<Argon2Params> {
    let mut fields = s.split(',');
    let mut field = |name: &str| fields.next()?.strip_prefix(name).and_then(decimal);
    let params = Argon2Params { m_kib: field("m=")?, t: field("t=")?, p: field("p=")? };
    fields.next().is_none().then_some(params)
}

/// Plain decimal as both formats write it: digits only, no sign, no leading zero.
fn decimal(s: &str) -> Option<u32> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cheapest parameters `validate` allows, to keep the tests quick.
    const CHEAP: Argon2Params = Argon2Params { m_kib: 8192, t: 1, p: 1 };
    const PASSWORD: &str = "correct horse battery";

    fn unsupported(stored: &str) -> bool {
        matches!(verify(PASSWORD, stored, Argon2Params::default()), Err(PasswordError::Unsupported(_)))
    }

    #[test]
    fn defaults_are_owasps_floor_and_bounds_hold() {
        let d = Argon2Params::default();
        assert_eq!(d, Argon2Params { m_kib: 19456, t: 2, p: 1 });
        assert!(d.validate().is_ok());
        assert!(CHEAP.validate().is_ok());
        for bad in [
            Argon2Params { m_kib: 8191, ..d },
            Argon2Params { m_kib: 262_145, ..d },
            Argon2Params { t: 0, ..d },
            Argon2Params { t: 11, ..d },
            Argon2Params { p: 0, ..d },
            Argon2Params { p: 9, ..d },
        ] {
            assert!(matches!(bad.validate(), Err(PasswordError::Unsupported(_))), "{bad:?}");
        }
    }

    #[test]
    fn hash_writes_a_phc_string_with_a_fresh_salt() {
        let a = hash(PASSWORD, CHEAP);
        let b = hash(PASSWORD, CHEAP);
        assert!(a.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{a}");
        let fields: Vec<&str> = a.split('$').collect();
        assert_eq!(fields.len(), 6);
        assert_eq!(STANDARD_NO_PAD.decode(fields[4]).unwrap().len(), 16);
        assert_eq!(STANDARD_NO_PAD.decode(fields[5]).unwrap().len(), 32);
        assert_ne!(a, b, "two hashes of one password share a salt");
    }

    #[test]
    fn argon2_round_trip_and_rehash_on_new_parameters() {
        let stored = hash(PASSWORD, CHEAP);
        assert_eq!(verify(PASSWORD, &stored, CHEAP).unwrap(), Verified::Match);
        assert_eq!(verify("correct horse batterY", &stored, CHEAP).unwrap(), Verified::Mismatch);
        assert_eq!(verify("", &stored, CHEAP).unwrap(), Verified::Mismatch);
        let stronger = Argon2Params { t: 2, ..CHEAP };
        assert_eq!(verify(PASSWORD, &stored, stronger).unwrap(), Verified::MatchNeedsRehash);
        assert_eq!(verify("wrong password!", &stored, stronger).unwrap(), Verified::Mismatch);
    }

    #[test]
    fn out_of_bounds_parameters_are_clamped_when_hashing() {
        let stored = hash(PASSWORD, Argon2Params { m_kib: 16, t: 0, p: 100 });
        assert!(stored.starts_with("$argon2id$v=19$m=8192,t=1,p=8$"), "{stored}");
    }

    #[test]
    fn argon2_strings_from_other_implementations_verify() {
        // OpenSSL's argon2id via python `cryptography` 50 (`Argon2id.derive_phc_encoded`), on our defaults.
        let openssl =
            "$argon2id$v=19$m=19456,t=2,p=1$c2xpcHdheS1zYWx0LTE2Yg$X+fQiJ0BWKmIcSPZJV1JbBuD3Y9A80XSGZRs1VRd5sI";
        assert_eq!(verify(PASSWORD, openssl, Argon2Params::default()).unwrap(), Verified::Match);
        assert_eq!(verify("correct horse", openssl, Argon2Params::default()).unwrap(), Verified::Mismatch);
        // The reference implementation's test vector (phc-winner-argon2 `src/test.c`): an
        // 8-byte salt, so a rehash is due even on equal parameters.
        let reference = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let at_its_params = Argon2Params { m_kib: 65536, t: 2, p: 1 };
        assert_eq!(verify("password", reference, at_its_params).unwrap(), Verified::MatchNeedsRehash);
        // Four lanes (cryptography again).
        let lanes = "$argon2id$v=19$m=8192,t=2,p=4$c29tZXNhbHQ$FO4YhfgBrx2CxImNhcOQS7Qm6GhZlN+16jfFwSIgeyM";
        assert_eq!(verify("password", lanes, CHEAP).unwrap(), Verified::MatchNeedsRehash);
        assert_eq!(verify("passwore", lanes, CHEAP).unwrap(), Verified::Mismatch);
    }

    #[test]
    fn malformed_or_costly_argon2_strings_are_unsupported() {
        let salt_hash = "c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        for params in ["m=262145,t=2,p=1", "m=19456,t=11,p=1", "m=19456,t=2,p=9", "m=019456,t=2,p=1", "t=2,m=19456,p=1"]
        {
            assert!(unsupported(&format!("$argon2id$v=19${params}${salt_hash}")), "{params}");
        }
        for bad in [
            format!("$argon2id$v=16$m=19456,t=2,p=1${salt_hash}"),
            format!("$argon2id$m=19456,t=2,p=1${salt_hash}"),
            format!("$argon2i$v=19$m=19456,t=2,p=1${salt_hash}"),
            format!("$argon2id$v=19$m=19456,t=2,p=1,keyid=abc${salt_hash}"),
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ=$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc".to_owned(),
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPd".to_owned(),
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc".to_owned(),
            format!("$argon2id$v=19$m=19456,t=2,p=1${salt_hash}$"),
        ] {
            assert!(unsupported(&bad), "{bad}");
        }
    }

    #[test]
    fn the_dummy_hash_is_a_current_argon2id_hash_nobody_knows() {
        let dummy = dummy_hash(CHEAP);
        assert!(dummy.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert_eq!(verify("", &dummy, CHEAP).unwrap(), Verified::Mismatch);
        assert_eq!(verify(PASSWORD, &dummy, CHEAP).unwrap(), Verified::Mismatch);
        assert_ne!(dummy, dummy_hash(CHEAP));
    }

    #[test]
    fn new_passwords_follow_mlflows_length_rule() {
        assert!(matches!(check_new("elevenchars"), Err(PasswordError::Weak(_))));
        assert!(check_new("twelve chars").is_ok());
        // Characters, not bytes: 11 two-byte characters are still too short.
        assert!(check_new(&"é".repeat(11)).is_err());
        assert!(check_new(&"é".repeat(12)).is_ok());
        assert!(check_new(&"a".repeat(1024)).is_ok());
        let long = check_new(&"a".repeat(1025)).unwrap_err();
        assert_eq!(long.to_string(), "password must be at most 1024 bytes");
    }
}
