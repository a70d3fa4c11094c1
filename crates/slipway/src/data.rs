//! `slipway data …`: dataset versions on a server (docs/design/data.md). `add` hashes and
//! profiles the files here, uploads the blobs the server lacks (several at once), then the
//! manifest, and only then asks for the version: a kill at any point leaves no version, and
//! the blobs already sent are reused by the next attempt. `get` writes each file through a
//! temporary name after checking its hash.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use slipway_data::diff;
use slipway_data::manifest::{Manifest, describe, hash_bytes, hash_file, is_sha256};
use slipway_data::tree::{check_path, walk};

use crate::client::{Api, ServerArgs};
use crate::models::{print_json, print_table, text};

const DATA: &str = "/api/v1/data";
const PROXY: &str = "/api/2.0/mlflow-artifacts/artifacts";

#[derive(Args)]
pub struct DataArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store files and folders as a new version of NAME (only what the server lacks is sent).
    Add {
        name: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Point this alias at the new version (repeatable): `--alias train`.
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// A tag KEY=VALUE (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// What this version is.
        #[arg(long, short)]
        message: Option<String>,
        /// Files hashed and sent at once.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// Write a version's files under DEST: NAME, NAME@VERSION, NAME@ALIAS or NAME@latest.
    Get {
        spec: String,
        dest: PathBuf,
        /// Replace files under DEST that differ from the version's.
        #[arg(long)]
        force: bool,
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// Every data set with its newest version.
    List,
    /// A data set's versions, newest first.
    Versions { name: String },
    /// One version and its files.
    Show { spec: String },
    /// What changed from one version to another: files, and for tables schema and drift.
    Diff { from: String, to: String },
    /// Point ALIAS at VERSION, or remove it with --delete.
    Alias {
        name: String,
        alias: String,
        version: Option<i64>,
        #[arg(long)]
        delete: bool,
    },
    /// Tag a version: KEY=VALUE.
    Tag { name: String, version: i64, tag: String },
}

pub fn run(args: DataArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(dispatch(args))
}

/// `name[@which]`, `which` defaulting to `latest`.
fn parse_spec(spec: &str) -> (String, String) {
    match spec.split_once('@') {
        Some((name, which)) => (name.to_string(), which.to_string()),
        None => (spec.to_string(), "latest".to_string()),
    }
}

fn blob_path(hash: &str) -> String {
    format!("{PROXY}/slipway-cache/sha256/{}/{hash}", &hash[..2])
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn dispatch(args: DataArgs) -> anyhow::Result<()> {
    let api = Arc::new(Api::new(&args.server.tracking_uri)?);
    let json = args.server.json;
    match args.command {
        Command::Add { name, paths, aliases, tags, message, jobs } => {
            let mut pairs = Vec::with_capacity(tags.len());
            for t in &tags {
                let Some((k, v)) = t.split_once('=') else { bail!("a tag is KEY=VALUE, not '{t}'") };
                pairs.push((k.to_string(), v.to_string()));
            }
            let new = NewVersion { name: &name, paths: &paths, aliases, tags: pairs, message, jobs };
            let v = add(&api, new, Reuse::Never).await?;
            if json {
                return print_json(&v);
            }
            println!(
                "{}@{}: {} files, {} bytes",
                name, v["version"]["version"], v["version"]["files"], v["version"]["bytes"]
            );
            Ok(())
        }
        Command::Get { spec, dest, force, jobs } => {
            let (name, which) = parse_spec(&spec);
            let (version, written) = get(&api, &name, &which, &dest, force, jobs).await?;
            if json {
                return print_json(&json!({"version": version, "written": written}));
            }
            println!("{name}@{} into {}: {written} files written", version["version"], dest.display());
            Ok(())
        }
        Command::List => {
            let v = api.call("GET", DATA, &[], None).await?;
            if json {
                return print_json(&v["data_sets"]);
            }
            let row = |d: &Value| {
                let l = &d["latest"];
                vec![text(&d["name"]), text(&d["versions"]), text(&l["version"]), text(&l["files"]), text(&l["bytes"])]
            };
            print_table(&["NAME", "VERSIONS", "LATEST", "FILES", "BYTES"], rows(&v["data_sets"], row));
            Ok(())
        }
        Command::Versions { name } => {
            let v = api.call("GET", &format!("{DATA}/{}", encode(&name)), &[], None).await?;
            if json {
                return print_json(&v["versions"]);
            }
            print_table(
                &["VERSION", "FILES", "BYTES", "ROWS", "ALIASES", "BY", "MESSAGE"],
                rows(&v["versions"], version_row),
            );
            Ok(())
        }
        Command::Show { spec } => {
            let (name, which) = parse_spec(&spec);
            let version = fetch_version(&api, &name, &which).await?;
            let manifest = fetch_manifest(&api, &version).await?;
            if json {
                return print_json(&json!({"version": version, "manifest": manifest}));
            }
            print_table(
                &["VERSION", "FILES", "BYTES", "ROWS", "ALIASES", "BY", "MESSAGE"],
                vec![version_row(&version)],
            );
            // What a training run logs to be linked to this version (`models trained-on`).
            println!("mlflow dataset digest: {}", text(&version["digest"]));
            let files = manifest.files.iter().map(|f| {
                let rows = f.table.as_ref().map_or_else(|| "-".to_string(), |t| t.rows.to_string());
                vec![f.path.clone(), f.size.to_string(), rows, f.sha256[..12].to_string()]
            });
            print_table(&["PATH", "BYTES", "ROWS", "SHA256"], files.collect());
            Ok(())
        }
        Command::Diff { from, to } => {
            let (a, b) = (parse_spec(&from), parse_spec(&to));
            // `diff churn@1 2` compares two versions of one set.
            let b = if to.contains('@') { b } else { (a.0.clone(), to.clone()) };
            let (va, vb) = (fetch_version(&api, &a.0, &a.1).await?, fetch_version(&api, &b.0, &b.1).await?);
            let (ma, mb) = (fetch_manifest(&api, &va).await?, fetch_manifest(&api, &vb).await?);
            let mut d = diff::diff(&ma, &mb);
            for c in &mut d.changed {
                if let Some(table) = &mut c.table {
                    let (pa, pb) = (&c.before.table, &c.after.table);
                    if let (Some(pa), Some(pb)) = (pa, pb) {
                        let before = profile(&api, &pa.profile).await?;
                        let after = profile(&api, &pb.profile).await?;
                        table.fill(&before, &after)?;
                    }
                }
            }
            if json {
                return print_json(&serde_json::to_value(&d)?);
            }
            print_diff(&d);
            Ok(())
        }
        Command::Alias { name, alias, version, delete } => {
            let path = format!("{DATA}/{}/aliases/{}", encode(&name), encode(&alias));
            if delete {
                api.call("DELETE", &path, &[], None).await?;
                println!("removed {name}@{alias}");
                return Ok(());
            }
            let Some(version) = version else { bail!("give the VERSION the alias should name, or --delete") };
            let v = api.call("PUT", &path, &[], Some(json!({"version": version}))).await?;
            if json {
                return print_json(&v["version"]);
            }
            println!("{name}@{alias} is version {version}");
            Ok(())
        }
        Command::Tag { name, version, tag } => {
            let Some((key, value)) = tag.split_once('=') else { bail!("a tag is KEY=VALUE, not '{tag}'") };
            let path = format!("{DATA}/{}/versions/{version}/tags", encode(&name));
            let v = api.call("POST", &path, &[], Some(json!({"key": key, "value": value}))).await?;
            if json {
                return print_json(&v["version"]);
            }
            println!("tagged {name}@{version} {key}={value}");
            Ok(())
        }
    }
}

fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array().into_iter().flatten().map(row).collect()
}

fn version_row(v: &Value) -> Vec<String> {
    let aliases: Vec<String> = v["aliases"].as_array().into_iter().flatten().map(text).collect();
    vec![
        text(&v["version"]),
        text(&v["files"]),
        text(&v["bytes"]),
        text(&v["rows"]),
        if aliases.is_empty() { "-".into() } else { aliases.join(",") },
        text(&v["created_by"]),
        text(&v["message"]),
    ]
}

#[allow(clippy::too_many_arguments)]
/// What `add` stores.
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub paths: &'a [PathBuf],
    pub aliases: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub message: Option<String>,
    pub jobs: usize,
}

/// Whether `add` may answer with the set's latest version instead of a new one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Always a new version (`slipway data add`: a person asked for one).
    Never,
    /// The latest version when it holds exactly these files (a pipeline publishing outs on
    /// every run).
    Unchanged,
}

/// Stores the files under `new.paths` as a version; the server's answer (`{"version": …}`).
pub async fn add(api: &Arc<Api>, new: NewVersion<'_>, reuse: Reuse) -> anyhow::Result<Value> {
    let NewVersion { name, paths, aliases, tags, message, jobs } = new;
    let tag_map: serde_json::Map<String, Value> = tags.into_iter().map(|(k, v)| (k, json!(v))).collect();
    let files = walk(paths)?;
    let described = tokio::task::spawn_blocking(move || describe(&files, jobs).map(|d| (d, files))).await??;
    let (described, files) = described;
    for w in &described.warnings {
        eprintln!("warning: {w}");
    }
    let present = stored(api, described.manifest.blobs().map(str::to_owned).collect()).await?;
    // Files first, then profiles, then the manifest: whatever names a blob is sent after it.
    let uploads = files
        .iter()
        .zip(&described.manifest.files)
        .filter(|(_, entry)| !present.contains(&entry.sha256))
        .map(|(file, entry)| (entry.sha256.clone(), file.disk.clone()))
        .collect::<std::collections::BTreeMap<String, PathBuf>>();
    futures::stream::iter(uploads)
        .map(|(hash, disk)| {
            let api = api.clone();
            async move {
                api.put_file(&blob_path(&hash), &disk).await.with_context(|| format!("sending {}", disk.display()))
            }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    for extra in described.extras.iter().filter(|e| !present.contains(&e.sha256)) {
        api.put_bytes(&blob_path(&extra.sha256), extra.bytes.clone().into()).await?;
    }
    let bytes = described.manifest.to_bytes();
    let manifest = hash_bytes(&bytes);
    if reuse == Reuse::Unchanged {
        let latest = api.call("GET", &format!("{DATA}/{}/versions/latest", encode(name)), &[], None).await;
        if let Ok(latest) = latest
            && latest["version"]["manifest"].as_str() == Some(manifest.as_str())
        {
            return Ok(latest);
        }
    }
    api.put_bytes(&blob_path(&manifest), bytes.into()).await?;
    let body = json!({"manifest": manifest, "message": message, "tags": tag_map, "aliases": aliases});
    api.call("POST", &format!("{DATA}/{}/versions", encode(name)), &[], Some(body)).await
}

/// Which of `hashes` the server stores: one listing per two-hex prefix they fall in.
async fn stored(api: &Arc<Api>, hashes: BTreeSet<String>) -> anyhow::Result<BTreeSet<String>> {
    let prefixes: BTreeSet<String> = hashes.iter().map(|h| h[..2].to_string()).collect();
    let listed: Vec<Vec<String>> = futures::stream::iter(prefixes)
        .map(|prefix| {
            let api = api.clone();
            async move {
                let dir = format!("slipway-cache/sha256/{prefix}");
                let v = api.call("GET", PROXY, &[("path", &dir)], None).await?;
                let names = v["files"].as_array().into_iter().flatten();
                anyhow::Ok(names.filter_map(|f| f["path"].as_str()?.rsplit('/').next().map(str::to_owned)).collect())
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok(listed.into_iter().flatten().filter(|h| hashes.contains(h)).collect())
}

pub async fn fetch_version(api: &Api, name: &str, which: &str) -> anyhow::Result<Value> {
    let path = format!("{DATA}/{}/versions/{}", encode(name), encode(which));
    Ok(api.call("GET", &path, &[], None).await?["version"].clone())
}

async fn fetch_manifest(api: &Api, version: &Value) -> anyhow::Result<Manifest> {
    let hash =
        version["manifest"].as_str().filter(|h| is_sha256(h)).context("the server's version names no manifest")?;
    manifest_by_hash(api, hash).await
}

async fn manifest_by_hash(api: &Api, hash: &str) -> anyhow::Result<Manifest> {
    if !is_sha256(hash) {
        bail!("'{hash}' is no manifest hash");
    }
    let bytes = api.get_bytes(&blob_path(hash)).await?;
    if hash_bytes(&bytes) != hash {
        bail!("the manifest the server sent does not hash to {hash}");
    }
    Ok(Manifest::parse(&bytes)?)
}

async fn profile(api: &Api, hash: &str) -> anyhow::Result<slipway_monitor::profile::DatasetProfile> {
    let bytes = api.get_bytes(&blob_path(hash)).await?;
    if hash_bytes(&bytes) != hash {
        bail!("the profile the server sent does not hash to {hash}");
    }
    Ok(slipway_monitor::profile::DatasetProfile::from_json(std::str::from_utf8(&bytes)?)?)
}

/// Writes the version's files under `dest`; returns the version and how many files were
/// written (files already equal are left alone).
async fn get(
    api: &Arc<Api>,
    name: &str,
    which: &str,
    dest: &Path,
    force: bool,
    jobs: usize,
) -> anyhow::Result<(Value, usize)> {
    let version = fetch_version(api, name, which).await?;
    let manifest = fetch_manifest(api, &version).await?;
    let written = write_files(api, &manifest, dest, force, jobs).await?;
    Ok((version, written))
}

/// Makes `dest` hold exactly the files of the version whose manifest is `hash`: files the
/// version lacks are removed first (a pipeline's `data/NAME` folder is the version's alone),
/// then empty folders, then what is missing or different is written.
pub async fn materialize(api: &Arc<Api>, hash: &str, dest: &Path) -> anyhow::Result<()> {
    // Removing under a link would remove whatever it points at.
    for dir in [Some(dest), dest.parent()].into_iter().flatten() {
        if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!("{} is a symbolic link: a data version is not written through it", dir.display());
        }
    }
    let manifest = manifest_by_hash(api, hash).await?;
    for f in &manifest.files {
        check_path(&f.path)?;
    }
    let keep: BTreeSet<PathBuf> = manifest.files.iter().map(|f| dest.join(&f.path)).collect();
    if dest.exists() {
        prune(dest, &keep)?;
    }
    write_files(api, &manifest, dest, true, 8).await?;
    Ok(())
}

/// Removes what under `dir` is not in `keep` (links themselves, never what they point at),
/// then the folders left empty; whether `dir` is empty now.
fn prune(dir: &Path, keep: &BTreeSet<PathBuf>) -> anyhow::Result<bool> {
    let mut empty = true;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let kind = std::fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if kind.is_dir() && !keep.contains(&path) {
            if prune(&path, keep)? {
                std::fs::remove_dir(&path).with_context(|| format!("removing {}", path.display()))?;
            } else {
                empty = false;
            }
        } else if keep.contains(&path) && kind.is_file() {
            empty = false;
        } else {
            if kind.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }
                .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(empty)
}

/// Writes the manifest's files under `dest`; how many were written (files already equal are
/// left alone; a different one is replaced only with `force`).
async fn write_files(
    api: &Arc<Api>,
    manifest: &Manifest,
    dest: &Path,
    force: bool,
    jobs: usize,
) -> anyhow::Result<usize> {
    let mut todo = Vec::new();
    for f in &manifest.files {
        check_path(&f.path)?;
        let target = dest.join(&f.path);
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!("{} is a symbolic link: not written through", target.display())
            }
            Ok(m) if m.is_file() => {
                if m.len() == f.size && hash_file(&target)? == f.sha256 {
                    continue;
                }
                if !force {
                    bail!("{} exists and differs from the version's file: use --force to replace it", target.display());
                }
            }
            Ok(_) => bail!("{} exists and is not a file", target.display()),
            Err(_) => {}
        }
        todo.push((f.sha256.clone(), target));
    }
    let written = todo.len();
    futures::stream::iter(todo)
        .map(|(hash, target)| {
            let api = api.clone();
            async move { fetch_file(&api, &hash, &target).await }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    Ok(written)
}

/// One blob into `target`, through a temporary file beside it that is renamed only once its
/// content hashes right.
async fn fetch_file(api: &Api, hash: &str, target: &Path) -> anyhow::Result<()> {
    let dir = target.parent().context("a file without a folder")?;
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.slipway-tmp", std::process::id()));
    let fetched = async {
        let got = api.get_to_file(&blob_path(hash), &tmp).await?;
        if got != hash {
            bail!("the server sent other bytes for {} (sha256 {got}, not {hash})", target.display());
        }
        tokio::fs::rename(&tmp, target).await.with_context(|| format!("writing {}", target.display()))
    };
    let result = fetched.await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

fn print_diff(d: &diff::Diff) {
    for f in &d.added {
        println!("+ {} ({} bytes)", f.path, f.size);
    }
    for f in &d.removed {
        println!("- {} ({} bytes)", f.path, f.size);
    }
    for c in &d.changed {
        println!("~ {} ({} -> {} bytes)", c.path, c.before.size, c.after.size);
        let Some(t) = &c.table else { continue };
        println!("    rows {} -> {}", t.rows_before, t.rows_after);
        if !t.columns_added.is_empty() {
            println!("    columns added: {}", t.columns_added.join(", "));
        }
        if !t.columns_removed.is_empty() {
            println!("    columns removed: {}", t.columns_removed.join(", "));
        }
        for (col, before, after) in &t.columns_retyped {
            println!("    column {col}: {before} -> {after}");
        }
        if let Some(drift) = &t.drift {
            for col in drift["columns"].as_array().into_iter().flatten() {
                let flag = if col["drifted"].as_bool() == Some(true) { "drifted" } else { "stable" };
                println!(
                    "    drift {}: {} = {} (threshold {}, {flag})",
                    text(&col["column"]),
                    text(&col["method"]),
                    text(&col["statistic"]),
                    text(&col["threshold"])
                );
            }
            println!(
                "    {} of {} column(s) drifted",
                text(&drift["number_of_drifted_columns"]),
                text(&drift["number_of_columns"])
            );
        }
        if let Some(e) = &t.drift_error {
            println!("    no drift report: {e}");
        }
    }
    println!(
        "{} unchanged, {} added, {} removed, {} changed",
        d.unchanged,
        d.added.len(),
        d.removed.len(),
        d.changed.len()
    );
}
