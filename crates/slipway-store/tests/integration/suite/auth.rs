//! Principals, grants and tokens: what the auth layer relies on the store for.

use slipway_store::auth::{Grantee, GroupUpdate, NewPrincipal, NewToken, ObjectKind, PrincipalKind, PrincipalUpdate};
use slipway_store::{AuditQuery, StoreError};

use crate::Fixture;

fn user(name: &str, hash: &str) -> NewPrincipal {
    NewPrincipal { kind: PrincipalKind::User, name: name.into(), password_hash: Some(hash.into()), is_admin: false }
}

fn token_for(principal_id: i64, id: &str) -> NewToken {
    NewToken {
        id: id.into(),
        principal_id,
        name: "ci".into(),
        secret_sha256: "ab".repeat(32),
        scopes_json: "[]".into(),
        expires_ms: i64::MAX,
    }
}

pub async fn principals_round_trip_and_every_change_bumps_the_epoch(f: Fixture) {
    let a = f.auth.clone();
    let e0 = a.auth_epoch().await.unwrap();
    let alice = a.create_principal(user("alice", "h1"), "admin".into()).await.unwrap();
    let e1 = a.auth_epoch().await.unwrap();
    assert!(e1 > e0);
    assert_eq!(alice.name, "alice");
    assert!(!alice.is_admin && !alice.disabled);
    assert_eq!(a.principal("alice".into()).await.unwrap(), alice);
    assert_eq!(a.principal_by_id(alice.id).await.unwrap(), alice);

    let dup = a.create_principal(user("alice", "h2"), "admin".into()).await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");
    for bad in ["", "a:b", "tab\there", &"x".repeat(257)] {
        let r = a.create_principal(user(bad, "h"), "admin".into()).await;
        assert!(matches!(r, Err(StoreError::InvalidParameter(_))), "{bad:?}: {r:?}");
    }

    let update = PrincipalUpdate { password_hash: Some("h3".into()), is_admin: Some(true), disabled: None };
    a.update_principal("alice".into(), update, "admin".into()).await.unwrap();
    let e2 = a.auth_epoch().await.unwrap();
    assert!(e2 > e1);
    let changed = a.principal("alice".into()).await.unwrap();
    assert_eq!((changed.password_hash.as_deref(), changed.is_admin), (Some("h3"), true));

    // A rehash at login applies only over the hash it replaces, and moves no epoch.
    a.rehash_password(alice.id, "stale".into(), "h4".into()).await.unwrap();
    assert_eq!(a.principal("alice".into()).await.unwrap().password_hash.as_deref(), Some("h3"));
    a.rehash_password(alice.id, "h3".into(), "h4".into()).await.unwrap();
    assert_eq!(a.principal("alice".into()).await.unwrap().password_hash.as_deref(), Some("h4"));
    assert_eq!(a.auth_epoch().await.unwrap(), e2);

    a.create_principal(user("bob", "h"), "admin".into()).await.unwrap();
    let names: Vec<_> = a.list_principals().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["alice", "bob"]);

    a.delete_principal("alice".into(), "admin".into()).await.unwrap();
    assert!(a.auth_epoch().await.unwrap() > e2);
    assert!(matches!(a.principal("alice".into()).await, Err(StoreError::NotFound(_))));
    assert!(matches!(a.delete_principal("alice".into(), "admin".into()).await, Err(StoreError::NotFound(_))));
}

pub async fn grants_reach_a_principal_through_its_groups_and_go_with_it(f: Fixture) {
    let a = f.auth.clone();
    let alice = a.create_principal(user("alice", "h"), "admin".into()).await.unwrap();
    let bob = a.create_principal(user("bob", "h"), "admin".into()).await.unwrap();
    let alice_ = || Grantee::Principal("alice".into());
    a.set_grant(alice_(), ObjectKind::Experiment, "7".into(), 1, "admin".into()).await.unwrap();
    // A second grant on the same object replaces the first.
    let g = a.set_grant(alice_(), ObjectKind::Experiment, "7".into(), 3, "admin".into()).await.unwrap();
    assert_eq!((g.kind, g.pattern.as_str(), g.permission), (ObjectKind::Experiment, "7", 3));
    a.set_grant(alice_(), ObjectKind::RegisteredModel, "*".into(), -1, "admin".into()).await.unwrap();

    let access = a.access(alice.id).await.unwrap();
    assert_eq!(access.principal.name, "alice");
    assert_eq!(access.group_ids.len(), 1);
    let seen: Vec<_> = access.grants.iter().map(|g| (g.kind, g.pattern.as_str(), g.permission)).collect();
    assert_eq!(seen, [(ObjectKind::Experiment, "7", 3), (ObjectKind::RegisteredModel, "*", -1)]);
    assert_eq!(access.epoch, a.auth_epoch().await.unwrap());
    assert!(a.access(bob.id).await.unwrap().grants.is_empty(), "grants are per principal");

    a.remove_grant(alice_(), ObjectKind::Experiment, "7".into(), "admin".into()).await.unwrap();
    let gone = a.remove_grant(alice_(), ObjectKind::Experiment, "7".into(), "admin".into()).await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
    assert_eq!(a.access(alice.id).await.unwrap().grants.len(), 1);
    let nobody = a.set_grant(Grantee::Principal("carol".into()), ObjectKind::Deployment, "d".into(), 2, "admin".into());
    assert!(matches!(nobody.await, Err(StoreError::NotFound(_))));

    // A new principal of an old name starts bare.
    a.delete_principal("alice".into(), "admin".into()).await.unwrap();
    let again = a.create_principal(user("alice", "h"), "admin".into()).await.unwrap();
    assert_ne!(again.id, alice.id);
    assert!(a.access(again.id).await.unwrap().grants.is_empty());
}

pub async fn groups_give_their_members_their_grants_until_either_goes(f: Fixture) {
    let a = f.auth.clone();
    let alice = a.create_principal(user("alice", "h"), "admin".into()).await.unwrap();
    a.create_principal(user("bob", "h"), "admin".into()).await.unwrap();
    let e0 = a.auth_epoch().await.unwrap();
    let team = a.create_group("ml-team".into(), Some("the team".into()), "admin".into()).await.unwrap();
    assert!(a.auth_epoch().await.unwrap() > e0);
    assert_eq!((team.name.as_str(), team.description.as_deref()), ("ml-team", Some("the team")));
    for (bad, why) in [("ml-team", "taken"), ("__user_1__", "reserved"), ("", "empty"), ("a:b", "colon")] {
        let r = a.create_group(bad.into(), None, "admin".into()).await;
        assert!(matches!(r, Err(StoreError::AlreadyExists(_) | StoreError::InvalidParameter(_))), "{why}: {r:?}");
    }

    let g =
        a.add_grant(Grantee::GroupId(team.id), ObjectKind::Experiment, "7".into(), 1, "admin".into()).await.unwrap();
    let twice = a.add_grant(Grantee::GroupId(team.id), ObjectKind::Experiment, "7".into(), 3, "admin".into()).await;
    assert!(matches!(twice, Err(StoreError::AlreadyExists(_))), "{twice:?}");
    assert_eq!(a.grant(g.id).await.unwrap().permission, 1, "a refused add changes nothing");
    assert_eq!(a.update_grant(g.id, 3, "admin".into()).await.unwrap().permission, 3);
    assert_eq!(a.group(team.id).await.unwrap().grants, [a.grant(g.id).await.unwrap()]);

    // Grants reach members only, and a member through the group.
    assert!(a.access(alice.id).await.unwrap().grants.is_empty());
    let m = a.add_member(team.id, "alice".into(), "admin".into()).await.unwrap();
    assert_eq!((m.group_id, m.principal_id), (team.id, alice.id));
    let again = a.add_member(team.id, "alice".into(), "admin".into()).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists(_))), "{again:?}");
    let nobody = a.add_member(team.id, "carol".into(), "admin".into()).await;
    assert!(matches!(nobody, Err(StoreError::NotFound(_))), "{nobody:?}");
    let access = a.access(alice.id).await.unwrap();
    assert!(access.group_ids.contains(&team.id));
    let seen: Vec<_> =
        access.grants.iter().map(|g| (g.group_name.as_str(), g.pattern.as_str(), g.permission)).collect();
    assert_eq!(seen, [("ml-team", "7", 3)]);
    assert_eq!(a.members(team.id).await.unwrap(), std::slice::from_ref(&m));
    assert_eq!(a.groups_of("alice".into()).await.unwrap().iter().map(|g| g.id).collect::<Vec<_>>(), [team.id]);
    assert!(a.groups_of("bob".into()).await.unwrap().is_empty());

    // Personal groups are not roles: not listed, not found, not addressable by id.
    let personal = access.group_ids.iter().copied().find(|id| *id != team.id).unwrap();
    assert!(matches!(a.group(personal).await, Err(StoreError::NotFound(_))));
    assert!(matches!(a.add_member(personal, "bob".into(), "admin".into()).await, Err(StoreError::NotFound(_))));
    assert_eq!(a.list_groups().await.unwrap().iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["ml-team"]);
    let named = a.groups_named(vec!["nope".into(), "ml-team".into(), "ml-team".into()]).await.unwrap();
    assert_eq!(named.iter().map(|g| g.id).collect::<Vec<_>>(), [team.id]);

    let renamed = a
        .update_group(team.id, GroupUpdate { name: Some("vision".into()), description: None }, "admin".into())
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.description.as_deref()), ("vision", Some("the team")));
    assert_eq!(a.access(alice.id).await.unwrap().grants[0].group_name, "vision");

    a.remove_member(team.id, "alice".into(), "admin".into()).await.unwrap();
    assert!(a.access(alice.id).await.unwrap().grants.is_empty());
    let gone = a.remove_member(team.id, "alice".into(), "admin".into()).await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");

    // Deleting a group takes its grants and memberships with it.
    a.add_member(team.id, "bob".into(), "admin".into()).await.unwrap();
    let e1 = a.auth_epoch().await.unwrap();
    a.delete_group(team.id, "admin".into()).await.unwrap();
    assert!(a.auth_epoch().await.unwrap() > e1);
    assert!(matches!(a.grant(g.id).await, Err(StoreError::NotFound(_))));
    assert!(a.groups_of("bob".into()).await.unwrap().is_empty());
    assert!(matches!(a.delete_grant(g.id, "admin".into()).await, Err(StoreError::NotFound(_))));
}

pub async fn tokens_are_stored_as_digests_and_revoke_once(f: Fixture) {
    let a = f.auth.clone();
    let alice = a.create_principal(user("alice", "h"), "admin".into()).await.unwrap();
    let before = a.auth_epoch().await.unwrap();
    let t = a.create_token(token_for(alice.id, "0123456789ab"), "alice".into()).await.unwrap();
    assert!(a.auth_epoch().await.unwrap() > before);
    assert_eq!((t.principal_name.as_str(), t.revoked_ms, t.last_used_ms), ("alice", None, None));
    assert_eq!(a.token("0123456789ab".into()).await.unwrap(), t);
    let dup = a.create_token(token_for(alice.id, "0123456789ab"), "alice".into()).await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))));
    let orphan = a.create_token(token_for(alice.id + 1000, "ffffffffffff"), "alice".into()).await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))));

    a.touch_token(t.id.clone(), 42).await.unwrap();
    assert_eq!(a.token(t.id.clone()).await.unwrap().last_used_ms, Some(42));

    let revoke_epoch = a.auth_epoch().await.unwrap();
    a.revoke_token(t.id.clone(), "alice".into()).await.unwrap();
    let revoked = a.token(t.id.clone()).await.unwrap();
    assert!(revoked.revoked_ms.is_some());
    assert!(a.auth_epoch().await.unwrap() > revoke_epoch);
    // Revoking again keeps the first time.
    a.revoke_token(t.id.clone(), "alice".into()).await.unwrap();
    assert_eq!(a.token(t.id.clone()).await.unwrap().revoked_ms, revoked.revoked_ms);

    let bob = a.create_principal(user("bob", "h"), "admin".into()).await.unwrap();
    a.create_token(token_for(bob.id, "bbbbbbbbbbbb"), "bob".into()).await.unwrap();
    assert_eq!(a.list_tokens(Some(alice.id)).await.unwrap().len(), 1);
    assert_eq!(a.list_tokens(None).await.unwrap().len(), 2);
    // Tokens go with their owner.
    a.delete_principal("bob".into(), "admin".into()).await.unwrap();
    assert!(matches!(a.token("bbbbbbbbbbbb".into()).await, Err(StoreError::NotFound(_))));
}

pub async fn auth_changes_are_audited_without_secrets(f: Fixture) {
    let a = f.auth.clone();
    let alice = a.create_principal(user("alice", "secret-hash"), "root".into()).await.unwrap();
    a.set_grant(Grantee::Principal("alice".into()), ObjectKind::Deployment, "d".into(), 2, "root".into())
        .await
        .unwrap();
    a.create_token(token_for(alice.id, "0123456789ab"), "alice".into()).await.unwrap();
    let update = PrincipalUpdate { password_hash: Some("other-hash".into()), ..Default::default() };
    a.update_principal("alice".into(), update, "alice".into()).await.unwrap();
    let log = f.store.audit_log(AuditQuery::default()).await.unwrap().items;
    let actions: Vec<_> = log.iter().map(|r| (r.actor.as_str(), r.action.as_str(), r.object_type.as_str())).collect();
    for expected in [
        ("root", "create", "user"),
        ("root", "grant", "grant"),
        ("alice", "create", "token"),
        ("alice", "update_password", "user"),
    ] {
        assert!(actions.contains(&expected), "{expected:?} not in {actions:?}");
    }
    let text = serde_json::to_string(&log).unwrap();
    for secret in ["secret-hash", "other-hash", &"ab".repeat(32)] {
        assert!(!text.contains(secret), "the audit log shows {secret}");
    }
}

pub async fn searches_return_only_what_the_groups_may_read(f: Fixture) {
    use slipway_store::{RegistrySearch, SearchRequest, Visibility};
    let a = f.auth.clone();
    let alice = a.create_principal(user("alice", "h"), "admin".into()).await.unwrap();
    let mut ids = Vec::new();
    for name in ["e1", "e2", "e3"] {
        ids.push(f.store.create_experiment(name.into(), None, vec![]).await.unwrap());
    }
    for name in ["m1", "m2"] {
        f.store.create_registered_model(name.into(), None, vec![], "admin".into()).await.unwrap();
    }
    let alice_ = || Grantee::Principal("alice".into());
    a.set_grant(alice_(), ObjectKind::Experiment, ids[0].clone(), 1, "admin".into()).await.unwrap();
    a.set_grant(alice_(), ObjectKind::Experiment, ids[2].clone(), 3, "admin".into()).await.unwrap();
    a.set_grant(alice_(), ObjectKind::RegisteredModel, "m2".into(), 1, "admin".into()).await.unwrap();
    let groups = a.access(alice.id).await.unwrap().group_ids;
    let visible = |default_read| Visibility::Groups { group_ids: groups.clone(), default_read };
    let names = |page: slipway_store::Page<slipway_types::Experiment>| {
        page.items.into_iter().map(|e| e.name).collect::<Vec<_>>()
    };

    let mut req = SearchRequest { visible: visible(false), order_by: vec!["name".into()], ..Default::default() };
    assert_eq!(names(f.store.search_experiments(req.clone()).await.unwrap()), ["e1", "e3"]);
    // Pages are over visible rows: one per page, the token leads to the next visible one.
    req.max_results = Some(1);
    let first = f.store.search_experiments(req.clone()).await.unwrap();
    let token = first.next_page_token.clone();
    assert_eq!(names(first), ["e1"]);
    req.page_token = token;
    let second = f.store.search_experiments(req.clone()).await.unwrap();
    assert!(second.next_page_token.is_none());
    assert_eq!(names(second), ["e3"]);

    // With READ by default, everything not denied; DENY hides one.
    a.set_grant(alice_(), ObjectKind::Experiment, ids[1].clone(), -1, "admin".into()).await.unwrap();
    let req = SearchRequest { visible: visible(true), order_by: vec!["name".into()], ..Default::default() };
    let all = names(f.store.search_experiments(req).await.unwrap());
    assert!(all.contains(&"e1".to_string()) && all.contains(&"e3".to_string()) && !all.contains(&"e2".to_string()));
    // A DENY on `*` hides all.
    a.set_grant(alice_(), ObjectKind::Experiment, "*".into(), -1, "admin".into()).await.unwrap();
    let req = SearchRequest { visible: visible(true), ..Default::default() };
    assert!(f.store.search_experiments(req).await.unwrap().items.is_empty());

    let models = f.store.search_registered_models(RegistrySearch { visible: visible(false), ..Default::default() });
    let models: Vec<_> = models.await.unwrap().items.into_iter().map(|m| m.name).collect();
    assert_eq!(models, ["m2"]);
    let all = f.store.search_registered_models(RegistrySearch::default()).await.unwrap();
    assert_eq!(all.items.len(), 2, "Visibility::All is today's search");
}

pub async fn children_resolve_to_the_object_whose_permissions_they_have(f: Fixture) {
    use slipway_store::auth::Child;
    let a = f.auth.clone();
    let exp = f.store.create_experiment("parent".into(), None, vec![]).await.unwrap();
    let run = f.store.create_run(crate::suite::new_run(&exp)).await.unwrap();
    assert_eq!(a.parent_of(Child::Run(run.info.run_id.clone())).await.unwrap(), Some(exp.clone()));
    assert_eq!(a.parent_of(Child::ExperimentName("parent".into())).await.unwrap(), Some(exp.clone()));
    assert_eq!(a.parent_of(Child::Run("0".repeat(32))).await.unwrap(), None);
    assert_eq!(a.parent_of(Child::LoggedModel("m-nope".into())).await.unwrap(), None);
    f.store.create_deployment(crate::suite::full_deployment("fraud"), "admin".into()).await.unwrap();
    f.store.create_monitor(crate::suite::monitor_spec("watch"), "admin".into()).await.unwrap();
    assert_eq!(a.parent_of(Child::Monitor("watch".into())).await.unwrap(), Some("fraud".into()));
    assert_eq!(a.parent_of(Child::Monitor("nope".into())).await.unwrap(), None);
    let queue = serde_json::json!({"name": "review", "deployment": "fraud", "mode": "manual", "lease_seconds": 60});
    f.store.create_label_queue(serde_json::from_value(queue).unwrap(), "admin".into()).await.unwrap();
    assert_eq!(a.parent_of(Child::LabelQueue("review".into())).await.unwrap(), Some("fraud".into()));
    assert_eq!(a.parent_of(Child::LabelQueue("nope".into())).await.unwrap(), None);

    // `fraud` serves churn@challenger as its canary; moving that alias changes what it serves.
    let followers = |model: &str, alias: &str| a.alias_followers(model.into(), alias.into());
    assert_eq!(followers("churn", "challenger").await.unwrap(), ["fraud"]);
    assert!(followers("churn", "champion").await.unwrap().is_empty());
    assert!(followers("other", "challenger").await.unwrap().is_empty());
    let primary = crate::suite::deployment_with(|d| {
        d.alias = Some("champion".into());
        d.version = None;
    });
    f.store.create_deployment(primary, "admin".into()).await.unwrap();
    assert_eq!(followers("churn", "champion").await.unwrap(), ["ok"]);
}

pub async fn refused_requests_are_kept_newest_first_and_dropped_after_90_days(f: Fixture) {
    use slipway_store::auth::{DENIALS_KEPT_MS, Denial, DenialQuery};
    let a = f.auth.clone();
    let now = slipway_store::now_ms();
    let denial = |at: i64, who: &str, status: i64| Denial {
        id: 0,
        timestamp: at,
        principal: Some(who.into()),
        token_id: None,
        address: Some("10.0.0.1".into()),
        method: "GET".into(),
        path: "/api/2.0/mlflow/experiments/get".into(),
        status,
        reason: "permission denied".into(),
    };
    let old = denial(now - DENIALS_KEPT_MS - 1000, "mallory", 401);
    a.record_denials(vec![old, denial(now - 2, "mallory", 401), denial(now - 1, "bob", 403)]).await.unwrap();
    let all = a.denials(DenialQuery::default()).await.unwrap().items;
    assert_eq!(
        all.iter().map(|d| (d.principal.as_deref(), d.status)).collect::<Vec<_>>(),
        [(Some("bob"), 403), (Some("mallory"), 401)]
    );
    let q = DenialQuery { principal: Some("mallory".into()), max_results: Some(1), ..Default::default() };
    let page = a.denials(q).await.unwrap();
    assert_eq!((page.items.len(), page.next_page_token), (1, None));
    let bad = a.denials(DenialQuery { max_results: Some(0), ..Default::default() }).await;
    assert!(matches!(bad, Err(StoreError::InvalidParameter(_))), "{bad:?}");
}
