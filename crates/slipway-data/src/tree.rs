//! The files a version is made of. Each path given is a file or a folder; a version holds it
//! under its own name (`data add images ./raw/images` holds `images/…`), so `data get`
//! recreates it as it was. Only regular files and folders are taken: a symbolic link (which
//! could point anywhere), a device, a socket or a pipe is refused with its path, as is a name
//! that is not UTF-8 or holds a control character or a backslash. Nothing is followed out of
//! the folders given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{DataError, Result};

/// One file of a version: where it is on disk and the path it is held under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// `/`-separated, relative, without `.` or `..` components.
    pub path: String,
    pub disk: PathBuf,
    pub size: u64,
}

/// Every file the inputs hold, sorted by path. Two inputs of one name, or none at all, are
/// refused.
pub fn walk(inputs: &[PathBuf]) -> Result<Vec<FileRef>> {
    if inputs.is_empty() {
        return Err(DataError::Refused { path: String::new(), why: "give at least one file or folder".into() });
    }
    let mut files = BTreeMap::new();
    let mut roots = BTreeMap::new();
    for input in inputs {
        let meta = std::fs::symlink_metadata(input).map_err(|e| DataError::io(input, e))?;
        let name = input
            .canonicalize()
            .map_err(|e| DataError::io(input, e))?
            .file_name()
            .map(|n| checked_name(input, n))
            .transpose()?
            .ok_or_else(|| {
                DataError::refused(input, "a version holds files and folders by name; this path has none")
            })?;
        if let Some(other) = roots.insert(name.clone(), input.clone()) {
            return Err(DataError::refused(
                input,
                format!("another input, {}, is also named '{name}'", other.display()),
            ));
        }
        if meta.file_type().is_symlink() {
            return Err(DataError::refused(input, "a symbolic link: give what it points to"));
        }
        if meta.is_dir() {
            visit(input, &name, &mut files)?;
        } else if meta.is_file() {
            files.insert(name.clone(), FileRef { path: name, disk: input.clone(), size: meta.len() });
        } else {
            return Err(DataError::refused(input, "not a regular file or folder"));
        }
    }
    Ok(files.into_values().collect())
}

fn visit(dir: &Path, prefix: &str, files: &mut BTreeMap<String, FileRef>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let disk = entry.path();
        let name = checked_name(&disk, &entry.file_name())?;
        let path = format!("{prefix}/{name}");
        let kind = entry.file_type().map_err(|e| DataError::io(&disk, e))?;
        if kind.is_symlink() {
            return Err(DataError::refused(
                &disk,
                "a symbolic link inside the folder: versions hold regular files only",
            ));
        } else if kind.is_dir() {
            visit(&disk, &path, files)?;
        } else if kind.is_file() {
            let size = entry.metadata().map_err(|e| DataError::io(&disk, e))?.len();
            files.insert(path.clone(), FileRef { path, disk, size });
        } else {
            return Err(DataError::refused(&disk, "not a regular file or folder"));
        }
    }
    Ok(())
}

fn checked_name(at: &Path, name: &std::ffi::OsStr) -> Result<String> {
    let name = name.to_str().ok_or_else(|| DataError::refused(at, "a name that is not UTF-8"))?;
    check_component(name).map_err(|why| DataError::refused(at, why))?;
    Ok(name.to_string())
}

fn check_component(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("'{name}' cannot name a file in a version"));
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err("a name with a slash, a backslash or a control character".into());
    }
    Ok(())
}

/// Checks a path read from a manifest before anything is written under it: relative,
/// `/`-separated components that are all names (so `data get` never writes outside DEST).
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty() || path.len() > 4096 {
        return Err(DataError::Format(format!("manifest path '{path}' is empty or too long")));
    }
    for component in path.split('/') {
        check_component(component).map_err(|why| DataError::Format(format!("manifest path '{path}': {why}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn folders_are_held_under_their_name_and_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("raw/images/b.png"), "b");
        write(&dir.path().join("raw/images/sub/a.png"), "aa");
        write(&dir.path().join("train.csv"), "x\n1\n");
        let files = walk(&[dir.path().join("raw/images"), dir.path().join("train.csv")]).unwrap();
        let seen: Vec<(&str, u64)> = files.iter().map(|f| (f.path.as_str(), f.size)).collect();
        assert_eq!(seen, [("images/b.png", 1), ("images/sub/a.png", 2), ("train.csv", 4)]);
    }

    #[test]
    fn links_clashing_names_and_nothing_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("data/a.csv"), "x");
        write(&dir.path().join("other/data/a.csv"), "y");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("data/link")).unwrap();
        let err = walk(&[dir.path().join("data")]).unwrap_err().to_string();
        assert!(err.contains("symbolic link") && err.contains("link"), "{err}");
        std::fs::remove_file(dir.path().join("data/link")).unwrap();
        let err = walk(&[dir.path().join("data"), dir.path().join("other/data")]).unwrap_err().to_string();
        assert!(err.contains("also named 'data'"), "{err}");
        std::os::unix::fs::symlink(dir.path().join("data"), dir.path().join("alias")).unwrap();
        assert!(walk(&[dir.path().join("alias")]).unwrap_err().to_string().contains("symbolic link"));
        assert!(walk(&[]).is_err());
        assert!(walk(&[dir.path().join("missing")]).is_err());
    }

    #[test]
    fn manifest_paths_cannot_climb_or_hide() {
        for ok in ["a.csv", "images/b/c.png", "dir.v1/x..y"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "a/../../x", "..", "a//b", "./a", "a\\b", "a/\u{7}", "a/"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
