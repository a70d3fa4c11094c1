//! The one sanitiser every client-supplied artifact path goes through.
//!
//! The HTTP layer hands over the path exactly as it came off the wire (still percent-encoded),
//! so this is the only place that decodes it. Anything that could name a location outside
//! the root, or that hides such a name behind more encoding, is refused rather than repaired.

use std::fmt;

use object_store::path::Path as ObjectPath;
use percent_encoding::percent_decode_str;

use crate::ArtifactError;

/// A checked, relative artifact path: non-empty segments, none `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(Vec<String>);

impl ArtifactPath {
    pub fn root() -> Self {
        ArtifactPath(Vec::new())
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    pub fn to_object_path(&self) -> ObjectPath {
        ObjectPath::from_iter(self.0.iter().map(String::as_str))
    }
    /// This path with `other` appended (both already checked).
    pub fn join(&self, other: &ArtifactPath) -> ArtifactPath {
        ArtifactPath(self.0.iter().chain(other.0.iter()).cloned().collect())
    }
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

fn reject(raw: &str, why: &str) -> ArtifactError {
    let shown: String = raw.chars().take(200).collect();
    ArtifactError::InvalidPath(format!("invalid artifact path '{shown}': {why}"))
}

/// Decodes one layer of percent-encoding and checks the result.
///
/// Refused: absolute paths, `..` and `.` segments, empty segments (`a//b`), backslashes,
/// NUL and control characters, drive letters, and any `%` left after decoding that would
/// decode further into `.`, `/`, `\` or `%` (double encoding).
pub fn sanitize(raw: &str) -> Result<ArtifactPath, ArtifactError> {
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| reject(raw, "not valid UTF-8"))?;
    let decoded: &str = &decoded;
    if decoded.contains('\\') {
        return Err(reject(raw, "backslashes are not allowed"));
    }
    if decoded.chars().any(char::is_control) {
        return Err(reject(raw, "control characters are not allowed"));
    }
    if decoded.starts_with('/') {
        return Err(reject(raw, "absolute paths are not allowed"));
    }
    if decoded.contains('%') {
        let again = percent_decode_str(decoded).decode_utf8_lossy();
        if again != decoded {
            return Err(reject(raw, "encoded more than once"));
        }
    }
    let trimmed = decoded.strip_suffix('/').unwrap_or(decoded);
    if trimmed.is_empty() {
        return Ok(ArtifactPath::root());
    }
    let mut segments = Vec::new();
    for (i, seg) in trimmed.split('/').enumerate() {
        match seg {
            "" => return Err(reject(raw, "empty path segments are not allowed")),
            "." | ".." => return Err(reject(raw, "'.' and '..' segments are not allowed")),
            s if i == 0 && s.len() == 2 && s.ends_with(':') => {
                return Err(reject(raw, "drive letters are not allowed"));
            }
            s => segments.push(s.to_string()),
        }
    }
    // object_store has its own rules for path parts; anything it would alter is refused too.
    for s in &segments {
        if object_store::path::PathPart::parse(s).is_err() {
            return Err(reject(raw, "a path segment holds characters the store cannot keep"));
        }
    }
    Ok(ArtifactPath(segments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_paths() {
        assert_eq!(sanitize("1/abc/artifacts/model/MLmodel").unwrap().to_string(), "1/abc/artifacts/model/MLmodel");
        assert_eq!(sanitize("a%20b/c.txt").unwrap().to_string(), "a b/c.txt");
        assert!(sanitize("").unwrap().is_root());
        assert_eq!(sanitize("dir/").unwrap().to_string(), "dir");
    }

    #[test]
    fn rejects_every_traversal_shape() {
        for bad in [
            "..",
            "../etc/passwd",
            "a/../../b",
            "a/./b",
            "/etc/passwd",
            "//etc/passwd",
            "%2e%2e/secret",
            "%2E%2E%2Fsecret",
            "..%2fsecret",
            "%252e%252e%252fsecret",
            "%25252e%25252e/x",
            "a%5c..%5cb",
            "..\\..\\windows",
            "a//b",
            "C:/windows",
            "a/%00b",
            "%2fetc%2fpasswd",
        ] {
            assert!(sanitize(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    proptest! {
        #[test]
        fn accepted_paths_never_climb(s in "[a-z./%25\\\\]{0,24}") {
            if let Ok(p) = sanitize(&s) {
                for seg in p.segments() {
                    prop_assert!(seg != ".." && seg != "." && !seg.is_empty());
                    prop_assert!(!seg.contains('/') && !seg.contains('\\'));
                }
            }
        }
    }
}
