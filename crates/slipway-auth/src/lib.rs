//! Who is calling, and what they may do: the pieces the HTTP layer's auth middleware composes.
//! Nothing here speaks HTTP or SQL; the server hands in header bytes and stored rows and gets
//! back decisions, so every rule can be tested without a socket or a database.
//!
//! - [`credentials`] parses the `Authorization` header, strictly, into Basic or Bearer;
//! - [`password`] hashes passwords (argon2id, PHC strings) and verifies them, including the
//!   werkzeug hashes imported from MLflow's basic-auth app;
//! - [`jwt`] verifies OIDC bearer JWTs against the provider's key set (JWKS), with allow-listed
//!   algorithms that must fit the key, and reports an unknown `kid` so the server can refetch;
//! - [`token`] mints and recognises API tokens (`slw_<id>_<secret>`) and checks their scopes;
//! - [`level`] orders permissions (READ < USE < EDIT < MANAGE, DENY) and combines grants;
//! - [`login`] carries a browser login (OIDC code flow with PKCE) from redirect to callback;
//! - [`limit`] throttles failed logins per address and per user name in fixed memory;
//! - [`cache`] remembers verified credentials for a while, valid only at the auth epoch they
//!   were built at, so a password sent with every request is not hashed every time.
//!
//! The design, and why each choice was made, is in `docs/design/auth.md`.

pub mod cache;
pub mod credentials;
pub mod jwt;
pub mod level;
pub mod limit;
pub mod login;
pub mod password;
pub mod token;

pub use cache::CredentialCache;
pub use credentials::{Credentials, Malformed};
pub use level::{Level, Permission, effective};
pub use limit::Throttle;
pub use password::{Argon2Params, PasswordError, Verified};
pub use token::{Minted, Scope};

use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes from the operating system.
///
/// # Panics
/// When the OS cannot supply randomness; nothing secret can be made safely without it.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[allow(clippy::expect_used, reason = "ring's SystemRandom fails only when getrandom(2) does")]
    SystemRandom::new().fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// Lowercase hex, as token digests are stored.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_state_can_live_in_the_servers_app_state() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<crate::Throttle>();
        send_sync::<crate::CredentialCache<std::sync::Arc<str>>>();
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_per_byte() {
        assert_eq!(crate::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
