//! Sockets made the way Redis makes them: listeners (`anetTcpServer`: SO_REUSEADDR on every
//! listener, IPV6_V6ONLY on IPv6 ones, SO_MARK from `socket-mark-id`), and outgoing
//! connections leaving from `bind-source-addr` (`anetTcpNonBlockBindConnect`).
//!
//! SO_REUSEADDR matters for a restart after a crash: the connections a killed process held
//! linger in TIME_WAIT (or FIN_WAIT2) on the port for up to a minute. An accepted socket
//! inherits the listener's SO_REUSEADDR, and Linux lets a socket with SO_REUSEADDR bind next to
//! lingering sockets that have it too, never next to a live listener. So with it on both sides
//! a restart binds at once, and a port another live process listens on is still refused.
//!
//! The client port is shared by every shard through SO_REUSEPORT, which alone would also let
//! a second server (of the same user) share the port silently. `probe` binds the address once
//! without SO_REUSEPORT first, so a port in use fails there, as it does in Redis. The cluster
//! bus has a single listener and no SO_REUSEPORT, so its own bind is the check.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// The listen backlog (what glommio's own `TcpListener::bind` uses).
const BACKLOG: i32 = 1024;

/// `socket-mark-id` (0: none), set once at start-up before any listener is made.
static SOCKET_MARK: AtomicU32 = AtomicU32::new(0);

/// Makes every later listener carry SO_MARK `mark` (firewall and routing rules can match it).
pub fn set_socket_mark(mark: u32) {
    SOCKET_MARK.store(mark, Relaxed);
}

/// A bound socket with Redis's options; `reuseport` adds SO_REUSEPORT.
fn bound(addr: SocketAddr, reuseport: bool) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    if reuseport {
        sock.set_reuse_port(true)?;
    }
    let mark = SOCKET_MARK.load(Relaxed);
    if mark != 0 {
        sock.set_mark(mark)
            .map_err(|e| redis_error("setsockopt SO_MARK", e))?;
    }
    sock.bind(&addr.into())
        .map_err(|e| redis_error("bind", e))?;
    Ok(sock)
}

/// `e` worded as Redis words its socket errors ("bind: Address already in use"), kind kept.
fn redis_error(call: &str, e: io::Error) -> io::Error {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    io::Error::new(e.kind(), format!("{call}: {text}"))
}

/// Binds `addr` without SO_REUSEPORT and lets it go: `AddrInUse` when a live process listens
/// there (ours with SO_REUSEPORT included), Ok over connections a dead process left behind.
pub fn probe(addr: SocketAddr) -> io::Result<()> {
    bound(addr, false).map(drop)
}

/// A listening glommio socket on `addr` for the calling executor; `shared` lets every shard
/// listen on the same port (SO_REUSEPORT).
pub fn listener(addr: SocketAddr, shared: bool) -> io::Result<glommio::net::TcpListener> {
    let sock = bound(addr, shared)?;
    sock.listen(BACKLOG).map_err(|e| redis_error("listen", e))?;
    // SAFETY: a bound, listening TCP socket whose ownership moves to the listener.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(sock.into_raw_fd()) })
}

/// Room in `sockaddr_un.sun_path`, terminating NUL included.
const SUN_PATH_LEN: usize = 108;

/// The `unixsocket` listener, made as Redis's `anetUnixServer` makes it: whatever is at `path`
/// (a socket a dead server left) is removed first, the socket is bound, given mode `perm`
/// when not 0 (`unixsocketperm`), then listens. Made once, on the starting thread: the
/// executor that accepts on it wraps it (see `server::run`). The error is worded as Redis's
/// (`server.neterr`), to follow "Failed opening Unix socket: ".
pub fn unix_listener(path: &str, perm: u32) -> Result<Socket, String> {
    use std::os::unix::fs::PermissionsExt;
    if path.len() > SUN_PATH_LEN - 1 {
        return Err(format!(
            "unix socket path too long ({}), must be under {SUN_PATH_LEN}",
            path.len()
        ));
    }
    // As Redis: "don't care if this fails".
    let _ = std::fs::remove_file(path);
    let text = |call: &str, e: io::Error| format!("{call}: {}", crate::util::os_error_text(&e));
    let sock =
        Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| text("creating socket", e))?;
    let addr = socket2::SockAddr::unix(path).map_err(|e| text("bind", e))?;
    sock.bind(&addr).map_err(|e| text("bind", e))?;
    if perm != 0 {
        // Redis ignores a failing chmod too: the socket is there, with the umask's mode.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm));
    }
    sock.listen(BACKLOG).map_err(|e| text("listen", e))?;
    Ok(sock)
}

/// A connection to `target` ("host:port"), leaving from `source` (`bind-source-addr`) when
/// it is not empty; within `timeout`.
pub async fn connect(
    target: &str,
    source: &str,
    timeout: Duration,
) -> io::Result<glommio::net::TcpStream> {
    if source.is_empty() {
        return glommio::net::TcpStream::connect_timeout(target, timeout)
            .await
            .map_err(io::Error::from);
    }
    let source: IpAddr = source.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bind: invalid source address '{source}'"),
        )
    })?;
    let target = target.to_string();
    // The bind and the connect block (name lookup included): off the executor, as glommio's
    // own connect does its lookup.
    let fd = glommio::executor()
        .spawn_blocking(move || -> io::Result<i32> {
            let addr = target
                .to_socket_addrs()?
                .find(|a| a.is_ipv4() == source.is_ipv4())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "no address of the source's family")
                })?;
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            sock.bind(&SocketAddr::new(source, 0).into())
                .map_err(|e| redis_error("bind", e))?;
            sock.connect_timeout(&addr.into(), timeout)?;
            sock.set_nonblocking(true)?;
            Ok(sock.into_raw_fd())
        })
        .await?;
    // SAFETY: a connected TCP socket whose ownership moves to the stream.
    Ok(unsafe { glommio::net::TcpStream::from_raw_fd(fd) })
}

/// `host` ("ip:port" or "[ipv6]:port") as a socket address, or Redis's wording for a bad one.
pub fn parse(host: &str, addr: &str) -> Result<SocketAddr, String> {
    host.parse()
        .map_err(|_| format!("Invalid bind address '{addr}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live listener of ours (SO_REUSEPORT) or of anyone else refuses the probe; once it
    /// is closed the probe passes, and our shards can share the port with one another.
    #[test]
    fn probe_refuses_live_listeners_only() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let first = bound(any, true).unwrap();
        first.listen(16).unwrap();
        let addr = first.local_addr().unwrap().as_socket().unwrap();
        let err = probe(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        // A second shard's listener shares it.
        let second = bound(addr, true).unwrap();
        second.listen(16).unwrap();
        drop((first, second));
        probe(addr).unwrap();

        let plain = std::net::TcpListener::bind(any).unwrap();
        let addr = plain.local_addr().unwrap();
        assert_eq!(probe(addr).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        assert!(
            bound(addr, true).is_err(),
            "SO_REUSEPORT must not share a foreign port"
        );
    }
}
