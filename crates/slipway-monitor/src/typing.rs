//! Column typing. A column the user declares numerical or categorical ([`DeclaredTypes`], as
//! Evidently's `DataDefinition(numerical_columns=..., categorical_columns=...)`) takes that type.
//! Every other column is typed as Evidently 0.7.23 types it without a data definition: the
//! current dataset's pandas dtype decides. Floats are numeric; integers are categorical when the
//! current dataset has at most 10 distinct values (`INTEGER_CARDINALITY_LIMIT`), numeric
//! otherwise; strings, booleans and categories are categorical. The reference is then read the
//! same way.

use serde::{Deserialize, Serialize};

use crate::MonitorError;
use crate::read::{ColumnValues, SourceKind, number_key};
use crate::stats::{ColumnType, Sample};

/// Evidently's `INTEGER_CARDINALITY_LIMIT`.
pub const INTEGER_CARDINALITY_LIMIT: usize = 10;

/// A dataset's name (for messages) and whether it has a given column.
pub type HasColumn<'a> = (&'static str, &'a dyn Fn(&str) -> bool);

/// Column types the user states instead of leaving them to inference: an integer code column
/// that should be categorical, a few-valued measurement that should be numerical, a
/// zero-padded code ("001") that must stay text. As JSON: `{"numerical": [...],
/// "categorical": [...]}`, either list optional. Columns named in neither are inferred.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredTypes {
    #[serde(default)]
    pub numerical: Vec<String>,
    #[serde(default)]
    pub categorical: Vec<String>,
}

impl DeclaredTypes {
    /// The declaration, refused when a column is in both lists.
    pub fn new(numerical: Vec<String>, categorical: Vec<String>) -> Result<DeclaredTypes, MonitorError> {
        let types = DeclaredTypes { numerical, categorical };
        types.check()?;
        Ok(types)
    }

    /// Refuses a column declared both numerical and categorical (a value built field by field
    /// or read from JSON has not been through [`DeclaredTypes::new`]).
    pub fn check(&self) -> Result<(), MonitorError> {
        match self.numerical.iter().find(|n| self.categorical.contains(n)) {
            Some(both) => Err(MonitorError::DeclaredTwice(both.clone())),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.numerical.is_empty() && self.categorical.is_empty()
    }

    /// The declared type of a column, if any.
    pub fn get(&self, column: &str) -> Option<ColumnType> {
        if self.numerical.iter().any(|c| c == column) {
            Some(ColumnType::Numeric)
        } else if self.categorical.iter().any(|c| c == column) {
            Some(ColumnType::Categorical)
        } else {
            None
        }
    }

    /// Every declared column with its type, numerical ones first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ColumnType)> {
        let num = self.numerical.iter().map(|c| (c.as_str(), ColumnType::Numeric));
        num.chain(self.categorical.iter().map(|c| (c.as_str(), ColumnType::Categorical)))
    }

    /// Refuses a declaration the data cannot honour: a column in both lists, one outside
    /// `selection` (the columns compared, when only some are), or one that a dataset lacks.
    /// A misspelt name would otherwise leave its column silently inferred.
    pub fn check_columns(&self, selection: Option<&[String]>, datasets: &[HasColumn]) -> Result<(), MonitorError> {
        self.check()?;
        for (column, kind) in self.iter() {
            let declared = declared_name(kind);
            if selection.is_some_and(|s| !s.iter().any(|c| c == column)) {
                return Err(MonitorError::DeclaredNotCompared { column: column.to_string(), declared });
            }
            if let Some((dataset, _)) = datasets.iter().find(|(_, has)| !has(column)) {
                return Err(MonitorError::DeclaredMissing { column: column.to_string(), declared, dataset });
            }
        }
        Ok(())
    }
}

/// The word the CLI flags and the JSON use for a declared type.
pub fn declared_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Numeric => "numerical",
        ColumnType::Categorical => "categorical",
    }
}

/// A value to quote when a column declared numerical holds text: the first (in sorted order)
/// that is not a number, else the first. Sorting keeps the message the same run to run.
pub(crate) fn text_example<'a>(values: impl Iterator<Item = &'a String>) -> String {
    let mut values: Vec<&String> = values.collect();
    values.sort();
    let not_number = values.iter().find(|v| v.parse::<f64>().is_err());
    not_number.or(values.first()).map(|v| v.to_string()).unwrap_or_default()
}

fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Empty => "empty",
        SourceKind::Integer | SourceKind::Float => "numeric",
        SourceKind::Text => "text",
    }
}

fn distinct_unsorted(values: &[f64]) -> usize {
    let mut seen = std::collections::HashSet::new();
    for v in values {
        seen.insert(v.to_bits());
        if seen.len() > INTEGER_CARDINALITY_LIMIT {
            break;
        }
    }
    seen.len()
}

/// The type Evidently would infer from the current dataset's column.
pub fn infer_type(current: &ColumnValues) -> ColumnType {
    match current.kind {
        SourceKind::Text => ColumnType::Categorical,
        SourceKind::Integer
            if current.is_integer_dtype() && distinct_unsorted(&current.numbers) <= INTEGER_CARDINALITY_LIMIT =>
        {
            ColumnType::Categorical
        }
        SourceKind::Integer | SourceKind::Float | SourceKind::Empty => ColumnType::Numeric,
    }
}

fn into_sample(col: ColumnValues, kind: ColumnType, dataset: &'static str) -> Result<Sample, MonitorError> {
    let integer = col.is_integer_dtype();
    let sample = match (kind, col.kind) {
        (ColumnType::Numeric, SourceKind::Text) => {
            return Err(MonitorError::TypeMismatch {
                column: col.name,
                current: if dataset == "current" { "text" } else { "numeric" },
                reference: if dataset == "current" { "numeric" } else { "text" },
            });
        }
        (ColumnType::Numeric, _) => {
            let mut sorted = col.numbers;
            crate::stats::binning::sort_floats(&mut sorted);
            Sample::Numeric { sorted, integer }
        }
        (ColumnType::Categorical, SourceKind::Text) => Sample::Categorical { counts: col.strings },
        (ColumnType::Categorical, _) => {
            let mut counts = std::collections::HashMap::new();
            for v in col.numbers {
                *counts.entry(number_key(v)).or_insert(0u64) += 1;
            }
            Sample::Categorical { counts }
        }
    };
    if sample.is_empty() {
        return Err(MonitorError::EmptyColumn { column: col.name, dataset });
    }
    Ok(sample)
}

/// Types a column pair (by its declared type, else as Evidently infers it) and cleans both
/// samples (nulls and infinities are already out).
pub fn samples(
    reference: ColumnValues,
    current: ColumnValues,
    declared: Option<ColumnType>,
) -> Result<(ColumnType, Sample, Sample), MonitorError> {
    let kind = declared.unwrap_or_else(|| infer_type(&current));
    if declared == Some(ColumnType::Numeric) {
        for (col, dataset) in [(&reference, "reference"), (&current, "current")] {
            if col.kind == SourceKind::Text {
                return Err(MonitorError::DeclaredNumericalHoldsText {
                    column: col.name.clone(),
                    dataset,
                    example: text_example(col.strings.keys()),
                });
            }
        }
    }
    if kind == ColumnType::Numeric && reference.kind == SourceKind::Text {
        return Err(MonitorError::TypeMismatch {
            column: current.name,
            current: kind_name(current.kind),
            reference: kind_name(reference.kind),
        });
    }
    let r = into_sample(reference, kind, "reference")?;
    let c = into_sample(current, kind, "current")?;
    Ok((kind, r, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(values: &[f64], integer: bool) -> ColumnValues {
        let mut c = ColumnValues::new("x".into());
        for &v in values {
            c.push_number(v, integer);
        }
        c
    }

    #[test]
    fn few_integers_are_categorical_few_floats_are_not() {
        assert_eq!(infer_type(&col(&[1.0, 2.0, 1.0], true)), ColumnType::Categorical);
        assert_eq!(infer_type(&col(&[1.0, 2.0, 1.0], false)), ColumnType::Numeric);
        let many: Vec<f64> = (0..11).map(f64::from).collect();
        assert_eq!(infer_type(&col(&many, true)), ColumnType::Numeric);
        let mut with_null = col(&[1.0, 2.0], true);
        with_null.push_null();
        assert_eq!(infer_type(&with_null), ColumnType::Numeric);
    }

    #[test]
    fn categorical_reference_numbers_become_keys() {
        let (kind, r, _) = samples(col(&[1.0, 1.0, 2.5], false), col(&[1.0, 2.0], true), None).unwrap();
        assert_eq!(kind, ColumnType::Categorical);
        let Sample::Categorical { counts } = r else { panic!("categorical expected") };
        assert_eq!(counts.get("1"), Some(&2));
        assert_eq!(counts.get("2.5"), Some(&1));
    }

    #[test]
    fn empty_and_mismatched_columns_are_errors() {
        let mut empty = ColumnValues::new("x".into());
        empty.push_null();
        empty.push_number(f64::INFINITY, false);
        let err = samples(empty, col(&[0.5], false), None).unwrap_err();
        assert!(matches!(err, MonitorError::EmptyColumn { dataset: "reference", .. }));
        let mut text = ColumnValues::new("x".into());
        text.push_text("a");
        let err = samples(text, col(&[0.5], false), None).unwrap_err();
        assert!(matches!(err, MonitorError::TypeMismatch { .. }));
    }

    #[test]
    fn declared_types_override_inference() {
        // Few integers are inferred categorical; declared numerical they stay numbers.
        let (kind, r, _) =
            samples(col(&[1.0, 2.0, 1.0], true), col(&[1.0, 3.0], true), Some(ColumnType::Numeric)).unwrap();
        assert_eq!(kind, ColumnType::Numeric);
        assert!(matches!(r, Sample::Numeric { integer: true, .. }));
        // Many integers are inferred numeric; declared categorical they are codes.
        let many: Vec<f64> = (100..140).map(f64::from).collect();
        let (kind, _, c) = samples(col(&many, true), col(&many, true), Some(ColumnType::Categorical)).unwrap();
        assert_eq!(kind, ColumnType::Categorical);
        let Sample::Categorical { counts } = c else { panic!("categorical expected") };
        assert_eq!((counts.len(), counts.get("100")), (40, Some(&1)));
        // Declared numerical text is refused, quoting a value that is not a number.
        let mut text = ColumnValues::new("x".into());
        text.push_number(1.0, true);
        text.push_text("n/a!");
        let err = samples(col(&[1.0], true), text, Some(ColumnType::Numeric)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column 'x' is declared numerical but holds text in the current dataset (such as 'n/a!')"
        );
    }

    #[test]
    fn declarations_are_checked_and_read_from_json() {
        let err = DeclaredTypes::new(vec!["a".into(), "b".into()], vec!["b".into()]).unwrap_err();
        assert_eq!(err.to_string(), "column 'b' is declared both numerical and categorical");
        let t: DeclaredTypes = serde_json::from_str(r#"{"categorical": ["zip"]}"#).unwrap();
        assert_eq!((t.get("zip"), t.get("other")), (Some(ColumnType::Categorical), None));
        assert_eq!(serde_json::to_value(&t).unwrap(), serde_json::json!({"numerical": [], "categorical": ["zip"]}));
        assert!(serde_json::from_str::<DeclaredTypes>(r#"{"numeric": ["a"]}"#).is_err());

        let names = ["a".to_string(), "b".to_string()];
        let has = |n: &str| names.iter().any(|x| x == n);
        let t = DeclaredTypes::new(vec!["a".into()], vec!["c".into()]).unwrap();
        let err = t.check_columns(None, &[("current", &has)]).unwrap_err();
        assert_eq!(err.to_string(), "column 'c' is declared categorical but is missing from the current dataset");
        let err = t.check_columns(Some(&names[1..]), &[("current", &has)]).unwrap_err();
        assert_eq!(err.to_string(), "column 'a' is declared numerical but is not among the compared columns");
        let ok = DeclaredTypes::new(vec!["a".into()], vec![]).unwrap();
        assert!(ok.check_columns(Some(&names), &[("current", &has), ("reference", &has)]).is_ok());
    }
}
