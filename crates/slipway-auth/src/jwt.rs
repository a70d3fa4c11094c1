//! OIDC bearer tokens: JWTs checked against the identity provider's key set (JWKS).
//!
//! Nothing here does I/O: the server fetches the provider's JWKS, hands in its bytes and the
//! current time, and gets back verified claims or the reason it refused. JWT libraries have a
//! long record of taking the token's word for how to check it (`alg=none`, HS256 keyed with the
//! RSA public key, keys fetched from a URL in the header), so a token's header only ever chooses
//! among keys we already hold, by rules the operator set:
//!
//! - [`Alg`] has no `none` and no HS* variant, and a token's algorithm must be one the operator
//!   allowed *and* fit the key's type, curve and declared `alg`;
//! - `jku`, `x5u`, `jwk` and `x5c` are never read; a `crit` header is refused, since we
//!   implement no extensions;
//! - the signature is checked with `ring` before the claims are parsed;
//! - an unknown `kid` is its own error, [`JwtError::UnknownKey`], so the server can refetch the
//!   JWKS (rate-limited, on its side) when the provider has rotated its keys.
//!
//! Errors name the kid at most: a token's other contents never reach a message or a log.

use std::fmt;

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use ring::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// Clock skew tolerated between us and the provider, on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_S: u64 = 60;
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_KID_BYTES: usize = 256;
const MAX_JWKS_BYTES: usize = 1024 * 1024;
const MAX_KEYS: usize = 100;
const MAX_STRINGS: usize = 100;

/// Providers sometimes pad the base64url in their keys; the token itself must not be padded.
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The signature algorithms we verify. `none` and the HMAC family are absent on purpose: a
/// provider's public key must never double as a shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 9] =
        [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256, Alg::ES384, Alg::EdDSA];

    /// The algorithm named by a JWA identifier, exactly as spelled in RFC 7518 and RFC 8037.
    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        match self {
            Alg::RS256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Alg::RS384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Alg::RS512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Alg::PS256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Alg::PS384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Alg::PS512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            Alg::ES256 | Alg::ES384 | Alg::EdDSA => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm not allowed, or not one its key is for")]
    Algorithm,
    #[error("no key {} in the provider's key set", shown_kid(.kid))]
    UnknownKey { kid: Option<String> },
    #[error("bad token signature")]
    BadSignature,
    #[error("token from another issuer")]
    Issuer,
    #[error("token for another audience")]
    Audience,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("unusable key set: {0}")]
    Jwks(String),
}

/// Debug-quoted, so a kid with control characters cannot forge log lines.
fn shown_kid(kid: &Option<String>) -> String {
    kid.as_ref().map_or_else(|| "without a kid".to_owned(), |kid| format!("{kid:?}"))
}

/// What a server may read from a token before verifying it: which key to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Alg,
    pub kid: Option<String>,
}

/// What the operator expects of every token, and the time to judge it at.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub algorithms: &'a [Alg],
    pub leeway_s: u64,
    pub now_s: u64,
}

impl<'a> Expect<'a> {
    pub fn new(issuer: &'a str, audience: &'a str, algorithms: &'a [Alg], now_s: u64) -> Expect<'a> {
        Expect { issuer, audience, algorithms, leeway_s: DEFAULT_LEEWAY_S, now_s }
    }
}

/// A verified token's claims: `sub` and `exp` checked and at hand, the rest by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    all: Map<String, Value>,
}

impl Claims {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.all.get(name)
    }

    pub fn string(&self, name: &str) -> Option<&str> {
        self.all.get(name).and_then(Value::as_str)
    }

    /// A claim that may be one string or an array of them, such as groups: its strings, at most
    /// 100, other values skipped.
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.all.get(name) {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => {
                many.iter().filter_map(Value::as_str).take(MAX_STRINGS).map(str::to_owned).collect()
            }
            _ => Vec::new(),
        }
    }

    pub fn all(&self) -> &Map<String, Value> {
        &self.all
    }
}

/// The provider's signing keys we can use, and what we skipped (for the server to log).
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Key>,
    skipped: Vec<Skipped>,
}

/// A key in the document that [`Jwks::parse`] left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub kid: Option<String>,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when it names one: then a token must use exactly that.
    alg: Option<Alg>,
    material: Material,
}

#[derive(Debug, Clone)]
enum Material {
    /// Big-endian, without leading zeros, as ring wants them.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed points, `0x04 || x || y`.
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl Material {
    fn fits(&self, alg: Alg) -> bool {
        match self {
            Material::Rsa { .. } => alg.rsa_parameters().is_some(),
            Material::P256(_) => alg == Alg::ES256,
            Material::P384(_) => alg == Alg::ES384,
            Material::Ed25519(_) => alg == Alg::EdDSA,
        }
    }

    fn verifies(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        let checked = match self {
            Material::Rsa { n, e } => match alg.rsa_parameters() {
                Some(params) => RsaPublicKeyComponents { n, e }.verify(params, message, sig),
                None => return false,
            },
            Material::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig)
            }
            Material::P384(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point).verify(message, sig)
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig),
        };
        checked.is_ok()
    }
}

impl Key {
    fn fits(&self, alg: Alg) -> bool {
        self.material.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }
}

impl Jwks {
    /// Reads a JWKS document (RFC 7517): at most 1 MiB and 100 keys. Keys not for signatures
    /// (`use` other than `sig`, `key_ops` without `verify`), of a type or curve we do not verify,
    /// or unreadable are skipped rather than failing the set, so one odd key at the provider does
    /// not lock everyone out; a set left with no usable key is an error.
    pub fn parse(bytes: &[u8]) -> Result<Jwks, JwtError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwtError::Jwks(format!("larger than {MAX_JWKS_BYTES} bytes")));
        }
        let not_a_set = || JwtError::Jwks("not a JSON object with a keys array".to_owned());
        if !is_object(bytes) {
            return Err(not_a_set());
        }
        let document: Document = serde_json::from_slice(bytes).map_err(|_| not_a_set())?;
        if document.keys.len() > MAX_KEYS {
            return Err(JwtError::Jwks(format!("more than {MAX_KEYS} keys")));
        }
        let mut jwks = Jwks::default();
        for value in &document.keys {
            match read_key(value) {
                Ok(key) => jwks.keys.push(key),
                Err(reason) => {
                    let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
                    jwks.skipped.push(Skipped { kid, reason });
                }
            }
        }
        if jwks.keys.is_empty() {
            return Err(JwtError::Jwks("no key we can verify signatures with".to_owned()));
        }
        Ok(jwks)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The key a token's header points to. A header without a kid is accepted only when exactly
    /// one key fits its algorithm, so a key is never chosen by trying each in turn.
    fn key_for(&self, header: &Header) -> Result<&Key, JwtError> {
        let Some(kid) = &header.kid else {
            let mut fitting = self.keys.iter().filter(|key| key.fits(header.alg));
            return match (fitting.next(), fitting.next()) {
                (Some(key), None) => Ok(key),
                _ => Err(JwtError::UnknownKey { kid: None }),
            };
        };
        let mut named = self.keys.iter().filter(|key| key.kid.as_ref() == Some(kid)).peekable();
        if named.peek().is_none() {
            return Err(JwtError::UnknownKey { kid: Some(kid.clone()) });
        }
        named.find(|key| key.fits(header.alg)).ok_or(JwtError::Algorithm)
    }
}

fn read_key(value: &Value) -> Result<Key, &'static str> {
    let jwk = value.as_object().ok_or("not an object")?;
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let kid = match jwk.get("kid") {
        None => None,
        Some(kid) => Some(kid.as_str().ok_or("kid is not a string")?.to_owned()),
    };
    if jwk.get("use").is_some_and(|usage| usage.as_str() != Some("sig")) {
        return Err("use is not sig");
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops.as_array().is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verify {
            return Err("key_ops lacks verify");
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(alg) => Some(alg.as_str().and_then(Alg::parse).ok_or("alg is not one we verify")?),
    };
    let material = match text("kty") {
        Some("RSA") => rsa_key(text("n"), text("e"))?,
        Some("EC") => ec_key(text("crv"), text("x"), text("y"))?,
        Some("OKP") => okp_key(text("crv"), text("x"))?,
        _ => return Err("kty is not one we verify"),
    };
    if alg.is_some_and(|alg| !material.fits(alg)) {
        return Err("alg does not fit the key type");
    }
    Ok(Key { kid, alg, material })
}

fn key_bytes(field: Option<&str>) -> Result<Vec<u8>, &'static str> {
    LENIENT_URL_SAFE.decode(field.ok_or("a key parameter is missing")?).map_err(|_| "a key parameter is not base64url")
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<Material, &'static str> {
    let n = without_leading_zeros(key_bytes(n)?);
    let e = without_leading_zeros(key_bytes(e)?);
    let n_bits = n.first().map_or(0, |top| (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize));
    if !(2048..=8192).contains(&n_bits) {
        return Err("RSA modulus not of 2048 to 8192 bits");
    }
    // ring's rule for public exponents: odd, at least 3, below 2^33.
    let e_value = if e.len() <= 5 { e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) } else { 0 };
    if e_value < 3 || e_value % 2 == 0 || e_value >= 1 << 33 {
        return Err("RSA exponent out of range");
    }
    Ok(Material::Rsa { n, e })
}

fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn ec_key(crv: Option<&str>, x: Option<&str>, y: Option<&str>) -> Result<Material, &'static str> {
    let (len, make): (usize, fn(Vec<u8>) -> Material) = match crv {
        Some("P-256") => (32, Material::P256),
        Some("P-384") => (48, Material::P384),
        _ => return Err("crv is not one we verify"),
    };
    let (x, y) = (key_bytes(x)?, key_bytes(y)?);
    if x.len() != len || y.len() != len {
        return Err("coordinate length does not fit the curve");
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(make(point))
}

fn okp_key(crv: Option<&str>, x: Option<&str>) -> Result<Material, &'static str> {
    if crv != Some("Ed25519") {
        return Err("crv is not one we verify");
    }
    let x = key_bytes(x)?;
    if x.len() != signature::ED25519_PUBLIC_KEY_LEN {
        return Err("Ed25519 key is not 32 bytes");
    }
    Ok(Material::Ed25519(x))
}

/// The token's header, checked for shape and an algorithm we know, not yet verified: enough
/// for the server to see whether the kid is one it holds, and to refetch the JWKS if not.
pub fn header(token: &str) -> Result<Header, JwtError> {
    let (header_b64, _, _) = split(token)?;
    read_header(&decode(header_b64)?)
}

/// Verifies a compact JWS token against the key set and the expectations, then its claims.
pub fn verify(token: &str, jwks: &Jwks, expect: &Expect<'_>) -> Result<Claims, JwtError> {
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    // All three decoded first, so garbage never reaches a key lookup (and a JWKS refetch).
    let (header_json, payload_json, sig) = (decode(header_b64)?, decode(payload_b64)?, decode(signature_b64)?);
    let header = read_header(&header_json)?;
    if !expect.algorithms.contains(&header.alg) {
        return Err(JwtError::Algorithm);
    }
    let key = jwks.key_for(&header)?;
    let signed = token.get(..header_b64.len() + 1 + payload_b64.len()).ok_or(JwtError::Malformed)?;
    if !key.material.verifies(header.alg, signed.as_bytes(), &sig) {
        return Err(JwtError::BadSignature);
    }
    read_claims(&payload_json, expect)
}

/// Exactly three segments, the first two non-empty (an unsigned token's third is empty and is
/// refused later, by its algorithm).
fn split(token: &str) -> Result<(&str, &str, &str), JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(sig), None) if !header.is_empty() && !payload.is_empty() => {
            Ok((header, payload, sig))
        }
        _ => Err(JwtError::Malformed),
    }
}

/// Unpadded base64url with canonical trailing bits, so each token has one spelling.
fn decode(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed)
}

/// serde reads a struct from a JSON array too; a JOSE header or claims set must be an object.
fn is_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

/// Whether a field was there at all, whatever its value, `null` included.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Present, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

fn read_header(json: &[u8]) -> Result<Header, JwtError> {
    // A derived struct refuses a repeated `alg` or `kid`, which a map would settle by last-wins.
    #[derive(Deserialize)]
    struct Raw {
        alg: String,
        kid: Option<String>,
        #[serde(default)]
        crit: Present,
    }
    if !is_object(json) {
        return Err(JwtError::Malformed);
    }
    let raw: Raw = serde_json::from_slice(json).map_err(|_| JwtError::Malformed)?;
    if raw.crit.0 || raw.kid.as_ref().is_some_and(|kid| kid.len() > MAX_KID_BYTES) {
        return Err(JwtError::Malformed);
    }
    let alg = Alg::parse(&raw.alg).ok_or(JwtError::Algorithm)?;
    Ok(Header { alg, kid: raw.kid })
}

fn read_claims(json: &[u8], expect: &Expect<'_>) -> Result<Claims, JwtError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    // Parsed apart from the map for the same reason as the header: a repeated `iss` or `exp`
    // is refused rather than read two ways.
    #[derive(Deserialize)]
    struct Registered {
        iss: Option<String>,
        sub: Option<String>,
        aud: Option<Audience>,
        exp: Option<Number>,
        nbf: Option<Number>,
    }
    if !is_object(json) {
        return Err(JwtError::Malformed);
    }
    let all: Map<String, Value> = serde_json::from_slice(json).map_err(|_| JwtError::Malformed)?;
    let registered: Registered = serde_json::from_slice(json).map_err(|_| JwtError::Malformed)?;
    if registered.iss.ok_or(JwtError::MissingClaim("iss"))? != expect.issuer {
        return Err(JwtError::Issuer);
    }
    let ours = match registered.aud.ok_or(JwtError::MissingClaim("aud"))? {
        Audience::One(aud) => aud == expect.audience,
        Audience::Many(auds) => auds.iter().any(|aud| aud == expect.audience),
    };
    if !ours {
        return Err(JwtError::Audience);
    }
    let exp = seconds(&registered.exp.ok_or(JwtError::MissingClaim("exp"))?);
    if expect.now_s > exp.saturating_add(expect.leeway_s) {
        return Err(JwtError::Expired);
    }
    if registered.nbf.is_some_and(|nbf| seconds(&nbf) > expect.now_s.saturating_add(expect.leeway_s)) {
        return Err(JwtError::NotYetValid);
    }
    let sub = registered.sub.filter(|sub| !sub.is_empty()).ok_or(JwtError::MissingClaim("sub"))?;
    Ok(Claims { sub, exp, all })
}

/// A NumericDate (RFC 7519: seconds, possibly fractional) in whole seconds; before the epoch is 0.
fn seconds(date: &Number) -> u64 {
    match (date.as_u64(), date.as_f64()) {
        (Some(whole), _) => whole,
        // `as` saturates, and JSON has no NaN.
        (None, Some(fraction)) if fraction > 0.0 => fraction as u64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaEncoding, RsaKeyPair};
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const ISS: &str = "https://idp.example.com";
    const AUD: &str = "slipway";

    /// A 2048-bit RSA key, PKCS#8 DER, made once with `openssl genpkey` for these tests only
    /// (ring cannot generate RSA keys).
    const RSA_PKCS8: [&str; 17] = [
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDM5SaNwLoV9nrBqRerm0sksZb9BYQDk96moADweF4uhlPAnQ7G",
        "eGu1WcgiI8XBa3hxoYbr5/OQcXtpZoR5ulD+ZRJ53h6El+f5GlQ1UBpfJbwdCzcEYSK/SxBBfVyXP5wqfS/y+j/KTvHjHb+UPdsr",
        "IQcoryEsHL7wRwBeAG2c7OtdogH0vkJCn76dGv3Ui8cdYWKomgWdNC5Oqf4xkB6BfsCu9+WfSteqzDXZ46rN7jDb9/iHU0s2eN24",
        "JOhAkDVjUFui8tQ2VcTESJPiqYVNl84cJL5bJTNk7eF70OjRUPpydBSIw5otWsw2ev4S8qxYxRfVPPdJ5LXQYxwHNvqvAgMBAAEC",
        "ggEAT7RceQwd12lYe3lhwdnZM176E1dP8WxWUo8vjlvkl0idz/HIy6AQli1k0xMDXKiH4/wn1iEW+HuMvIWqxweZdjyvIUUsrfvB",
        "u39ofoy4lYbCVLIGJuf6cluq6S7xE80k3MpyGp0Kr5JiOi1aVzpwxahFdqgZyWUtSZ71H5wfB8nXpeyUa8NwlHsD08PTZ+vf47hX",
        "UfYTCOxtn54fuZz0JHnvi2NNoDYRbqbIgarL+VHXZRKj/9tObJEiSnFENdyZ30iW0Oyh/qyJ9yCRsAhTQg/nyM/aLNHeiw1VCwqh",
        "J80H1dVQrmB7XhihZsoEMEEV12muqrSrPc7aE/S67MeCoQKBgQDwoPOPS1YZJZzNWLM8KADit3yy3Ys+z1eYbOwU6R698dVgKsQl",
        "RVB1/vQaW8iz2VEuWs20Jnn8jXRyDhaB5rWitwiNDIV1MBGo4vOn/QSGOiXB6YL9yvzHjmCyWA+tFBhZMI8jGiKiO6WuLWRNaluR",
        "K8IHEc8wVi8vC6j6ft1A6QKBgQDZ+9c2lu6IluZ2ISmwFWyMZc+HV7nqTRgGsD1JBaO1QfBkDs6+NRvDaKTNqnS4S36ydsghSb14",
        "HPY2kZROyDkBsZ40JywNMUyEb7xsAGAEkymmP5v1VbxMx8BgCdSr/+pel7z+Fm6VG/FAV+aZ5tCvAMDkA6Qu1l3dVr5cFHdf1wKB",
        "gDj0X7HTCxX4qRyRmhrq/Qqsk39ioMrFGN6jKV3pr7UVwIN6m+KWfWzwY6a5gs/O6EAojffOA6GbeaxlWT519RgGaqe4Bv6t2gA3",
        "d6STZra+nKFBPBgGK76wHIMaBNvanci+jaKpVPlBVP3dEJiiS/oYeVxjAr9WJuTjxaNE0+nBAoGBAKSpqv7fsLyZUOn3TyhmZqL/",
        "3W6dhCFLr1SOGR1qFyo67z6GOQJR1/EawTNjCdyVmtVxCOisbWWoawz5l5CTiwyOgbVfydUFYonAZhMnjWCnUhT1g/gllaJiWh2y",
        "D2cGYKKn+OnvRAV7IBi8zcOAKi+oYA1d+s4uvKUQe6fPBgXtAoGAJU3+FtPzLinuEKf/Y4hvJHOsIBF7Ewb57IaoQjFYjsRre8Vd",
        "3bSaczRhnxWTMBFfoIl6O2iCjkTBQW0hnlMJbM4Nnn+yv+aUIw3WDR8Pgk3e5OJ9Ke5Ba1lM1WgjYiWwvr2G8A4EF4IE3BAmkYQa",
        "dpJMe/cVmtQ6uK+Jz1bkFM0=",
    ];

    enum Signer {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    struct TestKey {
        kid: &'static str,
        signer: Signer,
        jwk: Value,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_key(kid: &'static str) -> TestKey {
        let pair = RsaKeyPair::from_pkcs8(&STANDARD.decode(RSA_PKCS8.concat()).unwrap()).unwrap();
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&public.n), "e": b64(&public.e)});
        TestKey { kid, signer: Signer::Rsa(pair), jwk }
    }

    fn ec_key(kid: &'static str, p384: bool) -> TestKey {
        let rng = SystemRandom::new();
        let (alg, crv, len) = if p384 {
            (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
        } else {
            (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
        };
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!((point.len(), point[0]), (1 + 2 * len, 0x04));
        let jwk = json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&point[1..=len]), "y": b64(&point[len + 1..])});
        TestKey { kid, signer: Signer::Ec(pair), jwk }
    }

    fn ed_key(kid: &'static str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
        TestKey { kid, signer: Signer::Ed(pair), jwk }
    }

    impl TestKey {
        fn token(&self, alg: &str, claims: &Value) -> String {
            self.token_with(&json!({"alg": alg, "kid": self.kid, "typ": "JWT"}), claims)
        }

        fn token_with(&self, header: &Value, claims: &Value) -> String {
            let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
            format!("{signed}.{}", b64(&self.sign(header["alg"].as_str().unwrap(), signed.as_bytes())))
        }

        fn sign(&self, alg: &str, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.signer {
                Signer::Rsa(pair) => {
                    let encoding: &'static dyn RsaEncoding = match alg {
                        "RS384" => &signature::RSA_PKCS1_SHA384,
                        "RS512" => &signature::RSA_PKCS1_SHA512,
                        "PS256" => &signature::RSA_PSS_SHA256,
                        "PS384" => &signature::RSA_PSS_SHA384,
                        "PS512" => &signature::RSA_PSS_SHA512,
                        _ => &signature::RSA_PKCS1_SHA256,
                    };
                    let mut sig = vec![0; pair.public().modulus_len()];
                    pair.sign(encoding, &rng, message, &mut sig).unwrap();
                    sig
                }
                Signer::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
                Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            }
        }
    }

    fn jwks_of(jwks: &[&Value]) -> Jwks {
        Jwks::parse(json!({"keys": jwks}).to_string().as_bytes()).unwrap()
    }

    fn jwks(keys: &[&TestKey]) -> Jwks {
        jwks_of(&keys.iter().map(|key| &key.jwk).collect::<Vec<_>>())
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 300, "iat": NOW, "groups": ["ml", "ops"]})
    }

    fn with(changes: &Value) -> Value {
        let mut claims = claims();
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => claims.as_object_mut().unwrap().remove(name),
                _ => claims.as_object_mut().unwrap().insert(name.clone(), value.clone()),
            };
        }
        claims
    }

    fn expect() -> Expect<'static> {
        Expect::new(ISS, AUD, &Alg::ALL, NOW)
    }

    #[test]
    fn valid_tokens_of_every_algorithm_pass_and_give_sub_and_groups() {
        let (rsa, ec, ec384, ed) = (rsa_key("rsa"), ec_key("ec", false), ec_key("ec384", true), ed_key("ed"));
        let set = jwks(&[&rsa, &ec, &ec384, &ed]);
        assert_eq!((set.len(), set.is_empty(), set.skipped()), (4, false, &[][..]));
        let cases = [
            (&rsa, Alg::RS256),
            (&rsa, Alg::RS384),
            (&rsa, Alg::RS512),
            (&rsa, Alg::PS256),
            (&rsa, Alg::PS384),
            (&rsa, Alg::PS512),
            (&ec, Alg::ES256),
            (&ec384, Alg::ES384),
            (&ed, Alg::EdDSA),
        ];
        for (key, alg) in cases {
            let token = key.token(alg.name(), &claims());
            assert_eq!(header(&token), Ok(Header { alg, kid: Some(key.kid.to_owned()) }));
            let verified = verify(&token, &set, &expect()).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!((verified.sub.as_str(), verified.exp), ("alice", NOW + 300));
            assert_eq!(verified.strings("groups"), ["ml", "ops"]);
            assert_eq!(verified.string("iss"), Some(ISS));
            assert_eq!(verified.get("iat"), Some(&json!(NOW)));
            // Only algorithms the operator allowed.
            let others: Vec<Alg> = Alg::ALL.into_iter().filter(|a| *a != alg).collect();
            let narrow = Expect { algorithms: &others, ..expect() };
            assert_eq!(verify(&token, &set, &narrow), Err(JwtError::Algorithm), "{alg}");
        }
    }

    #[test]
    fn alg_none_and_unknown_algorithms_are_refused_before_any_key() {
        let rsa = rsa_key("rsa");
        let set = jwks(&[&rsa]);
        for alg in ["none", "None", "NONE", "HS256", "HS512", "ES512", "rs256", ""] {
            let header_b64 = b64(json!({"alg": alg, "kid": "rsa"}).to_string().as_bytes());
            let unsigned = format!("{header_b64}.{}.", b64(claims().to_string().as_bytes()));
            assert_eq!(header(&unsigned), Err(JwtError::Algorithm), "{alg}");
            assert_eq!(verify(&unsigned, &set, &expect()), Err(JwtError::Algorithm), "{alg}");
            let signed = format!("{unsigned}{}", b64(&rsa.sign("RS256", b"anything")));
            assert_eq!(verify(&signed, &set, &expect()), Err(JwtError::Algorithm), "{alg}");
        }
        for name in ["none", "HS256", "HS384", "HS512"] {
            assert_eq!(Alg::parse(name), None);
        }
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.name()), Some(alg));
            assert_eq!(alg.to_string(), alg.name());
        }
    }

    #[test]
    fn hs256_keyed_with_the_rsa_public_key_is_refused() {
        let rsa = rsa_key("rsa");
        let set = jwks(&[&rsa]);
        let Signer::Rsa(pair) = &rsa.signer else { unreachable!() };
        let der = pair.public().as_ref().to_vec();
        let pem = format!("-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n", STANDARD.encode(&der));
        for secret in [der, pem.into_bytes()] {
            let signed = format!(
                "{}.{}",
                b64(json!({"alg": "HS256", "kid": "rsa", "typ": "JWT"}).to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), signed.as_bytes());
            let token = format!("{signed}.{}", b64(mac.as_ref()));
            assert_eq!(verify(&token, &set, &expect()), Err(JwtError::Algorithm));
        }
    }

    #[test]
    fn issuer_must_match_exactly_and_audience_must_include_ours() {
        let ec = ec_key("ec", false);
        let set = jwks(&[&ec]);
        let check = |changes: Value| verify(&ec.token("ES256", &with(&changes)), &set, &expect()).map(|c| c.sub);
        assert_eq!(check(json!({"iss": "https://evil.example.com"})), Err(JwtError::Issuer));
        assert_eq!(check(json!({"iss": format!("{ISS}/")})), Err(JwtError::Issuer));
        assert_eq!(check(json!({"iss": null})), Err(JwtError::MissingClaim("iss")));
        assert_eq!(check(json!({"aud": "other"})), Err(JwtError::Audience));
        assert_eq!(check(json!({"aud": ["other", "another"]})), Err(JwtError::Audience));
        assert_eq!(check(json!({"aud": []})), Err(JwtError::Audience));
        assert_eq!(check(json!({"aud": null})), Err(JwtError::MissingClaim("aud")));
        assert_eq!(check(json!({"aud": ["other", AUD]})), Ok("alice".to_owned()));
        assert_eq!(check(json!({"aud": 7})), Err(JwtError::Malformed));
        assert_eq!(check(json!({"iss": 7})), Err(JwtError::Malformed));
    }

    #[test]
    fn expiry_and_not_before_allow_the_leeway_and_no_more() {
        let ed = ed_key("ed");
        let set = jwks(&[&ed]);
        let check = |changes: Value, expect: Expect<'_>| verify(&ed.token("EdDSA", &with(&changes)), &set, &expect);
        assert_eq!(check(json!({"exp": NOW - 61}), expect()), Err(JwtError::Expired));
        assert!(check(json!({"exp": NOW - 60}), expect()).is_ok());
        assert!(check(json!({"exp": NOW as f64 - 59.5}), expect()).is_ok());
        assert_eq!(check(json!({"exp": NOW - 1}), Expect { leeway_s: 0, ..expect() }), Err(JwtError::Expired));
        assert_eq!(check(json!({"exp": -5}), expect()), Err(JwtError::Expired));
        assert_eq!(check(json!({"exp": null}), expect()), Err(JwtError::MissingClaim("exp")));
        assert_eq!(check(json!({"exp": "soon"}), expect()), Err(JwtError::Malformed));
        assert!(check(json!({"exp": u64::MAX}), expect()).is_ok());
        assert_eq!(check(json!({"nbf": NOW + 61}), expect()), Err(JwtError::NotYetValid));
        assert!(check(json!({"nbf": NOW + 60}), expect()).is_ok());
        assert_eq!(check(json!({"nbf": NOW + 1}), Expect { leeway_s: 0, ..expect() }), Err(JwtError::NotYetValid));
        assert!(check(json!({"nbf": NOW - 1000, "iat": NOW + 1_000_000}), expect()).is_ok(), "iat is ignored");
    }

    #[test]
    fn unknown_kid_is_reported_so_the_server_can_refetch() {
        let (ec, other) = (ec_key("ec", false), ec_key("rotated-in", false));
        let set = jwks(&[&ec]);
        let token = other.token("ES256", &claims());
        assert_eq!(header(&token).unwrap().kid.as_deref(), Some("rotated-in"));
        let err = verify(&token, &set, &expect()).unwrap_err();
        assert_eq!(err, JwtError::UnknownKey { kid: Some("rotated-in".to_owned()) });
        assert_eq!(err.to_string(), r#"no key "rotated-in" in the provider's key set"#);
        let forged = other.token_with(&json!({"alg": "ES256", "kid": "a\nforged log line"}), &claims());
        assert!(!verify(&forged, &set, &expect()).unwrap_err().to_string().contains('\n'));
    }

    #[test]
    fn a_token_signed_by_one_key_but_naming_another_is_refused() {
        let (a, b) = (ec_key("a", false), ec_key("b", false));
        let set = jwks(&[&a, &b]);
        let token = a.token_with(&json!({"alg": "ES256", "kid": "b"}), &claims());
        assert_eq!(verify(&token, &set, &expect()), Err(JwtError::BadSignature));
        // A key carried in the header is never trusted, whatever else the header says.
        let attacker = ec_key("attacker", false);
        let header = json!({"alg": "ES256", "kid": "a", "jwk": attacker.jwk, "jku": "https://evil.example.com/jwks"});
        let token = attacker.token_with(&header, &claims());
        assert_eq!(verify(&token, &set, &expect()), Err(JwtError::BadSignature));
        let token = attacker.token_with(&json!({"alg": "ES256", "kid": "attacker", "jwk": attacker.jwk}), &claims());
        assert_eq!(verify(&token, &set, &expect()), Err(JwtError::UnknownKey { kid: Some("attacker".to_owned()) }));
    }

    #[test]
    fn rotation_accepts_old_and_new_keys_until_the_old_one_is_dropped() {
        let (old, new) = (ec_key("2024", false), ec_key("2025", false));
        let (old_token, new_token) = (old.token("ES256", &claims()), new.token("ES256", &claims()));
        let both = jwks(&[&old, &new]);
        assert!(verify(&old_token, &both, &expect()).is_ok());
        assert!(verify(&new_token, &both, &expect()).is_ok());
        let after = jwks(&[&new]);
        assert_eq!(verify(&old_token, &after, &expect()), Err(JwtError::UnknownKey { kid: Some("2024".to_owned()) }));
        assert!(verify(&new_token, &after, &expect()).is_ok());
    }

    #[test]
    fn the_algorithm_must_fit_the_key_type_curve_and_declared_alg() {
        let (rsa, ec, ed) = (rsa_key("rsa"), ec_key("ec", false), ed_key("ed"));
        let set = jwks(&[&rsa, &ec, &ed]);
        let named = |signer: &TestKey, alg: &str, kid: &str| {
            verify(&signer.token_with(&json!({"alg": alg, "kid": kid}), &claims()), &set, &expect())
        };
        assert_eq!(named(&ec, "ES256", "rsa"), Err(JwtError::Algorithm));
        assert_eq!(named(&rsa, "RS256", "ec"), Err(JwtError::Algorithm));
        assert_eq!(named(&ec, "ES384", "ec"), Err(JwtError::Algorithm));
        assert_eq!(named(&ed, "EdDSA", "ec"), Err(JwtError::Algorithm));
        assert_eq!(named(&rsa, "PS256", "ed"), Err(JwtError::Algorithm));
        let mut declared = rsa.jwk.clone();
        declared["alg"] = json!("RS256");
        let pinned = jwks_of(&[&declared]);
        assert!(verify(&rsa.token("RS256", &claims()), &pinned, &expect()).is_ok());
        assert_eq!(verify(&rsa.token("PS256", &claims()), &pinned, &expect()), Err(JwtError::Algorithm));
    }

    #[test]
    fn tampering_anywhere_breaks_the_signature() {
        let rsa = rsa_key("rsa");
        let set = jwks(&[&rsa]);
        let token = rsa.token("RS256", &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let admin = b64(with(&json!({"sub": "admin"})).to_string().as_bytes());
        let tampered = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert_eq!(verify(&tampered, &set, &expect()), Err(JwtError::BadSignature));
        let header = b64(json!({"alg": "RS256", "kid": "rsa", "typ": "at+jwt"}).to_string().as_bytes());
        let tampered = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(verify(&tampered, &set, &expect()), Err(JwtError::BadSignature));
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(verify(&tampered, &set, &expect()), Err(JwtError::BadSignature));
        let truncated = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..200]));
        assert_eq!(verify(&truncated, &set, &expect()), Err(JwtError::BadSignature));
    }

    #[test]
    fn crit_headers_are_refused() {
        let ec = ec_key("ec", false);
        let set = jwks(&[&ec]);
        for crit in [json!(["exp"]), json!([]), Value::Null] {
            let token = ec.token_with(&json!({"alg": "ES256", "kid": "ec", "crit": crit, "exp": 1}), &claims());
            assert_eq!(header(&token), Err(JwtError::Malformed));
            assert_eq!(verify(&token, &set, &expect()), Err(JwtError::Malformed));
        }
    }

    #[test]
    fn only_three_unpadded_base64url_segments_of_bounded_size_are_read() {
        let ec = ec_key("ec", false);
        let set = jwks(&[&ec]);
        let token = ec.token("ES256", &claims());
        assert!(verify(&token, &set, &expect()).is_ok());
        let parts: Vec<&str> = token.split('.').collect();
        let big = ec.token("ES256", &with(&json!({"padding": "x".repeat(MAX_TOKEN_BYTES)})));
        for bad in [
            String::new(),
            "..".to_owned(),
            format!("{token}.{}", parts[2]),
            format!("{}.{}", parts[0], parts[1]),
            format!(".{}.{}", parts[1], parts[2]),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1].replace('-', "+").replace('_', "/") + "+", parts[2]),
            format!(" {token}"),
            format!("{token}\n"),
            big,
        ] {
            assert_eq!(verify(&bad, &set, &expect()).map(|c| c.sub), Err(JwtError::Malformed), "{bad:.60}");
        }
        // Well-signed, but not JSON objects.
        for (header, payload) in
            [(json!(["ES256"]), claims()), (json!({"alg": "ES256", "kid": "ec"}), json!([claims()]))]
        {
            let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
            let token = format!("{signed}.{}", b64(&ec.sign("ES256", signed.as_bytes())));
            assert_eq!(verify(&token, &set, &expect()), Err(JwtError::Malformed));
        }
    }

    #[test]
    fn repeated_claims_and_a_missing_sub_are_refused() {
        let ec = ec_key("ec", false);
        let set = jwks(&[&ec]);
        let header = b64(json!({"alg": "ES256", "kid": "ec"}).to_string().as_bytes());
        let body = format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{},"iss":"https://evil"}}"#, NOW + 300);
        let signed = format!("{header}.{}", b64(body.as_bytes()));
        let token = format!("{signed}.{}", b64(&ec.sign("ES256", signed.as_bytes())));
        assert_eq!(verify(&token, &set, &expect()), Err(JwtError::Malformed));
        for sub in [Value::Null, json!("")] {
            let token = ec.token("ES256", &with(&json!({ "sub": sub })));
            assert_eq!(verify(&token, &set, &expect()), Err(JwtError::MissingClaim("sub")));
        }
    }

    #[test]
    fn a_token_without_kid_needs_exactly_one_fitting_key() {
        let (ec, other, rsa) = (ec_key("ec", false), ec_key("other", false), rsa_key("rsa"));
        let token = ec.token_with(&json!({"alg": "ES256"}), &claims());
        assert!(verify(&token, &jwks(&[&ec, &rsa]), &expect()).is_ok());
        assert_eq!(verify(&token, &jwks(&[&ec, &other]), &expect()), Err(JwtError::UnknownKey { kid: None }));
        assert_eq!(verify(&token, &jwks(&[&rsa]), &expect()), Err(JwtError::UnknownKey { kid: None }));
        let mut anonymous = ec.jwk.clone();
        anonymous.as_object_mut().unwrap().remove("kid");
        let named = ec.token("ES256", &claims());
        assert_eq!(
            verify(&named, &jwks_of(&[&anonymous]), &expect()),
            Err(JwtError::UnknownKey { kid: Some("ec".into()) })
        );
        assert!(verify(&token, &jwks_of(&[&anonymous]), &expect()).is_ok());
    }

    #[test]
    fn jwks_skips_keys_it_cannot_use_and_refuses_what_is_not_a_key_set() {
        let (rsa, ec, ed) = (rsa_key("rsa"), ec_key("ec", false), ed_key("ed"));
        let mut enc = rsa.jwk.clone();
        enc["kid"] = json!("enc");
        enc["use"] = json!("enc");
        let mut ops = ec.jwk.clone();
        ops["kid"] = json!("ops");
        ops["key_ops"] = json!(["encrypt"]);
        let mut short = ec.jwk.clone();
        short["kid"] = json!("short");
        short["x"] = json!(b64(&[1; 31]));
        let mut long = ec.jwk.clone();
        long["kid"] = json!("long");
        long["y"] = json!(b64(&[1; 48]));
        let mut p521 = ec.jwk.clone();
        p521["kid"] = json!("p521");
        p521["crv"] = json!("P-521");
        let mut x25519 = ed.jwk.clone();
        x25519["kid"] = json!("x25519");
        x25519["crv"] = json!("X25519");
        let mut small = rsa.jwk.clone();
        small["kid"] = json!("small");
        small["n"] = json!(b64(&[0xff; 128]));
        let mut hs = json!({"kty": "oct", "kid": "hs", "k": "c2VjcmV0", "alg": "HS256"});
        let mut mismatch = ec.jwk.clone();
        mismatch["kid"] = json!("mismatch");
        mismatch["alg"] = json!("RS256");
        let set = jwks_of(&[&enc, &ops, &short, &long, &p521, &x25519, &small, &hs, &mismatch, &ed.jwk]);
        assert_eq!(set.len(), 1);
        let skipped: Vec<(Option<&str>, &str)> = set.skipped().iter().map(|s| (s.kid.as_deref(), s.reason)).collect();
        assert_eq!(
            skipped,
            [
                (Some("enc"), "use is not sig"),
                (Some("ops"), "key_ops lacks verify"),
                (Some("short"), "coordinate length does not fit the curve"),
                (Some("long"), "coordinate length does not fit the curve"),
                (Some("p521"), "crv is not one we verify"),
                (Some("x25519"), "crv is not one we verify"),
                (Some("small"), "RSA modulus not of 2048 to 8192 bits"),
                (Some("hs"), "alg is not one we verify"),
                (Some("mismatch"), "alg does not fit the key type"),
            ]
        );
        let token = rsa.token_with(&json!({"alg": "RS256", "kid": "enc"}), &claims());
        assert_eq!(verify(&token, &set, &expect()), Err(JwtError::UnknownKey { kid: Some("enc".into()) }));
        hs["alg"] = Value::Null;
        assert!(Jwks::parse(json!({"keys": [hs]}).to_string().as_bytes()).is_err(), "no usable key");
        // A key published with a leading zero on its modulus still verifies.
        let mut padded = rsa.jwk.clone();
        let n = URL_SAFE_NO_PAD.decode(rsa.jwk["n"].as_str().unwrap()).unwrap();
        padded["n"] = json!(b64(&[&[0], &n[..]].concat()));
        assert!(verify(&rsa.token("RS256", &claims()), &jwks_of(&[&padded]), &expect()).is_ok());

        let too_many: Vec<&Value> = std::iter::repeat_n(&ed.jwk, MAX_KEYS + 1).collect();
        assert!(Jwks::parse(json!({"keys": too_many}).to_string().as_bytes()).is_err());
        assert_eq!(jwks_of(&too_many[..MAX_KEYS]).len(), MAX_KEYS);
        let huge = json!({"keys": [ed.jwk], "padding": "x".repeat(MAX_JWKS_BYTES)}).to_string();
        assert!(matches!(Jwks::parse(huge.as_bytes()), Err(JwtError::Jwks(_))));
        for garbage in [&b""[..], b"garbage", b"{}", b"[]", b"{\"keys\": {}}", b"[[{\"kty\": \"OKP\"}]]", b"\xff\xfe"] {
            assert!(matches!(Jwks::parse(garbage), Err(JwtError::Jwks(_))), "{garbage:?}");
        }
    }

    #[test]
    fn strings_reads_one_string_or_an_array_capped() {
        let ed = ed_key("ed");
        let many: Vec<String> = (0..150).map(|i| format!("g{i}")).collect();
        let changes = json!({"one": "ml", "mixed": ["a", 1, null, "b"], "many": many, "number": 5});
        let verified = verify(&ed.token("EdDSA", &with(&changes)), &jwks(&[&ed]), &expect()).unwrap();
        assert_eq!(verified.strings("one"), ["ml"]);
        assert_eq!(verified.strings("mixed"), ["a", "b"]);
        assert_eq!(verified.strings("many"), many[..MAX_STRINGS]);
        assert!(verified.strings("number").is_empty() && verified.strings("absent").is_empty());
        assert_eq!((verified.string("number"), verified.string("one")), (None, Some("ml")));
        assert_eq!(verified.all().len(), claims().as_object().unwrap().len() + 4);
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            text in ".{0,300}",
            shaped in "[A-Za-z0-9_=+/-]{0,80}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}",
            bytes in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let set = jwks(&[&ed_key("ed")]);
            for token in [&text, &shaped] {
                let _ = header(token);
                prop_assert!(verify(token, &set, &expect()).is_err());
            }
            let _ = Jwks::parse(&bytes);
            let _ = Jwks::parse(text.as_bytes());
        }

        #[test]
        fn changing_any_one_character_of_a_valid_token_refuses_it(at in any::<prop::sample::Index>(), to in "[A-Za-z0-9_.=-]") {
            let ec = ec_key("ec", false);
            let set = jwks(&[&ec]);
            let token = ec.token("ES256", &claims());
            let at = at.index(token.len());
            prop_assume!(token[at..=at] != to);
            let changed = format!("{}{to}{}", &token[..at], &token[at + 1..]);
            prop_assert!(verify(&changed, &set, &expect()).is_err());
        }
    }
}
