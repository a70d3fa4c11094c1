//! Locating and loading ONNX Runtime.
//!
//! `ort` is built with `load-dynamic`: nothing is downloaded or linked at build time, and the
//! library is opened at run time from an absolute path. The `onnxruntime` wheel ships it as
//! `onnxruntime/capi/libonnxruntime.so.<version>` with no unversioned name, so a plain
//! `dlopen("libonnxruntime.so")` never finds it. Search order (first hit wins): an explicit
//! path (flag or config), `SLIPWAY_ONNXRUNTIME_LIB`, `ORT_DYLIB_PATH`, a project-local copy in
//! `./.slipway/onnxruntime/` (made by `scripts/onnxruntime.sh`; also looked for beside the
//! executable and up to four folders above it), then an importable `onnxruntime` of the active virtualenv,
//! `./.venv`, or `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::ServingError;

static ENVIRONMENT: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();
/// Held while a first load is attempted, so two callers never load the library twice.
static LOADING: Mutex<()> = Mutex::new(());

/// How to get the library, shown whenever it cannot be found.
pub const INSTALL_HINT: &str = "install it with one of:\n  \
    ./scripts/onnxruntime.sh         # in a slipway checkout: a project-local copy from the wheel\n  \
    pip install onnxruntime          # then slipway finds it through python3 or the active virtualenv\n  \
    export SLIPWAY_ONNXRUNTIME_LIB=/path/to/site-packages/onnxruntime/capi/libonnxruntime.so.<version>";

/// The newest `libonnxruntime.so*` file in a folder.
fn newest_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
        .collect();
    // Versioned names sort after the bare one; the highest version sorts last among equals.
    found.sort();
    found.pop()
}

/// The `capi` folder of the `onnxruntime` package importable by `python`, if any.
fn from_python(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    newest_in(Path::new(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Finds the library without loading it. `explicit` (a flag or config value) wins.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ServingError> {
    let mut looked = Vec::new();
    let mut candidates: Vec<(String, Option<PathBuf>)> =
        vec![("--onnxruntime-lib".into(), explicit.map(Path::to_path_buf))];
    for var in ["SLIPWAY_ONNXRUNTIME_LIB", "ORT_DYLIB_PATH"] {
        candidates.push((var.into(), std::env::var_os(var).map(PathBuf::from)));
    }
    for (what, path) in candidates {
        if let Some(p) = path {
            if p.is_file() {
                return Ok(p);
            }
            return Err(ServingError::Runtime(format!(
                "onnx runtime library given by {what} does not exist: {}\n{INSTALL_HINT}",
                p.display()
            )));
        }
        looked.push(what);
    }
    // A project-local copy (scripts/onnxruntime.sh): beside the working directory, or beside
    // the executable or a folder above it (so target/release/slipway finds the checkout's).
    let mut local = vec![PathBuf::from(".slipway/onnxruntime")];
    if let Ok(exe) = std::env::current_exe() {
        local.extend(exe.ancestors().skip(1).take(4).map(|d| d.join(".slipway/onnxruntime")));
    }
    if let Some(p) = local.iter().find_map(|d| newest_in(d)) {
        return Ok(p);
    }
    looked.push("./.slipway/onnxruntime (and beside the executable)".into());
    let mut pythons: Vec<PathBuf> = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        pythons.push(PathBuf::from(venv).join("bin/python"));
    }
    pythons.push(PathBuf::from(".venv/bin/python"));
    pythons.push(PathBuf::from("python3"));
    for python in pythons {
        if let Some(p) = from_python(&python) {
            return Ok(p);
        }
        looked.push(format!("{} -c 'import onnxruntime'", python.display()));
    }
    Err(ServingError::Runtime(format!(
        "onnx runtime library not found (looked in: {}); {INSTALL_HINT}",
        looked.join(", ")
    )))
}

/// Loads ONNX Runtime once per process and returns its environment. Later calls return the
/// same environment, whatever path they name. A failure is not remembered: installing the
/// library makes the next call succeed without a restart.
pub fn environment(explicit: Option<&Path>) -> Result<&'static ort::environment::Environment, ServingError> {
    if let Some((_, env)) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, env)) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let path = locate(explicit)?;
    let env = ort::init_from(&path)
        .map_err(|e| {
            ServingError::Runtime(format!("cannot load onnx runtime from {}: {e}\n{INSTALL_HINT}", path.display()))
        })?
        .with_name("slipway")
        .build()
        .map_err(|e| ServingError::Runtime(format!("cannot start onnx runtime from {}: {e}", path.display())))?;
    // ONNX Runtime logs every arena extension at info; keep the server's log for what matters.
    env.set_log_level(ort::logging::LogLevel::Warning);
    tracing::info!(path = %path.display(), "onnx runtime loaded");
    Ok(&ENVIRONMENT.get_or_init(|| (path, env)).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_explicit_path_says_how_to_install() {
        let err = locate(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains("pip install onnxruntime"), "{err}");
    }

    #[test]
    fn newest_versioned_library_wins() {
        let dir = std::env::temp_dir().join(format!("slipway-ort-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["libonnxruntime.so.1.22.0", "libonnxruntime.so.1.32.0", "libonnxruntime_providers_shared.so"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(newest_in(&dir).unwrap().file_name().unwrap(), "libonnxruntime.so.1.32.0");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
