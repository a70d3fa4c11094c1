//! A stored (uncompressed) zip of a project folder: the package Ray unpacks as a job's
//! working_dir. Stored entries keep it to the format's bare bones: local headers, the data,
//! a central directory, each entry with its CRC-32. Folders that are Slipway's or a tool's
//! own state (`.slipway`, `.git`, virtualenvs, `__pycache__`) stay out.

use std::path::Path;

use anyhow::{Context, bail};

const SKIP: &[&str] = &[".slipway", ".git", "__pycache__", ".venv", "node_modules"];

/// The folder's files (and `extra` files given as (name, bytes)), zipped.
pub fn zip_folder(root: &Path, extra: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut files = Vec::new();
    collect(root, "", &mut files)?;
    let mut w = Writer::default();
    for (name, path) in files {
        let body = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        w.add(&name, &body)?;
    }
    for (name, body) in extra {
        w.add(name, body)?;
    }
    w.finish()
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, std::path::PathBuf)>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if SKIP.iter().any(|s| name == *s || name.starts_with(".venv")) {
            continue;
        }
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let meta = std::fs::metadata(e.path()).with_context(|| format!("reading {}", e.path().display()))?;
        if meta.is_dir() {
            collect(&e.path(), &rel, out)?;
        } else if meta.is_file() {
            out.push((rel, e.path()));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

impl Writer {
    fn add(&mut self, name: &str, body: &[u8]) -> anyhow::Result<()> {
        let (Ok(size), Ok(offset), Ok(name_len)) =
            (u32::try_from(body.len()), u32::try_from(self.out.len()), u16::try_from(name.len()))
        else {
            bail!("'{name}' does not fit a plain zip (4 GiB): too large a working_dir for a Ray package");
        };
        let Some(count) = self.count.checked_add(1) else { bail!("more than 65,535 files in the working_dir") };
        self.count = count;
        let crc = crc32(body);
        // Local file header: version 2.0, no flags, stored, no time.
        let mut local = Vec::with_capacity(30 + name.len());
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&name_len.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(&local);
        self.out.extend_from_slice(body);
        // Central directory entry: made by Unix (3), rw-r--r-- in the external attributes.
        let c = &mut self.central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&[20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&size.to_le_bytes());
        c.extend_from_slice(&name_len.to_le_bytes());
        c.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<Vec<u8>> {
        let (Ok(start), Ok(size)) = (u32::try_from(self.out.len()), u32::try_from(self.central.len())) else {
            bail!("the working_dir package is larger than a plain zip holds (4 GiB)");
        };
        self.out.extend_from_slice(&self.central);
        self.out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&size.to_le_bytes());
        self.out.extend_from_slice(&start.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        Ok(self.out)
    }
}

/// CRC-32 (IEEE 802.3, reflected), as zip stores it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn python_reads_the_zip_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join(".slipway")).unwrap();
        std::fs::write(dir.path().join("a.txt"), "alpha").unwrap();
        std::fs::write(dir.path().join("sub/b.bin"), [0u8, 1, 2, 255]).unwrap();
        std::fs::write(dir.path().join(".slipway/lock.json"), "{}").unwrap();
        let zip = zip_folder(dir.path(), &[("extra.py", b"print(1)")]).unwrap();
        let path = dir.path().join("out.zip");
        std::fs::write(&path, zip).unwrap();
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(sorted((i.filename, z.read(i).hex()) for i in z.infolist()))";
        let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "[('a.txt', '616c706861'), ('extra.py', '7072696e74283129'), ('sub/b.bin', '000102ff')]"
        );
    }
}
