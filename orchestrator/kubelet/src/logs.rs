//! Container output: what a container writes to stdout and stderr, kept by
//! the runtime in a size-capped buffer, and read back the way `kubectl logs`
//! asks for it (`tailLines`, `sinceSeconds`/`sinceTime`, `limitBytes`,
//! `timestamps`, `follow`).
//!
//! [`LogBuffer`] is the runtime's side: lines with the wall-clock time they
//! were written, the oldest dropped once the buffer holds more than its
//! capacity (the kubelet's `containerLogMaxSize` rotation, kept in memory
//! because the built-in runtime's containers live in memory too). It is
//! closed when the container exits, which ends a follower's stream.
//!
//! [`read`] is the reader's side: it applies the [`PodLogOptions`] the API
//! server forwarded (`kubectl logs`' flags) and yields the chunks of the
//! response body.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::Bytes;
use faultline_api::PodLogOptions;
use tokio::sync::Notify;

/// How much output a container keeps by default (the oldest lines go
/// first). Kubernetes rotates at 10 MiB on disk; these buffers live in
/// memory, one per container, also in simulations with thousands of pods.
pub const DEFAULT_LOG_CAPACITY: usize = 64 << 10;

/// Which stream a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When it was written (the environment's wall clock).
    pub wall_ms: u64,
    pub stream: Stream,
    /// The text, without its newline.
    pub text: String,
}

impl Line {
    fn size(&self) -> usize {
        self.text.len() + 1
    }
}

#[derive(Debug)]
struct Inner {
    lines: VecDeque<Line>,
    /// The sequence number of `lines[0]`: line numbers keep counting when
    /// old lines are dropped, so a follower's cursor stays valid.
    first: u64,
    bytes: usize,
    capacity: usize,
    closed: bool,
}

/// A container's output (see the module docs).
#[derive(Debug)]
pub struct LogBuffer {
    inner: RefCell<Inner>,
    grew: Notify,
}

impl Default for LogBuffer {
    fn default() -> LogBuffer {
        LogBuffer::new(DEFAULT_LOG_CAPACITY)
    }
}

impl LogBuffer {
    /// An empty buffer keeping about `capacity` bytes (always the newest
    /// line, however long).
    pub fn new(capacity: usize) -> LogBuffer {
        LogBuffer {
            inner: RefCell::new(Inner {
                lines: VecDeque::new(),
                first: 0,
                bytes: 0,
                capacity,
                closed: false,
            }),
            grew: Notify::new(),
        }
    }

    /// Appends `text` (split at newlines, each part one line) written at
    /// `wall_ms`. Ignored once closed: an exited container writes nothing.
    pub fn write(&self, wall_ms: u64, stream: Stream, text: &str) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.closed {
                return;
            }
            for part in text.split('\n') {
                let line = Line {
                    wall_ms,
                    stream,
                    text: part.to_string(),
                };
                inner.bytes += line.size();
                inner.lines.push_back(line);
            }
            while inner.bytes > inner.capacity && inner.lines.len() > 1 {
                let old = inner.lines.pop_front().expect("more than one line");
                inner.bytes -= old.size();
                inner.first += 1;
            }
        }
        self.grew.notify_waiters();
    }

    /// Marks the end of output (the container exited or was stopped):
    /// followers read what is left and end.
    pub fn close(&self) {
        self.inner.borrow_mut().closed = true;
        self.grew.notify_waiters();
    }

    /// True once [`close`](LogBuffer::close)d.
    pub fn is_closed(&self) -> bool {
        self.inner.borrow().closed
    }

    /// Every line still kept, oldest first.
    pub fn lines(&self) -> Vec<Line> {
        self.inner.borrow().lines.iter().cloned().collect()
    }

    /// The lines from sequence number `from` on (or from the oldest kept,
    /// if `from` was dropped), and the sequence number after them.
    fn since(&self, from: u64) -> (Vec<Line>, u64) {
        let inner = self.inner.borrow();
        let skip = from.saturating_sub(inner.first) as usize;
        let lines: Vec<Line> = inner.lines.iter().skip(skip).cloned().collect();
        (lines, inner.first + inner.lines.len() as u64)
    }

    /// The sequence number of the oldest line kept.
    fn first(&self) -> u64 {
        self.inner.borrow().first
    }
}

/// Reads `log` as `opts` asks: calls `emit` with each chunk of the answer (at
/// most one per batch of lines) until the selection is exhausted, the
/// byte limit is reached, or — when following — the buffer closes.
/// Returns early, with `false`, when `emit` does (the reader left).
pub async fn read<F, Fut>(opts: &PodLogOptions, log: &LogBuffer, mut emit: F) -> bool
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut left = opts.limit_bytes.unwrap_or(u64::MAX);
    let (lines, mut next) = log.since(log.first());
    let selected: Vec<&Line> = {
        let recent = lines
            .iter()
            .filter(|l| opts.since_ms.is_none_or(|s| l.wall_ms >= s));
        let recent: Vec<&Line> = recent.collect();
        let tail = opts.tail_lines.map_or(recent.len(), |n| n as usize);
        recent[recent.len().saturating_sub(tail)..].to_vec()
    };
    let mut batch = Vec::new();
    for l in selected {
        render(opts, l, &mut batch);
    }
    loop {
        if !batch.is_empty() {
            if (batch.len() as u64) >= left {
                batch.truncate(left as usize);
                return emit(Bytes::from(batch)).await;
            }
            left -= batch.len() as u64;
            if !emit(Bytes::from(std::mem::take(&mut batch))).await {
                return false;
            }
        }
        if !opts.follow {
            return true;
        }
        // Register for the wake-up before looking, so a line written
        // between the look and the wait is not missed.
        let grew = log.grew.notified();
        tokio::pin!(grew);
        grew.as_mut().enable();
        let (lines, after) = log.since(next);
        next = after;
        for l in &lines {
            render(opts, l, &mut batch);
        }
        if batch.is_empty() {
            if log.is_closed() {
                return true;
            }
            grew.await;
        }
    }
}

fn render(opts: &PodLogOptions, line: &Line, out: &mut Vec<u8>) {
    if opts.timestamps {
        out.extend_from_slice(rfc3339_nanos(line.wall_ms).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(line.text.as_bytes());
    out.push(b'\n');
}

/// `2026-12-07T15:42:08.123000000Z`: the time format of `kubectl logs
/// --timestamps` (RFC 3339 with nanoseconds).
pub fn rfc3339_nanos(wall_ms: u64) -> String {
    let micros = faultline_api::time::rfc3339_micros(wall_ms);
    // `...08.123000Z` → `...08.123000000Z`
    match micros.strip_suffix('Z') {
        Some(head) if head.contains('.') => format!("{head}000Z"),
        Some(head) => format!("{head}.000000000Z"),
        None => micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(q: &[(&str, &str)]) -> PodLogOptions {
        PodLogOptions::parse(q.iter().copied(), 100_000).unwrap()
    }

    async fn collect(o: &PodLogOptions, log: &LogBuffer) -> String {
        let out = RefCell::new(Vec::new());
        read(o, log, |b| {
            out.borrow_mut().extend_from_slice(&b);
            async { true }
        })
        .await;
        String::from_utf8(out.into_inner()).unwrap()
    }

    fn buffer() -> LogBuffer {
        let log = LogBuffer::new(1 << 10);
        log.write(10_000, Stream::Stdout, "one");
        log.write(50_000, Stream::Stderr, "two\nthree");
        log.write(90_000, Stream::Stdout, "four");
        log
    }

    #[tokio::test]
    async fn selects_by_tail_time_and_bytes() {
        let log = buffer();
        assert_eq!(collect(&opts(&[]), &log).await, "one\ntwo\nthree\nfour\n");
        assert_eq!(
            collect(&opts(&[("tailLines", "2")]), &log).await,
            "three\nfour\n"
        );
        assert_eq!(collect(&opts(&[("tailLines", "0")]), &log).await, "");
        // 100 s now, 60 s back: lines from 40 s on.
        assert_eq!(
            collect(&opts(&[("sinceSeconds", "60")]), &log).await,
            "two\nthree\nfour\n"
        );
        assert_eq!(
            collect(&opts(&[("limitBytes", "6")]), &log).await,
            "one\ntw"
        );
        assert_eq!(
            collect(&opts(&[("timestamps", "true"), ("tailLines", "1")]), &log).await,
            "1970-01-01T00:01:30.000000000Z four\n"
        );
    }

    #[test]
    fn old_lines_go_first_and_the_newest_always_stays() {
        let log = LogBuffer::new(10);
        log.write(1, Stream::Stdout, "aaaa");
        log.write(2, Stream::Stdout, "bbbb");
        log.write(3, Stream::Stdout, "cccc");
        let texts: Vec<String> = log.lines().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["bbbb", "cccc"]);
        log.write(4, Stream::Stdout, &"x".repeat(50));
        assert_eq!(log.lines().len(), 1);
        log.close();
        log.write(5, Stream::Stdout, "after the end");
        assert_eq!(log.lines().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_gets_new_lines_and_ends_with_the_container() {
        let log = std::rc::Rc::new(buffer());
        let o = opts(&[("follow", "true"), ("tailLines", "1")]);
        let writer = {
            let log = log.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                log.write(95_000, Stream::Stdout, "five");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                log.close();
            }
        };
        let (got, ()) = tokio::join!(collect(&o, &log), writer);
        assert_eq!(got, "four\nfive\n");
    }
}
