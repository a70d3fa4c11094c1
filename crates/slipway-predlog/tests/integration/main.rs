//! The prediction log against a real local artifact root: what goes in comes back out of the
//! uploaded files, in the right partitions, and what a dead process left is recovered.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod recovery;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt16Type, UInt32Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, TimeUnit};
use slipway_artifacts::Artifacts;
use slipway_predlog::{
    Column, ColumnData, Config, Entry, PredictionLog, list_segments, list_segments_between, read_segment,
};

const HOUR_US: i64 = 3_600_000_000;
/// 2024-02-29T00:00:00Z, a leap day.
const LEAP_DAY_US: i64 = 1_709_164_800_000_000;

pub fn config(dir: &Path) -> Config {
    Config { spool_dir: dir.join("spool"), roll_after: Duration::from_secs(3600), ..Config::default() }
}

pub fn start(dir: &Path, config: Config) -> (Artifacts, PredictionLog) {
    let artifacts = Artifacts::local(dir.join("artifacts")).unwrap();
    let log = PredictionLog::start(artifacts.clone(), config).unwrap();
    (artifacts, log)
}

pub fn entry(deployment: &str, timestamp_us: i64, rows: usize, inputs: Vec<Column>) -> Entry {
    Entry {
        request_id: format!("req-{timestamp_us}"),
        timestamp_us,
        deployment: deployment.into(),
        model: "fraud".into(),
        version: "3".into(),
        role: "primary",
        protocol: "mlflow",
        status: 200,
        latency_us: 42,
        rows,
        inputs,
        outputs: vec![],
    }
}

pub fn col(name: &str, width: usize, data: ColumnData) -> Column {
    Column { name: name.into(), width, data }
}

pub fn f32s(name: &str, rows: usize) -> Column {
    col(name, 1, ColumnData::F32((0..rows).map(|i| i as f32).collect()))
}

pub async fn rows_of(artifacts: &Artifacts, path: &str) -> usize {
    read_segment(artifacts, path).await.unwrap().iter().map(RecordBatch::num_rows).sum()
}

/// A column's values back as `ColumnData`, flattening fixed-size lists row-major.
fn column_data(array: &ArrayRef) -> (usize, ColumnData) {
    let (width, values) = match array.data_type() {
        DataType::FixedSizeList(_, w) => (*w as usize, array.as_fixed_size_list().values().clone()),
        _ => (1, array.clone()),
    };
    let data = match values.data_type() {
        DataType::Float32 => ColumnData::F32(values.as_primitive::<Float32Type>().values().to_vec()),
        DataType::Float64 => ColumnData::F64(values.as_primitive::<Float64Type>().values().to_vec()),
        DataType::Int64 => ColumnData::I64(values.as_primitive::<Int64Type>().values().to_vec()),
        DataType::Int32 => ColumnData::I32(values.as_primitive::<Int32Type>().values().to_vec()),
        DataType::Boolean => ColumnData::Bool(values.as_boolean().iter().map(Option::unwrap).collect()),
        DataType::Utf8 => ColumnData::Str(values.as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect()),
        other => panic!("unexpected type {other}"),
    };
    (width, data)
}

fn every_type(rows: usize, seed: usize) -> (Vec<Column>, Vec<Column>) {
    let n = |w: usize| (0..rows * w).map(move |i| i + seed);
    let inputs = vec![
        col("f32", 1, ColumnData::F32(n(1).map(|i| i as f32 + 0.5).collect())),
        col("f64x3", 3, ColumnData::F64(n(3).map(|i| i as f64 / 3.0).collect())),
        col("i64", 1, ColumnData::I64(n(1).map(|i| -(i as i64) << 40).collect())),
        col("i32x2", 2, ColumnData::I32(n(2).map(|i| i as i32 - 7).collect())),
        col("bool", 1, ColumnData::Bool(n(1).map(|i| i % 3 == 0).collect())),
        col("bool x4", 4, ColumnData::Bool(n(4).map(|i| i % 2 == 0).collect())),
        col("text", 1, ColumnData::Str(n(1).map(|i| format!("row {i} é")).collect())),
    ];
    let outputs = vec![
        col("score", 2, ColumnData::F32(n(2).map(|i| i as f32 * 0.25).collect())),
        col("label", 1, ColumnData::Str(n(1).map(|i| format!("class-{i}")).collect())),
        col("tokens", 3, ColumnData::Str(n(3).map(|i| i.to_string()).collect())),
    ];
    (inputs, outputs)
}

fn concat(a: &ColumnData, b: &ColumnData) -> ColumnData {
    match (a, b) {
        (ColumnData::F32(a), ColumnData::F32(b)) => ColumnData::F32([a.as_slice(), b].concat()),
        (ColumnData::F64(a), ColumnData::F64(b)) => ColumnData::F64([a.as_slice(), b].concat()),
        (ColumnData::I64(a), ColumnData::I64(b)) => ColumnData::I64([a.as_slice(), b].concat()),
        (ColumnData::I32(a), ColumnData::I32(b)) => ColumnData::I32([a.as_slice(), b].concat()),
        (ColumnData::Bool(a), ColumnData::Bool(b)) => ColumnData::Bool([a.as_slice(), b].concat()),
        (ColumnData::Str(a), ColumnData::Str(b)) => ColumnData::Str([a.as_slice(), b].concat()),
        _ => panic!("types differ"),
    }
}

#[tokio::test]
async fn every_column_type_and_width_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (artifacts, log) = start(dir.path(), config(dir.path()));
    let (in1, out1) = every_type(2, 0);
    let (in2, out2) = every_type(3, 100);
    let mut first = entry("fraud-prod", LEAP_DAY_US + 5, 2, in1.clone());
    first.outputs = out1.clone();
    let mut second = entry("fraud-prod", LEAP_DAY_US + 9, 3, in2.clone());
    (second.outputs, second.role, second.protocol, second.status) = (out2.clone(), "shadow", "v2", 400);
    log.record(first);
    log.record(second.clone());
    second.role = "primary"; // the same role as `first` again: joins its segment
    second.request_id = "again".into();
    log.record(second);

    let paths = log.flush().await.unwrap();
    assert_eq!(paths.len(), 2, "{paths:?}"); // primary and shadow
    assert_eq!(list_segments(&artifacts, "fraud-prod").await.unwrap(), paths);
    assert_eq!(log.logged_total("fraud-prod"), 8);

    let mut primary = None;
    for p in &paths {
        if rows_of(&artifacts, p).await == 5 {
            primary = Some(p.clone());
        }
    }
    let batches = read_segment(&artifacts, &primary.expect("a 5-row segment")).await.unwrap();
    assert_eq!(batches.len(), 1, "one flush writes one batch per segment");
    let batch = batches[0].clone();
    let schema = batch.schema();
    assert_eq!(
        schema.field_with_name("timestamp").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        &names[..10],
        [
            "request_id",
            "row",
            "timestamp",
            "deployment",
            "model",
            "version",
            "role",
            "protocol",
            "status",
            "latency_us"
        ]
    );
    assert_eq!(names[10], "input.f32");
    assert_eq!(names.last(), Some(&"output.tokens"));

    let ids: Vec<&str> = batch.column(0).as_string::<i32>().iter().map(Option::unwrap).collect();
    assert_eq!(
        ids,
        [format!("req-{}", LEAP_DAY_US + 5).as_str(), &format!("req-{}", LEAP_DAY_US + 5), "again", "again", "again"]
    );
    assert_eq!(batch.column(1).as_primitive::<UInt32Type>().values().to_vec(), [0, 1, 0, 1, 2]);
    let ts = batch.column(2).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
    assert_eq!(ts.values().to_vec(), [5, 5, 9, 9, 9].map(|d| LEAP_DAY_US + d));
    assert_eq!(batch.column(8).as_primitive::<UInt16Type>().values().to_vec(), [200, 200, 400, 400, 400]);
    assert_eq!(batch.column(9).as_primitive::<UInt32Type>().values().to_vec(), [42; 5]);
    let protocols: Vec<&str> = batch.column(7).as_string::<i32>().iter().map(Option::unwrap).collect();
    assert_eq!(protocols, ["mlflow", "mlflow", "v2", "v2", "v2"]);

    for (side, a, b) in [("input", &in1, &in2), ("output", &out1, &out2)] {
        for (c1, c2) in a.iter().zip(b) {
            let array = batch.column_by_name(&format!("{side}.{}", c1.name)).expect("column present");
            assert_eq!(array.null_count(), 0);
            assert_eq!(column_data(array), (c1.width, concat(&c1.data, &c2.data)), "{side}.{}", c1.name);
        }
    }
}

#[tokio::test]
async fn rows_are_partitioned_by_deployment_date_and_hour_in_utc() {
    let dir = tempfile::tempdir().unwrap();
    let (artifacts, log) = start(dir.path(), config(dir.path()));
    let late_leap_day = LEAP_DAY_US + 23 * HOUR_US + 59 * 60_000_000 + 59_000_000; // 23:59:59
    let next_day = LEAP_DAY_US + 24 * HOUR_US + 1; // 2024-03-01T00:00:00.000001
    let new_year_eve = 1_704_067_199_000_000; // 2023-12-31T23:59:59
    log.record(entry("a", late_leap_day, 2, vec![f32s("x", 2)]));
    log.record(entry("a", next_day, 1, vec![f32s("x", 1)]));
    log.record(entry("b", new_year_eve, 4, vec![f32s("x", 4)]));
    assert_eq!(log.flush().await.unwrap().len(), 3);

    let a = list_segments(&artifacts, "a").await.unwrap();
    assert_eq!(a.len(), 2, "{a:?}");
    let root = "serving/prediction-logs/deployment=a";
    assert!(a[0].starts_with(&format!("{root}/date=2024-02-29/hour=23/3-20240229T235959-")), "{}", a[0]);
    assert!(a[1].starts_with(&format!("{root}/date=2024-03-01/hour=00/3-20240301T000000-")), "{}", a[1]);
    assert_eq!(rows_of(&artifacts, &a[0]).await, 2);
    assert_eq!(rows_of(&artifacts, &a[1]).await, 1);

    let b = list_segments(&artifacts, "b").await.unwrap();
    assert_eq!(b.len(), 1);
    assert!(b[0].starts_with("serving/prediction-logs/deployment=b/date=2023-12-31/hour=23/"), "{}", b[0]);
    assert_eq!(rows_of(&artifacts, &b[0]).await, 4);

    let march = LEAP_DAY_US + 24 * HOUR_US;
    assert_eq!(list_segments_between(&artifacts, "a", march, march + HOUR_US).await.unwrap(), a[1..]);
    assert_eq!(list_segments_between(&artifacts, "a", march - 1, march).await.unwrap(), a[..1]);
    assert!(list_segments_between(&artifacts, "a", march + HOUR_US, i64::MAX).await.unwrap().is_empty());
    assert!(list_segments(&artifacts, "never-logged").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_schema_change_rolls_to_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (artifacts, log) = start(dir.path(), config(dir.path()));
    let t = LEAP_DAY_US;
    log.record(entry("d", t, 2, vec![f32s("x", 2)]));
    log.record(entry("d", t + 1, 1, vec![col("x", 2, ColumnData::F32(vec![1.0, 2.0]))])); // width
    log.record(entry("d", t + 2, 1, vec![col("x", 1, ColumnData::I64(vec![7]))])); // type
    log.record(entry("d", t + 3, 1, vec![f32s("x", 1), f32s("y", 1)])); // a new column
    log.record(entry("d", t + 4, 3, vec![f32s("x", 3)])); // the first shape again
    let paths = log.flush().await.unwrap();
    assert_eq!(paths.len(), 4, "{paths:?}");

    let mut shapes = Vec::new();
    for p in &paths {
        let batches = read_segment(&artifacts, p).await.unwrap();
        let schema = batches[0].schema();
        assert!(batches.iter().all(|b| b.schema() == schema), "one schema per segment");
        let inputs: Vec<(String, DataType)> =
            schema.fields().iter().skip(10).map(|f| (f.name().clone(), f.data_type().clone())).collect();
        shapes.push((inputs, batches.iter().map(RecordBatch::num_rows).sum::<usize>()));
    }
    let x = |t: DataType| ("input.x".to_string(), t);
    let pair = DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float32, true)), 2);
    let y = ("input.y".to_string(), DataType::Float32);
    let expected = [
        (vec![x(DataType::Float32)], 5),
        (vec![x(pair)], 1),
        (vec![x(DataType::Int64)], 1),
        (vec![x(DataType::Float32), y], 1),
    ];
    for e in &expected {
        assert_eq!(shapes.iter().filter(|s| *s == e).count(), 1, "{e:?} in {shapes:?}");
    }
}

#[tokio::test]
async fn old_and_large_segments_are_sealed_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let aged = Config { roll_after: Duration::ZERO, ..config(dir.path()) };
    let (artifacts, log) = start(dir.path(), aged);
    log.record(entry("aged", LEAP_DAY_US, 2, vec![f32s("x", 2)]));
    let listed = poll(|| async { list_segments(&artifacts, "aged").await.unwrap() }, |l| !l.is_empty()).await;
    assert_eq!(rows_of(&artifacts, &listed[0]).await, 2);

    let dir = tempfile::tempdir().unwrap();
    let tiny = Config { flush_rows: 1, max_segment_bytes: 1, ..config(dir.path()) };
    let (artifacts, log) = start(dir.path(), tiny);
    for i in 0..3 {
        log.record(entry("big", LEAP_DAY_US + i, 1, vec![f32s("x", 1)]));
    }
    let listed = poll(|| async { list_segments(&artifacts, "big").await.unwrap() }, |l| l.len() == 3).await;
    for p in &listed {
        assert_eq!(rows_of(&artifacts, p).await, 1);
    }
    assert!(log.flush().await.unwrap().is_empty(), "nothing was left open");
}

/// Polls `probe` until `done` holds, for at most 20 s.
pub async fn poll<T, F, Fut>(probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for _ in 0..400 {
        let value = probe().await;
        if done(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 20 s");
}

#[tokio::test]
async fn paths_that_would_escape_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (artifacts, log) = start(dir.path(), config(dir.path()));
    for bad in ["../x", "..", "a/b", "a=b"] {
        log.record(entry(bad, LEAP_DAY_US, 2, vec![f32s("x", 2)]));
        assert_eq!(log.dropped_total(bad), 2, "{bad}");
        assert!(list_segments(&artifacts, bad).await.is_err(), "{bad}");
    }
    assert!(log.flush().await.unwrap().is_empty());
    assert!(read_segment(&artifacts, "../outside.arrows").await.is_err());
    assert!(read_segment(&artifacts, "serving/prediction-logs/%2e%2e/x.arrows").await.is_err());
    // Nothing was written anywhere, inside the artifact root or next to it.
    let found = recovery::files(dir.path());
    assert!(found.is_empty(), "{found:?}");
}
