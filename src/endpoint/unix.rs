//! `unix:` (connect) and `unix-listen:` (bind): Unix stream sockets. The listener removes a stale
//! socket file left by a dead process (never a live one, never a non-socket file), applies
//! `--unix-mode` atomically at bind time; [`SocketFile`] removes its socket file when dropped.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

use super::ByteConn;
use crate::error::{Error, Result};

pub async fn connect(path: &Path, limit: Duration) -> Result<ByteConn> {
    let target = format!("unix:{}", path.display());
    let stream = tokio::time::timeout(limit, UnixStream::connect(path))
        .await
        .map_err(|_| Error::Timeout {
            target: target.clone(),
            what: "connect",
            after: limit,
        })?
        .map_err(|source| Error::Connect {
            target: target.clone(),
            source,
        })?;
    let (r, w) = stream.into_split();
    Ok(ByteConn::new(Box::new(r), Box::new(w), target))
}

/// A bound Unix listener.
pub struct BoundUnixListener {
    listener: UnixListener,
    path: PathBuf,
}

impl BoundUnixListener {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn accept(&self) -> std::io::Result<UnixStream> {
        self.listener.accept().await.map(|(s, _)| s)
    }
}

/// Removes the socket file when dropped. Held by whoever owns the listener's lifetime (the
/// accept loop), not by the listener: sessions may briefly outlive the loop.
pub struct SocketFile(PathBuf);

impl SocketFile {
    pub fn new(path: &Path) -> SocketFile {
        SocketFile(path.to_path_buf())
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::remove_file(&self.0).is_ok() {
            tracing::debug!("removed socket file {}", self.0.display());
        }
    }
}

pub async fn bind(path: &Path, mode: Option<u32>) -> Result<BoundUnixListener> {
    let target = format!("unix-listen:{}", path.display());
    let fail = |source| Error::Listen {
        target: target.clone(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "path exists and is not a socket (not removing it)",
            )));
        }
        match UnixStream::connect(path).await {
            Ok(_) => {
                return Err(fail(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another process is listening on this socket",
                )));
            }
            Err(_) => {
                tracing::info!("removing stale socket file {}", path.display());
                std::fs::remove_file(path).map_err(fail)?;
            }
        }
    }
    let listener = match mode {
        // The socket file gets its permissions from the umask at bind time; set it for the bind
        // only, so the file never exists with wider permissions than asked for.
        Some(mode) => {
            // SAFETY: umask is process-wide and always succeeds; restored right after bind.
            let old = unsafe { libc::umask((!mode & 0o777) as libc::mode_t) };
            let r = UnixListener::bind(path);
            unsafe { libc::umask(old) };
            let l = r.map_err(fail)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
            l
        }
        None => UnixListener::bind(path).map_err(fail)?,
    };
    Ok(BoundUnixListener {
        listener,
        path: path.to_path_buf(),
    })
}
