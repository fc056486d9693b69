//! The node's local admin credential: `{data_dir}/admin.token`, 32 random bytes in hex,
//! created with mode 0600 the first time the server starts with an admin listener. The
//! admin API accepts it from loopback callers only; `parley` commands run on the server's
//! machine as its user read it when `[admin] token` is unset. So `parley user del` ends the
//! account's live sessions out of the box, the way `ejabberdctl` reaches its node through
//! the Erlang cookie and `prosodyctl shell` through a socket only the server's user can open.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

/// The file's name in the data directory.
pub const FILE: &str = "admin.token";

/// Where the credential lives for `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The credential, created if absent. None (with a warning) when the data directory cannot
/// hold it: the API then needs `[admin] token`, as before.
pub fn ensure(data_dir: &Path) -> Option<String> {
    match read(data_dir).or_else(|_| create(data_dir)) {
        Ok(token) => Some(token),
        Err(e) => {
            tracing::warn!(path = %path(data_dir).display(), error = %e,
                "cannot keep the local admin credential; local `parley` commands need [admin] token");
            None
        }
    }
}

/// The credential if the file exists and holds one.
pub fn read(data_dir: &Path) -> io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path(data_dir))?
        .take(256)
        .read_to_string(&mut text)?;
    let token = text.trim();
    if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a local admin credential",
        ));
    }
    Ok(token.to_owned())
}

fn create(data_dir: &Path) -> io::Result<String> {
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path(data_dir))?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(ensure(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(path(dir.path()), "short").unwrap();
        assert!(read(dir.path()).is_err());
        // A damaged file is replaced, not trusted.
        let replaced = ensure(dir.path()).unwrap();
        assert_ne!(replaced, first);
    }
}
