//! The exclusive lock on a data directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::StoreError;

/// The lock file's name inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// An OS lock (`flock`) on the directory's lock file; the kernel drops it with the process, so
/// a killed process never leaves a stale lock behind.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock, or fails with [`StoreError::Locked`] naming the holder's pid.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                // The holder's pid is informational: an unreadable file still means "locked".
                let _ = file.read_to_string(&mut pid);
                let pid = if pid.trim().is_empty() { "unknown".to_owned() } else { pid.trim().to_owned() };
                return Err(StoreError::Locked { dir: dir.display().to_string(), pid });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(StoreError::Io(e)),
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{}", std::process::id())?;
        Ok(DirLock { _file: file })
    }
}
