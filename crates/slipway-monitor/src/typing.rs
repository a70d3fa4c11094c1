//! Column typing as Evidently 0.7.23 does it when no data definition is given: the current
//! dataset's pandas dtype decides. Floats are numeric; integers are categorical when the current
//! dataset has at most 10 distinct values (`INTEGER_CARDINALITY_LIMIT`), numeric otherwise;
//! strings, booleans and categories are categorical. The reference is then read the same way.

use crate::MonitorError;
use crate::read::{ColumnValues, SourceKind, number_key};
use crate::stats::{ColumnType, Sample};

/// Evidently's `INTEGER_CARDINALITY_LIMIT`.
pub const INTEGER_CARDINALITY_LIMIT: usize = 10;

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

/// Types a column pair and cleans both samples (nulls and infinities are already out).
pub fn samples(reference: ColumnValues, current: ColumnValues) -> Result<(ColumnType, Sample, Sample), MonitorError> {
    let kind = infer_type(&current);
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
        let (kind, r, _) = samples(col(&[1.0, 1.0, 2.5], false), col(&[1.0, 2.0], true)).unwrap();
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
        let err = samples(empty, col(&[0.5], false)).unwrap_err();
        assert!(matches!(err, MonitorError::EmptyColumn { dataset: "reference", .. }));
        let mut text = ColumnValues::new("x".into());
        text.push_text("a");
        let err = samples(text, col(&[0.5], false)).unwrap_err();
        assert!(matches!(err, MonitorError::TypeMismatch { .. }));
    }
}
