//! Alert rules over a monitor's windows, and the webhook deliveries of their firings.
//!
//! A rule fires on the window that completes a streak of `for_windows` consecutive windows
//! where `series <op> threshold` holds (a window without the series breaks the streak); a
//! longer streak does not fire again, and a window where the rule does not hold re-arms it.
//! The store keeps one event per (monitor, rule, window), so re-evaluating a window, or a
//! second server evaluating it, cannot fire twice. Each event is POSTed as JSON with an
//! `Idempotency-Key` header, retried with exponential backoff, and every attempt is recorded.

use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use slipway_artifacts::tls::HttpsConnector;
use slipway_store::MetadataStore;
use slipway_types::{AlertEvent, AlertRule, AlertStatus, Monitor, MonitorWindow};

use crate::MonitorError;

/// Attempts per event, and the wait before the second (doubling up to `MAX_BACKOFF`).
pub const MAX_ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The windows on which `rule` fires, among `windows` (oldest first, as stored). A window
/// missing between two others (never evaluated) breaks a streak like one where the rule
/// does not hold.
pub fn firings<'a>(rule: &AlertRule, windows: &'a [MonitorWindow]) -> Vec<&'a MonitorWindow> {
    let need = rule.for_windows.unwrap_or(1).max(1);
    let mut streak = 0u32;
    let mut previous_end = None;
    let mut out = Vec::new();
    for w in windows {
        if previous_end.is_some_and(|end| end != w.start_ms) {
            streak = 0;
        }
        previous_end = Some(w.end_ms);
        match w.series.get(&rule.series) {
            Some(v) if rule.op.holds(*v, rule.threshold) => streak = streak.saturating_add(1),
            _ => streak = 0,
        }
        if streak == need {
            out.push(w);
        }
    }
    out
}

/// The longest streak any rule of the monitor needs: how far before the first re-evaluated
/// window the history must reach for streaks to be counted whole.
pub fn history_windows(m: &Monitor) -> i64 {
    i64::from(m.spec.alerts.iter().map(|r| r.for_windows.unwrap_or(1).max(1)).max().unwrap_or(1))
}

/// Delivers firings to their webhooks, over http or https (the system's CA roots, or those
/// `SSL_CERT_FILE` names).
#[derive(Clone)]
pub struct Webhooks {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    store: Arc<dyn MetadataStore>,
}

/// The POST for one delivery, with the token the rule's `token_env` names (read through `env`).
fn request(
    rule: &AlertRule,
    key: &str,
    body: &serde_json::Value,
    env: impl Fn(&str) -> Option<String>,
) -> Result<hyper::Request<Full<Bytes>>, String> {
    let mut req = hyper::Request::post(&rule.webhook);
    if let Some(var) = &rule.token_env {
        let token = env(var).ok_or_else(|| format!("the environment variable {var} (token_env) is not set"))?;
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.header("content-type", "application/json")
        .header("idempotency-key", key)
        .header("user-agent", concat!("slipway/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("invalid webhook request: {e}"))
}

fn payload(m: &Monitor, rule: &AlertRule, e: &AlertEvent, window_ms: i64) -> serde_json::Value {
    json!({
        "event_id": e.id,
        "monitor": e.monitor,
        "deployment": m.spec.deployment,
        "rule": e.rule,
        "series": e.series,
        "op": rule.op,
        "threshold": e.threshold,
        "for_windows": rule.for_windows.unwrap_or(1),
        "value": e.value,
        "window_start_ms": e.window_start_ms,
        "window_end_ms": e.window_start_ms + window_ms,
        "fired_at": e.fired_at,
    })
}

impl Webhooks {
    pub fn new(store: Arc<dyn MetadataStore>) -> Webhooks {
        let https = slipway_artifacts::tls::roots().https_or_http().enable_http1().build();
        Webhooks { client: Client::builder(TokioExecutor::new()).build(https), store }
    }

    /// One POST; `Err` says why it did not count as delivered.
    async fn post(&self, rule: &AlertRule, key: &str, body: &serde_json::Value) -> Result<(), String> {
        let url = &rule.webhook;
        let req = request(rule, key, body, |var| std::env::var(var).ok())?;
        let resp = tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status();
        // Read the answer so the connection can be reused.
        let _ = resp.into_body().collect().await;
        if status.is_success() { Ok(()) } else { Err(format!("answered {status}")) }
    }

    /// Delivers an event, retrying with backoff; records each attempt.
    pub async fn deliver(&self, m: &Monitor, rule: &AlertRule, mut e: AlertEvent) {
        let body = payload(m, rule, &e, m.spec.window_ms());
        let key = format!("{}/{}/{}", e.monitor, e.rule, e.window_start_ms);
        let mut backoff = FIRST_BACKOFF;
        while e.attempts < MAX_ATTEMPTS {
            e.attempts += 1;
            let result = self.post(rule, &key, &body).await;
            let (status, error, delivered) = match &result {
                Ok(()) => (AlertStatus::Delivered, None, Some(slipway_store::now_ms())),
                Err(why) if e.attempts >= MAX_ATTEMPTS => (AlertStatus::Failed, Some(why.clone()), None),
                Err(why) => (AlertStatus::Pending, Some(why.clone()), None),
            };
            if let Err(err) = self.store.update_alert(e.id, status, e.attempts, error.clone(), delivered).await {
                tracing::warn!(error = %err, event = e.id, "cannot record an alert delivery");
            }
            match result {
                Ok(()) => return,
                Err(why) => {
                    tracing::warn!(monitor = %e.monitor, rule = %e.rule, attempt = e.attempts, error = %why, "alert webhook failed");
                }
            }
            if e.attempts < MAX_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Records the firings of every rule on the windows starting at `evaluated` (counting
/// streaks over `history`, which reaches [`history_windows`] before the first of them) and
/// starts delivering the new ones. Only windows just evaluated can fire, so a streak longer
/// than the history looked at never fires twice.
pub async fn check(
    webhooks: &Webhooks,
    m: &Monitor,
    history: &[MonitorWindow],
    evaluated: &std::collections::HashSet<i64>,
) -> Result<(), MonitorError> {
    for rule in &m.spec.alerts {
        for w in firings(rule, history).into_iter().filter(|w| evaluated.contains(&w.start_ms)) {
            let event = AlertEvent {
                id: 0,
                monitor: m.spec.name.clone(),
                rule: rule.name.clone(),
                window_start_ms: w.start_ms,
                series: rule.series.clone(),
                value: w.series.get(&rule.series).copied().unwrap_or(f64::NAN),
                threshold: rule.threshold,
                fired_at: slipway_store::now_ms(),
                status: AlertStatus::Pending,
                attempts: 0,
                last_error: None,
                delivered_at: None,
            };
            if let Some(stored) = webhooks.store.record_alert(event).await? {
                tracing::info!(monitor = %m.spec.name, rule = %rule.name, window = w.start_ms, "alert fired");
                spawn_delivery(webhooks, m, rule, stored);
            }
        }
    }
    Ok(())
}

fn spawn_delivery(webhooks: &Webhooks, m: &Monitor, rule: &AlertRule, e: AlertEvent) {
    let (webhooks, m, rule) = (webhooks.clone(), m.clone(), rule.clone());
    tokio::spawn(async move { webhooks.deliver(&m, &rule, e).await });
}

/// Resumes the deliveries a stopped process left pending.
pub async fn resume(webhooks: &Webhooks) {
    let store = &webhooks.store;
    let pending = match store.pending_alerts().await {
        Ok(p) => p,
        Err(e) => return tracing::warn!(error = %e, "cannot list pending alerts"),
    };
    for e in pending {
        let Ok(m) = store.get_monitor(e.monitor.clone()).await else { continue };
        match m.spec.alerts.iter().find(|r| r.name == e.rule) {
            Some(rule) => spawn_delivery(webhooks, &m, rule, e),
            None => {
                let why = Some("the rule was removed from the monitor".to_string());
                let _ = store.update_alert(e.id, AlertStatus::Failed, e.attempts, why, None).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use slipway_types::Comparison;

    use super::*;

    fn window(start: i64, value: Option<f64>) -> MonitorWindow {
        let mut series = BTreeMap::new();
        if let Some(v) = value {
            series.insert("drift.share".to_string(), v);
        }
        MonitorWindow {
            monitor: "m".into(),
            start_ms: start,
            end_ms: start + 1,
            rows: 1,
            series,
            drift: None,
            computed_at: 0,
        }
    }

    fn rule(for_windows: u32) -> AlertRule {
        AlertRule {
            name: "r".into(),
            series: "drift.share".into(),
            op: Comparison::AtLeast,
            threshold: 0.5,
            for_windows: Some(for_windows),
            webhook: "http://x".into(),
            token_env: None,
        }
    }

    #[test]
    fn a_streak_fires_once_when_it_reaches_its_length_and_rearms_after_a_break() {
        let values = [Some(0.6), Some(0.7), Some(0.9), Some(0.1), Some(0.5), None, Some(0.8), Some(0.8)];
        let ws: Vec<MonitorWindow> = values.iter().enumerate().map(|(i, v)| window(i as i64, *v)).collect();
        let starts = |n| firings(&rule(n), &ws).iter().map(|w| w.start_ms).collect::<Vec<_>>();
        assert_eq!(starts(1), [0, 4, 6]);
        assert_eq!(starts(2), [1, 7]);
        assert_eq!(starts(3), [2]);
        assert!(starts(4).is_empty());
    }

    #[test]
    fn a_rule_with_token_env_sends_that_token_and_only_when_it_is_set() {
        let mut r = rule(1);
        let body = serde_json::json!({});
        let plain = request(&r, "k", &body, |_| Some("nope".into())).unwrap();
        assert!(plain.headers().get("authorization").is_none(), "no token_env, no token");
        r.token_env = Some("SLIPWAY_WEBHOOK_TOKEN_RETRAIN".into());
        let env = |var: &str| (var == "SLIPWAY_WEBHOOK_TOKEN_RETRAIN").then(|| "slw_abc".to_string());
        let with = request(&r, "k", &body, env).unwrap();
        assert_eq!(with.headers()["authorization"], "Bearer slw_abc");
        assert_eq!(with.headers()["idempotency-key"], "k");
        let unset = request(&r, "k", &body, |_| None).unwrap_err();
        assert!(unset.contains("SLIPWAY_WEBHOOK_TOKEN_RETRAIN"), "{unset}");
    }

    #[test]
    fn a_missing_window_breaks_a_streak() {
        let ws = vec![window(0, Some(0.9)), window(2, Some(0.9)), window(3, Some(0.9))];
        let starts: Vec<i64> = firings(&rule(2), &ws).iter().map(|w| w.start_ms).collect();
        assert_eq!(starts, [3]);
    }
}
