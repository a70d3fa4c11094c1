//! `slipway models ...`: everyday registry work against a running server. Tables for people,
//! `--json` for scripts.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use slipway_types::time::utc;

use crate::client::Api;

#[derive(Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    server: crate::client::ServerArgs,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List registered models.
    List {
        /// A registry filter, e.g. "name LIKE 'fraud%'".
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one registered model: description, tags, aliases, latest versions.
    Show { name: String },
    /// List a model's versions.
    Versions { name: String },
    /// Manage aliases.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Where a version came from: run, params, metrics, datasets, code version.
    Lineage { name: String, version: String },
    /// Model versions trained on a dataset, and the deployments serving them: a digest as a
    /// run logged it, or `data:NAME@VERSION` for a data version (`slipway data`).
    TrainedOn { dataset: String },
}

#[derive(Subcommand)]
enum AliasCommand {
    /// Point ALIAS at VERSION (moving it if it exists).
    Set { name: String, alias: String, version: String },
    /// Remove ALIAS.
    Delete { name: String, alias: String },
}

const API: &str = "/api/2.0/mlflow";

pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(dispatch(args))
}

async fn dispatch(args: ModelsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    match args.command {
        ModelsCommand::List { filter } => {
            let mut q = vec![("max_results", "1000")];
            if let Some(f) = filter.as_deref() {
                q.push(("filter", f));
            }
            let models = api.all_pages(&format!("{API}/registered-models/search"), "registered_models", &q).await?;
            if args.server.json {
                return print_json(&Value::Array(models));
            }
            let rows = models
                .iter()
                .map(|m| {
                    let latest = m["latest_versions"]
                        .as_array()
                        .and_then(|v| {
                            v.iter().filter_map(|x| x["version"].as_str()).max_by_key(|v| v.parse::<i64>().unwrap_or(0))
                        })
                        .unwrap_or("-")
                        .to_string();
                    vec![text(&m["name"]), latest, aliases_of_model(m), time(&m["last_updated_timestamp"])]
                })
                .collect();
            print_table(&["NAME", "LATEST", "ALIASES", "UPDATED"], rows);
        }
        ModelsCommand::Show { name } => {
            let m = api.call("GET", &format!("{API}/registered-models/get"), &[("name", &name)], None).await?["registered_model"].clone();
            if args.server.json {
                return print_json(&m);
            }
            println!("name:        {}", text(&m["name"]));
            println!("description: {}", m["description"].as_str().unwrap_or("-"));
            println!("created:     {}", time(&m["creation_timestamp"]));
            println!("updated:     {}", time(&m["last_updated_timestamp"]));
            println!("aliases:     {}", aliases_of_model(&m));
            println!("tags:        {}", key_values(&m["tags"]));
            let rows = m["latest_versions"].as_array().into_iter().flatten().map(version_row).collect();
            println!();
            print_table(&["VERSION", "STAGE", "ALIASES", "RUN", "SOURCE", "CREATED"], rows);
        }
        ModelsCommand::Versions { name } => {
            let filter = format!("name = '{}'", name.replace('\'', "''"));
            let mut versions = api
                .all_pages(
                    &format!("{API}/model-versions/search"),
                    "model_versions",
                    &[("filter", &filter), ("max_results", "10000")],
                )
                .await?;
            versions.sort_by_key(|v| v["version"].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0));
            if versions.is_empty() {
                // Distinguish "no versions" from "no such model".
                api.call("GET", &format!("{API}/registered-models/get"), &[("name", &name)], None).await?;
            }
            if args.server.json {
                return print_json(&Value::Array(versions));
            }
            print_table(
                &["VERSION", "STAGE", "ALIASES", "RUN", "SOURCE", "CREATED"],
                versions.iter().map(version_row).collect(),
            );
        }
        ModelsCommand::Alias { command: AliasCommand::Set { name, alias, version } } => {
            let body = json!({ "name": name, "alias": alias, "version": version });
            api.call("POST", &format!("{API}/registered-models/alias"), &[], Some(body)).await?;
            if args.server.json {
                return print_json(&json!({ "name": name, "alias": alias, "version": version }));
            }
            println!("{name}@{alias} -> version {version}");
        }
        ModelsCommand::Alias { command: AliasCommand::Delete { name, alias } } => {
            api.call(
                "DELETE",
                &format!("{API}/registered-models/alias"),
                &[],
                Some(json!({ "name": name, "alias": alias })),
            )
            .await?;
            if args.server.json {
                return print_json(&json!({ "name": name, "alias": alias, "deleted": true }));
            }
            println!("removed {name}@{alias}");
        }
        ModelsCommand::Lineage { name, version } => {
            let l = api.call("GET", "/api/v1/lineage", &[("name", &name), ("version", &version)], None).await?;
            if args.server.json {
                return print_json(&l);
            }
            print_lineage(&l);
        }
        ModelsCommand::TrainedOn { dataset } => {
            let query = match dataset.strip_prefix("data:") {
                Some(version) => ("data", version),
                None => ("digest", dataset.as_str()),
            };
            let found = api.call("GET", "/api/v1/lineage/datasets", &[query], None).await?;
            if args.server.json {
                return print_json(&found["model_versions"]);
            }
            let rows = found["model_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    let serving: Vec<String> = v["serving"].as_array().into_iter().flatten().map(text).collect();
                    vec![
                        text(&v["name"]),
                        text(&v["version"]),
                        text(&v["current_stage"]),
                        text(&v["run_id"]),
                        if serving.is_empty() { "-".into() } else { serving.join(", ") },
                    ]
                })
                .collect();
            print_table(&["NAME", "VERSION", "STAGE", "RUN", "SERVED BY"], rows);
        }
    }
    Ok(())
}

pub fn print_lineage(l: &Value) {
    let mv = &l["model_version"];
    println!("model version:  {} v{}", text(&mv["name"]), text(&mv["version"]));
    println!("source:         {}", text(&mv["source"]));
    println!("registered:     {} by {}", time(&l["registered_at"]), l["registered_by"].as_str().unwrap_or("-"));
    println!("logged model:   {}", l["logged_model_id"].as_str().unwrap_or("-"));
    if l["run"]["external"].as_bool() == Some(true) {
        // The run lives on another tracking server (a registry apart from tracking).
        println!("run:            {} (external: not held by this server)", text(&l["run_id"]));
    } else {
        println!(
            "run:            {} ({}) in experiment {}",
            text(&l["run_id"]),
            text(&l["run_name"]),
            text(&l["experiment_id"])
        );
    }
    println!("git commit:     {}", l["git_commit"].as_str().unwrap_or("-"));
    println!("source file:    {}", l["source_name"].as_str().unwrap_or("-"));
    println!("params:         {}", key_values(&l["params"]));
    let metrics: Vec<String> = l["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{}={}",
                text(&m["key"]),
                match &m["value"] {
                    Value::Number(n) => n.to_string(),
                    v => text(v),
                }
            )
        })
        .collect();
    println!("metrics:        {}", if metrics.is_empty() { "-".into() } else { metrics.join(", ") });
    let serving: Vec<String> = l["serving"].as_array().into_iter().flatten().map(text).collect();
    println!("served by:      {}", if serving.is_empty() { "-".into() } else { serving.join(", ") });
    println!("datasets:");
    let rows: Vec<Vec<String>> = l["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let versions: Vec<String> = d["data_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| format!("data:{}@{}", text(&v["name"]), text(&v["version"])))
                .collect();
            vec![
                d["context"].as_str().unwrap_or("-").to_string(),
                text(&d["name"]),
                text(&d["digest"]),
                text(&d["source_type"]),
                if versions.is_empty() { "-".into() } else { versions.join(", ") },
            ]
        })
        .collect();
    print_table(&["CONTEXT", "NAME", "DIGEST", "SOURCE TYPE", "DATA VERSION"], rows);
}

fn version_row(v: &Value) -> Vec<String> {
    let aliases =
        v["aliases"].as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(",")).filter(|s| !s.is_empty());
    vec![
        text(&v["version"]),
        text(&v["current_stage"]),
        aliases.unwrap_or_else(|| "-".into()),
        text(&v["run_id"]),
        text(&v["source"]),
        time(&v["creation_timestamp"]),
    ]
}

fn aliases_of_model(m: &Value) -> String {
    let list: Vec<String> = m["aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}->v{}", text(&a["alias"]), text(&a["version"])))
        .collect();
    if list.is_empty() { "-".into() } else { list.join(", ") }
}

fn key_values(v: &Value) -> String {
    let list: Vec<String> =
        v.as_array().into_iter().flatten().map(|kv| format!("{}={}", text(&kv["key"]), text(&kv["value"]))).collect();
    if list.is_empty() { "-".into() } else { list.join(", ") }
}

/// A JSON value as a table cell: strings bare, null as `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A timestamp field (milliseconds, as a number or a string) as [`utc`] text.
fn time(v: &Value) -> String {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).map_or_else(|| "-".into(), utc)
}

pub fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    if rows.is_empty() {
        println!("(none)");
    }
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(time(&json!(0)), "1970-01-01 00:00:00");
        assert_eq!(time(&json!(1_795_430_400_000i64)), "2026-11-23 10:40:00");
        assert_eq!(time(&json!(null)), "-");
    }
}
