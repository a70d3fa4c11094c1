//! Tests that need the writer held back: the queue bound and what `record` refuses.

use std::time::Duration;

use super::*;

fn entry(deployment: &str, rows: usize) -> Entry {
    Entry {
        request_id: "req".into(),
        timestamp_us: 1_709_251_200_000_000, // 2024-03-01T00:00:00Z
        deployment: deployment.into(),
        model: "m".into(),
        version: "1".into(),
        role: "primary",
        protocol: "v2",
        status: 200,
        latency_us: 10,
        rows,
        inputs: vec![Column { name: "x".into(), width: 1, data: ColumnData::F64(vec![1.5; rows]) }],
        outputs: vec![],
    }
}

fn config(dir: &std::path::Path, queue_rows: usize) -> Config {
    Config { spool_dir: dir.join("spool"), queue_rows, roll_after: Duration::from_secs(3600), ..Config::default() }
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
    let (open_gate, gate) = mpsc::channel();
    let log = PredictionLog::start_gated(artifacts.clone(), config(dir.path(), 10), Some(gate)).unwrap();

    // The writer takes nothing until the gate opens, so exactly three entries fit.
    let handle = log.clone();
    let recording = tokio::task::spawn_blocking(move || {
        for _ in 0..10 {
            handle.record(entry("d", 3));
        }
    });
    tokio::time::timeout(Duration::from_secs(30), recording).await.expect("record blocked").unwrap();
    assert_eq!(log.dropped_total("d"), 21);
    assert_eq!(log.logged_total("d"), 0);
    assert_eq!(log.inner.shared.queued_rows.load(Ordering::Relaxed), 9);

    open_gate.send(()).unwrap();
    let paths = log.flush().await.unwrap();
    assert_eq!(paths.len(), 1);
    let rows: usize = read_segment(&artifacts, &paths[0]).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 9);
    assert_eq!(log.logged_total("d"), 9);
    assert_eq!(log.snapshot(), vec![("d".to_string(), 9, 21)]);
    assert_eq!(log.inner.shared.queued_rows.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn malformed_entries_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = Artifacts::local(dir.path().join("artifacts")).unwrap();
    let log = PredictionLog::start(artifacts.clone(), config(dir.path(), 100)).unwrap();

    let mut short = entry("short", 2);
    short.inputs[0].data = ColumnData::F64(vec![1.0]);
    let mut zero_width = entry("zero", 1);
    zero_width.inputs[0] = Column { name: "x".into(), width: 0, data: ColumnData::F64(vec![]) };
    let mut twice = entry("twice", 1);
    twice.inputs.push(twice.inputs[0].clone());
    let mut early = entry("early", 1);
    early.timestamp_us = -1;
    let mut bad_version = entry("version", 1);
    bad_version.version = "../1".into();
    for e in [short, zero_width, twice, early, bad_version] {
        log.record(e);
    }
    log.record(entry("ok", 1));

    assert_eq!(log.flush().await.unwrap().len(), 1);
    for (d, rows) in [("short", 2), ("zero", 1), ("twice", 1), ("early", 1), ("version", 1)] {
        assert_eq!(log.dropped_total(d), rows, "{d}");
        assert_eq!(log.logged_total(d), 0, "{d}");
    }
    assert_eq!(log.logged_total("ok"), 1);
}

#[test]
fn check_accepts_well_formed_entries() {
    let mut e = entry("d", 2);
    e.outputs.push(Column { name: "y".into(), width: 2, data: ColumnData::Str(vec!["a".into(); 4]) });
    e.outputs.push(Column { name: "x".into(), width: 1, data: ColumnData::Bool(vec![true, false]) });
    assert_eq!(check(&e), Ok(()));
}
