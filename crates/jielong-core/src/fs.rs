//! Writing files so that a crash never leaves a half-written one: write to a temporary
//! name beside the target, flush, then rename (atomic on the same file system).

use crate::error::{IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A temporary sibling path: `dir/.name.tmp-<pid>`.
pub fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Remove temporary siblings (`.{name}.tmp-PID`, from `tmp_sibling`) in `dir` whose name starts
/// with `prefix` and whose process is gone: what a kill in the middle of an atomic write leaves.
/// A temporary of this process or of one still running (its /proc entry exists) is kept.
pub fn sweep_stale_tmp(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let own = std::process::id().to_string();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix('.').filter(|r| r.starts_with(prefix)).and_then(|r| r.rsplit_once(".tmp-")).map(|(_, pid)| pid) else {
            continue;
        };
        if pid != own && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
    }
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
    }
    let tmp = tmp_sibling(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Serialize to pretty JSON and write atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::Error::Other(format!("serializing {}: {e}", path.display())))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// A directory that is built under a temporary name and renamed into place by `commit`.
/// Dropped without `commit`, it removes itself: readers never see a half-built directory.
pub struct AtomicDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicDir {
    pub fn new(target: &Path) -> Result<Self> {
        let tmp = tmp_sibling(target);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        std::fs::create_dir_all(&tmp).at(&tmp)?;
        Ok(Self { tmp, target: target.to_path_buf(), committed: false })
    }

    /// Where to write the files now.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Move the finished directory into place, replacing an older one of the same name.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            let old = self.target.with_extension("old");
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&self.target, &old).at(&self.target)?;
            std::fs::rename(&self.tmp, &self.target).at(&self.target)?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.tmp, &self.target).at(&self.target)?;
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Read a file to a string, with the path in the error.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_dir_dropped_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("ckpt");
        {
            let d = AtomicDir::new(&target).unwrap();
            std::fs::write(d.path().join("a"), b"x").unwrap();
        }
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn atomic_dir_commit_replaces_old() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("ckpt");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), b"1").unwrap();
        let d = AtomicDir::new(&target).unwrap();
        std::fs::write(d.path().join("new"), b"2").unwrap();
        d.commit().unwrap();
        assert!(target.join("new").exists());
        assert!(!target.join("old").exists());
    }

    #[test]
    fn write_atomic_writes_whole_file() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("sub/f.json");
        write_json_atomic(&p, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\n  \"a\": 1\n}\n");
    }
}
