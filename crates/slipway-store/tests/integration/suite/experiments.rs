//! Experiments: the Default experiment, names unique while deleted, lifecycle, search and paging.

use slipway_store::{SearchRequest, StoreError};
use slipway_types::ViewType;

use super::{kv, search};
use crate::Fixture;

pub async fn default_experiment_exists(f: Fixture) {
    let e = f.store.get_experiment("0".into()).await.unwrap();
    assert_eq!(e.name, "Default");
    assert_eq!(e.lifecycle_stage, "active");
}

pub async fn experiment_lifecycle(f: Fixture) {
    let s = &f.store;
    let id = s.create_experiment("exp".into(), None, vec![kv("team", "a")]).await.unwrap();
    assert_eq!(s.get_experiment(id.clone()).await.unwrap().artifact_location, format!("mlflow-artifacts:/{id}"));
    let dup = s.create_experiment("exp".into(), None, vec![]).await.unwrap_err();
    assert!(matches!(dup, StoreError::AlreadyExists(_)), "{dup:?}");
    s.rename_experiment(id.clone(), "exp2".into()).await.unwrap();
    assert_eq!(s.get_experiment_by_name("exp2".into()).await.unwrap().experiment_id, id);
    assert!(matches!(s.get_experiment_by_name("exp".into()).await, Err(StoreError::NotFound(_))));
    s.delete_experiment(id.clone()).await.unwrap();
    let active = s.search_experiments(SearchRequest::default()).await.unwrap();
    assert!(active.items.iter().all(|e| e.experiment_id != id));
    let deleted = s
        .search_experiments(SearchRequest { view_type: ViewType::DeletedOnly, ..SearchRequest::default() })
        .await
        .unwrap();
    assert_eq!(deleted.items.len(), 1);
    // The name stays taken while deleted.
    assert!(s.create_experiment("exp2".into(), None, vec![]).await.is_err());
    s.restore_experiment(id.clone()).await.unwrap();
    assert_eq!(s.get_experiment(id).await.unwrap().lifecycle_stage, "active");
    assert!(matches!(s.get_experiment("999".into()).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.get_experiment("../1".into()).await, Err(StoreError::InvalidParameter(_))));
}

pub async fn experiment_search_filters_and_pages(f: Fixture) {
    let s = &f.store;
    for i in 0..7 {
        let tags = if i % 2 == 0 { vec![kv("even", "yes")] } else { vec![] };
        s.create_experiment(format!("search-{i}"), None, tags).await.unwrap();
    }
    let even = s.search_experiments(search("tags.even = 'yes'")).await.unwrap();
    assert_eq!(even.items.len(), 4);
    let like = s.search_experiments(search("name LIKE 'search-%'")).await.unwrap();
    assert_eq!(like.items.len(), 7);
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s
            .search_experiments(SearchRequest {
                filter: Some("name ILIKE 'SEARCH-%'".into()),
                order_by: vec!["name ASC".into()],
                max_results: Some(3),
                page_token: token.clone(),
                ..SearchRequest::default()
            })
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|e| e.name));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("search-{i}")).collect();
    assert_eq!(seen, expected);
}
