//! The one shutdown handle of a run: created by `app::run`, triggered by the first SIGTERM or
//! SIGINT, and seen by every listener and session (the relay reads it through
//! `RelayOptions::shutdown`). Cheap to clone; triggering is idempotent. Like mini-redis's
//! `Shutdown`, it is passed explicitly rather than found through a global.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Ask everything to stop (Close 1001 on every WebSocket, bounded drain).
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether shutdown has been asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once shutdown has been asked for.
    pub async fn cancelled(&self) {
        self.0.cancelled().await;
    }

    /// [`Shutdown::cancelled`] as a nameable future, for a loop to keep across its turns (it
    /// registers with the token once, not at every wait).
    pub fn waiter(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.0.cancelled()
    }
}
