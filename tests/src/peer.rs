//! TCP peers inside a lab's namespaces, for tests that send real traffic
//! through the router: a server that tells each client the address it
//! sees and then echoes lines, and a client connection. Each socket is
//! made on a thread that entered the namespace, so it lives there.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long a connect or a read may take before it counts as blocked.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `f` on a thread inside network namespace `ns` and returns its
/// result.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.to_owned();
    thread::spawn(move || {
        crate::scratch::enter(&ns)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// A TCP server in a namespace. Each client first reads `peer <ip>\n`,
/// the source address the server saw, then gets every line it sends
/// back. Stops when dropped.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` in `ns`.
    pub fn start(ns: &str, addr: SocketAddr) -> io::Result<Server> {
        let listener = in_netns(ns, move || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        thread::spawn(move || serve(stream, peer));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Server {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nonblocking(false);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    if writeln!(writer, "peer {}", peer.ip()).is_err() {
        return;
    }
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        if writeln!(writer, "{line}").is_err() {
            return;
        }
    }
}

/// A client connection made from a namespace.
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The source address the server saw.
    pub seen_as: String,
}

impl Conn {
    /// Connects from `ns` to `to` and reads the server's `peer` line;
    /// an error when the connection is refused, dropped or times out.
    pub fn open(ns: &str, to: SocketAddr) -> io::Result<Conn> {
        let stream = in_netns(ns, move || TcpStream::connect_timeout(&to, PEER_TIMEOUT))?;
        stream.set_read_timeout(Some(PEER_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let seen_as = line
            .trim()
            .strip_prefix("peer ")
            .ok_or_else(|| io::Error::other(format!("unexpected greeting {line:?}")))?
            .to_owned();
        Ok(Conn {
            reader,
            writer,
            seen_as,
        })
    }

    /// Sends `text` and returns the echo.
    pub fn echo(&mut self, text: &str) -> io::Result<String> {
        writeln!(self.writer, "{text}")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    }
}
