use super::*;
use crate::profile::ProfileOptions;
use crate::read::ColumnSink;

enum V<'a> {
    N,
    I(i64),
    F(f64),
    T(&'a str),
}

fn dataset(names: &[&str], rows: &[Vec<V>], options: &ProfileOptions) -> DatasetProfile {
    let mut cols: Vec<ColumnProfile> = names.iter().map(|n| ColumnProfile::new(n.to_string(), options)).collect();
    for row in rows {
        for (c, v) in cols.iter_mut().zip(row) {
            match v {
                V::N => c.push_null(),
                V::I(i) => c.push_number(*i as f64, true),
                V::F(f) => c.push_number(*f, false),
                V::T(s) => c.push_text(s),
            }
        }
    }
    DatasetProfile::from_columns(cols)
}

fn reference() -> DatasetProfile {
    let rows: Vec<Vec<V>> = (0..100)
        .map(|i| {
            vec![
                V::I(i),
                if i % 10 == 0 { V::N } else { V::F(i as f64 / 10.0) },
                V::T(["red", "green", "blue"][i as usize % 3]),
                V::T("x"),
            ]
        })
        .collect();
    dataset(&["age", "score", "color", "note"], &rows, &ProfileOptions::default())
}

fn rules(r: &ValidationReport) -> Vec<(String, &'static str)> {
    r.violations.iter().map(|v| (v.column.clone(), v.rule.name())).collect()
}

#[test]
fn inferred_schema_describes_the_reference() {
    let s = Schema::infer(&reference());
    let by = |n: &str| s.columns.iter().find(|c| c.name == n).unwrap();
    assert_eq!(by("age").value_type, ValueType::Integer);
    assert!(!by("age").nullable);
    assert_eq!((by("age").min, by("age").max), (Some(0.0), Some(99.0)));
    assert_eq!(by("score").value_type, ValueType::Float);
    assert!(by("score").nullable);
    // 10% nulls: limit 0.1 + 0.05.
    assert_eq!(by("score").max_null_fraction, Some(0.15));
    assert_eq!(by("color").allowed_values.as_deref(), Some(&["blue".to_string(), "green".into(), "red".into()][..]));
    assert!(!s.allow_extra_columns);
    // The reference passes its own schema.
    let r = validate(&s, &reference());
    assert!(r.passed, "{:?}", r.violations);
    assert_eq!((r.rows, r.number_of_columns), (100, 4));
}

#[test]
fn every_rule_reports_column_observed_and_expected() {
    let s = Schema::infer(&reference());
    let rows: Vec<Vec<V>> = (0..20)
        .map(|i| {
            vec![
                if i == 0 { V::N } else { V::F(f64::from(i) * 10.0 - 5.5) },
                if i % 2 == 0 { V::N } else { V::F(0.05) },
                V::T(["red", "purple", "pink"][i as usize % 3]),
                V::I(3),
            ]
        })
        .collect();
    let cur = dataset(&["age", "score", "color", "extra"], &rows, &ProfileOptions::default());
    let r = validate(&s, &cur);
    assert!(!r.passed);
    assert_eq!(
        rules(&r),
        vec![
            ("age".to_string(), "type"),
            ("age".into(), "not_null"),
            ("score".into(), "max_null_fraction"),
            ("score".into(), "min"),
            ("color".into(), "allowed_values"),
            ("note".into(), "column_present"),
            ("extra".into(), "unexpected_column"),
        ]
    );
    let v = |rule: &str| r.violations.iter().find(|v| v.rule.name() == rule).unwrap();
    assert_eq!(v("type").observed, json!("float"));
    assert_eq!(v("type").expected, json!("integer"));
    assert_eq!(v("not_null").observed["nulls"], json!(1));
    assert_eq!(v("max_null_fraction").observed, json!(0.5));
    assert_eq!(v("min").observed, json!(0.05));
    assert_eq!(v("min").expected, json!({"at_least": 0.1}));
    let colors = &v("allowed_values").observed;
    assert_eq!(colors["unexpected_rows"], json!(13));
    assert_eq!(colors["unexpected_distinct"], json!(2));
    assert_eq!(colors["unexpected_values"][0], json!({"value": "purple", "count": 7}));
    assert_eq!(r.number_of_violations, 7);
    // The age column's type is wrong, so its range is not checked as well.
    assert!(!rules(&r).contains(&("age".into(), "max")));
}

#[test]
fn unexpected_values_are_found_past_the_summary_capacity() {
    let options = ProfileOptions { frequent_items: 8, ..ProfileOptions::default() };
    let s = Schema::infer(&dataset(&["c"], &[vec![V::T("a")], vec![V::T("b")]], &options));
    let names: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    let mut rows: Vec<Vec<V>> = names.iter().map(|n| vec![V::T(n)]).collect();
    rows.extend((0..300).map(|_| vec![V::T("a")]));
    let r = validate(&s, &dataset(&["c"], &rows, &options));
    assert_eq!(rules(&r), vec![("c".to_string(), "allowed_values")]);
    let o = &r.violations[0].observed;
    assert_eq!(o["exact"], json!(false));
    // A lower bound: at least the 200 rows that "a" cannot account for, less its error.
    let rows_low = o["unexpected_rows"].as_u64().unwrap();
    assert!(rows_low > 0 && rows_low <= 200, "{rows_low}");
}

#[test]
fn schemas_round_trip_and_bad_schemas_are_refused() {
    let s = Schema::infer(&reference());
    let text = s.to_json().unwrap();
    assert_eq!(Schema::from_json(&text).unwrap(), s);
    let cases = [
        (text.replace("slipway-schema/1", "v0"), "unknown format"),
        (text.replacen("\"nullable\"", "\"nulable\"", 1), "unknown field"),
        (text.replacen("\"max\": 99.0", "\"max\": -1.0", 1), "above max"),
        (text.replacen("\"max_null_fraction\": 0.15", "\"max_null_fraction\": 1.5", 1), "between 0 and 1"),
        (text.replacen("\"name\": \"score\"", "\"name\": \"age\"", 1), "listed twice"),
        ("[]".to_string(), "invalid schema"),
    ];
    for (bad, msg) in cases {
        let err = Schema::from_json(&bad).unwrap_err().to_string();
        assert!(err.contains(msg), "{err} should say {msg}");
    }
}

#[test]
fn edited_schemas_relax_rules() {
    let mut s = Schema::infer(&reference());
    s.allow_extra_columns = true;
    for c in &mut s.columns {
        c.required = c.name != "note";
        c.nullable = true;
        c.max_null_fraction = None;
        c.min = None;
    }
    let rows: Vec<Vec<V>> = vec![vec![V::N, V::F(-3.0), V::T("red"), V::T("z")]];
    let r = validate(&s, &dataset(&["age", "score", "color", "new"], &rows, &ProfileOptions::default()));
    assert!(r.passed, "{:?}", r.violations);
    assert_eq!(null_fraction_limit(0.0), 0.01);
    assert_eq!(null_fraction_limit(0.9), 1.0);
}

#[test]
fn declared_types_decide_the_rules() {
    let options = ProfileOptions::default();
    let names = ["age", "score", "color", "note", "code"];
    // 30 distinct codes: too many to list by inference, a category set once declared.
    let codes: Vec<String> = (0..30).map(|i| format!("{i:03}")).collect();
    let rows: Vec<Vec<V>> = (0..90)
        .map(|i| vec![V::I(i % 5), V::F(f64::from(i as u8)), V::T("x"), V::T("y"), V::T(&codes[i as usize % 30])])
        .collect();
    let reference = dataset(&names, &rows, &options);
    assert!(Schema::infer(&reference).columns[4].allowed_values.is_none());
    let types = DeclaredTypes::new(vec!["age".into()], vec!["score".into(), "code".into()]).unwrap();
    let s = Schema::infer_typed(&reference, &types).unwrap();
    let by = |n: &str| s.columns.iter().find(|c| c.name == n).unwrap();
    // Declared numerical: any number in range, though only five integers were seen.
    assert_eq!((by("age").value_type, by("age").min, by("age").max), (ValueType::Float, Some(0.0), Some(4.0)));
    // Declared categorical numbers: the set of values, no range.
    assert_eq!((by("score").value_type, by("score").min, by("score").max), (ValueType::Float, None, None));
    assert_eq!(by("score").allowed_values.as_ref().map(Vec::len), Some(90));
    assert_eq!(by("code").allowed_values.as_deref(), Some(&codes[..]));
    assert_eq!(s.column_types, types);

    // A batch: age 2.5 is a number (fine), score 500 is not a known category (not a range
    // violation), code "031" is new.
    let batch = dataset(&names, &[vec![V::F(2.5), V::F(500.0), V::T("x"), V::T("y"), V::T("031")]], &options);
    let r = validate(&s, &batch);
    assert_eq!(rules(&r), vec![("score".to_string(), "allowed_values"), ("code".into(), "allowed_values")]);

    // The declaration survives the JSON round trip, and contradictions are refused.
    let text = s.to_json().unwrap();
    assert!(text.contains("\"column_types\""), "{text}");
    assert_eq!(Schema::from_json(&text).unwrap(), s);
    let cases = [
        (
            text.replacen("\"age\"\n", "\"nope\"\n", 1),
            "column 'nope' is declared numerical but the schema has no such column",
        ),
        (text.replacen("\"code\"\n", "\"age\"\n", 1), "column 'age' is declared both numerical and categorical"),
    ];
    for (bad, msg) in cases {
        let err = Schema::from_json(&bad).unwrap_err().to_string();
        assert!(err.contains(msg), "{err} should say {msg}");
    }
    let mut wrong = s.clone();
    wrong.columns[0].value_type = ValueType::String;
    wrong.columns[0].min = None;
    wrong.columns[0].max = None;
    assert!(wrong.check().unwrap_err().to_string().contains("declared numerical but its type is string"));
}

#[test]
fn declarations_the_reference_cannot_honour_are_errors() {
    let err = |numerical: &[&str], categorical: &[&str]| {
        let types = DeclaredTypes {
            numerical: numerical.iter().map(|s| s.to_string()).collect(),
            categorical: categorical.iter().map(|s| s.to_string()).collect(),
        };
        Schema::infer_typed(&reference(), &types).unwrap_err().to_string()
    };
    assert_eq!(
        err(&["color"], &[]),
        "column 'color' is declared numerical but holds text in the reference dataset (such as 'blue')"
    );
    assert_eq!(
        err(&[], &["colour"]),
        "column 'colour' is declared categorical but is missing from the reference dataset"
    );
    assert_eq!(err(&["age"], &["age"]), "column 'age' is declared both numerical and categorical");
}
