//! The exclusive lock on a data directory.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::StoreError;

/// The lock file's name inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long a lock recorded by this very process may take to go away.
///
/// Closing a log closes its lock file, but a child process forked at that moment by another
/// thread (to exec a program) holds a copy of the descriptor, and with it the lock, until its
/// exec closes it. Only when the recorded holder is this process is such a brief wait worth it;
/// a lock held by another process is refused at once.
const OWN_LOCK_WAIT_MS: u64 = 1000;

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
        let deadline = Instant::now() + Duration::from_millis(OWN_LOCK_WAIT_MS);
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => break,
                Err(fs4::TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    // The holder's pid is informational: an unreadable file still means "locked".
                    let _ = file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut pid));
                    let pid = if pid.trim().is_empty() { "unknown".to_owned() } else { pid.trim().to_owned() };
                    if pid == std::process::id().to_string() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    return Err(StoreError::Locked { dir: dir.display().to_string(), pid });
                }
                Err(fs4::TryLockError::Error(e)) => return Err(StoreError::Io(e)),
            }
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{}", std::process::id())?;
        Ok(DirLock { _file: file })
    }
}
