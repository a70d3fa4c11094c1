//! Data validation: a [`Schema`] inferred from a reference profile (types, nullability and
//! null rate, numeric ranges, allowed categories), saved as JSON for a user to edit, and a
//! check of a new batch's profile against it that reports every violation with its column,
//! rule, observed and expected values.
//!
//! Checks read profiles, not rows, so a batch of any size is validated in one streaming pass
//! with bounded memory. Everything checked is exact in a profile (types, counts, nulls, min,
//! max) except unexpected categories once the batch has more distinct values than the
//! frequent-items summary keeps; the violation is then still certain (more distinct values
//! than allowed ones), and the counts reported are lower bounds, marked `"exact": false`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::MonitorError;
use crate::profile::{ColumnProfile, DatasetProfile};
use crate::read::{SourceKind, number_key};
use crate::stats::ColumnType;
use crate::typing::{DeclaredTypes, declared_name, text_example};

pub const SCHEMA_FORMAT: &str = "slipway-schema/1";

/// Text columns with at most this many distinct reference values get `allowed_values`.
pub const MAX_ALLOWED_VALUES: usize = 20;

/// Most unexpected values a violation lists.
const MAX_LISTED: usize = 20;

/// The inferred `max_null_fraction`: the reference rate p plus max(0.01, p / 2), capped at 1
/// and rounded up to 4 decimals. A column with no reference nulls is inferred not nullable.
pub fn null_fraction_limit(p: f64) -> f64 {
    let limit = (p + (0.5 * p).max(0.01)).min(1.0);
    // The small offset keeps 0.1 + 0.05 (0.15000000000000002 in binary) at 0.15.
    ((limit * 1e4 - 1e-6).ceil() / 1e4).min(1.0)
}

/// What a column's values are, as pandas would read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Whole numbers only.
    Integer,
    /// Numbers (integers are accepted too).
    Float,
    /// Text (including booleans and categories).
    String,
    /// Anything: the reference had no values.
    Any,
}

impl ValueType {
    fn of(kind: SourceKind) -> Option<ValueType> {
        match kind {
            SourceKind::Empty => None,
            SourceKind::Integer => Some(ValueType::Integer),
            SourceKind::Float => Some(ValueType::Float),
            SourceKind::Text => Some(ValueType::String),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueType::Integer => "integer",
            ValueType::Float => "float",
            ValueType::String => "string",
            ValueType::Any => "any",
        }
    }

    fn accepts(self, observed: ValueType) -> bool {
        matches!(
            (self, observed),
            (ValueType::Any, _)
                | (ValueType::Integer, ValueType::Integer)
                | (ValueType::Float, ValueType::Integer | ValueType::Float)
                | (ValueType::String, ValueType::String)
        )
    }
}

fn is_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Whether the column must be present.
    #[serde(default = "is_true")]
    pub required: bool,
    /// Whether nulls (and NaN, ±inf) are allowed at all.
    pub nullable: bool,
    /// Most nulls allowed, as a fraction of rows (only with `nullable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_null_fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The only values allowed (numbers as their shortest text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub format: String,
    /// Whether the batch may have columns the schema does not name.
    #[serde(default)]
    pub allow_extra_columns: bool,
    /// Columns declared numerical or categorical when the schema was inferred. A batch is read
    /// with the same declaration, so CSV codes declared categorical stay the text they are.
    #[serde(default, skip_serializing_if = "DeclaredTypes::is_empty")]
    pub column_types: DeclaredTypes,
    pub columns: Vec<ColumnSchema>,
}

/// Every value of a column whose frequent items are exact, numbers as their shortest text.
fn categories(p: &ColumnProfile) -> Option<Vec<String>> {
    let mut v: Vec<String> = match p.kind {
        SourceKind::Text if p.strings.is_exact() => p.strings.counts().keys().cloned().collect(),
        SourceKind::Integer | SourceKind::Float if p.numbers.is_exact() => {
            p.numbers.counts().keys().map(|k| number_key(k.0)).collect()
        }
        SourceKind::Empty | SourceKind::Integer | SourceKind::Float | SourceKind::Text => return None,
    };
    v.sort();
    v.dedup();
    Some(v)
}

/// A column's rules. Declared numerical: any number within the reference's range. Declared
/// categorical: the reference's type and every one of its categories (while the profile
/// knows them all), with no range. Otherwise as inferred from the profile.
fn infer_column(p: &ColumnProfile, declared: Option<ColumnType>) -> ColumnSchema {
    let observed = ValueType::of(p.kind).unwrap_or(ValueType::Any);
    let nullable = p.nulls > 0 || p.count == 0;
    let (value_type, numeric, allowed_values) = match declared {
        Some(ColumnType::Numeric) => (if p.is_numeric() { ValueType::Float } else { observed }, true, None),
        Some(ColumnType::Categorical) => (observed, false, categories(p)),
        None => {
            let few = p.kind == SourceKind::Text && p.strings.len() <= MAX_ALLOWED_VALUES;
            (observed, p.is_numeric(), categories(p).filter(|_| few))
        }
    };
    ColumnSchema {
        name: p.name.clone(),
        value_type,
        required: true,
        nullable,
        max_null_fraction: (nullable && p.count > 0).then(|| null_fraction_limit(p.null_fraction())),
        min: if numeric && p.is_numeric() { p.min() } else { None },
        max: if numeric && p.is_numeric() { p.max() } else { None },
        allowed_values,
    }
}

impl Schema {
    /// The schema of a reference dataset: every column required, typed as it was read;
    /// nullable only if it had nulls (then with [`null_fraction_limit`]); numeric columns
    /// within the reference's range; text columns with at most [`MAX_ALLOWED_VALUES`]
    /// distinct values limited to those; no extra columns.
    pub fn infer(reference: &DatasetProfile) -> Schema {
        Schema {
            format: SCHEMA_FORMAT.into(),
            allow_extra_columns: false,
            column_types: DeclaredTypes::default(),
            columns: reference
                .columns
                .iter()
                .filter(|c| c.unsupported.is_none())
                .map(|c| infer_column(c, None))
                .collect(),
        }
    }

    /// [`Schema::infer`] with declared types: a column declared numerical accepts any number
    /// within the reference's range (an error if the reference holds text); one declared
    /// categorical allows exactly the reference's categories (read the reference with the
    /// same `types`, so that CSV codes keep their text). Every declared column must be in the
    /// reference.
    pub fn infer_typed(reference: &DatasetProfile, types: &DeclaredTypes) -> Result<Schema, MonitorError> {
        types.check_columns(None, &[("reference", &|n: &str| reference.column(n).is_some())])?;
        let mut columns = Vec::new();
        for c in reference.columns.iter().filter(|c| c.unsupported.is_none()) {
            let declared = types.get(&c.name);
            if declared == Some(ColumnType::Numeric) && c.kind == SourceKind::Text {
                return Err(MonitorError::DeclaredNumericalHoldsText {
                    column: c.name.clone(),
                    dataset: "reference",
                    example: text_example(c.strings.counts().keys()),
                });
            }
            columns.push(infer_column(c, declared));
        }
        Ok(Schema { format: SCHEMA_FORMAT.into(), allow_extra_columns: false, column_types: types.clone(), columns })
    }

    /// Parses and checks a schema file's text.
    pub fn from_json(text: &str) -> Result<Schema, MonitorError> {
        let schema: Schema = serde_json::from_str(text).map_err(|e| MonitorError::InvalidSchema(e.to_string()))?;
        schema.check()?;
        Ok(schema)
    }

    pub fn to_json(&self) -> Result<String, MonitorError> {
        serde_json::to_string_pretty(self).map_err(|e| MonitorError::InvalidSchema(e.to_string()))
    }

    /// Refuses schemas that cannot be meant: unknown format, duplicate columns, NaN bounds,
    /// min above max, null fractions outside [0, 1].
    pub fn check(&self) -> Result<(), MonitorError> {
        let bad = |m: String| Err(MonitorError::InvalidSchema(m));
        if self.format != SCHEMA_FORMAT {
            return bad(format!("unknown format '{}' (expected {SCHEMA_FORMAT})", self.format));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.columns {
            if !seen.insert(c.name.as_str()) {
                return bad(format!("column '{}' is listed twice", c.name));
            }
            if c.min.is_some_and(|v| !v.is_finite()) || c.max.is_some_and(|v| !v.is_finite()) {
                return bad(format!("column '{}': min and max must be finite numbers", c.name));
            }
            if let (Some(lo), Some(hi)) = (c.min, c.max)
                && lo > hi
            {
                return bad(format!("column '{}': min {lo} is above max {hi}", c.name));
            }
            if let Some(f) = c.max_null_fraction {
                if !(0.0..=1.0).contains(&f) {
                    return bad(format!("column '{}': max_null_fraction {f} is not between 0 and 1", c.name));
                }
                if !c.nullable {
                    return bad(format!("column '{}': max_null_fraction needs \"nullable\": true", c.name));
                }
            }
            if (c.min.is_some() || c.max.is_some()) && c.value_type == ValueType::String {
                return bad(format!("column '{}': min and max need a numeric type", c.name));
            }
        }
        self.column_types.check().or_else(|e| bad(e.to_string()))?;
        for (name, kind) in self.column_types.iter() {
            let declared = declared_name(kind);
            match self.columns.iter().find(|c| c.name == name) {
                None => {
                    return bad(format!("column '{name}' is declared {declared} but the schema has no such column"));
                }
                Some(c) if kind == ColumnType::Numeric && c.value_type == ValueType::String => {
                    return bad(format!("column '{name}' is declared numerical but its type is string"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The rule a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    ColumnPresent,
    UnexpectedColumn,
    Type,
    NotNull,
    MaxNullFraction,
    Min,
    Max,
    AllowedValues,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::ColumnPresent => "column_present",
            Rule::UnexpectedColumn => "unexpected_column",
            Rule::Type => "type",
            Rule::NotNull => "not_null",
            Rule::MaxNullFraction => "max_null_fraction",
            Rule::Min => "min",
            Rule::Max => "max",
            Rule::AllowedValues => "allowed_values",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub column: String,
    pub rule: Rule,
    pub observed: Value,
    pub expected: Value,
}

/// What was seen of one column of the batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnSummary {
    pub column: String,
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    pub count: u64,
    pub nulls: u64,
    pub null_fraction: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub distinct: f64,
    pub distinct_exact: bool,
    pub violations: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationReport {
    pub rows: u64,
    pub number_of_columns: usize,
    pub number_of_violations: usize,
    pub passed: bool,
    pub violations: Vec<Violation>,
    pub columns: Vec<ColumnSummary>,
}

fn unexpected_values(c: &ColumnSchema, allowed: &[String], p: &ColumnProfile) -> Option<Violation> {
    let allowed: std::collections::HashSet<&str> = allowed.iter().map(String::as_str).collect();
    let (items, exact, max_error): (Vec<(String, u64)>, bool, u64) = if p.kind == SourceKind::Text {
        (p.strings.sorted_items(), p.strings.is_exact(), p.strings.max_error())
    } else {
        let items = p.numbers.sorted_items().into_iter().map(|(k, n)| (number_key(k.0), n)).collect();
        (items, p.numbers.is_exact(), p.numbers.max_error())
    };
    let unexpected: Vec<(String, u64)> = items.iter().filter(|(v, _)| !allowed.contains(v.as_str())).cloned().collect();
    // Rows certainly not allowed: every kept unexpected count is a lower bound, and so is what
    // is left after giving each allowed value its largest possible count.
    let kept_unexpected: u64 = unexpected.iter().map(|u| u.1).sum();
    let allowed_most: u64 = items.iter().filter(|(v, _)| allowed.contains(v.as_str())).map(|i| i.1 + max_error).sum();
    let unexpected_rows =
        if exact { kept_unexpected } else { kept_unexpected.max(p.count.saturating_sub(allowed_most)) };
    let more_distinct = !exact && p.distinct_count().0 > allowed.len() as f64;
    if unexpected.is_empty() && unexpected_rows == 0 && !more_distinct {
        return None;
    }
    let listed: Vec<Value> = unexpected.iter().take(MAX_LISTED).map(|(v, n)| json!({"value": v, "count": n})).collect();
    let mut expected: Vec<&str> = allowed.into_iter().collect();
    expected.sort_unstable();
    Some(Violation {
        column: c.name.clone(),
        rule: Rule::AllowedValues,
        observed: json!({
            "unexpected_values": listed,
            "unexpected_distinct": if exact { json!(unexpected.len()) } else { Value::Null },
            "unexpected_rows": unexpected_rows,
            "exact": exact,
        }),
        expected: json!(expected),
    })
}

fn check_column(c: &ColumnSchema, p: &ColumnProfile, out: &mut Vec<Violation>) {
    let v =
        |rule: Rule, observed: Value, expected: Value| Violation { column: c.name.clone(), rule, observed, expected };
    let observed = ValueType::of(p.kind);
    let type_ok = observed.is_none_or(|t| c.value_type.accepts(t));
    if let Some(t) = observed.filter(|_| !type_ok) {
        out.push(v(Rule::Type, json!(t.name()), json!(c.value_type.name())));
    }
    let fraction = p.null_fraction();
    if !c.nullable && p.nulls > 0 {
        out.push(v(Rule::NotNull, json!({"nulls": p.nulls, "null_fraction": fraction}), json!({"nulls": 0})));
    }
    if let Some(limit) = c.max_null_fraction.filter(|&l| c.nullable && fraction > l) {
        out.push(v(Rule::MaxNullFraction, json!(fraction), json!({"at_most": limit})));
    }
    if type_ok && p.is_numeric() && p.count > 0 {
        if let (Some(lo), Some(seen)) = (c.min, p.min())
            && seen < lo
        {
            out.push(v(Rule::Min, json!(seen), json!({"at_least": lo})));
        }
        if let (Some(hi), Some(seen)) = (c.max, p.max())
            && seen > hi
        {
            out.push(v(Rule::Max, json!(seen), json!({"at_most": hi})));
        }
    }
    if let Some(allowed) = &c.allowed_values
        && p.count > 0
        && let Some(viol) = unexpected_values(c, allowed, p)
    {
        out.push(viol);
    }
}

fn summary(p: &ColumnProfile, violations: usize) -> ColumnSummary {
    let (distinct, distinct_exact) = p.distinct_count();
    ColumnSummary {
        column: p.name.clone(),
        value_type: ValueType::of(p.kind),
        count: p.count,
        nulls: p.nulls,
        null_fraction: p.null_fraction(),
        min: p.min(),
        max: p.max(),
        distinct,
        distinct_exact,
        violations,
    }
}

/// Checks a batch's profile against a schema. Violations come in schema order, then extra
/// columns in batch order.
pub fn validate(schema: &Schema, batch: &DatasetProfile) -> ValidationReport {
    let mut violations = Vec::new();
    let mut columns = Vec::new();
    for c in &schema.columns {
        match batch.column(&c.name) {
            None => {
                if c.required {
                    violations.push(Violation {
                        column: c.name.clone(),
                        rule: Rule::ColumnPresent,
                        observed: json!("missing"),
                        expected: json!("present"),
                    });
                }
            }
            Some(p) => {
                let before = violations.len();
                check_column(c, p, &mut violations);
                columns.push(summary(p, violations.len() - before));
            }
        }
    }
    for p in &batch.columns {
        if !schema.columns.iter().any(|c| c.name == p.name) {
            let extra = !schema.allow_extra_columns;
            if extra {
                violations.push(Violation {
                    column: p.name.clone(),
                    rule: Rule::UnexpectedColumn,
                    observed: json!("present"),
                    expected: json!("absent"),
                });
            }
            columns.push(summary(p, usize::from(extra)));
        }
    }
    ValidationReport {
        rows: batch.rows,
        number_of_columns: columns.len(),
        number_of_violations: violations.len(),
        passed: violations.is_empty(),
        violations,
        columns,
    }
}

#[cfg(test)]
mod tests;
