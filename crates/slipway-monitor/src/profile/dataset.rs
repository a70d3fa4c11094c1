//! A dataset's profile: one [`ColumnProfile`] per column, in file order, built in one
//! streaming pass by the same readers as drift, merged part by part, and saved as JSON.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::column::{ColumnProfile, ProfileOptions};
use crate::MonitorError;
use crate::read::{Progress, read_file_into};
use crate::typing::DeclaredTypes;

/// Marks the JSON so that a file of something else is refused by name.
pub const PROFILE_FORMAT: &str = "slipway-profile/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetProfile {
    pub format: String,
    /// Rows read (every column of a row counts it, as a value or a null).
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

impl DatasetProfile {
    pub fn from_columns(columns: Vec<ColumnProfile>) -> DatasetProfile {
        let rows = columns.iter().map(|c| c.count + c.nulls).max().unwrap_or(0);
        DatasetProfile { format: PROFILE_FORMAT.into(), rows, columns }
    }

    /// Profiles a CSV or Parquet file (by extension), keeping only `columns` when given. CSV
    /// columns that `types` declares categorical are read as the text they hold.
    pub fn from_file(
        path: &Path,
        columns: Option<&[String]>,
        types: &DeclaredTypes,
        options: &ProfileOptions,
        progress: &dyn Progress,
    ) -> Result<DatasetProfile, MonitorError> {
        Ok(DatasetProfile::from_columns(read_file_into(path, columns, types, options, progress)?))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Adds the profile of more rows of the same dataset. A column that one part lacks counts
    /// as null in that part's rows, as `pandas.concat` would fill it.
    pub fn merge(&mut self, other: &DatasetProfile) -> Result<(), MonitorError> {
        for col in &mut self.columns {
            match other.column(&col.name) {
                Some(o) => col.merge(o)?,
                None => col.nulls += other.rows,
            }
        }
        for o in &other.columns {
            if self.column(&o.name).is_none() {
                let mut col = o.clone();
                col.nulls += self.rows;
                self.columns.push(col);
            }
        }
        self.rows += other.rows;
        Ok(())
    }

    pub fn to_json(&self) -> Result<String, MonitorError> {
        serde_json::to_string(self).map_err(|e| MonitorError::BadProfile(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<DatasetProfile, MonitorError> {
        let p: DatasetProfile = serde_json::from_str(text).map_err(|e| MonitorError::BadProfile(e.to_string()))?;
        if p.format != PROFILE_FORMAT {
            return Err(MonitorError::BadProfile(format!("unknown format '{}' (expected {PROFILE_FORMAT})", p.format)));
        }
        Ok(p)
    }
}
