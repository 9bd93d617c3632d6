//! `unix:` (connect) and `unix-listen:` (bind): Unix stream sockets. The listener removes a socket
//! file left by a dead process: only one whose probe connect is refused (ECONNREFUSED), never a
//! live one (also not one with a full backlog, or one we may not connect to), never a non-socket
//! file. It applies `--unix-mode` atomically at bind time. [`SocketFile`] removes the socket file
//! when dropped, only if the path still names the socket we bound (same device and inode).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

use super::ByteConn;
use crate::error::{Error, Result};

pub(crate) async fn connect(path: &Path, limit: Duration) -> Result<ByteConn> {
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
pub(crate) struct BoundUnixListener {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file right after bind: what [`SocketFile`] may remove.
    bound: Option<FileId>,
}

impl BoundUnixListener {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn accept(&self) -> std::io::Result<UnixStream> {
        self.listener.accept().await.map(|(s, _)| s)
    }

    /// The guard that removes this listener's socket file when dropped.
    pub(crate) fn socket_file(&self) -> SocketFile {
        SocketFile {
            path: self.path.clone(),
            bound: self.bound,
        }
    }
}

/// Device and inode: which file a path names.
type FileId = (u64, u64);

/// The socket file at `path`, if `path` names one (not following a symlink).
fn socket_id(path: &Path) -> Option<FileId> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

/// Removes the socket file when dropped, if the path still names the socket that was bound: not
/// a socket another instance bound at the same path since, nor any other file put there. Held by
/// whoever owns the listener's lifetime (the accept loop), not by the listener: sessions may
/// briefly outlive the loop.
pub(crate) struct SocketFile {
    path: PathBuf,
    bound: Option<FileId>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let shown = self.path.display();
        let now = socket_id(&self.path);
        if now.is_some() && now == self.bound {
            if std::fs::remove_file(&self.path).is_ok() {
                tracing::debug!("removed socket file {shown}");
            }
            return;
        }
        if self.path.symlink_metadata().is_ok() {
            tracing::info!(
                "{shown}: no longer the socket we bound (another one, or another file, is there now); left in place"
            );
        }
    }
}

/// What to do with an existing socket file, from how a probe connect to it ended.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nobody listens (ECONNREFUSED): left by a dead process; remove it and bind.
    Stale,
    /// It disappeared meanwhile: bind.
    Gone,
    /// In use, or we cannot tell: refuse to start, for this reason.
    Refuse(String),
}

/// Only a refused connection proves the socket is stale. Anything else (it answered, its backlog
/// is full, we may not connect to it, an unexpected error) means it may be alive: refuse.
fn verdict(probe: &std::io::Result<()>) -> Verdict {
    let Err(e) = probe else {
        return Verdict::Refuse("another process is listening on this socket".into());
    };
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Verdict::Stale,
        Some(libc::ENOENT) => Verdict::Gone,
        Some(libc::EAGAIN) => Verdict::Refuse(
            "another process is listening on this socket but not accepting (its backlog is full); not removing it".into(),
        ),
        Some(libc::EACCES | libc::EPERM) => Verdict::Refuse(
            "cannot connect to this socket to check whether it is in use (permission denied); not removing it".into(),
        ),
        _ => Verdict::Refuse(format!(
            "cannot check whether this socket is in use ({e}); not removing it"
        )),
    }
}

/// Make room at `path` for a new socket: nothing there, or a stale socket (removed). Errors say
/// why the path is left alone.
async fn clear_path(path: &Path) -> std::io::Result<()> {
    let refuse = |kind, why: String| Err(std::io::Error::new(kind, why));
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return refuse(
            std::io::ErrorKind::AlreadyExists,
            "path exists and is not a socket (not removing it)".into(),
        );
    }
    let probe = UnixStream::connect(path).await.map(drop);
    match verdict(&probe) {
        Verdict::Gone => Ok(()),
        Verdict::Stale => {
            tracing::info!("removing stale socket file {}", path.display());
            std::fs::remove_file(path)
        }
        Verdict::Refuse(why) => refuse(std::io::ErrorKind::AddrInUse, why),
    }
}

pub(crate) async fn bind(path: &Path, mode: Option<u32>) -> Result<BoundUnixListener> {
    let target = format!("unix-listen:{}", path.display());
    let fail = |source| Error::Listen {
        target: target.clone(),
        source,
    };
    clear_path(path).await.map_err(fail)?;
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
        bound: socket_id(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: i32) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn only_a_refused_connection_means_stale() {
        assert_eq!(verdict(&os(libc::ECONNREFUSED)), Verdict::Stale);
        assert_eq!(verdict(&os(libc::ENOENT)), Verdict::Gone);
        let refused = |r: &std::io::Result<()>| matches!(verdict(r), Verdict::Refuse(_));
        for errno in [
            libc::EAGAIN,
            libc::EACCES,
            libc::EPERM,
            libc::ETIMEDOUT,
            libc::EINTR,
            libc::ENOTSOCK,
            libc::EPROTOTYPE,
            libc::ENOMEM,
        ] {
            assert!(refused(&os(errno)), "errno {errno}");
        }
        assert!(refused(&Ok(())));
        let Verdict::Refuse(why) = verdict(&os(libc::EAGAIN)) else {
            unreachable!()
        };
        assert!(why.contains("backlog is full"), "{why}");
        let Verdict::Refuse(why) = verdict(&os(libc::EACCES)) else {
            unreachable!()
        };
        assert!(why.contains("permission denied"), "{why}");
    }
}
