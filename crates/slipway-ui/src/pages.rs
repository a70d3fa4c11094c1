//! Slipway's own pages, rendered on the server: what MLflow's UI has no page for. Each
//! function takes what its page shows (the server gathers it) and returns the whole document.
//! Charts are uPlot, fed by JSON blocks that `slipway.js` reads; htmx refreshes live parts.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::{Value, json};
use slipway_types::{AlertEvent, AuditRecord, Deployment, LabelQueue, Lineage, Monitor, MonitorWindow};

use crate::assets;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Deployments,
    Monitors,
    Alerts,
    Audit,
    Lineage,
    Pipelines,
    Labeling,
}

const TABS: [(Tab, &str, &str); 7] = [
    (Tab::Deployments, "Deployments", "/ui/deployments"),
    (Tab::Monitors, "Monitors", "/ui/monitors"),
    (Tab::Alerts, "Alerts", "/ui/alerts"),
    (Tab::Audit, "Audit", "/ui/audit"),
    (Tab::Lineage, "Lineage", "/ui/lineage"),
    (Tab::Pipelines, "Pipelines", "/ui/pipelines"),
    (Tab::Labeling, "Labeling", "/ui/labeling"),
];

/// The document around a page's content.
pub fn layout(title: &str, tab: Tab, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Slipway" }
                link rel="stylesheet" href={ "/ui/assets/" (assets::STYLE) };
                link rel="stylesheet" href="/ui/assets/uplot-1.6.32/uPlot.min.css";
                script defer src="/ui/assets/uplot-1.6.32/uPlot.iife.min.js" {}
                script defer src="/ui/assets/htmx-2.0.8/htmx.min.js" {}
                script defer src={ "/ui/assets/" (assets::SCRIPT) } {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/ui/" { "Slipway" }
                    nav aria-label="Sections" {
                        ul {
                            @for (t, label, href) in TABS {
                                li { a href=(href) aria-current=[(t == tab).then_some("page")] { (label) } }
                            }
                            li { a href="/#/experiments" { "Experiments (MLflow UI)" } }
                        }
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
    .into_string()
}

/// A time as `2026-12-05 21:45:03 UTC`, from Unix milliseconds.
pub fn when(ms: i64) -> String {
    format!("{} UTC", slipway_types::time::utc(ms))
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A chart: the JSON block `slipway.js` draws from (in a `<script type="application/json">`,
/// which no CSP blocks and no browser runs; `</` is escaped so the data cannot end it).
fn chart(label: &str, x_ms: &[i64], series: Vec<(String, Vec<Option<f64>>)>, y: &str) -> Markup {
    let data = json!({
        "x": x_ms.iter().map(|ms| *ms as f64 / 1000.0).collect::<Vec<_>>(),
        "series": series.into_iter().map(|(label, values)| json!({"label": label, "values": values})).collect::<Vec<_>>(),
        "y": y,
    });
    let text = data.to_string().replace("</", "<\\/");
    html! {
        div.chart data-chart role="img" aria-label=(label) {
            script type="application/json" { (PreEscaped(text)) }
        }
    }
}

// ---- deployments ----

/// What serving observed for one deployment since this server started.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub requests: u64,
    pub errors: u64,
    /// Requests in the last minute.
    pub last_minute: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

pub struct DeploymentView {
    pub deployment: Deployment,
    /// The route this server serves now: `(role, version, weight)`; empty when not loaded.
    pub live: Vec<(&'static str, String, f64)>,
    pub traffic: Traffic,
}

pub fn deployments(rows: &[DeploymentView]) -> String {
    let body = html! {
        p.muted { "Each deployment's live route on this server and what it answered since the server started. "
            "Refreshed every 5 seconds." }
        div #deployments hx-get="/ui/deployments/table" hx-trigger="every 5s" hx-swap="innerHTML" {
            (deployments_table(rows))
        }
    };
    layout("Deployments", Tab::Deployments, body)
}

pub fn deployments_table(rows: &[DeploymentView]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "No deployments yet: " code { "POST /api/v1/deployments" } "." }
        } @else {
            table {
                thead { tr {
                    th { "Deployment" } th { "Model" } th { "Serving" }
                    th.num { "Requests" } th.num { "Last minute" } th.num { "Errors" }
                    th.num { "p50 ms" } th.num { "p95 ms" } th { "Updated" }
                } }
                tbody {
                    @for r in rows {
                        @let spec = &r.deployment.spec;
                        tr {
                            td { strong { (spec.name) } }
                            td {
                                a href={ "/#/models/" (enc(&spec.model)) } { (spec.model) }
                                @if let Some(a) = &spec.alias { " " span.badge { "@" (a) } }
                                @if let Some(v) = &spec.version { " " span.badge { "v" (v) } }
                            }
                            td {
                                @if r.live.is_empty() { span.warn { "not loaded" } }
                                @for (role, version, weight) in &r.live {
                                    div {
                                        a href={ "/ui/lineage/" (enc(&spec.model)) "/" (enc(version)) } { "v" (version) }
                                        " " span.muted { (role) @if *role != "primary" { " " (format!("{:.0}%", weight * 100.0)) } }
                                    }
                                }
                            }
                            td.num { (r.traffic.requests) }
                            td.num { (r.traffic.last_minute) }
                            td.num {
                                @if r.traffic.errors > 0 { span.bad { (r.traffic.errors) } } @else { "0" }
                            }
                            td.num { (r.traffic.p50_ms.map_or("–".into(), |v| format!("{v:.1}"))) }
                            td.num { (r.traffic.p95_ms.map_or("–".into(), |v| format!("{v:.1}"))) }
                            td.muted { (when(r.deployment.last_updated_timestamp)) }
                        }
                    }
                }
            }
        }
    }
}

// ---- monitors ----

pub fn monitors(list: &[(Monitor, Option<MonitorWindow>)]) -> String {
    let body = html! {
        @if list.is_empty() {
            p.empty { "No monitors yet: " code { "POST /api/v1/monitors" } "." }
        } @else {
            table {
                thead { tr {
                    th { "Monitor" } th { "Deployment" } th { "Latest window" } th.num { "Rows" }
                    th.num { "Drift share" } th.num { "Quality violations" } th.num { "Accuracy" }
                } }
                tbody {
                    @for (m, w) in list {
                        tr {
                            td { a href={ "/ui/monitors/" (enc(&m.spec.name)) } { (m.spec.name) } }
                            td { (m.spec.deployment) }
                            @if let Some(w) = w {
                                td.muted { (when(w.start_ms)) }
                                td.num { (w.rows) }
                                td.num { (w.series.get("drift.share").map_or("–".into(), |v| num(*v))) }
                                td.num { (w.series.get("quality.violations").map_or("–".into(), |v| num(*v))) }
                                td.num { (w.series.get("performance.accuracy").map_or("–".into(), |v| num(*v))) }
                            } @else {
                                td.empty colspan="5" { "no window evaluated yet" }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Monitors", Tab::Monitors, body)
}

/// One monitor: its series over time, its windows (each linking to its drift report), its alerts.
pub fn monitor(m: &Monitor, windows: &[MonitorWindow], alerts: &[AlertEvent]) -> String {
    let x: Vec<i64> = windows.iter().map(|w| w.start_ms).collect();
    let series = |keys: &[&str]| -> Vec<(String, Vec<Option<f64>>)> {
        keys.iter()
            .filter(|k| windows.iter().any(|w| w.series.contains_key(**k)))
            .map(|k| {
                (k.to_string(), windows.iter().map(|w| w.series.get(*k).copied().filter(|v| v.is_finite())).collect())
            })
            .collect()
    };
    let features: Vec<String> = windows
        .iter()
        .flat_map(|w| w.series.keys())
        .filter_map(|k| k.strip_prefix("feature.").and_then(|f| f.strip_suffix(".drift")))
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let feature_keys: Vec<String> = features.iter().map(|f| format!("feature.{f}.drift")).collect();
    let feature_refs: Vec<&str> = feature_keys.iter().map(String::as_str).collect();
    let perf = series(&[
        "performance.accuracy",
        "performance.f1",
        "performance.precision",
        "performance.recall",
        "performance.roc_auc",
        "performance.rmse",
        "performance.mae",
        "performance.r2",
    ]);
    let body = html! {
        p { "Watches deployment " strong { (m.spec.deployment) } ", windows of "
            (m.spec.window_seconds.unwrap_or(3600)) " s." }
        @if windows.is_empty() {
            p.empty { "No window has been evaluated yet." }
        } @else {
            div.cards {
                div.card { h3 { "Dataset drift share" }
                    (chart("Share of drifted features per window", &x, series(&["drift.share"]), "share")) }
                div.card { h3 { "Per-feature drift" }
                    (chart("Each feature's drift statistic per window", &x, series(&feature_refs), "statistic")) }
                div.card { h3 { "Data quality" }
                    (chart("Schema violations per window", &x, series(&["quality.violations"]), "violations")) }
                div.card { h3 { "Performance" }
                    @if perf.is_empty() { p.empty { "Appears once ground-truth labels arrive." } }
                    @else { (chart("Model performance per window on labelled rows", &x, perf, "")) } }
            }
            h2 { "Windows" }
            table {
                thead { tr {
                    th { "Window" } th.num { "Rows" } th.num { "Drift share" } th.num { "Drifted" }
                    th.num { "Violations" } th.num { "Labelled" } th.num { "Accuracy" }
                } }
                tbody {
                    @for w in windows.iter().rev() {
                        tr {
                            td { a href={ "/ui/monitors/" (enc(&m.spec.name)) "/windows/" (w.start_ms) } { (when(w.start_ms)) } }
                            td.num { (w.rows) }
                            @for k in ["drift.share", "drift.drifted_columns", "quality.violations", "performance.labelled_rows", "performance.accuracy"] {
                                td.num { (w.series.get(k).map_or("–".into(), |v| num(*v))) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Alerts" }
        (alerts_table(alerts))
    };
    layout(&format!("Monitor {}", m.spec.name), Tab::Monitors, body)
}

/// One window's drift report: each feature's test, statistic, threshold and verdict.
pub fn window(m: &Monitor, w: &MonitorWindow) -> String {
    // The window's drift report (`slipway drift`'s, one entry per tested column) and its
    // schema violations.
    let columns: Vec<(String, Value)> = w
        .drift
        .as_ref()
        .and_then(|d| d.pointer("/features/columns"))
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| (c.get("column").and_then(Value::as_str).unwrap_or("?").to_string(), c.clone()))
                .collect()
        })
        .unwrap_or_default();
    let violations: Vec<Value> =
        w.drift.as_ref().and_then(|d| d.get("validation")).and_then(Value::as_array).cloned().unwrap_or_default();
    let field = |v: &Value, k: &str| -> String {
        match v.get(k) {
            Some(Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), num),
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => "–".into(),
            Some(other) => other.to_string(),
        }
    };
    let body = html! {
        p { a href={ "/ui/monitors/" (enc(&m.spec.name)) } { "← " (m.spec.name) } " · "
            (when(w.start_ms)) " to " (when(w.end_ms)) " · " (w.rows) " rows" }
        h2 { "Series" }
        table {
            thead { tr { th { "Series" } th.num { "Value" } } }
            tbody { @for (k, v) in &w.series { tr { td.mono { (k) } td.num { (num(*v)) } } } }
        }
        h2 { "Drift per feature" }
        @if columns.is_empty() {
            p.empty { "No drift report for this window." }
        } @else {
            table {
                thead { tr { th { "Feature" } th { "Test" } th.num { "Statistic" } th.num { "Threshold" } th { "Drifted" } } }
                tbody {
                    @for (name, c) in &columns {
                        @let drifted = c.get("drifted").and_then(Value::as_bool).unwrap_or(false);
                        tr {
                            td { (name) }
                            td { (field(c, "method")) }
                            td.num { (field(c, "statistic")) }
                            td.num { (field(c, "threshold")) }
                            td { @if drifted { span.bad { "yes" } } @else { span.ok { "no" } } }
                        }
                    }
                }
            }
        }
        h2 { "Data quality" }
        @if violations.is_empty() {
            p.empty { "No schema violations." }
        } @else {
            table {
                thead { tr { th { "Column" } th { "Rule" } th { "Observed" } th { "Expected" } } }
                tbody {
                    @for v in &violations {
                        tr { td { (field(v, "column")) } td { (field(v, "rule")) } td.mono { (field(v, "observed")) } td.mono { (field(v, "expected")) } }
                    }
                }
            }
        }
    };
    layout(&format!("Drift report: {}", m.spec.name), Tab::Monitors, body)
}

// ---- alerts ----

pub fn alerts(list: &[AlertEvent]) -> String {
    layout("Alerts", Tab::Alerts, alerts_table(list))
}

fn alerts_table(list: &[AlertEvent]) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "No alert has fired." }
        } @else {
            table {
                thead { tr {
                    th { "Fired" } th { "Monitor" } th { "Rule" } th { "Series" } th.num { "Value" }
                    th.num { "Threshold" } th { "Delivery" } th.num { "Attempts" } th { "Last error" }
                } }
                tbody {
                    @for a in list {
                        tr {
                            td.muted { (when(a.fired_at)) }
                            td { a href={ "/ui/monitors/" (enc(&a.monitor)) } { (a.monitor) } }
                            td { (a.rule) }
                            td.mono { (a.series) }
                            td.num { (num(a.value)) }
                            td.num { (num(a.threshold)) }
                            td { span class=(status_class(a.status.as_str())) { (a.status.as_str()) } }
                            td.num { (a.attempts) }
                            td.muted { (a.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn status_class(status: &str) -> &'static str {
    match status {
        "delivered" | "finished" | "done" | "FINISHED" => "ok",
        "pending" | "running" | "RUNNING" | "cached" => "warn",
        _ => "bad",
    }
}

// ---- audit ----

/// The audit page's filters, as given in its query string.
#[derive(Debug, Clone, Default)]
pub struct AuditFilters {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub name: Option<String>,
    pub next_page_token: Option<String>,
}

pub fn audit(records: &[AuditRecord], f: &AuditFilters) -> String {
    let body = html! {
        form.filters method="get" action="/ui/audit" {
            label { "Actor" input name="actor" value=[f.actor.as_deref()]; }
            label { "Action" input name="action" value=[f.action.as_deref()] placeholder="set_alias"; }
            label { "Model" input name="name" value=[f.name.as_deref()]; }
            button type="submit" { "Filter" }
        }
        @if records.is_empty() {
            p.empty { "Nothing recorded matches." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Object" } th { "Before" } th { "After" } } }
                tbody {
                    @for r in records {
                        tr {
                            td.muted { (when(r.timestamp)) }
                            td { (r.actor) }
                            td.mono { (r.action) }
                            td {
                                (r.object_type) " " strong { (r.name) }
                                @if let Some(v) = &r.version {
                                    " " a href={ "/ui/lineage/" (enc(&r.name)) "/" (enc(v)) } { "v" (v) }
                                }
                            }
                            td.mono { (r.before.as_ref().map(Value::to_string).unwrap_or_default()) }
                            td.mono { (r.after.as_ref().map(Value::to_string).unwrap_or_default()) }
                        }
                    }
                }
            }
            @if let Some(t) = &f.next_page_token {
                @let mut q: BTreeMap<&str, &str> = BTreeMap::new();
                @let _ = (f.actor.as_deref().map(|v| q.insert("actor", v)), f.action.as_deref().map(|v| q.insert("action", v)), f.name.as_deref().map(|v| q.insert("name", v)), q.insert("page_token", t));
                a href={ "/ui/audit?" (q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect::<Vec<_>>().join("&")) } { "Older →" }
            }
        }
    };
    layout("Audit trail", Tab::Audit, body)
}

// ---- lineage ----

/// Where to start: a form for a model and version.
pub fn lineage_start(models: &[(String, Vec<String>)]) -> String {
    let body = html! {
        p { "A model version's lineage: the data it was trained on, the run that trained it, the version, and the deployments serving it." }
        @if models.is_empty() { p.empty { "No registered model yet." } }
        ul {
            @for (name, versions) in models {
                li { strong { (name) } ": "
                    @for v in versions { a href={ "/ui/lineage/" (enc(name)) "/" (enc(v)) } { "v" (v) } " " } }
            }
        }
    };
    layout("Lineage", Tab::Lineage, body)
}

/// dataset → run → model version → deployment, as columns joined by arrows.
pub fn lineage(l: &Lineage, serving: &[String]) -> String {
    let mv = &l.model_version;
    let body = html! {
        div.graph role="group" aria-label="Lineage graph" {
            div.col {
                @if l.datasets.is_empty() { div.node { div.kind { "dataset" } span.empty { "none logged" } } }
                @for d in &l.datasets {
                    div.node { div.kind { "dataset" @if let Some(c) = &d.context { " · " (c) } }
                        strong { (d.dataset.name) } br; span.mono { (d.dataset.digest) }
                        @for v in &d.data_versions { br; span.badge { "data " (v.name) "@" (v.version) } } }
                }
            }
            div.arrow aria-hidden="true" { "→" }
            div.col {
                div.node { div.kind { "run" }
                    @match (&l.run_id, &l.experiment_id) {
                        (Some(run), Some(exp)) => { a href={ "/#/experiments/" (enc(exp)) "/runs/" (enc(run)) } { (l.run_name.as_deref().unwrap_or(run)) } br; span.mono.muted { (run) } }
                        (Some(run), None) => { span.mono { (run) } }
                        _ => { span.empty { "no run" } }
                    }
                }
            }
            div.arrow aria-hidden="true" { "→" }
            div.col {
                div.node { div.kind { "model version" }
                    a href={ "/#/models/" (enc(&mv.name)) "/versions/" (enc(&mv.version)) } { (mv.name) " v" (mv.version) }
                    @if !mv.aliases.is_empty() { br; @for a in &mv.aliases { span.badge { "@" (a) } " " } }
                }
            }
            div.arrow aria-hidden="true" { "→" }
            div.col {
                @if serving.is_empty() { div.node { div.kind { "deployment" } span.empty { "not deployed" } } }
                @for d in serving { div.node { div.kind { "deployment" } a href="/ui/deployments" { (d) } } }
            }
        }
        h2 { "Training run" }
        @if l.redacted { p.muted { "The run's experiment is not yours to read: its details are left out." } }
        table {
            tbody {
                tr { th { "Registered by" } td { (l.registered_by.as_deref().unwrap_or("–")) } }
                tr { th { "Registered at" } td { (when(l.registered_at)) } }
                tr { th { "Source" } td.mono { (l.source_name.as_deref().unwrap_or("–")) } }
                tr { th { "Commit" } td.mono { (l.git_commit.as_deref().unwrap_or("–")) } }
                @for p in &l.params { tr { th { "param " (p.key) } td.mono { (p.value) } } }
                @for m in &l.metrics { tr { th { "metric " (m.key) } td.num { (num(m.value)) } } }
            }
        }
    };
    layout(&format!("Lineage of {} v{}", mv.name, mv.version), Tab::Lineage, body)
}

// ---- labeling ----

fn mode(q: &LabelQueue) -> String {
    match (q.mode.as_str(), q.rate, q.threshold) {
        ("sample", Some(rate), _) => format!("sample {}%", num(rate * 100.0)),
        ("margin", _, Some(t)) => format!("margin < {}", num(t)),
        (m, _, _) => m.to_string(),
    }
}

/// Every labeling queue with its counts, each linking to its labeling page.
pub fn labeling_queues(queues: &[LabelQueue]) -> String {
    let body = html! {
        @if queues.is_empty() {
            p.empty { "No labeling queues yet: " code { "slipway labeling create" } "." }
        } @else {
            table {
                thead { tr {
                    th { "Queue" } th { "Deployment" } th { "Fed by" }
                    th.num { "Waiting" } th.num { "Leased" } th.num { "Labelled" }
                } }
                tbody {
                    @for q in queues {
                        tr {
                            td { a href={ "/ui/labeling/" (enc(&q.name)) } { (q.name) } }
                            td { (q.deployment) }
                            td.muted { (mode(q)) }
                            td.num { (q.counts.queued) } td.num { (q.counts.leased) } td.num { (q.counts.labelled) }
                        }
                    }
                }
            }
        }
    };
    layout("Labeling", Tab::Labeling, body)
}

/// One queue's labeling page: `slipway.js` leases items through the API and shows each one's
/// inputs and prediction; a label is a click, its number key, or typed text when the queue
/// names no labels. Nothing here works without the script, so it says so.
pub fn labeling_queue(q: &LabelQueue) -> String {
    let body = html! {
        p.muted {
            "Deployment " strong { (q.deployment) } " · " (mode(q)) " · "
            span #lb-counts { (q.counts.queued) " waiting, " (q.counts.labelled) " labelled" }
        }
        div #labeler data-queue=(q.name) data-labels=(json!(q.labels).to_string()) {
            noscript { p.bad { "Labeling needs JavaScript." } }
            p #lb-status role="status" aria-live="polite" { "Loading the next item…" }
            div #lb-item hidden {
                div.cards {
                    div.card { h3 { "Inputs" } table { tbody #lb-inputs {} } }
                    div.card { h3 { "Prediction" } table { tbody #lb-prediction {} } }
                }
                form #lb-form {
                    @if q.labels.is_empty() {
                        label { "Label " input #lb-text type="text" autocomplete="off" required; }
                        " " button type="submit" { "Save (Enter)" }
                    } @else {
                        fieldset.labels {
                            legend { "Label" }
                            @for (i, l) in q.labels.iter().enumerate() {
                                button type="button" data-label=(l) {
                                    @if i < 9 { kbd { (i + 1) } " " } (l)
                                }
                                " "
                            }
                        }
                    }
                    " " button #lb-skip type="button" { "Skip (S)" }
                }
                p.muted { "Item " span #lb-id {} " · request " span.mono #lb-request {} " · lease until " span #lb-until {} }
            }
            p.muted.small { "Keys: " @if q.labels.is_empty() { "type the label, Enter saves" } @else { "1–9 pick a label" } ", S skips (the item returns to the queue when its lease ends)." }
            p #lb-error.bad role="alert" {}
        }
    };
    layout(&format!("Label {}", q.name), Tab::Labeling, body)
}

// ---- pipelines ----

/// `pipelines`: (name, its runs as the native API shows them, newest first).
pub fn pipelines(pipelines: &[(String, Vec<Value>)]) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let body = html! {
        @if pipelines.is_empty() {
            p.empty { "This server starts no pipelines: give it " code { "--pipeline FILE" } "." }
        }
        @for (name, runs) in pipelines {
            h2 { (name) }
            @if runs.is_empty() { p.empty { "Not run yet." } } @else {
                table {
                    thead { tr { th { "Started" } th { "Status" } th { "Trigger" } th { "Steps" } th { "Run" } } }
                    tbody {
                        @for r in runs {
                            tr {
                                td.muted { (r.get("start_time").and_then(Value::as_i64).map(when).unwrap_or_default()) }
                                td { span class=(status_class(&s(r, "status"))) { (s(r, "status")) } }
                                td { (s(r, "trigger")) @if !s(r, "trigger_source").is_empty() { " " span.muted { "(" (s(r, "trigger_source")) ")" } } }
                                td.muted { (s(r, "summary")) }
                                td { a href={ "/ui/pipelines/runs/" (enc(&s(r, "run_id"))) } { (s(r, "run_id")) } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Pipelines", Tab::Pipelines, body)
}

/// One pipeline run and its steps (the native API's `pipeline_run`).
pub fn pipeline_run(run: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let steps = run.get("steps").and_then(Value::as_array).cloned().unwrap_or_default();
    let exp = s(run, "experiment_id");
    let body = html! {
        p { "Pipeline " strong { (s(run, "pipeline")) } " · "
            span class=(status_class(&s(run, "status"))) { (s(run, "status")) } " · "
            a href={ "/#/experiments/" (enc(&exp)) "/runs/" (enc(&s(run, "run_id"))) } { "parent run in the MLflow UI" } }
        table {
            thead { tr { th { "Step" } th { "Status" } th { "Metrics" } th { "Cached from" } th { "Error" } } }
            tbody {
                @for st in &steps {
                    tr {
                        td { a href={ "/#/experiments/" (enc(&exp)) "/runs/" (enc(&s(st, "run_id"))) } { (s(st, "step")) } }
                        td { span class=(status_class(&s(st, "status"))) { (s(st, "status")) } }
                        td.mono {
                            @if let Some(Value::Object(m)) = st.get("metrics") {
                                @for (k, v) in m { (k) "=" (v.as_f64().map(num).unwrap_or_default()) " " }
                            }
                        }
                        td.mono { (s(st, "cached_from")) }
                        td.bad { (s(st, "error")) }
                    }
                }
            }
        }
    };
    layout(&format!("Pipeline run {}", s(run, "run_id")), Tab::Pipelines, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_say_they_are_utc() {
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn chart_data_cannot_close_its_script_block() {
        let m = chart("x", &[1000], vec![("</script><script>alert(1)".into(), vec![Some(1.0)])], "y").into_string();
        assert!(!m.contains("</script><script>"), "{m}");
        assert!(m.contains("<\\/script>"));
    }

    #[test]
    fn text_is_escaped() {
        let page = layout("<b>t</b>", Tab::Audit, html! { p { "<script>" } });
        assert!(page.contains("&lt;b&gt;t&lt;/b&gt;") && page.contains("&lt;script&gt;"));
        assert!(page.contains("aria-current=\"page\""));
    }
}
