//! werkzeug 3.x password hashes, as MLflow's basic-auth app stores them, verified so imported
//! users can log in once and be rehashed with argon2id.

use std::num::NonZeroU32;

use subtle::ConstantTimeEq;

use super::{PasswordError, decimal, unsupported};

// Work bounds for imported hashes: werkzeug's defaults (scrypt N = 2^15, r = 8, p = 1;
// pbkdf2 1,000,000) fit with room, and a hash beyond them is refused rather than allowed to
// make each login of that user cost seconds or gigabytes.
const SCRYPT_MAX_LOG_N: u32 = 17;
const SCRYPT_MAX_R: u32 = 16;
const SCRYPT_MAX_P: u32 = 4;
const PBKDF2_MAX_ITERATIONS: u32 = 2_000_000;
/// `hashlib.scrypt`'s default `dklen`, which werkzeug does not override.
const WERKZEUG_SCRYPT_LEN: usize = 64;

/// A parsed werkzeug hash, within the work bounds: what verifying against it will compute.
enum Stored<'a> {
    Scrypt { params: scrypt::Params, salt: &'a str, expected: Vec<u8> },
    Pbkdf2 { algorithm: ring::pbkdf2::Algorithm, iterations: NonZeroU32, salt: &'a str, expected: Vec<u8> },
}

/// werkzeug 3.x `generate_password_hash`: `method$salt$hexhash`, the salt used as its UTF-8
/// bytes. Only the explicit forms it writes are accepted; the bare `scrypt`/`pbkdf2` forms
/// would depend on werkzeug's defaults of the day.
fn parse(stored: &str) -> Result<Stored<'_>, PasswordError> {
    let mut parts = stored.splitn(3, '$');
    let (Some(method), Some(salt), Some(hexhash)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(unsupported("not an argon2id or werkzeug password hash"));
    };
    if salt.is_empty() {
        return Err(unsupported("werkzeug hash with an empty salt"));
    }
    let expected = unhex(hexhash).ok_or_else(|| unsupported("werkzeug hash is not lowercase hex"))?;
    let args: Vec<&str> = method.split(':').collect();
    match args[..] {
        ["scrypt", n, r, p] => Ok(Stored::Scrypt { params: scrypt_params(&expected, n, r, p)?, salt, expected }),
        ["pbkdf2", name, iterations] => {
            let (algorithm, iterations) = pbkdf2_params(&expected, name, iterations)?;
            Ok(Stored::Pbkdf2 { algorithm, iterations, salt, expected })
        }
        _ => Err(unsupported("not an argon2id, scrypt:N:r:p or pbkdf2:HASH:ITERATIONS hash")),
    }
}

/// Whether a stored werkzeug hash could be verified against (well formed, within the work
/// bounds), computing nothing: what an import checks.
pub(super) fn check(stored: &str) -> Result<(), PasswordError> {
    parse(stored).map(|_| ())
}

pub(super) fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    match parse(stored)? {
        Stored::Scrypt { params, salt, expected } => {
            let mut actual = [0u8; WERKZEUG_SCRYPT_LEN];
            scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut actual)
                .map_err(|_| unsupported("scrypt output length rejected"))?;
            Ok(bool::from(actual.ct_eq(&expected)))
        }
        // ring compares in constant time.
        Stored::Pbkdf2 { algorithm, iterations, salt, expected } => {
            Ok(ring::pbkdf2::verify(algorithm, iterations, salt.as_bytes(), password.as_bytes(), &expected).is_ok())
        }
    }
}

fn scrypt_params(expected: &[u8], n: &str, r: &str, p: &str) -> Result<scrypt::Params, PasswordError> {
    let (Some(n), Some(r), Some(p)) = (decimal(n), decimal(r), decimal(p)) else {
        return Err(unsupported("scrypt parameters are not decimal numbers"));
    };
    if n < 2 || !n.is_power_of_two() {
        return Err(PasswordError::Unsupported(format!("scrypt N={n} is not a power of two")));
    }
    let log_n = n.trailing_zeros();
    if log_n > SCRYPT_MAX_LOG_N || !(1..=SCRYPT_MAX_R).contains(&r) || !(1..=SCRYPT_MAX_P).contains(&p) {
        return Err(PasswordError::Unsupported(format!(
            "scrypt N={n}, r={r}, p={p} beyond the bound N <= 2^{SCRYPT_MAX_LOG_N}, r <= {SCRYPT_MAX_R}, p <= {SCRYPT_MAX_P}"
        )));
    }
    if expected.len() != WERKZEUG_SCRYPT_LEN {
        return Err(unsupported("scrypt hash is not 64 bytes"));
    }
    let log_n = u8::try_from(log_n).map_err(|_| unsupported("scrypt N out of range"))?;
    scrypt::Params::new(log_n, r, p).map_err(|_| unsupported("scrypt parameters rejected"))
}

fn pbkdf2_params(
    expected: &[u8],
    name: &str,
    iterations: &str,
) -> Result<(ring::pbkdf2::Algorithm, NonZeroU32), PasswordError> {
    let (algorithm, len) = match name {
        "sha256" => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
        "sha512" => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
        _ => return Err(unsupported("pbkdf2 with a hash other than sha256 or sha512")),
    };
    let iterations = decimal(iterations)
        .filter(|i| *i <= PBKDF2_MAX_ITERATIONS)
        .and_then(NonZeroU32::new)
        .ok_or_else(|| unsupported("pbkdf2 iterations not within 1..=2000000"))?;
    if expected.len() != len {
        return Err(unsupported("pbkdf2 hash is not its digest's length"));
    }
    Ok((algorithm, iterations))
}

/// Lowercase hex, as Python's `bytes.hex()` writes it (werkzeug compares strings, so
/// uppercase never matched there either).
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes().chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use crate::password::{Argon2Params, PasswordError, Verified, check_stored, verify};

    const CHEAP: Argon2Params = Argon2Params { m_kib: 8192, t: 1, p: 1 };
    const PASSWORD: &str = "correct horse battery";

    // From werkzeug 3.1.9 (`generate_password_hash`) in the project's venv.
    const SCRYPT_DEFAULT: &str = "scrypt:32768:8:1$T9wNZG3Fu6tRxkS0$1dfaf301771bc824175d474c3e8e7841215feef771b2110db27090edf91e795b4271ca9ce2edf93a4a5b9fba661becc5c6e43b43c3b3bd865a4ae9d5fe5da9ad";
    const SCRYPT_16384: &str = "scrypt:16384:8:1$HBHgn4x3ZzmO4mBa$01640fcaadafc29008d840452d955b6d456e3c3e1aefaa0bc38a9a7f51c95e5fe6ddf62cb3724c78f86b413c8215d307beb1f5c76a31cc6892675b424108256a";
    const SCRYPT_UNICODE: &str = "scrypt:32768:8:1$9eimCwQL28tW1DMN$653b126ff0a768befbdf330a4579cd6d33ca7b8311b435c6d74d3da2830b28b6a9daab612dde5188b46d45c99af42e7c98ec342a69dc97de853604c0ef92277c";
    const PBKDF2_SHA256: &str =
        "pbkdf2:sha256:1000$bXWFcqO8yATPrHsU$38ee02217c5d3838f0bf76e159d5488d31e8bca3f6505f1acd17942fd2aae53c";
    const PBKDF2_SHA256_SALT8: &str =
        "pbkdf2:sha256:1000$ITe4z06K$bd85d59f0815da4e2a517f66eda097b225f0be808d6653dda947ef6c30774dcc";
    const PBKDF2_SHA512: &str = "pbkdf2:sha512:1000$x47r14zYA66kIi6b$9e21c8ed7ec4ab32d62e9961f6eb62c1237bc7dbc0702bd0924ce290759ebf47f75d51e65a76e0d8f286a36c4de585d33e163851f9fe55ade9626210d3d76a90";
    /// N = 2^18: beyond our bound, though werkzeug wrote it.
    const SCRYPT_TOO_BIG: &str = "scrypt:262144:8:1$UU6EgsYTE7iqkZo8$c39c5e30e63480be273f52a45865833e7e52e3fe634eca6b82dbfb6cbda06e9a5d7fa8acf93819025887719e73945984345d5c36ee8889e75254ddc389d64898";

    /// Whether verifying refuses the hash; an import's check, which computes nothing, must say
    /// the same.
    fn unsupported(stored: &str) -> bool {
        let refused = matches!(verify(PASSWORD, stored, Argon2Params::default()), Err(PasswordError::Unsupported(_)));
        assert_eq!(check_stored(stored).is_err(), refused, "{stored}");
        refused
    }

    #[test]
    fn werkzeug_hashes_verify_and_ask_for_a_rehash() {
        for stored in [SCRYPT_DEFAULT, SCRYPT_16384, PBKDF2_SHA256, PBKDF2_SHA256_SALT8, PBKDF2_SHA512] {
            assert!(!unsupported(stored), "{stored}");
            assert_eq!(verify(PASSWORD, stored, CHEAP).unwrap(), Verified::MatchNeedsRehash, "{stored}");
            assert_eq!(verify("correct horse batter", stored, CHEAP).unwrap(), Verified::Mismatch, "{stored}");
        }
        let unicode = "pässwörd ünïcode €";
        assert_eq!(verify(unicode, SCRYPT_UNICODE, CHEAP).unwrap(), Verified::MatchNeedsRehash);
        assert_eq!(verify("passwörd ünïcode €", SCRYPT_UNICODE, CHEAP).unwrap(), Verified::Mismatch);
    }

    #[test]
    fn werkzeug_hashes_beyond_the_bounds_or_malformed_are_unsupported() {
        let hex32 = "38ee02217c5d3838f0bf76e159d5488d31e8bca3f6505f1acd17942fd2aae53c";
        let hex64 = &SCRYPT_16384[SCRYPT_16384.len() - 128..];
        assert!(unsupported(SCRYPT_TOO_BIG));
        for bad in [
            format!("scrypt:16384:17:1$salt${hex64}"),
            format!("scrypt:16384:8:5$salt${hex64}"),
            format!("scrypt:30000:8:1$salt${hex64}"),
            format!("scrypt:1:8:1$salt${hex64}"),
            format!("scrypt:16384:0:1$salt${hex64}"),
            format!("scrypt$salt${hex64}"),
            format!("scrypt:16384:8:1$salt${hex32}"),
            format!("pbkdf2:sha256:2000001$salt${hex32}"),
            format!("pbkdf2:sha256:0$salt${hex32}"),
            format!("pbkdf2:sha256:+1000$salt${hex32}"),
            format!("pbkdf2:sha1:1000$salt${hex32}"),
            format!("pbkdf2:sha256$salt${hex32}"),
            format!("pbkdf2:sha512:1000$salt${hex32}"),
            format!("pbkdf2:sha256:1000$${hex32}"),
            format!("pbkdf2:sha256:1000$salt${}", hex32.to_uppercase()),
            format!("pbkdf2:sha256:1000$salt${}", &hex32[1..]),
            "pbkdf2:sha256:1000$salt".to_owned(),
            "a plaintext password".to_owned(),
            String::new(),
            format!("pbkdf2:sha256:1000${}${hex32}", "s".repeat(1024)),
        ] {
            assert!(unsupported(&bad), "{bad}");
        }
    }
}
