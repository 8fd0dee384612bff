//! What services write: a ring buffer of lines per service, fed by one
//! task per output stream, each line also logged through tracing.

use std::{
    collections::VecDeque,
    os::fd::OwnedFd,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::io::{AsyncBufReadExt, BufReader};

/// Longest line kept; the rest is cut.
const MAX_LINE: usize = 4096;

/// The last lines one service wrote (stdout and stderr together).
#[derive(Debug)]
pub struct LogRing {
    capacity: usize,
    lines: Mutex<Lines>,
}

/// The kept lines and how many were ever pushed: the sequence number of
/// the line after the newest, so a follower can ask for what came since.
#[derive(Debug, Default)]
struct Lines {
    kept: VecDeque<String>,
    pushed: u64,
}

impl LogRing {
    /// A ring keeping `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lines: Mutex::new(Lines {
                kept: VecDeque::with_capacity(capacity.min(1024)),
                pushed: 0,
            }),
        }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&self, line: String) {
        if self.capacity == 0 {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        while lines.kept.len() >= self.capacity {
            lines.kept.pop_front();
        }
        lines.kept.push_back(line);
        lines.pushed += 1;
    }

    /// The last `n` lines, oldest first; `n == 0` means all.
    pub fn last(&self, n: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = &lines.kept;
        let n = if n == 0 {
            kept.len()
        } else {
            n.min(kept.len())
        };
        kept.iter().skip(kept.len() - n).cloned().collect()
    }

    /// The kept lines numbered `seq` and later (lines are numbered from 0
    /// in the order pushed), and the number of the next line to come. A
    /// follower passes that number back; lines dropped from the ring
    /// before it asked are skipped.
    pub fn since(&self, seq: u64) -> (u64, Vec<String>) {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let first = lines.pushed - lines.kept.len() as u64;
        let skip = usize::try_from(seq.saturating_sub(first)).unwrap_or(usize::MAX);
        (
            lines.pushed,
            lines.kept.iter().skip(skip).cloned().collect(),
        )
    }
}

/// Reads `fd` line by line into `ring` and the log until EOF.
pub fn follow(service: String, stream: &'static str, fd: OwnedFd, ring: Arc<LogRing>) {
    let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!(service = %service, stream, "cannot follow output: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        let mut reader = BufReader::new(rx);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) => break,
                Ok(_) => {
                    let line = clean(&buf);
                    tracing::info!(service = %service, stream, "{line}");
                    ring.push(line);
                }
                Err(e) => {
                    tracing::warn!(service = %service, stream, "reading output: {e}");
                    break;
                }
            }
        }
    });
}

fn clean(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let mut line = String::from_utf8_lossy(&raw[..raw.len().min(MAX_LINE)]).into_owned();
    if raw.len() > MAX_LINE {
        line.push_str(" [cut]");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_lines() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(format!("line {i}"));
        }
        assert_eq!(ring.last(0), ["line 2", "line 3", "line 4"]);
        assert_eq!(ring.last(2), ["line 3", "line 4"]);
        assert_eq!(ring.last(10).len(), 3);
        let none = LogRing::new(0);
        none.push("x".into());
        assert!(none.last(0).is_empty());
    }

    #[test]
    fn a_follower_gets_each_line_once_and_skips_what_the_ring_dropped() {
        let ring = LogRing::new(3);
        assert_eq!(ring.since(0), (0, vec![]));
        ring.push("a".into());
        ring.push("b".into());
        let (next, lines) = ring.since(0);
        assert_eq!((next, lines), (2, vec!["a".to_string(), "b".into()]));
        assert_eq!(ring.since(next), (2, vec![]));
        for l in ["c", "d", "e", "f"] {
            ring.push(l.into());
        }
        // "c" was dropped before the follower asked again.
        assert_eq!(ring.since(2), (6, vec!["d".into(), "e".into(), "f".into()]));
        assert_eq!(ring.since(5), (6, vec!["f".to_string()]));
    }

    #[test]
    fn lines_are_trimmed_and_cut() {
        assert_eq!(clean(b"hello\r\n"), "hello");
        assert_eq!(clean(b"no newline"), "no newline");
        let long = vec![b'a'; MAX_LINE + 10];
        assert!(clean(&long).ends_with(" [cut]"));
        assert_eq!(clean(b"\xff ok\n"), "\u{fffd} ok");
    }
}
