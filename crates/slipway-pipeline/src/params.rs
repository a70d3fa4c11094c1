//! The params file (`params.yaml`, as in dvc): nested values a step names by dotted key
//! (`train.C`), either in its `params:` list or as `${train.C}` in its command.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::error::{Location, PipelineError, Result};
use crate::spec::scalar;

#[derive(Debug, Clone, Default)]
pub struct Params {
    root: Value,
}

impl Params {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
        let root: Value = serde_yaml_ng::from_str(&text).map_err(|e| PipelineError::Invalid {
            at: Location { file: path.to_path_buf(), line: e.location().map_or(0, |l| l.line()), step: None },
            message: e.to_string(),
        })?;
        if !(root.is_object() || root.is_null()) {
            return Err(PipelineError::Invalid {
                at: Location { file: path.to_path_buf(), line: 1, step: None },
                message: "a params file is a mapping of names to values".into(),
            });
        }
        Ok(Params { root })
    }

    pub fn from_value(root: Value) -> Self {
        Params { root }
    }

    /// The value at a dotted key (`train.C`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        key.split('.').try_fold(&self.root, |v, part| v.get(part))
    }

    /// Replaces each `${key}` in `text` with its value and records the key in `used`; `$$`
    /// is a literal `$`.
    pub fn interpolate(&self, text: &str, used: &mut BTreeSet<String>) -> std::result::Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| format!("unclosed '${{' in '{text}'"))?;
                let key = body[..end].trim();
                let value = self.get(key).ok_or_else(|| format!("'${{{key}}}' is not in the params file"))?;
                out.push_str(&scalar(value));
                used.insert(key.to_string());
                rest = &body[end + 1..];
            } else {
                // `$HOME` and friends are the shell's business.
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_keys_and_interpolation() {
        let p = Params::from_value(json!({"train": {"C": 0.5, "name": "lr"}, "n": 3}));
        assert_eq!(p.get("train.C"), Some(&json!(0.5)));
        assert_eq!(p.get("train.missing"), None);
        let mut used = BTreeSet::new();
        let cmd = p.interpolate("train --C ${train.C} --n ${ n } $HOME $$x", &mut used).unwrap();
        assert_eq!(cmd, "train --C 0.5 --n 3 $HOME $x");
        assert_eq!(used.into_iter().collect::<Vec<_>>(), ["n", "train.C"]);
        assert!(p.interpolate("${nope}", &mut BTreeSet::new()).unwrap_err().contains("'${nope}'"));
        assert!(p.interpolate("${train.C", &mut BTreeSet::new()).unwrap_err().contains("unclosed"));
    }
}
