//! RFC 6455 through the relay, with a raw-frame peer sending what libraries would not:
//! fragmentation (§5.4), control frames (§5.5), UTF-8 validity (§8.1), close codes (§7.4),
//! reserved opcodes (§5.2), size limits, and zero-length messages.

use crate::harness::raw::{self, BINARY, CLOSE, CONTINUATION, PING, PONG, RawConn, TEXT};
use crate::harness::{self, Bridge, Finished};

/// Start `wsbridge [args] ws://raw-peer/` with stdin held open; return it and the peer's end.
async fn connect(args: &[&str]) -> (Bridge, RawConn) {
    let (port, mut conns) = raw::listen().await;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut all: Vec<&str> = args.to_vec();
    all.push(&url);
    let b = Bridge::spawn(&all);
    let conn = tokio::time::timeout(harness::LIMIT, conns.recv())
        .await
        .unwrap()
        .unwrap();
    (b, conn)
}

/// Finish with stdin kept open until the end (so only the peer can end the session).
async fn finish(mut b: Bridge) -> Finished {
    let stdin = b.stdin.take();
    let f = b.finish().await;
    drop(stdin);
    f
}

#[tokio::test]
async fn s5_4_fragmented_message_is_reassembled_into_one_line() {
    let (b, mut peer) = connect(&[]).await;
    peer.send(false, TEXT, b"frag").await;
    // A control frame may be injected between fragments (§5.4); it is answered.
    peer.send(true, PING, b"mid").await;
    peer.send(false, CONTINUATION, b"men").await;
    peer.send(true, CONTINUATION, b"ted").await;
    let pong = peer.read().await.unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"mid"[..]));
    peer.send_close(1000, "").await;
    let reply = peer.read_until_close().await.unwrap();
    assert_eq!(reply.close_code(), Some(1000));
    let f = finish(b).await;
    assert_eq!(f.stdout_str(), "fragmented\n");
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn s5_5_2_ping_payload_is_echoed_in_pong() {
    let (b, mut peer) = connect(&[]).await;
    let payload: Vec<u8> = (0..125u8).collect();
    peer.send(true, PING, &payload).await;
    let pong = peer.read().await.unwrap();
    assert_eq!(pong.opcode, PONG);
    assert_eq!(pong.payload, payload);
    peer.send_close(1000, "").await;
    assert_eq!(finish(b).await.code, Some(0));
}

#[tokio::test]
async fn s8_1_invalid_utf8_text_closes_with_1007() {
    let (b, mut peer) = connect(&[]).await;
    peer.send(true, TEXT, b"good").await;
    peer.send(true, TEXT, b"bad \xc3\x28").await;
    let close = peer.read_until_close().await.unwrap();
    assert_eq!(close.close_code(), Some(1007));
    drop(peer);
    let f = finish(b).await;
    // What came before the bad frame is delivered; the bad frame never is.
    assert_eq!(f.stdout_str(), "good\n");
    assert_eq!(f.code, Some(9), "{}", f.stderr);
    harness::assert_one_line_error(&f, "invalid UTF-8 in a text message");
}

#[tokio::test]
async fn s8_1_invalid_utf8_split_across_fragments_closes_with_1007() {
    let (b, mut peer) = connect(&[]).await;
    peer.send(false, TEXT, b"ok \xe2\x82").await; // first two bytes of '€' …
    peer.send(true, CONTINUATION, b"\x28").await; // … then not a continuation byte
    let close = peer.read_until_close().await.unwrap();
    assert_eq!(close.close_code(), Some(1007));
    drop(peer);
    assert_eq!(finish(b).await.code, Some(9));
}

#[tokio::test]
async fn s5_2_reserved_opcode_closes_with_1002() {
    let (b, mut peer) = connect(&[]).await;
    peer.send(true, 0x3, b"?").await;
    let close = peer.read_until_close().await.unwrap();
    assert_eq!(close.close_code(), Some(1002));
    drop(peer);
    let f = finish(b).await;
    assert_eq!(f.code, Some(9), "{}", f.stderr);
    harness::assert_one_line_error(&f, "protocol error");
}

#[tokio::test]
async fn s5_4_continuation_without_start_closes_with_1002() {
    let (b, mut peer) = connect(&[]).await;
    peer.send(true, CONTINUATION, b"orphan").await;
    assert_eq!(
        peer.read_until_close().await.unwrap().close_code(),
        Some(1002)
    );
    drop(peer);
    assert_eq!(finish(b).await.code, Some(9));
}

#[tokio::test]
async fn s5_5_fragmented_control_frame_closes_with_1002() {
    let (b, mut peer) = connect(&[]).await;
    peer.send(false, PING, b"x").await;
    assert_eq!(
        peer.read_until_close().await.unwrap().close_code(),
        Some(1002)
    );
    drop(peer);
    assert_eq!(finish(b).await.code, Some(9));
}

#[tokio::test]
async fn s7_4_invalid_close_code_is_answered_with_1002() {
    for bad in [999u16, 1005, 1006, 1015, 2000] {
        let (b, mut peer) = connect(&[]).await;
        peer.send_close(bad, "").await;
        let reply = peer.read_until_close().await.unwrap();
        assert_eq!(reply.close_code(), Some(1002), "peer sent {bad}");
        drop(peer);
        let f = finish(b).await;
        assert_eq!(f.code, Some(8), "{bad}: {}", f.stderr);
    }
}

#[tokio::test]
async fn s5_6_zero_length_messages_are_messages() {
    let (mut b, mut peer) = connect(&[]).await;
    peer.send(true, TEXT, b"").await;
    peer.send(true, TEXT, b"then").await;
    assert_eq!(b.read_line().await, "");
    assert_eq!(b.read_line().await, "then");
    // An empty local line is an empty text message, not EOF.
    b.write_stdin(b"\nafter\n").await;
    let m1 = peer.read().await.unwrap();
    let m2 = peer.read().await.unwrap();
    assert_eq!((m1.opcode, m1.payload.len()), (TEXT, 0));
    assert_eq!((m2.opcode, m2.payload.as_slice()), (TEXT, &b"after"[..]));
    peer.send_close(1000, "").await;
    assert_eq!(finish(b).await.code, Some(0));
}

#[tokio::test]
async fn oversize_incoming_message_closes_with_1009() {
    let (b, mut peer) = connect(&["--max-message-size", "1KiB"]).await;
    peer.send(true, BINARY, &[7u8; 2000]).await;
    assert_eq!(
        peer.read_until_close().await.unwrap().close_code(),
        Some(1009)
    );
    drop(peer);
    let f = finish(b).await;
    assert_eq!(f.code, Some(9), "{}", f.stderr);
    harness::assert_one_line_error(&f, "raise --max-message-size");
}

#[tokio::test]
async fn local_eof_sends_close_1000_and_keeps_delivering() {
    let (mut b, mut peer) = connect(&[]).await;
    b.write_stdin(b"last words\n").await;
    b.close_stdin();
    let m = peer.read().await.unwrap();
    assert_eq!(m.payload, b"last words");
    let close = peer.read().await.unwrap();
    assert_eq!(close.opcode, CLOSE);
    assert_eq!(close.close_code(), Some(1000));
    // After the client's Close, messages already in flight from the server still arrive.
    peer.send(true, TEXT, b"in flight 1").await;
    peer.send(true, TEXT, b"in flight 2").await;
    peer.send_close(1000, "").await;
    drop(peer);
    let f = finish(b).await;
    assert_eq!(f.stdout_str(), "in flight 1\nin flight 2\n");
    assert_eq!(f.code, Some(0), "{}", f.stderr);
}

#[tokio::test]
async fn client_frames_are_masked_and_lines_are_not_merged() {
    // RawConn::read asserts the mask bit on every frame.
    let (mut b, mut peer) = connect(&[]).await;
    b.write_stdin(b"a\nb\nc\n").await;
    for want in [&b"a"[..], b"b", b"c"] {
        let f = peer.read().await.unwrap();
        assert!(f.fin);
        assert_eq!((f.opcode, f.payload.as_slice()), (TEXT, want));
    }
    peer.send_close(1000, "").await;
    assert_eq!(finish(b).await.code, Some(0));
}
