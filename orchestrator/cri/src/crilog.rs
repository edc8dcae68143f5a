//! Container output on disk, in the format Kubernetes' container runtimes
//! write (the CRI log format): one record per line,
//!
//! ```text
//! 2026-12-07T18:40:01.123456789Z stdout F GET / HTTP/1.1 200
//! ```
//!
//! the time it was read, the stream, `F` for a full line or `P` for a part
//! of a longer one (lines are cut at [`MAX_RECORD`] bytes), and the text.
//!
//! [`RotatingLog`] writes it (the shim, for the process runtime): when the
//! file would pass its size cap, it becomes `NAME.1` (replacing the one
//! before) and a new file starts, so a container's output never takes more
//! than twice the cap, however much it writes. [`Tail`] reads it back into
//! the kubelet's [`LogBuffer`], following the rotation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use faultline_kubelet::logs::Stream;
use faultline_kubelet::LogBuffer;

/// The longest text one record carries; longer lines are cut into `P`
/// records (Kubernetes' runtimes cut at 16 KiB too).
pub const MAX_RECORD: usize = 16 << 10;

/// Kubernetes' `containerLogMaxSize` default: the file rotates at 10 MiB.
pub const DEFAULT_MAX_FILE: u64 = 10 << 20;

/// The rotated file of `path` (`log` → `log.1`).
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// One record, newline included.
pub fn record(timestamp: &str, stream: Stream, full: bool, text: &[u8]) -> Vec<u8> {
    let stream = match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let tag = if full { 'F' } else { 'P' };
    let mut out = Vec::with_capacity(timestamp.len() + text.len() + 12);
    out.extend_from_slice(format!("{timestamp} {stream} {tag} ").as_bytes());
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// A record read back: `None` for a line that is not one.
pub fn parse(line: &str) -> Option<(u64, Stream, bool, &str)> {
    let mut parts = line.splitn(4, ' ');
    let at = faultline_api::time::parse_ms(parts.next()?)?;
    let stream = match parts.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        "F" => true,
        "P" => false,
        _ => return None,
    };
    Some((at, stream, full, parts.next().unwrap_or("")))
}

/// A log file capped at `max` bytes, rotated once (see the module docs).
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl RotatingLog {
    /// Opens (appends to) `path`.
    pub fn open(path: &Path, max: u64) -> io::Result<RotatingLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            file,
            size,
            max: max.max(MAX_RECORD as u64 * 2),
        })
    }

    /// Appends one record, rotating first when it would not fit.
    pub fn write(&mut self, record: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + record.len() as u64 > self.max {
            fs::rename(&self.path, rotated(&self.path))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(record)?;
        self.size += record.len() as u64;
        Ok(())
    }
}

/// Cuts a stream of output into records: whole lines, and parts of lines
/// longer than [`MAX_RECORD`].
#[derive(Default)]
pub struct LineCutter {
    pending: Vec<u8>,
}

impl LineCutter {
    /// Feeds `bytes`; calls `emit(text, full)` for each record they
    /// complete.
    pub fn feed(&mut self, bytes: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        for &b in bytes {
            if b == b'\n' {
                emit(&self.pending, true);
                self.pending.clear();
            } else {
                self.pending.push(b);
                if self.pending.len() == MAX_RECORD {
                    emit(&self.pending, false);
                    self.pending.clear();
                }
            }
        }
    }

    /// The end of the stream: what is left is a (last) full line.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, true);
            self.pending.clear();
        }
    }
}

/// Follows a [`RotatingLog`]'s file into a [`LogBuffer`].
pub struct Tail {
    path: PathBuf,
    /// The file being read and its inode; `None` before it exists.
    file: Option<(File, u64)>,
    /// Bytes of an unfinished record.
    partial: Vec<u8>,
    /// Text of `P` records waiting for their `F`.
    joined: String,
}

impl Tail {
    /// A reader of `path`, starting with its rotated predecessor when
    /// there is one (a kubelet adopting a running container reads both).
    pub fn new(path: &Path) -> Tail {
        let old = rotated(path);
        let file = File::open(&old)
            .ok()
            .and_then(|f| Some((f.metadata().ok()?.ino(), f)))
            .map(|(ino, f)| (f, ino));
        Tail {
            path: path.to_path_buf(),
            file,
            partial: Vec::new(),
            joined: String::new(),
        }
    }

    /// Reads what was written since the last call into `log`, switching to
    /// the new file when the one it reads was rotated away.
    pub fn poll(&mut self, log: &LogBuffer) -> io::Result<()> {
        loop {
            if self.file.is_none() {
                match File::open(&self.path) {
                    Ok(f) => {
                        let ino = f.metadata()?.ino();
                        self.file = Some((f, ino));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            let (file, ino) = self.file.as_mut().expect("opened above");
            let ino = *ino;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            self.consume(&bytes, log);
            let current = fs::metadata(&self.path).map(|m| m.ino()).ok();
            match current {
                // Rotated: the file held is complete (the writer moved
                // on); read the new one from its start.
                Some(now) if now != ino => {
                    self.file = None;
                    self.partial.clear();
                }
                // The next call reads on from where this one stopped.
                _ => return Ok(()),
            }
        }
    }

    fn consume(&mut self, bytes: &[u8], log: &LogBuffer) {
        self.partial.extend_from_slice(bytes);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in String::from_utf8_lossy(&complete).lines() {
            let Some((at, stream, full, text)) = parse(line) else {
                continue;
            };
            if full {
                if self.joined.is_empty() {
                    log.write(at, stream, text);
                } else {
                    self.joined.push_str(text);
                    log.write(at, stream, &self.joined);
                    self.joined.clear();
                }
            } else {
                self.joined.push_str(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(log: &LogBuffer) -> Vec<String> {
        log.lines().into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn records_round_trip() {
        let r = record(
            "2026-12-07T18:40:01.123456789Z",
            Stream::Stderr,
            true,
            b"a b",
        );
        let line = String::from_utf8(r).unwrap();
        let (at, stream, full, text) = parse(line.trim_end()).unwrap();
        assert_eq!(at, 1_796_668_801_123);
        assert_eq!((stream, full, text), (Stream::Stderr, true, "a b"));
        assert!(parse("not a record").is_none());
    }

    #[test]
    fn long_lines_are_cut_and_joined_again() {
        let mut cut = LineCutter::default();
        let mut out = Vec::new();
        let long = vec![b'x'; MAX_RECORD + 10];
        cut.feed(&long, &mut |t, full| out.push((t.len(), full)));
        cut.feed(b"\nend", &mut |t, full| out.push((t.len(), full)));
        cut.finish(&mut |t, full| out.push((t.len(), full)));
        assert_eq!(out, vec![(MAX_RECORD, false), (10, true), (3, true)]);
    }

    #[test]
    fn the_file_stays_under_twice_its_cap_and_the_tail_follows_it() {
        let dir = std::env::temp_dir().join(format!("crilog-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut w = RotatingLog::open(&path, 64 << 10).unwrap();
        let log = LogBuffer::new(1 << 20);
        let mut tail = Tail::new(&path);
        let ts = "2026-12-07T18:40:01.000000000Z";
        for i in 0..20_000 {
            w.write(&record(
                ts,
                Stream::Stdout,
                true,
                format!("line {i}").as_bytes(),
            ))
            .unwrap();
            if i % 1000 == 0 {
                tail.poll(&log).unwrap();
            }
        }
        tail.poll(&log).unwrap();
        let total =
            fs::metadata(&path).unwrap().len() + fs::metadata(rotated(&path)).unwrap().len();
        assert!(total <= 128 << 10, "{total} bytes on disk");
        let got = texts(&log);
        assert_eq!(got.len(), 20_000, "every line read across rotations");
        assert_eq!(got.last().unwrap(), "line 19999");
        // A new reader (a restarted kubelet) starts from the rotated file.
        let again = LogBuffer::new(1 << 20);
        Tail::new(&path).poll(&again).unwrap();
        assert!(texts(&again).len() > 1000);
        assert_eq!(texts(&again).last().unwrap(), "line 19999");
        fs::remove_dir_all(&dir).unwrap();
    }
}
