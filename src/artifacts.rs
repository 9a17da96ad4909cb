//! Stage 8, write: the run folder, every file written atomically (a temporary file, fsync,
//! rename), so a crash or Ctrl-C never leaves a half-written artifact behind.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Write `bytes` to `path` atomically: into a temporary file beside it, then renamed over it.
/// With `sync`, the file and its directory are flushed to disk before and after the rename.
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(
        ".{name}.{}-{:08x}.tmp",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&temporary, path)?;
        if sync {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// A run's folder of artifacts.
#[derive(Debug, Clone)]
pub struct RunFolder {
    dir: PathBuf,
    sync: bool,
}

impl RunFolder {
    /// A new folder `<parent>/<time>-<agent>-<random>`.
    pub fn create_in(parent: &Path, agent: &str) -> std::io::Result<RunFolder> {
        let id = format!(
            "{}-{agent}-{:04x}",
            compact_time(SystemTime::now()),
            fastrand::u16(..)
        );
        RunFolder::at(&parent.join(id))
    }

    /// The folder `dir`, created if needed.
    pub fn at(dir: &Path) -> std::io::Result<RunFolder> {
        std::fs::create_dir_all(dir)?;
        Ok(RunFolder {
            dir: dir.to_owned(),
            sync: true,
        })
    }

    /// Skip the fsyncs (for evals, which make their results durable another way).
    pub fn without_sync(mut self) -> RunFolder {
        self.sync = false;
        self
    }

    /// A folder inside this one, created, written the way this one is.
    pub fn child(&self, name: &str) -> std::io::Result<RunFolder> {
        let mut child = RunFolder::at(&self.dir.join(name))?;
        child.sync = self.sync;
        Ok(child)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Write `relative` (which may hold `/`) atomically.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.dir.join(relative);
        write_atomic(&path, bytes, self.sync)?;
        Ok(path)
    }

    /// Write `value` as pretty JSON.
    pub fn write_json<T: serde::Serialize>(
        &self,
        relative: &str,
        value: &T,
    ) -> std::io::Result<PathBuf> {
        let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        text.push(b'\n');
        self.write(relative, &text)
    }
}

/// `20261122T101530Z`: sortable, and safe in file names everywhere.
fn compact_time(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace(['-', ':'], "")
}

/// An RFC 3339 timestamp, for run records.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("run.json");
        write_atomic(&path, b"first", true).expect("writes");
        write_atomic(&path, b"second", false).expect("writes");
        assert_eq!(std::fs::read_to_string(&path).expect("reads"), "second");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("lists")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["run.json"]);
    }

    #[test]
    fn run_folders_are_named_by_time_and_agent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = RunFolder::create_in(dir.path(), "release-plan").expect("creates");
        let name = folder
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.len() == "20261122T101530Z-release-plan-abcd".len(),
            "{name}"
        );
        assert!(
            name.contains("-release-plan-") && name.as_bytes()[8] == b'T',
            "{name}"
        );
    }
}
