//! `-` / `stdio:`: standard input and output as one byte-stream connection. `inetd:` is the same
//! descriptors, named for what they are under inetd or a systemd `Accept=yes` socket: one
//! client's connection (its peer address, when stdin is a TCP socket, is in the label).

use super::ByteConn;

pub fn open() -> ByteConn {
    ByteConn::new(
        Box::new(tokio::io::stdin()),
        Box::new(tokio::io::stdout()),
        "stdio".into(),
    )
}

/// `inetd:`: the connection of one client, as standard input/output.
pub fn inetd() -> ByteConn {
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
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    // SAFETY: an all-zero sockaddr_storage is valid; getpeername writes at most `len` bytes and
    // fails (ENOTSOCK, EBADF) when standard input is not a connected socket.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let r = unsafe {
        libc::getpeername(
            0,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return None;
    }
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in (storage is large enough).
            let a =
                unsafe { *(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(
                SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )
                .into(),
            )
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a =
                unsafe { *(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(
                SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )
                .into(),
            )
        }
        _ => None,
    }
}
