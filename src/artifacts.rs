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

/// The file that marks a folder as made by `agent` and holds its lock while a process uses it.
pub const LOCK_FILE: &str = ".agent-lock";

/// A folder that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FolderError {
    /// Another process holds the folder.
    #[error("`{}` is in use by another agent process{}", path.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    #[diagnostic(
        code(agent::folder::in_use),
        help("wait for it to finish, or choose another folder")
    )]
    InUse {
        /// The folder.
        path: PathBuf,
        /// The process holding it, as it wrote itself down.
        pid: Option<u32>,
    },
    /// A folder with files that `agent` did not make.
    #[error("`{}` is not empty and was not made by agent ({what})", path.display())]
    #[diagnostic(
        code(agent::folder::foreign),
        help("give a new or empty folder: agent clears only folders it made itself")
    )]
    Foreign {
        /// The folder.
        path: PathBuf,
        /// What it holds, for the message.
        what: String,
    },
    /// A folder of another kind (an eval's, where a run's was asked for).
    #[error("`{}` holds {what}", path.display())]
    #[diagnostic(code(agent::folder::occupied))]
    Occupied {
        /// The folder.
        path: PathBuf,
        /// What it holds.
        what: String,
        /// What to do instead.
        #[help]
        hint: String,
    },
    /// A folder to continue that is not there.
    #[error("`{}` does not exist or is not a folder", path.display())]
    #[diagnostic(code(agent::folder::missing))]
    Missing {
        /// The folder.
        path: PathBuf,
    },
    /// The file system refused.
    #[error("cannot {action} `{}`", path.display())]
    #[diagnostic(code(agent::folder::io))]
    Io {
        /// `create`, `clear`, `lock`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl FolderError {
    /// Did the file system fail (rather than the folder being the wrong one)?
    pub fn is_io(&self) -> bool {
        matches!(self, FolderError::Io { .. })
    }
}

/// An exclusive lock on a folder, held while this value lives (and released by the operating
/// system if the process dies), so two processes never write one run, eval or pipeline.
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

impl FolderLock {
    /// Lock `dir` (which must exist) or say who holds it.
    pub fn acquire(dir: &Path) -> Result<FolderLock, FolderError> {
        if !dir.is_dir() {
            return Err(FolderError::Missing {
                path: dir.to_owned(),
            });
        }
        let path = dir.join(LOCK_FILE);
        let io = |action, source| FolderError::Io {
            action,
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("lock", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                return Err(FolderError::InUse {
                    path: dir.to_owned(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io("lock", error)),
        }
        // Who holds it, for the message another process gives.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        Ok(FolderLock { _file: file })
    }
}

/// Is `dir` a folder `agent` made: it holds the lock file, or (from before the lock file) a
/// `run.json` or `pipeline.json` record of ours?
fn made_by_agent(dir: &Path) -> bool {
    if dir.join(LOCK_FILE).is_file() {
        return true;
    }
    ["run.json", "pipeline.json"].iter().any(|record| {
        std::fs::read(dir.join(record))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|value| value.get("agent").is_some() || value.get("pipeline").is_some())
    })
}

/// The names in `dir` other than the lock file.
fn contents(dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if name != LOCK_FILE {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Take `dir` for a new run of some kind: create it, or lock an empty one, or lock one that
/// `agent` made and clear what it holds, so that nothing of an earlier run passes for this
/// one's. A folder with files `agent` did not make is refused, never cleared.
pub fn claim_folder(dir: &Path) -> Result<FolderLock, FolderError> {
    let io = |action, source| FolderError::Io {
        action,
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
    let names = contents(dir).map_err(|e| io("read", e))?;
    if names.is_empty() {
        return FolderLock::acquire(dir);
    }
    if !made_by_agent(dir) {
        let shown: Vec<String> = names
            .iter()
            .take(3)
            .map(|n| format!("`{}`", n.to_string_lossy()))
            .collect();
        let more = if names.len() > 3 {
            format!(" and {} more", names.len() - 3)
        } else {
            String::new()
        };
        return Err(FolderError::Foreign {
            path: dir.to_owned(),
            what: format!("it holds {}{more}", shown.join(", ")),
        });
    }
    let lock = FolderLock::acquire(dir)?;
    for name in names {
        let path = dir.join(&name);
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|source| FolderError::Io {
            action: "clear",
            path,
            source,
        })?;
    }
    Ok(lock)
}

/// A run's folder of artifacts.
#[derive(Debug, Clone)]
pub struct RunFolder {
    dir: PathBuf,
    sync: bool,
    /// Held by the top folder of a run; a child folder shares its parent's.
    _lock: Option<std::sync::Arc<FolderLock>>,
}

impl RunFolder {
    /// A new folder `<parent>/<time>-<agent>-<random>`, locked.
    pub fn create_in(parent: &Path, agent: &str) -> Result<RunFolder, FolderError> {
        let id = format!(
            "{}-{agent}-{:04x}",
            compact_time(SystemTime::now()),
            fastrand::u16(..)
        );
        RunFolder::claim(&parent.join(id))
    }

    /// The folder `dir` for a new run, locked: created, or an empty one, or an earlier run's
    /// folder cleared ([`claim_folder`]).
    pub fn claim(dir: &Path) -> Result<RunFolder, FolderError> {
        let lock = claim_folder(dir)?;
        Ok(RunFolder {
            dir: dir.to_owned(),
            sync: true,
            _lock: Some(std::sync::Arc::new(lock)),
        })
    }

    /// The folder `dir` under a lock already held (a resumed pipeline's), kept as it is.
    pub fn locked(dir: &Path, lock: FolderLock) -> RunFolder {
        RunFolder {
            dir: dir.to_owned(),
            sync: true,
            _lock: Some(std::sync::Arc::new(lock)),
        }
    }

    /// `dir` emptied (or created) for a run inside a folder whose lock the caller holds: an
    /// eval's case run, a pipeline's step.
    pub fn fresh(dir: &Path) -> std::io::Result<RunFolder> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        std::fs::create_dir_all(dir)?;
        Ok(RunFolder {
            dir: dir.to_owned(),
            sync: true,
            _lock: None,
        })
    }

    /// Skip the fsyncs (for evals, which make their results durable another way).
    pub fn without_sync(mut self) -> RunFolder {
        self.sync = false;
        self
    }

    /// An empty folder inside this one, written the way this one is, under its lock.
    pub fn child(&self, name: &str) -> std::io::Result<RunFolder> {
        let mut child = RunFolder::fresh(&self.dir.join(name))?;
        child.sync = self.sync;
        child._lock.clone_from(&self._lock);
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
pub(crate) fn compact_time(time: SystemTime) -> String {
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
