//! The tokens `mcpgw-connect` keeps: one file per gateway URL (the URL names the gateway and
//! the resource: `/mcp` or `/{server}/mcp`), in `$XDG_STATE_HOME/mcpgw-connect/tokens/`
//! (`~/.local/state/…` without it), or under `--state-dir`.
//!
//! Rules:
//! - the directory is made `0700` and every file is written `0600` from the start (created
//!   with that mode, then renamed over the old one, so no reader ever sees a half-written or
//!   wider file), and a file found wider than `0600` is narrowed before it is read;
//! - the file name is a digest of the URL, so a URL never has to be a valid file name;
//! - [`Entry`]'s `Debug` hides the tokens, so no log line can carry one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ConnectError;

/// What is kept for one gateway URL.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The URL the user gave (the key).
    pub url: String,
    /// The protected resource the token is for (RFC 8707).
    pub resource: String,
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// The client registered at `issuer` (kept, so a second sign-in reuses the consent).
    pub client_id: String,
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Unix seconds when the access token expires, when the server said.
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("url", &self.url)
            .field("resource", &self.resource)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("access_token", &"<hidden>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<hidden>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The token directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `explicit`, else `$XDG_STATE_HOME/mcpgw-connect`, else `~/.local/state/mcpgw-connect`.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Store, ConnectError> {
        let base = explicit
            .or_else(|| {
                std::env::var_os("XDG_STATE_HOME")
                    .filter(|v| !v.is_empty())
                    .map(|d| PathBuf::from(d).join("mcpgw-connect"))
            })
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".local/state/mcpgw-connect"))
            })
            .ok_or_else(|| ConnectError::Store {
                path: "~/.local/state".into(),
                cause: "neither XDG_STATE_HOME nor HOME is set".into(),
            })?;
        Ok(Store {
            dir: base.join("tokens"),
        })
    }

    /// The file of `url`.
    pub fn path(&self, url: &str) -> PathBuf {
        let digest = Sha256::digest(url.as_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.json"))
    }

    /// The entry of `url`, if one was saved.
    pub fn load(&self, url: &str) -> Result<Option<Entry>, ConnectError> {
        let path = self.path(url);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_error(&path, &e)),
        };
        narrow(&path)?;
        let entry: Entry = serde_json::from_str(&text).map_err(|e| ConnectError::Store {
            path: path.display().to_string(),
            cause: format!("not a token file ({e}); delete it and sign in again"),
        })?;
        Ok((entry.url == url).then_some(entry))
    }

    /// Saves `entry` (mode `0600`, replacing the old file at once).
    pub fn save(&self, entry: &Entry) -> Result<(), ConnectError> {
        make_private_dir(&self.dir)?;
        let path = self.path(&entry.url);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = serde_json::to_vec_pretty(entry).expect("an entry serializes");
        let write = || -> std::io::Result<()> {
            let mut file = private_file(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            store_error(&path, &e)
        })
    }

    /// Forgets `url`'s entry.
    pub fn remove(&self, url: &str) -> Result<(), ConnectError> {
        let path = self.path(url);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(store_error(&path, &e)),
            _ => Ok(()),
        }
    }
}

fn store_error(path: &Path, e: &std::io::Error) -> ConnectError {
    ConnectError::Store {
        path: path.display().to_string(),
        cause: e.to_string(),
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn make_private_dir(dir: &Path) -> Result<(), ConnectError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| store_error(dir, &e))
}

#[cfg(not(unix))]
fn make_private_dir(dir: &Path) -> Result<(), ConnectError> {
    std::fs::create_dir_all(dir).map_err(|e| store_error(dir, &e))
}

/// A token file someone widened is narrowed back to `0600` before it is used.
#[cfg(unix)]
fn narrow(path: &Path) -> Result<(), ConnectError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| store_error(path, &e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| store_error(path, &e))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn narrow(_: &Path) -> Result<(), ConnectError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str) -> Entry {
        Entry {
            url: url.into(),
            resource: url.into(),
            issuer: "http://auth".into(),
            authorization_endpoint: "http://auth/oauth/authorize".into(),
            token_endpoint: "http://auth/oauth/token".into(),
            client_id: "dcr.x".into(),
            access_token: "secret-access".into(),
            refresh_token: Some("secret-refresh".into()),
            expires_at: Some(1),
            scope: None,
        }
    }

    #[test]
    fn an_entry_is_saved_readable_only_by_the_user_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::locate(Some(dir.path().to_owned())).unwrap();
        let e = entry("http://gw/weather/mcp");
        store.save(&e).unwrap();
        store.save(&e).unwrap();
        assert_eq!(store.load(&e.url).unwrap(), Some(e.clone()));
        assert_eq!(store.load("http://gw/other/mcp").unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&store.path(&e.url)), 0o600);
            assert_eq!(mode(&dir.path().join("tokens")), 0o700);
        }
        store.remove(&e.url).unwrap();
        assert_eq!(store.load(&e.url).unwrap(), None);
    }

    #[test]
    fn debug_output_hides_the_tokens() {
        let text = format!("{:?}", entry("http://gw/mcp"));
        assert!(!text.contains("secret"), "{text}");
    }
}
