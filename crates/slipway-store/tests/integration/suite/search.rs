//! Run search over every filter kind and order, paging without gaps or repeats, metric history in
//! step order.

use slipway_store::{NewDatasetInput, Page, RunUpdate, SearchRequest, StoreError};
use slipway_types::{Dataset, Run, ViewType};

use super::{kv, metric, new_run, search};
use crate::Fixture;

pub async fn search_runs_by_every_kind(f: Fixture) {
    let s = &f.store;
    let exp = s.create_experiment("runs".into(), None, vec![]).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..6i64 {
        let mut r = new_run(&exp);
        r.start_time = Some(100 + i);
        r.run_name = Some(format!("run-{i}"));
        let id = s.create_run(r).await.unwrap().info.run_id;
        let tags = if i % 2 == 0 { vec![kv("parity", "Even")] } else { vec![] };
        s.log_batch(
            id.clone(),
            vec![metric("acc", i as f64 / 10.0, 0)],
            vec![kv("model", if i < 3 { "lin" } else { "tree" })],
            tags,
        )
        .await
        .unwrap();
        ids.push(id);
    }
    s.update_run(ids[5].clone(), RunUpdate { status: Some("FINISHED".into()), ..RunUpdate::default() }).await.unwrap();
    s.log_inputs(
        ids[1].clone(),
        vec![NewDatasetInput {
            dataset: Dataset {
                name: "train".into(),
                digest: "abc123".into(),
                source_type: "local".into(),
                source: "{}".into(),
                schema: None,
                profile: None,
            },
            tags: vec![kv("mlflow.data.context", "training")],
        }],
        vec![],
    )
    .await
    .unwrap();

    let names = |page: Page<Run>| page.items.into_iter().map(|r| r.info.run_name).collect::<Vec<_>>();
    let q = |f: &str| {
        let s = s.clone();
        let exp = exp.clone();
        let f = f.to_string();
        async move { s.search_runs(vec![exp], search(&f)).await }
    };
    assert_eq!(names(q("metrics.acc >= 0.3").await.unwrap()), ["run-5", "run-4", "run-3"]);
    assert_eq!(names(q("params.model = 'lin' and metrics.acc > 0").await.unwrap()), ["run-2", "run-1"]);
    assert_eq!(q("tags.parity LIKE 'Ev%'").await.unwrap().items.len(), 3);
    assert_eq!(q("tags.parity LIKE 'ev%'").await.unwrap().items.len(), 0, "LIKE is case-sensitive");
    assert_eq!(q("tags.parity ILIKE 'ev%'").await.unwrap().items.len(), 3);
    assert_eq!(q("tags.parity IS NULL").await.unwrap().items.len(), 3);
    assert_eq!(names(q("attributes.status = 'FINISHED'").await.unwrap()), ["run-5"]);
    assert_eq!(names(q("attributes.run_name = 'run-2'").await.unwrap()), ["run-2"]);
    let in_filter = format!("attributes.run_id IN ('{}', '{}')", ids[0], ids[3]);
    assert_eq!(names(q(&in_filter).await.unwrap()), ["run-3", "run-0"]);
    assert_eq!(names(q("datasets.name = 'train'").await.unwrap()), ["run-1"]);
    assert_eq!(names(q("datasets.context = 'training'").await.unwrap()), ["run-1"]);
    assert_eq!(names(q("attributes.start_time > 103").await.unwrap()), ["run-5", "run-4"]);
    assert!(matches!(q("metrics.acc > 0 OR params.x = 'y'").await, Err(StoreError::InvalidParameter(_))));
    assert!(matches!(q("attributes.bogus = 'x'").await, Err(StoreError::InvalidParameter(_))));

    let ordered = s
        .search_runs(
            vec![exp.clone()],
            SearchRequest { order_by: vec!["metrics.acc ASC".into()], ..SearchRequest::default() },
        )
        .await
        .unwrap();
    assert_eq!(names(ordered), ["run-0", "run-1", "run-2", "run-3", "run-4", "run-5"]);
    let by_param = s
        .search_runs(
            vec![exp.clone()],
            SearchRequest {
                order_by: vec!["params.model DESC".into(), "attributes.run_name".into()],
                ..SearchRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(by_param), ["run-3", "run-4", "run-5", "run-0", "run-1", "run-2"]);

    s.delete_run(ids[0].clone()).await.unwrap();
    assert_eq!(q("").await.unwrap().items.len(), 5);
    let all = s
        .search_runs(vec![exp.clone()], SearchRequest { view_type: ViewType::All, ..SearchRequest::default() })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
}

pub async fn search_runs_pages_without_gaps_or_repeats(f: Fixture) {
    let s = &f.store;
    let exp = s.create_experiment("paging".into(), None, vec![]).await.unwrap();
    let mut created = Vec::new();
    for i in 0..23 {
        let mut r = new_run(&exp);
        r.start_time = Some(i % 4); // ties exercise the run-id tie-breaker
        created.push(s.create_run(r).await.unwrap().info.run_id);
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .search_runs(
                vec![exp.clone()],
                SearchRequest { max_results: Some(5), page_token: token, ..SearchRequest::default() },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(page.items.into_iter().map(|r| r.info.run_id));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    let mut a = seen.clone();
    a.sort();
    a.dedup();
    created.sort();
    assert_eq!(a, created);
    assert_eq!(seen.len(), 23);
    let bad = s
        .search_runs(vec![exp], SearchRequest { page_token: Some("garbage".into()), ..SearchRequest::default() })
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidParameter(_))));
}

pub async fn metric_history_pages_in_step_order(f: Fixture) {
    let s = &f.store;
    let id = s.create_run(new_run("0")).await.unwrap().info.run_id;
    for chunk in (0..2500i64).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk.iter().rev().map(|&i| metric("h", i as f64, i)).collect();
        s.log_batch(id.clone(), batch, vec![], vec![]).await.unwrap();
    }
    let mut steps = Vec::new();
    let mut token = None;
    loop {
        let page = s.get_metric_history(id.clone(), "h".into(), Some(1000), token).await.unwrap();
        steps.extend(page.items.iter().map(|m| m.step));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(steps, (0..2500).collect::<Vec<_>>());
    let all = s.get_metric_history(id, "h".into(), None, None).await.unwrap();
    assert_eq!(all.items.len(), 2500);
    assert!(all.next_page_token.is_none());
}

/// Ordering by a metric reads runs with a value and runs without one (missing or NaN) in two
/// queries; paged with any page size, the result must be the one order MLflow defines: values
/// first in the asked direction, missing and NaN last, ties by start_time DESC then run id.
pub async fn search_runs_by_metric_order_pages_like_one_sort(f: Fixture) {
    let s = &f.store;
    let exp = s.create_experiment("metric-order".into(), None, vec![]).await.unwrap();
    // (value of "m", passes the filter on "f"); None: "m" never logged.
    let values = [
        Some(0.5),
        Some(f64::NAN),
        None,
        Some(0.5),
        Some(-1.0),
        Some(2.0),
        None,
        Some(0.5),
        Some(f64::NAN),
        Some(2.0),
        Some(0.0),
        None,
        Some(7.0),
    ];
    let mut runs = Vec::new(); // (run id, start_time, m, passes)
    for (i, m) in values.iter().enumerate() {
        let mut r = new_run(&exp);
        r.start_time = Some((i % 3) as i64); // ties on start_time too
        let id = s.create_run(r).await.unwrap().info.run_id;
        let passes = i % 4 != 3;
        let mut ms = vec![metric("f", if passes { 1.0 } else { 0.0 }, 0)];
        if let Some(v) = m {
            ms.push(metric("m", *v, 0));
        }
        s.log_batch(id.clone(), ms, vec![], vec![]).await.unwrap();
        runs.push((id, (i % 3) as i64, *m, passes));
    }
    for ascending in [true, false] {
        for filter in ["", "metrics.f > 0.5"] {
            let mut want: Vec<_> = runs.iter().filter(|r| filter.is_empty() || r.3).collect();
            want.sort_by(|a, b| {
                let key = |r: &&(String, i64, Option<f64>, bool)| r.2.filter(|v| !v.is_nan());
                let by_value = match (key(a), key(b)) {
                    (Some(x), Some(y)) if ascending => x.total_cmp(&y),
                    (Some(x), Some(y)) => y.total_cmp(&x),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                };
                by_value.then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0))
            });
            let want: Vec<String> = want.into_iter().map(|r| r.0.clone()).collect();
            for page_size in [1, 2, 3, 5, 100] {
                let mut seen = Vec::new();
                let mut token = None;
                loop {
                    let page = s
                        .search_runs(
                            vec![exp.clone()],
                            SearchRequest {
                                filter: Some(filter.into()),
                                order_by: vec![format!("metrics.m {}", if ascending { "ASC" } else { "DESC" })],
                                max_results: Some(page_size),
                                page_token: token,
                                ..SearchRequest::default()
                            },
                        )
                        .await
                        .unwrap();
                    seen.extend(page.items.into_iter().map(|r| r.info.run_id));
                    token = page.next_page_token;
                    if token.is_none() {
                        break;
                    }
                }
                assert_eq!(seen, want, "ascending {ascending}, filter '{filter}', pages of {page_size}");
            }
        }
    }
}
