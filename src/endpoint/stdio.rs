//! `-` / `stdio:`: standard input and output as one byte-stream connection. `inetd:` is the same
//! descriptors, named for what they are under inetd or a systemd `Accept=yes` socket: one
//! client's connection (its peer address, when stdin is a TCP socket, is in the label).

use super::ByteConn;

pub(crate) fn open() -> ByteConn {
    ByteConn::new(
        Box::new(tokio::io::stdin()),
        Box::new(tokio::io::stdout()),
        "stdio".into(),
    )
}

/// `inetd:`: the connection of one client, as standard input/output.
pub(crate) fn inetd() -> ByteConn {
    let label = match peer_of_stdin() {
        Some(peer) => format!("inetd client {peer}"),
        None => "inetd client".into(),
    };
    ByteConn::new(
        Box::new(tokio::io::stdin()),
        Box::new(tokio::io::stdout()),
        label,
    )
}

/// The peer address of standard input when it is a TCP socket.
fn peer_of_stdin() -> Option<std::net::SocketAddr> {
    peer_of(&std::io::stdin())
}

/// The peer address of `fd` if it is a connected TCP socket (None when it is not a socket, not
/// connected, or a Unix socket).
fn peer_of(fd: &impl std::os::fd::AsFd) -> Option<std::net::SocketAddr> {
    socket2::SockRef::from(fd).peer_addr().ok()?.as_socket()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_of_a_tcp_connection_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(peer_of(&server), Some(client.local_addr().unwrap()));
        assert_eq!(peer_of(&listener), None);
        let (unix, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer_of(&unix), None);
        let file = std::fs::File::open("Cargo.toml").unwrap();
        assert_eq!(peer_of(&file), None);
    }
}
