//! Principals, grants and tokens: what the auth layer relies on the store for.

use slipway_store::auth::{Grantee, NewPrincipal, NewToken, ObjectKind, PrincipalKind, PrincipalUpdate};
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
