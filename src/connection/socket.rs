//! [`Socket`]: a WebSocket connection's transport as the outbox uses it — a plain TCP
//! connection, or TLS over one — read and written without ever waiting, by whichever thread holds
//! the outbox lock.
//!
//! With TLS, the frames are written as plaintext into the connection's rustls state, which
//! encrypts them into records; the records are written with the same non-blocking writes as a
//! plain connection's bytes. New plaintext is taken only once every record made before has gone
//! out, so a connection that does not read holds at most one write's records (rustls's buffer
//! limit, 64 KiB) beyond what the kernel took, and a frame leaves the outbox only once rustls has
//! it. What is left is written when the socket drains, like a plain connection's rest.

use std::io::{self, IoSlice, Read, Write};
use std::task::{ready, Context, Poll};

use rustls::ServerConnection;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A connection's transport.
#[derive(Debug)]
pub enum Socket {
    /// `ws://`: frames go to the TCP connection as they are.
    Plain(TcpStream),
    /// `wss://`: frames go through rustls. Boxed: rustls's state is large and only TLS
    /// connections carry it.
    Tls(Box<Tls>),
}

/// A TLS connection after its handshake: the TCP connection and rustls's state for it.
#[derive(Debug)]
pub struct Tls {
    tcp: TcpStream,
    tls: ServerConnection,
}

impl From<TcpStream> for Socket {
    fn from(tcp: TcpStream) -> Self {
        Socket::Plain(tcp)
    }
}

impl From<TlsStream<TcpStream>> for Socket {
    /// Takes over a handshaken TLS stream; what it had read or not yet written stays in the
    /// rustls state and is read or written first.
    fn from(stream: TlsStream<TcpStream>) -> Self {
        let (tcp, tls) = stream.into_inner();
        Socket::Tls(Box::new(Tls { tcp, tls }))
    }
}

impl Socket {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Socket::Plain(tcp) => tcp,
            Socket::Tls(tls) => &tls.tcp,
        }
    }

    /// Writes `buf` without waiting: how much of it was taken, or `WouldBlock`.
    pub(super) fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Plain(tcp) => tcp.try_write(buf),
            Socket::Tls(tls) => tls.write_with(|writer| writer.write(buf)),
        }
    }

    /// Writes `bufs` in order without waiting: how much was taken, or `WouldBlock`.
    pub(super) fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Plain(tcp) => tcp.try_write_vectored(bufs),
            Socket::Tls(tls) => tls.write_with(|writer| writer.write_vectored(bufs)),
        }
    }

    /// Writes what the transport itself still holds (TLS records); `Ok(true)` once nothing is
    /// left, `Ok(false)` if the socket would block first. Always `Ok(true)` for plain TCP.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        match self {
            Socket::Plain(_) => Ok(true),
            Socket::Tls(tls) => tls.flush(),
        }
    }

    /// Whether the transport holds bytes to write (TLS records: an alert, a key update
    /// answered, the rest of a frame).
    pub(super) fn wants_write(&self) -> bool {
        match self {
            Socket::Plain(_) => false,
            Socket::Tls(tls) => tls.tls.wants_write(),
        }
    }

    /// Ready once the socket may take more.
    pub(super) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_write_ready(cx)
    }

    /// Reads into `buf`: `Ok(0)` at the end of the stream.
    pub(super) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Socket::Plain(tcp) => loop {
                ready!(tcp.poll_read_ready(cx))?;
                match tcp.try_read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    read => return Poll::Ready(read),
                }
            },
            Socket::Tls(tls) => tls.poll_read(cx, buf),
        }
    }

    /// Ends the connection: TLS sends its `close_notify` alert, if the socket takes it now.
    pub(super) fn close(self) {
        if let Socket::Tls(mut tls) = self {
            tls.tls.send_close_notify();
            let _ = tls.flush();
        }
    }
}

impl Tls {
    /// Hands plaintext to rustls with `write`, once every record made before is written, and
    /// writes the new records as far as the socket takes them (the rest waits in rustls).
    fn write_with(
        &mut self,
        write: impl FnOnce(&mut rustls::Writer<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if !self.flush()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = write(&mut self.tls.writer())?;
        self.flush()?;
        Ok(taken)
    }

    /// Writes pending records; `Ok(true)` once none is left.
    fn flush(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut NonBlocking(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Plaintext rustls already has, else records from the socket, decrypted. A TCP connection
    /// closed without `close_notify` reads as the end of the stream, as on plain TCP.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            ready!(self.tcp.poll_read_ready(cx))?;
            match self.tls.read_tls(&mut NonBlocking(&self.tcp)) {
                // Ok(0), the end of the TCP stream, is remembered by rustls: the next read says it.
                Ok(_) => {
                    if let Err(e) = self.tls.process_new_packets() {
                        // The alert telling the peer why, if the socket takes it.
                        let _ = self.flush();
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The TCP connection as `std::io` sees it, never waiting: `WouldBlock` when it would.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use crate::connection::{Backlog, ConnectionHandle, Frame, Traffic};
    use crate::protocol::SocketId;

    /// A TLS connection over loopback with small buffers both ways (the server's send buffer,
    /// the client's receive buffer), so a large frame cannot be out at once: `(server, client)`.
    async fn tls_pair() -> (
        tokio_rustls::server::TlsStream<TcpStream>,
        tokio_rustls::client::TlsStream<TcpStream>,
    ) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(made.key_pair.serialize_der()).unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(8 * 1024).unwrap();
        let connecting = socket.connect(listener.local_addr().unwrap());
        let (client_tcp, accepted) = tokio::join!(connecting, listener.accept());
        let (server_tcp, _) = accepted.unwrap();
        socket2::SockRef::from(&server_tcp)
            .set_send_buffer_size(4096)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            acceptor.accept(server_tcp),
            connector.connect(name, client_tcp.unwrap())
        );
        (server.unwrap(), client.unwrap())
    }

    /// A frame larger than the socket buffers and rustls's record limit together: rustls takes
    /// the last of it while the socket is full, so its records wait in rustls with nothing left
    /// in the queue. The outbox is drained only once they are out, and they are written without
    /// anything more being sent: the peer gets the whole frame.
    #[tokio::test]
    async fn records_rustls_still_holds_are_written_before_the_outbox_is_drained() {
        let (server, mut client) = tls_pair().await;
        let backlog = Backlog::new(usize::MAX, Duration::MAX);
        let (handle, outbound) = ConnectionHandle::with_socket(
            SocketId::generate(),
            8,
            backlog,
            &Traffic::new(),
            server.into(),
        );
        let frame = Frame::from("x".repeat(300_000));
        let wire = frame.wire().to_vec();
        assert!(handle.send(frame));
        let reader = tokio::spawn(async move {
            // A slow reader: the socket keeps filling up while rustls is given the frame.
            let mut got = vec![0; wire.len()];
            for chunk in got.chunks_mut(4096) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                client.read_exact(chunk).await.unwrap();
            }
            (got, wire)
        });
        tokio::time::timeout(Duration::from_secs(10), outbound.drained())
            .await
            .expect("drained")
            .expect("no write error");
        let (got, wire) = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("the peer got the whole frame")
            .unwrap();
        assert!(got == wire, "the frame arrives as written");
    }
}
