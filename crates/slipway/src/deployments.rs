//! `slipway deployments ...`: serving endpoints of a running server. Tables for people,
//! `--json` for scripts.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::client::Api;
use crate::models::{print_json, print_table};

#[derive(Args)]
pub struct DeploymentsArgs {
    #[command(flatten)]
    server: crate::client::ServerArgs,
    #[command(subcommand)]
    command: Command,
}

/// What a deployment serves; every flag of `update` is optional.
#[derive(Args)]
struct Target {
    /// The registered model.
    #[arg(long)]
    model: Option<String>,
    /// Follow this alias (the deployment swaps when it moves).
    #[arg(long, conflicts_with = "version")]
    alias: Option<String>,
    /// Pin this version.
    #[arg(long)]
    version: Option<String>,
    /// A canary: VERSION:WEIGHT or @ALIAS:WEIGHT, weight a share in (0, 1), e.g. 4:0.1.
    #[arg(long)]
    canary: Option<String>,
    /// A shadow copy of traffic: VERSION or @ALIAS, optionally :SHARE.
    #[arg(long)]
    shadow: Option<String>,
    /// Share of requests written to the prediction log, 0 to 1.
    #[arg(long)]
    log_sample: Option<f64>,
    #[arg(long)]
    max_batch_rows: Option<u32>,
    #[arg(long)]
    max_wait_us: Option<u32>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a deployment of a registered model.
    Create {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List deployments.
    List,
    /// Show one deployment and what is being served for it.
    Show { name: String },
    /// Change a deployment (only the flags given).
    Update {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a deployment.
    Delete { name: String },
    /// Where the version a deployment serves came from: its run, and the datasets and data
    /// versions it was trained on (as `models lineage`).
    Lineage { name: String },
}

const API: &str = "/api/v1/deployments";

/// `4:0.1`, `@champion:0.1`, or (shadow) `5` / `@challenger`.
fn split(text: &str, weight_required: bool) -> anyhow::Result<Value> {
    let (target, weight) = match text.rsplit_once(':') {
        Some((t, w)) => (t, Some(w.parse::<f64>().map_err(|_| anyhow::anyhow!("'{w}' in '{text}' is not a number"))?)),
        None if weight_required => bail!("'{text}' needs a weight: VERSION:WEIGHT or @ALIAS:WEIGHT, e.g. 4:0.1"),
        None => (text, None),
    };
    let mut m = Map::new();
    match target.strip_prefix('@') {
        Some(alias) => m.insert("alias".into(), json!(alias)),
        None => m.insert("version".into(), json!(target)),
    };
    if let Some(w) = weight {
        m.insert("weight".into(), json!(w));
    }
    Ok(Value::Object(m))
}

fn body(name: &str, t: Target) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    let fields = [
        ("model", t.model.map(Value::from)),
        ("alias", t.alias.map(Value::from)),
        ("version", t.version.map(Value::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    if let Some(c) = t.canary {
        m.insert("canary".into(), split(&c, true)?);
    }
    if let Some(s) = t.shadow {
        m.insert("shadow".into(), split(&s, false)?);
    }
    if let Some(x) = t.log_sample {
        m.insert("log_sample".into(), json!(x));
    }
    if let Some(x) = t.max_batch_rows {
        m.insert("max_batch_rows".into(), json!(x));
    }
    if let Some(x) = t.max_wait_us {
        m.insert("max_wait_us".into(), json!(x));
    }
    Ok(m)
}

pub fn run(args: DeploymentsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(dispatch(args))
}

fn row(d: &Value) -> Vec<String> {
    let target = match (d["alias"].as_str(), d["version"].as_str()) {
        (Some(a), _) => format!("@{a}"),
        (None, Some(v)) => v.to_string(),
        _ => "-".into(),
    };
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let serving = d["status"]["primary"]["version"].as_str().unwrap_or("-").to_string();
    let canary = match &d["status"]["canary"] {
        Value::Object(c) => format!("{} ({})", text(&c["version"]), c["weight"]),
        _ => "-".into(),
    };
    let shadow = d["status"]["shadow"]["version"].as_str().unwrap_or("-").to_string();
    vec![text(&d["name"]), text(&d["model"]), target, serving, canary, shadow]
}

const HEADERS: [&str; 6] = ["NAME", "MODEL", "TARGET", "SERVING", "CANARY", "SHADOW"];

async fn dispatch(args: DeploymentsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server.tracking_uri)?;
    let one = match args.command {
        Command::Create { name, target } => {
            if target.model.is_none() {
                bail!("--model is required to create a deployment");
            }
            api.call("POST", API, &[], Some(Value::Object(body(&name, target)?))).await?
        }
        Command::Update { name, target } => {
            let mut patch = body(&name, target)?;
            patch.remove("name");
            api.call("PATCH", &format!("{API}/{name}"), &[], Some(Value::Object(patch))).await?
        }
        Command::Show { name } => api.call("GET", &format!("{API}/{name}"), &[], None).await?,
        Command::Lineage { name } => {
            let d = api.call("GET", &format!("{API}/{name}"), &[], None).await?["deployment"].clone();
            // What it serves now, or (on a server that serves nothing) what its spec names.
            let version = d["status"]["primary"]["version"].as_str().or(d["version"].as_str());
            let Some(version) = version else {
                bail!("deployment {name} serves no version now");
            };
            let model = d["model"].as_str().unwrap_or_default();
            let l = api.call("GET", "/api/v1/lineage", &[("name", model), ("version", version)], None).await?;
            if args.server.json {
                return print_json(&l);
            }
            crate::models::print_lineage(&l);
            return Ok(());
        }
        Command::Delete { name } => {
            let v = api.call("DELETE", &format!("{API}/{name}"), &[], None).await?;
            if args.server.json {
                return print_json(&v);
            }
            println!("deleted deployment {name}");
            return Ok(());
        }
        Command::List => {
            let v = api.call("GET", API, &[], None).await?;
            if args.server.json {
                return print_json(&v["deployments"]);
            }
            print_table(&HEADERS, v["deployments"].as_array().into_iter().flatten().map(row).collect());
            return Ok(());
        }
    };
    if args.server.json {
        return print_json(&one["deployment"]);
    }
    print_table(&HEADERS, vec![row(&one["deployment"])]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parse() {
        assert_eq!(split("4:0.1", true).unwrap(), json!({"version": "4", "weight": 0.1}));
        assert_eq!(split("@challenger", false).unwrap(), json!({"alias": "challenger"}));
        assert!(split("4", true).is_err());
        assert!(split("4:x", false).is_err());
    }
}
