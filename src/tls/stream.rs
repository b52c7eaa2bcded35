//! A rustls connection driven over an async byte stream (glommio's `TcpStream`): the
//! plaintext side as `futures` `AsyncRead`/`AsyncWrite`.
//!
//! Written here rather than taken from futures-rustls because a replica link changes executor
//! after SYNC (`repl::master` takes over the socket): the rustls state must come apart from the
//! socket and be put back around a duplicate of it (`into_parts`, `new`), which the adapter
//! crates do not allow.
//!
//! Writes are buffered by rustls (encrypted records wait in its send buffer): callers flush
//! after a batch of writes, which sends what is left.

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use rustls::{ConnectionCommon, SideData};

/// Plaintext over a TLS session on `io`. `C` is `rustls::ServerConnection` or
/// `rustls::ClientConnection`.
pub struct TlsStream<S, C> {
    io: S,
    tls: C,
    /// The peer closed its side (TCP end or close_notify): reads answer 0.
    read_closed: bool,
}

/// Presents an async stream to rustls as a blocking `Read`/`Write` that answers WouldBlock
/// instead of waiting (registering the waker with the stream).
struct SyncIo<'a, 'b, S> {
    io: &'a mut S,
    cx: &'a mut Context<'b>,
}

impl<S: AsyncRead + Unpin> Read for SyncIo<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_read(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S: AsyncWrite + Unpin> Write for SyncIo<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn pending_on_would_block<T>(r: io::Result<T>) -> Poll<io::Result<T>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

impl<S, C, D> TlsStream<S, C>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: DerefMut + Deref<Target = ConnectionCommon<D>> + Unpin,
    D: SideData,
{
    /// Wraps a session (new, or taken from another stream with `into_parts`) around `io`.
    pub fn new(io: S, tls: C) -> Self {
        TlsStream {
            io,
            tls,
            read_closed: false,
        }
    }

    /// The socket and the session, apart.
    pub fn into_parts(self) -> (S, C) {
        (self.io, self.tls)
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn session(&self) -> &C {
        &self.tls
    }

    /// Sends encrypted bytes waiting in rustls; Ready(Ok(0)) if the socket took nothing.
    fn write_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            io: &mut self.io,
            cx,
        };
        pending_on_would_block(self.tls.write_tls(&mut io))
    }

    /// Reads encrypted bytes from the socket and decrypts them. Ok(0): the peer closed TCP.
    fn read_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            io: &mut self.io,
            cx,
        };
        let n = match pending_on_would_block(self.tls.read_tls(&mut io)) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        if let Err(e) = self.tls.process_new_packets() {
            // Let the peer see the alert rustls queued for it, if the socket takes it now.
            let _ = self.write_io(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        Poll::Ready(Ok(n))
    }

    /// Sends everything rustls holds for the peer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            match self.write_io(cx) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Completes the handshake (sending and reading what it takes).
    pub async fn handshake(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            while self.tls.is_handshaking() {
                if self.tls.wants_write() {
                    match self.poll_drain(cx) {
                        Poll::Ready(Ok(())) => continue,
                        other => return other,
                    }
                }
                match self.read_io(cx) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // The server's last flight (TLS 1.3 session tickets) goes out now.
            self.poll_drain(cx)
        })
        .await
    }
}

impl<S, C, D> AsyncRead for TlsStream<S, C>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: DerefMut + Deref<Target = ConnectionCommon<D>> + Unpin,
    D: SideData,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed TCP without close_notify: an end all the same for us.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.read_closed {
                return Poll::Ready(Ok(0));
            }
            // Handshake messages and alerts the session owes the peer go first.
            if this.tls.wants_write() {
                if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            match this.read_io(cx) {
                Poll::Ready(Ok(0)) => this.read_closed = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S, C, D> AsyncWrite for TlsStream<S, C>
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: DerefMut + Deref<Target = ConnectionCommon<D>> + Unpin,
    D: SideData,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Records from earlier writes leave first, so rustls's buffer stays bounded.
        if this.tls.wants_write() {
            match this.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other.map(|r| r.map(|()| 0)),
            }
        }
        let n = this.tls.writer().write(buf)?;
        // Start sending at once; what the socket does not take now waits for the next
        // write or the flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.writer().flush()?;
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.send_close_notify();
        match this.poll_drain(cx) {
            Poll::Ready(_) => Pin::new(&mut this.io).poll_close(cx),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A link that is TLS or not depending on configuration (`tls-replication`, `tls-cluster`):
/// replication and the cluster bus, where one match per read or write costs nothing next to
/// the I/O (client connections use `TlsStream` directly, monomorphized).
pub enum MaybeTls<S> {
    Plain(S),
    Server(Box<TlsStream<S, rustls::ServerConnection>>),
    Client(Box<TlsStream<S, rustls::ClientConnection>>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            MaybeTls::Plain($s) => $e,
            MaybeTls::Server($s) => $e,
            MaybeTls::Client($s) => $e,
        }
    };
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_close(cx))
    }
}

impl<S> MaybeTls<S> {
    /// The socket underneath.
    pub fn socket(&self) -> &S {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Server(s) => &s.io,
            MaybeTls::Client(s) => &s.io,
        }
    }
}
