//! The real environment: `tokio::net` sockets, files with `fdatasync`, the
//! system clock. This module is the one place allowed to touch them.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::{BoxConn, Clock, Disk, Env, Listener, Net, NullObserver, Observer};

/// Builds a real environment for `host`, keeping its files under `data_dir`.
pub fn env(host: &str, seed: u64, data_dir: &Path, bind_ip: &str) -> io::Result<Env> {
    env_with_observer(host, seed, data_dir, bind_ip, Rc::new(NullObserver))
}

/// Builds a real environment with a custom observer (for logging traces).
pub fn env_with_observer(
    host: &str,
    seed: u64,
    data_dir: &Path,
    bind_ip: &str,
    observer: Rc<dyn Observer>,
) -> io::Result<Env> {
    std::fs::create_dir_all(data_dir)?;
    Ok(Env::new(
        host,
        seed,
        Rc::new(RealNet {
            bind_ip: bind_ip.to_string(),
        }),
        Rc::new(RealDisk::new(data_dir)),
        Rc::new(RealClock),
        observer,
    ))
}

/// A seed from the operating system's randomness, for a real process that
/// was given none: two processes must not share one, or their store
/// clients would draw the same client ids (and each other's requests would
/// look like duplicates).
pub fn random_seed() -> io::Result<u64> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// The seed of a real host: `seed` mixed with the host's name (so hosts
/// started with one seed still draw apart), or, when none is given, one
/// from the operating system's randomness.
pub fn seed_for(host: &str, seed: Option<u64>) -> io::Result<u64> {
    match seed {
        Some(s) => Ok(crate::host_seed(s, host)),
        None => random_seed(),
    }
}

/// Prints a real host's trace lines on stderr, each after the wall-clock
/// time in milliseconds since the epoch and the host's name: a real
/// process's log. Observations (the simulator's checkers' food) are
/// dropped.
pub struct LogObserver;

impl Observer for LogObserver {
    fn trace(&self, host: &str, line: fmt::Arguments<'_>) {
        let ms = RealClock.wall_ms();
        eprintln!("{}.{:03} {host} {line}", ms / 1000, ms % 1000);
    }

    fn observe(&self, _host: &str, _observation: crate::Observation) {}
}

/// Runs `fut` to completion on a current-thread runtime inside a
/// `LocalSet`, the way every real role runs: one thread, tasks spawned
/// with [`Env::spawn`] beside it.
pub fn block_on_local<F: std::future::Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime");
    tokio::task::LocalSet::new().block_on(&rt, fut)
}

/// The system clock.
pub struct RealClock;

impl Clock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// TCP through `tokio::net`.
pub struct RealNet {
    bind_ip: String,
}

#[async_trait(?Send)]
impl Net for RealNet {
    async fn connect(&self, addr: &str) -> io::Result<BoxConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Box::pin(stream))
    }

    async fn bind(&self, port: u16) -> io::Result<Box<dyn Listener>> {
        let listener = TcpListener::bind((self.bind_ip.as_str(), port)).await?;
        Ok(Box::new(RealListener { listener }))
    }

    /// On one machine, pods get loopback addresses (`127.0.x.y`: Linux
    /// routes all of 127/8 to `lo`).
    async fn bind_ip(&self, ip: &str, port: u16) -> io::Result<Box<dyn Listener>> {
        let listener = TcpListener::bind((ip, port)).await?;
        Ok(Box::new(RealListener { listener }))
    }
}

struct RealListener {
    listener: TcpListener,
}

#[async_trait(?Send)]
impl Listener for RealListener {
    async fn accept(&mut self) -> io::Result<(BoxConn, String)> {
        let (stream, peer) = self.listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((Box::pin(stream), peer.to_string()))
    }
}

/// Files under a directory. Blocking calls run on tokio's blocking pool so a
/// slow `fdatasync` does not stall the host's network tasks.
pub struct RealDisk {
    root: PathBuf,
    open: RefCell<BTreeMap<String, Arc<File>>>,
}

impl RealDisk {
    /// A disk rooted at `root` (created on first write).
    pub fn new(root: &Path) -> RealDisk {
        RealDisk {
            root: root.to_path_buf(),
            open: RefCell::new(BTreeMap::new()),
        }
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if name.is_empty() || name.starts_with('/') || name.split('/').any(|c| c == "..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad file name {name:?}"),
            ));
        }
        Ok(self.root.join(name))
    }

    fn file(&self, name: &str) -> io::Result<Arc<File>> {
        if let Some(f) = self.open.borrow().get(name) {
            return Ok(f.clone());
        }
        let path = self.path(name)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let existed = path.exists();
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?,
        );
        if !existed {
            // A new file's directory entry is only durable once the
            // directory is synced: without this, a power loss could lose a
            // freshly created (and fsynced) log segment.
            sync_dir(&path)?;
        }
        self.open.borrow_mut().insert(name.to_string(), f.clone());
        Ok(f)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("disk task failed: {e}")))?
}

fn sync_dir(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[async_trait(?Send)]
impl Disk for RealDisk {
    async fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let p = self.path(path)?;
        blocking(move || std::fs::read(p)).await
    }

    async fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        let f = self.file(path)?;
        let data = data.to_vec();
        blocking(move || f.write_all_at(&data, offset)).await
    }

    async fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        let f = self.file(path)?;
        blocking(move || f.set_len(len)).await
    }

    async fn sync(&self, path: &str) -> io::Result<()> {
        let f = self.file(path)?;
        blocking(move || f.sync_data()).await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (pf, pt) = (self.path(from)?, self.path(to)?);
        {
            let mut open = self.open.borrow_mut();
            open.remove(from);
            open.remove(to);
        }
        blocking(move || {
            if let Some(parent) = pt.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&pf, &pt)?;
            sync_dir(&pt)
        })
        .await
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        let p = self.path(path)?;
        self.open.borrow_mut().remove(path);
        blocking(move || match std::fs::remove_file(&p) {
            Ok(()) => sync_dir(&p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        out.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn len(&self, path: &str) -> io::Result<u64> {
        let p = self.path(path)?;
        blocking(move || Ok(std::fs::metadata(p)?.len())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn real_disk_round_trip() {
        let dir = std::env::temp_dir().join(format!("faultline-env-test-{}", std::process::id()));
        let disk = RealDisk::new(&dir);
        disk.write_at("a/b.log", 0, b"hello").await.unwrap();
        disk.write_at("a/b.log", 5, b" world").await.unwrap();
        disk.sync("a/b.log").await.unwrap();
        assert_eq!(disk.read("a/b.log").await.unwrap(), b"hello world");
        assert_eq!(disk.len("a/b.log").await.unwrap(), 11);
        disk.rename("a/b.log", "c.log").await.unwrap();
        assert_eq!(disk.list().await.unwrap(), vec!["c.log".to_string()]);
        disk.remove("c.log").await.unwrap();
        disk.remove("c.log").await.unwrap();
        assert!(disk.read("c.log").await.is_err());
        assert!(disk.write_at("../x", 0, b"no").await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
