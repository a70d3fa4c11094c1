//! What changed between two versions: files added, removed and changed (by content, not by
//! time); for a table changed in place, rows and columns before and after and, once the
//! caller has fetched the two profiles, the type changes and the drift report the monitors'
//! statistics give (`slipway drift`'s methods and thresholds, per column).

use serde::Serialize;
use slipway_monitor::drift::DriftOptions;
use slipway_monitor::profile::{DatasetProfile, compare_profiles};
use slipway_monitor::typing::DeclaredTypes;

use crate::Result;
use crate::manifest::{FileEntry, Manifest};

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub added: Vec<FileEntry>,
    pub removed: Vec<FileEntry>,
    pub changed: Vec<Changed>,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub path: String,
    pub before: FileEntry,
    pub after: FileEntry,
    /// Both sides are tables: how the table changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TableChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableChange {
    pub rows_before: u64,
    pub rows_after: u64,
    pub columns_added: Vec<String>,
    pub columns_removed: Vec<String>,
    /// Columns whose kind (numerical, categorical) changed: name, before, after.
    pub columns_retyped: Vec<(String, String, String)>,
    /// The drift report over the columns both sides have, from their profiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<serde_json::Value>,
    /// Why there is no drift report, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_error: Option<String>,
}

/// Compares two manifests by path and content. Tables changed in place get their row and
/// column changes; their drift is [`TableChange::fill`]'s, from the profiles.
pub fn diff(before: &Manifest, after: &Manifest) -> Diff {
    let mut d = Diff { added: Vec::new(), removed: Vec::new(), changed: Vec::new(), unchanged: 0 };
    let (mut i, mut j) = (0, 0);
    while i < before.files.len() || j < after.files.len() {
        let (b, a) = (before.files.get(i), after.files.get(j));
        match (b, a) {
            (Some(b), Some(a)) if b.path == a.path => {
                if b.sha256 == a.sha256 {
                    d.unchanged += 1;
                } else {
                    d.changed.push(changed(b, a));
                }
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b.path < a.path => {
                d.removed.push(b.clone());
                i += 1;
            }
            (Some(b), None) => {
                d.removed.push(b.clone());
                i += 1;
            }
            (_, Some(a)) => {
                d.added.push(a.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    d
}

fn changed(b: &FileEntry, a: &FileEntry) -> Changed {
    let table = match (&b.table, &a.table) {
        (Some(tb), Some(ta)) => Some(TableChange {
            rows_before: tb.rows,
            rows_after: ta.rows,
            columns_added: ta.columns.iter().filter(|c| !tb.columns.contains(c)).cloned().collect(),
            columns_removed: tb.columns.iter().filter(|c| !ta.columns.contains(c)).cloned().collect(),
            columns_retyped: Vec::new(),
            drift: None,
            drift_error: None,
        }),
        _ => None,
    };
    Changed { path: a.path.clone(), before: b.clone(), after: a.clone(), table }
}

impl TableChange {
    /// Adds the type changes and the drift report, from the two sides' profiles.
    pub fn fill(&mut self, before: &DatasetProfile, after: &DatasetProfile) -> Result<()> {
        let kind = |numeric: bool| if numeric { "numerical" } else { "categorical" }.to_string();
        let shared: Vec<String> =
            after.columns.iter().map(|c| c.name.clone()).filter(|n| before.column(n).is_some()).collect();
        for name in &shared {
            if let (Some(b), Some(a)) = (before.column(name), after.column(name))
                && b.is_numeric() != a.is_numeric()
            {
                self.columns_retyped.push((name.clone(), kind(b.is_numeric()), kind(a.is_numeric())));
            }
        }
        let options = DriftOptions { columns: Some(shared), ..DriftOptions::default() };
        match compare_profiles(before, after, &options, &DeclaredTypes::default()) {
            Ok(report) => self.drift = serde_json::to_value(report).ok(),
            Err(e) => self.drift_error = Some(e.to_string()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{FORMAT, Table};

    fn file(path: &str, sha: char, table: Option<Vec<&str>>) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 1,
            sha256: sha.to_string().repeat(64),
            table: table.map(|cols| Table {
                rows: 10,
                columns: cols.into_iter().map(String::from).collect(),
                profile: "f".repeat(64),
            }),
        }
    }

    #[test]
    fn files_are_matched_by_path_and_compared_by_content() {
        let before = Manifest {
            format: FORMAT.into(),
            files: vec![file("a", '1', None), file("b", '2', None), file("t.csv", '3', Some(vec!["x", "y"]))],
        };
        let after = Manifest {
            format: FORMAT.into(),
            files: vec![file("b", '2', None), file("c", '4', None), file("t.csv", '5', Some(vec!["y", "z"]))],
        };
        let d = diff(&before, &after);
        assert_eq!(d.added.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(d.removed.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(d.unchanged, 1);
        let t = d.changed[0].table.as_ref().unwrap();
        assert_eq!(
            (t.columns_added.clone(), t.columns_removed.clone()),
            (vec!["z".to_string()], vec!["x".to_string()])
        );
        assert!(diff(&after, &after).changed.is_empty());
    }
}
