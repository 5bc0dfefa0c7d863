//! The account tokens saved by `rollcall login` and `rollcall account signup`, one per server.
//!
//! They live in `$ROLLCALL_CONFIG_DIR/credentials.json` (default `~/.config/rollcall/`), a file
//! only its owner can read (mode 0600) in a folder only its owner can enter (mode 0700).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Largest credentials file read; anything bigger is not ours.
const CREDENTIALS_BYTES_MAX: u64 = 1024 * 1024;

/// The login saved for one server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Login {
    /// The account's id.
    pub account_id: String,
    /// The account's email.
    pub email: String,
    /// The account API token (`mwa_...`).
    pub token: String,
}

/// Every saved login, by server URL.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CredentialsFile {
    servers: BTreeMap<String, Login>,
}

/// The credentials store in one configuration folder.
pub struct Credentials {
    dir: PathBuf,
}

impl Credentials {
    /// The store in `$ROLLCALL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/rollcall`, else
    /// `~/.config/rollcall`.
    pub fn from_env() -> anyhow::Result<Credentials> {
        let dir = if let Some(dir) = std::env::var_os("ROLLCALL_CONFIG_DIR") {
            PathBuf::from(dir)
        } else if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
            PathBuf::from(dir).join("rollcall")
        } else if let Some(home) = std::env::var_os("HOME") {
            PathBuf::from(home).join(".config").join("rollcall")
        } else {
            bail!("cannot tell where to keep credentials: set ROLLCALL_CONFIG_DIR or HOME");
        };
        Ok(Credentials { dir })
    }

    /// The credentials file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join("credentials.json")
    }

    /// The login saved for `server`, if any.
    pub fn get(&self, server: &str) -> anyhow::Result<Option<Login>> {
        Ok(self.read()?.servers.remove(&key(server)))
    }

    /// Saves `login` for `server`, replacing any earlier one.
    pub fn put(&self, server: &str, login: Login) -> anyhow::Result<()> {
        let mut file = self.read()?;
        file.servers.insert(key(server), login);
        self.write(&file)
    }

    /// Forgets the login saved for `server`; whether there was one.
    pub fn remove(&self, server: &str) -> anyhow::Result<bool> {
        let mut file = self.read()?;
        let removed = file.servers.remove(&key(server)).is_some();
        if removed {
            self.write(&file)?;
        }
        Ok(removed)
    }

    fn read(&self) -> anyhow::Result<CredentialsFile> {
        let path = self.path();
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CredentialsFile::default());
            }
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
        };
        if metadata.len() > CREDENTIALS_BYTES_MAX {
            bail!("{} is larger than {CREDENTIALS_BYTES_MAX} bytes: remove it and log in again", path.display());
        }
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a credentials file: remove it and log in again", path.display()))
    }

    fn write(&self, file: &CredentialsFile) -> anyhow::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.path();
        let temporary = self.dir.join(".credentials.json.tmp");
        let text = serde_json::to_string_pretty(file).context("cannot encode the credentials")?;
        write_private(&temporary, text.as_bytes())?;
        // A rename replaces the file whole, so a crash never leaves half a file behind.
        fs::rename(&temporary, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// Writes `bytes` to a new file at `path` that only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // The mode given at creation is filtered by the umask; set it again to be sure.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Servers are keyed without a trailing slash, so `http://h:1` and `http://h:1/` are one.
fn key(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(token: &str) -> Login {
        Login { account_id: "a".into(), email: "e@example.com".into(), token: token.into() }
    }

    #[test]
    fn logins_are_kept_per_server_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Credentials { dir: dir.path().join("nested") };
        assert_eq!(store.get("http://a:1").unwrap(), None);
        store.put("http://a:1/", login("one")).unwrap();
        store.put("http://b:2", login("two")).unwrap();
        assert_eq!(store.get("http://a:1").unwrap(), Some(login("one")));
        assert_eq!(store.get("http://b:2/").unwrap(), Some(login("two")));
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("nested")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(store.remove("http://a:1").unwrap());
        assert!(!store.remove("http://a:1").unwrap());
        assert_eq!(store.get("http://a:1").unwrap(), None);
        assert_eq!(store.get("http://b:2").unwrap(), Some(login("two")));
    }

    #[test]
    fn a_damaged_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = Credentials { dir: dir.path().to_owned() };
        fs::write(store.path(), "not json").unwrap();
        let error = store.get("http://a:1").unwrap_err().to_string();
        assert!(error.contains("log in again"), "{error}");
    }
}
