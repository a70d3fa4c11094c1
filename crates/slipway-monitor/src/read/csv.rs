//! CSV, read one record at a time with pandas' `read_csv` typing rules: its default null
//! markers, integers, floats (including `inf`), and anything else as text.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::{ColumnSink, Progress};
use crate::MonitorError;
use crate::stats::ColumnType;
use crate::typing::DeclaredTypes;

/// pandas' default `na_values` (plus the empty field).
const NA_VALUES: [&str; 22] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null", "-NAN", "NAN", "+nan",
];

/// One field; `as_text` for a column declared categorical, whose values stay as written.
fn push_field<S: ColumnSink>(col: &mut S, field: &str, as_text: bool) {
    if NA_VALUES.contains(&field) {
        col.push_null();
    } else if as_text {
        col.push_text(field);
    } else if let Ok(i) = field.parse::<i64>() {
        col.push_number(i as f64, true);
    } else if let Ok(f) = field.parse::<f64>() {
        col.push_number(f, false);
    } else {
        col.push_text(field);
    }
}

pub fn read<S: ColumnSink>(
    path: &Path,
    columns: Option<&[String]>,
    types: &DeclaredTypes,
    config: &S::Config,
    progress: &dyn Progress,
) -> Result<Vec<S>, MonitorError> {
    let file = File::open(path).map_err(|source| MonitorError::Io { path: path.into(), source })?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = ::csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let csv_err = |source| MonitorError::Csv { path: path.into(), source };
    let headers = reader.headers().map_err(csv_err)?.clone();
    // (position in the record, read as text, column) for every column kept.
    let mut cols: Vec<(usize, bool, S)> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| columns.is_none_or(|want| want.iter().any(|w| w == h)))
        .map(|(i, h)| (i, types.get(h) == Some(ColumnType::Categorical), S::for_column(h.to_string(), config)))
        .collect();
    let mut record = ::csv::ByteRecord::new();
    let mut rows = 0u64;
    while reader.read_byte_record(&mut record).map_err(csv_err)? {
        for (i, as_text, col) in cols.iter_mut() {
            match record.get(*i) {
                None => col.push_null(),
                Some(bytes) => match std::str::from_utf8(bytes) {
                    Ok(s) => push_field(col, s, *as_text),
                    Err(_) => col.push_text(&String::from_utf8_lossy(bytes)),
                },
            }
        }
        rows += 1;
        if rows.is_multiple_of(65_536) {
            progress.update(record.position().map_or(0, |p| p.byte()), total);
        }
    }
    progress.update(total, total);
    Ok(cols.into_iter().map(|(_, _, c)| c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{ColumnValues, NoProgress, SourceKind};
    use std::io::Write;

    #[test]
    fn types_follow_pandas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        let mut f = File::create(&path).unwrap();
        writeln!(f, "i,f,s,n,gap").unwrap();
        writeln!(f, "1,1.5,a,,3").unwrap();
        writeln!(f, "2,inf,b,NA,").unwrap();
        writeln!(f, "3,-2,7,null,5").unwrap();
        drop(f);
        let cols: Vec<ColumnValues> = read(&path, None, &DeclaredTypes::default(), &(), &NoProgress).unwrap();
        let by = |n: &str| cols.iter().find(|c| c.name == n).unwrap();
        assert!(by("i").is_integer_dtype());
        assert_eq!(by("i").numbers, vec![1.0, 2.0, 3.0]);
        assert_eq!(by("f").kind, SourceKind::Float);
        assert_eq!((by("f").numbers.len(), by("f").nulls), (2, 1));
        assert_eq!(by("s").kind, SourceKind::Text);
        assert_eq!(by("s").strings.get("7"), Some(&1));
        assert_eq!((by("n").kind, by("n").nulls), (SourceKind::Empty, 3));
        // Integers with a null are float64 in pandas.
        assert_eq!(by("gap").kind, SourceKind::Integer);
        assert!(!by("gap").is_integer_dtype());

        let only: Vec<ColumnValues> =
            read(&path, Some(&["s".to_string()]), &DeclaredTypes::default(), &(), &NoProgress).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].name, "s");
    }

    #[test]
    fn declared_categorical_columns_keep_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "zip,code,n\n001,7,001\n002,7.0,2\nNA,inf,\n").unwrap();
        let types = DeclaredTypes::new(vec!["n".into()], vec!["zip".into(), "code".into()]).unwrap();
        let cols: Vec<ColumnValues> = read(&path, None, &types, &(), &NoProgress).unwrap();
        let by = |n: &str| cols.iter().find(|c| c.name == n).unwrap();
        // As written, as pandas' dtype=str reads them; null markers are still nulls.
        assert_eq!(by("zip").kind, SourceKind::Text);
        assert_eq!((by("zip").strings.get("001"), by("zip").strings.get("1"), by("zip").nulls), (Some(&1), None, 1));
        assert_eq!((by("code").strings.get("7"), by("code").strings.get("7.0")), (Some(&1), Some(&1)));
        assert_eq!(by("code").strings.get("inf"), Some(&1));
        // Declared numerical: parsed as numbers, as without a declaration.
        assert_eq!((by("n").kind, by("n").numbers.clone(), by("n").nulls), (SourceKind::Integer, vec![1.0, 2.0], 1));
    }
}
