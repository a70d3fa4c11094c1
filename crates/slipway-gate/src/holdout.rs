//! The holdout: a CSV or Parquet file read with `slipway_monitor::read` (pandas' typing and
//! null markers, as `slipway drift` reads files), kept row by row because every row is sent
//! to both models. Features are every column but the label; requests are MLflow
//! `dataframe_split` bodies, the shape `mlflow.pyfunc` clients send a DataFrame in.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use slipway_monitor::read::{ColumnSink, NoProgress, number_key, read_file_into};
use slipway_monitor::typing::DeclaredTypes;

use crate::GateError;

/// One value as the file holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    /// The value as pandas would put it in a JSON request: NaN and infinities as the words
    /// MLflow's client writes for them.
    fn json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => json!(i),
            Cell::Float(x) if x.is_nan() => json!("NaN"),
            Cell::Float(x) if x.is_infinite() => json!(if *x > 0.0 { "Infinity" } else { "-Infinity" }),
            Cell::Float(x) => json!(x),
            Cell::Text(s) => json!(s),
        }
    }

    /// A label as text, the way `slipway_monitor::performance` compares classes (1 and 1.0
    /// are one class; Parquet's `True` is Python's `true`). `None` for a missing label.
    pub fn label_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(x) if !x.is_finite() => None,
            Cell::Float(x) => Some(number_key(*x)),
            Cell::Text(s) => Some(match s.as_str() {
                "True" => "true".to_string(),
                "False" => "false".to_string(),
                _ => s.clone(),
            }),
        }
    }

    /// A label as a number, for regression. `Err` holds the text that is not one.
    pub fn label_number(&self) -> Result<Option<f64>, String> {
        match self {
            Cell::Null => Ok(None),
            Cell::Int(i) => Ok(Some(*i as f64)),
            Cell::Float(x) if !x.is_finite() => Ok(None),
            Cell::Float(x) => Ok(Some(*x)),
            Cell::Text(s) => Err(s.clone()),
        }
    }
}

/// One column's cells, in file order.
struct Cells {
    name: String,
    cells: Vec<Cell>,
    unsupported: Option<String>,
}

impl ColumnSink for Cells {
    type Config = ();
    fn for_column(name: String, _config: &()) -> Self {
        Cells { name, cells: Vec::new(), unsupported: None }
    }
    fn push_null(&mut self) {
        self.cells.push(Cell::Null);
    }
    fn push_number(&mut self, v: f64, integer: bool) {
        self.cells.push(if integer && v.abs() < 9.0e15 { Cell::Int(v as i64) } else { Cell::Float(v) });
    }
    fn push_text(&mut self, s: &str) {
        self.cells.push(Cell::Text(s.to_string()));
    }
    fn set_unsupported(&mut self, type_name: String) {
        self.unsupported = Some(type_name);
    }
    fn is_unsupported(&self) -> bool {
        self.unsupported.is_some()
    }
}

/// The rows both models are scored on.
#[derive(Debug, Clone)]
pub struct Holdout {
    pub path: PathBuf,
    pub label: String,
    pub features: Vec<String>,
    /// Feature columns, each `rows` long, in `features` order.
    columns: Vec<Vec<Cell>>,
    pub labels: Vec<Cell>,
}

impl Holdout {
    /// Reads `path` (.csv or .parquet) whole; `label` must be one of its columns.
    pub fn read(path: &Path, label: &str) -> Result<Holdout, GateError> {
        let read = read_file_into::<Cells>(path, None, &DeclaredTypes::default(), &(), &NoProgress)
            .map_err(|source| GateError::Holdout { path: path.to_path_buf(), source })?;
        let names: Vec<String> = read.iter().map(|c| c.name.clone()).collect();
        let Some(at) = read.iter().position(|c| c.name == label) else {
            return Err(GateError::MissingLabel {
                label: label.to_string(),
                path: path.to_path_buf(),
                columns: names.join(", "),
            });
        };
        if let Some(c) = read.iter().find(|c| c.unsupported.is_some()) {
            let kind = c.unsupported.clone().unwrap_or_default();
            return Err(GateError::UnsupportedColumn { column: c.name.clone(), kind });
        }
        let mut columns: Vec<Cells> = read;
        let labels = columns.remove(at).cells;
        Ok(Holdout {
            path: path.to_path_buf(),
            label: label.to_string(),
            features: columns.iter().map(|c| c.name.clone()).collect(),
            columns: columns.into_iter().map(|c| c.cells).collect(),
            labels,
        })
    }

    /// A holdout from columns in memory (tests, and a pipeline step that holds its data).
    pub fn from_columns(
        path: PathBuf,
        label: String,
        features: Vec<(String, Vec<Cell>)>,
        labels: Vec<Cell>,
    ) -> Result<Holdout, GateError> {
        if let Some((name, c)) = features.iter().find(|(_, c)| c.len() != labels.len()) {
            return Err(GateError::InvalidOption(format!(
                "column '{name}' has {} values, the label {}",
                c.len(),
                labels.len()
            )));
        }
        let (names, columns) = features.into_iter().unzip();
        Ok(Holdout { path, label, features: names, columns, labels })
    }

    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The MLflow scoring body for `rows` (indices into the holdout).
    pub fn request(&self, rows: &[usize]) -> Vec<u8> {
        let data: Vec<Value> =
            rows.iter().map(|&r| Value::Array(self.columns.iter().map(|c| c[r].json()).collect())).collect();
        let body = json!({ "dataframe_split": { "columns": self.features, "data": data } });
        body.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_keeps_its_rows_and_the_label_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(&path, "a,y,b\n1,0,x\n2.5,1,\nNA,1,z\n").unwrap();
        let h = Holdout::read(&path, "y").unwrap();
        assert_eq!(h.features, ["a", "b"]);
        assert_eq!(h.rows(), 3);
        assert_eq!(h.labels.iter().map(|c| c.label_text().unwrap()).collect::<Vec<_>>(), ["0", "1", "1"]);
        let body: Value = serde_json::from_slice(&h.request(&[0, 2])).unwrap();
        assert_eq!(body, json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [null, "z"]]}}));
        let err = Holdout::read(&path, "label").unwrap_err().to_string();
        assert!(err.contains("'label'") && err.contains("a, y, b"), "{err}");
    }

    #[test]
    fn labels_compare_as_the_monitors_compare_them() {
        assert_eq!(Cell::Float(1.0).label_text().as_deref(), Some("1"));
        assert_eq!(Cell::Text("True".into()).label_text().as_deref(), Some("true"));
        assert_eq!(Cell::Float(f64::NAN).label_text(), None);
        assert_eq!(Cell::Text("a".into()).label_number(), Err("a".into()));
        assert_eq!(Cell::Float(f64::INFINITY).json(), json!("Infinity"));
    }
}
