//! A synchronous connection of the blocking front's read pool (see `blocking_reads.rs`), on a
//! socket of our own, so that an idle one whose server closed it (`CLIENT KILL`, the server's
//! `timeout`) is found at once, by looking at the socket, rather than by the next ping: with
//! key-based tracking Redis forgets what a closed connection read, without a push, so the L1
//! must stop trusting it the moment it closes (see "The link is the licence" in DESIGN.md).
//!
//! redis-rs's synchronous `Connection` does not expose its socket, hence this small client for
//! plain TCP and Unix sockets: commands are packed, and replies parsed, by redis-rs
//! (`Cmd::get_packed_command`, `redis::Parser`); the handshake is `HELLO 3` (with `AUTH` when
//! the client has a password) and `SELECT`. Over TLS there is no such pool (see [`watchable`]):
//! TLS records may arrive on an idle socket without meaning anything, so a look at it could
//! not tell a close; the blocking front reads through the shared connection then.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, RedisError, Value};

/// Whether the blocking front's reads may use a pool of [`ReadConn`]s to `info`'s server: a
/// plain TCP or Unix socket (not TLS).
pub(crate) fn watchable(info: &ConnectionInfo) -> bool {
    match info.addr() {
        ConnectionAddr::Tcp(..) => true,
        #[cfg(unix)]
        ConnectionAddr::Unix(_) => true,
        _ => false,
    }
}

/// A socket to the server.
enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Socket {
    fn try_clone(&self) -> std::io::Result<Socket> {
        Ok(match self {
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
            #[cfg(unix)]
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(d),
            #[cfg(unix)]
            Socket::Unix(s) => s.set_read_timeout(d),
        }
    }

    fn set_write_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_write_timeout(d),
            #[cfg(unix)]
            Socket::Unix(s) => s.set_write_timeout(d),
        }
    }

    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Socket::Unix(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.flush(),
            #[cfg(unix)]
            Socket::Unix(s) => s.flush(),
        }
    }
}

/// A pooled read connection on our own socket.
pub(crate) struct ReadConn {
    writer: Socket,
    reader: BufReader<Socket>,
    parser: redis::Parser,
}

impl ReadConn {
    /// Connects to `info`'s server within `timeout` and says hello (RESP3, authenticated,
    /// its database selected); a server that is not [`watchable`] is an error.
    pub(crate) fn connect(info: &ConnectionInfo, timeout: Duration) -> Result<Self, RedisError> {
        let socket = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let mut last = None;
                let mut connected = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let stream = match (connected, last) {
                    (Some(s), _) => s,
                    (None, Some(e)) => return Err(e.into()),
                    (None, None) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("`{host}` resolves to no address"),
                        )
                        .into());
                    }
                };
                stream.set_nodelay(true)?;
                Socket::Tcp(stream)
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                Socket::Unix(std::os::unix::net::UnixStream::connect(path)?)
            }
            other => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    format!("no pooled read connection to {other}"),
                )
                .into());
            }
        };
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        let reader = BufReader::new(socket.try_clone()?);
        let mut conn = ReadConn {
            writer: socket,
            reader,
            parser: redis::Parser::new(),
        };
        let settings = info.redis_settings();
        let mut hello = redis::cmd("HELLO");
        hello.arg(3);
        if let Some(password) = settings.password() {
            hello
                .arg("AUTH")
                .arg(settings.username().unwrap_or("default"))
                .arg(password);
        }
        conn.request(&hello)?;
        if settings.db() != 0 {
            conn.request(redis::cmd("SELECT").arg(settings.db()))?;
        }
        Ok(conn)
    }

    /// Sends `cmd` and reads its reply (an error reply as an error).
    pub(crate) fn request(&mut self, cmd: &redis::Cmd) -> Result<Value, RedisError> {
        self.send_packed_command(&cmd.get_packed_command())?;
        loop {
            match self.recv_response()? {
                Value::Push { .. } => {}
                Value::ServerError(e) => return Err(e.into()),
                v => return Ok(v),
            }
        }
    }

    /// Writes packed commands.
    pub(crate) fn send_packed_command(&mut self, bytes: &[u8]) -> Result<(), RedisError> {
        self.writer.write_all(bytes)?;
        Ok(())
    }

    /// Reads one reply (or push).
    pub(crate) fn recv_response(&mut self) -> Result<Value, RedisError> {
        self.parser.parse_value(&mut self.reader)
    }

    /// Sets the socket's read timeout.
    pub(crate) fn set_read_timeout(&self, d: Option<Duration>) -> Result<(), RedisError> {
        Ok(self.writer.set_read_timeout(d)?)
    }

    /// Sets the socket's write timeout.
    pub(crate) fn set_write_timeout(&self, d: Option<Duration>) -> Result<(), RedisError> {
        Ok(self.writer.set_write_timeout(d)?)
    }

    /// Whether the server closed this idle connection (or sent something nobody asked for,
    /// which an idle connection of ours never expects): a look at the socket, without a round
    /// trip. Only for a connection that is idle (no request in flight).
    pub(crate) fn closed_while_idle(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        let socket = self.reader.get_mut();
        if socket.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let closed = match socket.read(&mut byte) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            // EOF, or a stray byte (then the connection is out of step: dropped all the same).
            Ok(_) => true,
        };
        socket.set_nonblocking(false).is_err() || closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that accepts one connection, answers `HELLO` with a map, then does what
    /// `then` says with the socket.
    fn server(then: impl FnOnce(TcpStream) + Send + 'static) -> ConnectionInfo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"%1\r\n+server\r\n+redis\r\n").unwrap();
            then(s);
        });
        redis::IntoConnectionInfo::into_connection_info(format!("redis://127.0.0.1:{port}"))
            .unwrap()
    }

    #[test]
    fn an_idle_connection_closed_by_the_server_is_seen_closed_at_once() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let info = server(move |s| {
            let _ = rx.recv();
            drop(s);
        });
        let mut c = ReadConn::connect(&info, Duration::from_secs(2)).unwrap();
        assert!(!c.closed_while_idle(), "open and quiet");
        assert!(!c.closed_while_idle(), "still: the look leaves it blocking");
        tx.send(()).unwrap();
        let start = std::time::Instant::now();
        while !c.closed_while_idle() {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "the close was never seen"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_reply_is_read_through_the_blocking_socket_after_a_look() {
        let info = server(|mut s| {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"+PONG\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        let mut c = ReadConn::connect(&info, Duration::from_secs(2)).unwrap();
        assert!(!c.closed_while_idle());
        let pong = c.request(&redis::cmd("PING")).unwrap();
        assert_eq!(pong, Value::SimpleString("PONG".into()));
    }
}
