//! Where a listener's sessions run: one thread with a single-threaded tokio runtime per CPU,
//! each session kept on one of them from accept to end. Both directions of a session, its
//! timers and its backend then share one thread and one epoll: no work stealing, no
//! cross-thread wake-ups inside a session (docs/performance.md, "A runtime per CPU"). The main
//! thread's runtime keeps what all sessions share: accepting, signals, metrics, the Redis bus
//! (whose publisher must not wait behind a session flooding a room).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;
use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The runtimes sessions are spread over. Dropping it stops them, with whatever still runs on
/// them: `app::run` keeps it until the exec: children's reapers are done.
pub(crate) struct Workers {
    all: Vec<Worker>,
    stop: CancellationToken,
}

struct Worker {
    handle: Handle,
    /// Sessions running on it now.
    load: Arc<AtomicUsize>,
}

impl Workers {
    /// `count` threads (at least one) with a runtime each.
    pub(crate) fn start(count: usize) -> io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut all = Vec::new();
        for n in 0..count.max(1) {
            all.push(Worker::new(spawn_thread(n, stop.clone())?));
        }
        Ok(Workers { all, stop })
    }

    /// How many runtimes run sessions.
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// Run `session` in `set` on the runtime with the fewest sessions. It registers its sockets
    /// with that runtime (see [`crate::endpoint::Detached`]).
    pub(crate) fn spawn<F>(&self, set: &mut JoinSet<()>, session: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let worker = self
            .all
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .expect("at least one worker");
        let load = Load::take(&worker.load);
        // `map`, not an `async` block around it: a future moved into an async block is stored
        // twice in the task (measured: 9 KiB more per idle session).
        set.spawn_on(session.map(move |()| drop(load)), &worker.handle);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Worker {
    fn new(handle: Handle) -> Worker {
        Worker {
            handle,
            load: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// One session counted on its worker, until dropped.
struct Load(Arc<AtomicUsize>);

impl Load {
    fn take(load: &Arc<AtomicUsize>) -> Load {
        load.fetch_add(1, Ordering::Relaxed);
        Load(load.clone())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A thread running a current-thread runtime until `stop`; its handle, once the thread runs
/// (named, its runtime built). The runtime is let go without waiting for blocking work (as the
/// main one is at exit).
fn spawn_thread(n: usize, stop: CancellationToken) -> io::Result<Handle> {
    let (started, handle) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("wsbridge-{n}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(r) => r,
                Err(e) => return drop(started.send(Err(e))),
            };
            let _ = started.send(Ok(runtime.handle().clone()));
            runtime.block_on(stop.cancelled());
            runtime.shutdown_background();
        })?;
    handle
        .recv()
        .map_err(|_| io::Error::other("a session thread ended as it started"))?
}

/// How many session threads to run: `requested` (`--threads`), or the CPUs this process may
/// use (its affinity mask and cgroup quota, as `std` reads them).
pub(crate) fn count(requested: Option<usize>) -> usize {
    requested
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}
