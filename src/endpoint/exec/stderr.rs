//! A child's standard error under `--exec-stderr log` (each line into wsbridge's log, at info,
//! target `wsbridge::child`, shown by default, inside the session's span) or `client` (each line a text message to the client, prefixed).
//! Lines are cut at `MAX_LINE` bytes, decoded lossily, and their control characters escaped
//! (a child cannot forge log lines).

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::task::TaskTracker;

/// Longest stderr line kept whole; longer ones are cut into pieces of this size.
const MAX_LINE: usize = 4096;
/// Lines waiting for the client; then the child waits for its stderr writes.
const QUEUE: usize = 64;

/// Log each line of `stderr` (on `tasks`, inside the current span) until it ends.
pub(super) fn log(stderr: ChildStderr, label: String, tasks: &TaskTracker) {
    tasks.spawn(tracing::Instrument::in_current_span(async move {
        each_line(stderr, |line| {
            tracing::info!(target: "wsbridge::child", "{label} stderr: {line}");
            async { true }
        })
        .await;
    }));
}

/// Each line of `stderr` as a text message `prefix` + line, for the client.
pub(super) fn to_client(
    stderr: ChildStderr,
    prefix: String,
    tasks: &TaskTracker,
) -> mpsc::Receiver<Message> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tasks.spawn(tracing::Instrument::in_current_span(async move {
        each_line(stderr, |line| {
            let tx = tx.clone();
            let text = format!("{prefix}{line}");
            async move { tx.send(Message::text(text)).await.is_ok() }
        })
        .await;
    }));
    rx
}

/// Call `f` with each line (cleaned) until the input ends, fails, or `f` says stop.
async fn each_line<F, Fut>(stderr: ChildStderr, mut f: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut input = BufReader::with_capacity(MAX_LINE, stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        let more = read_line(&mut input, &mut line).await;
        if !line.is_empty() && !f(clean(&line)).await {
            return;
        }
        if !more {
            return;
        }
    }
}

/// Read up to a newline or `MAX_LINE` bytes into `line`; false at the end of input.
async fn read_line(input: &mut BufReader<ChildStderr>, line: &mut Vec<u8>) -> bool {
    loop {
        let buf = match input.fill_buf().await {
            Ok([]) | Err(_) => return false,
            Ok(b) => b,
        };
        let room = MAX_LINE - line.len();
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) if i < room => (i + 1, true),
            _ => (buf.len().min(room), buf.len() >= room),
        };
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        if done {
            return true;
        }
    }
}

/// The line without its end, lossily UTF-8, with control characters escaped.
fn clean(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn lines_lose_their_end_and_cannot_carry_control_characters() {
        assert_eq!(clean(b"oops\r\n"), "oops");
        assert_eq!(clean(b"a\tb"), "a\tb");
        assert_eq!(clean(b"fake\rINFO x\x1b[2J"), "fake\\rINFO x\\u{1b}[2J");
        assert_eq!(clean(b"bad \xff utf8\n"), "bad \u{fffd} utf8");
    }
}
