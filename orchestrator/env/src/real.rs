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
    env_with_net(host, seed, data_dir, RealNet::new(bind_ip), observer)
}

/// Builds a real environment on a given [`RealNet`] (one with names or a
/// source address of its own).
pub fn env_with_net(
    host: &str,
    seed: u64,
    data_dir: &Path,
    net: RealNet,
    observer: Rc<dyn Observer>,
) -> io::Result<Env> {
    std::fs::create_dir_all(data_dir)?;
    Ok(Env::new(
        host,
        seed,
        Rc::new(net),
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

/// Like [`LogObserver`], and prints each observation too, as a line
/// [`parse_observation`] reads back: how a real run's checkers (`faultline
/// real run`) learn what the masters and nodes in its containers observed,
/// from their logs.
pub struct ObservationLog;

impl Observer for ObservationLog {
    fn trace(&self, host: &str, line: fmt::Arguments<'_>) {
        LogObserver.trace(host, line)
    }

    fn observe(&self, host: &str, observation: crate::Observation) {
        let ms = RealClock.wall_ms();
        eprintln!(
            "{}.{:03} {host} {OBS} {}",
            ms / 1000,
            ms % 1000,
            observation_text(&observation)
        );
    }
}

/// The word that marks an observation line.
const OBS: &str = "obs";

fn observation_text(o: &crate::Observation) -> String {
    use crate::Observation::*;
    match o {
        RaftLeader { group, node, term } => {
            format!("raft-leader group={group} node={node} term={term}")
        }
        RaftApplied {
            group,
            node,
            index,
            term,
            digest,
        } => format!("raft-applied group={group} node={node} index={index} term={term} digest={digest}"),
        LeaseAcquired { lease, transitions } => {
            format!("lease-acquired lease={lease} transitions={transitions}")
        }
        ContainerStarted {
            namespace,
            pod,
            pod_uid,
            container,
            id,
        } => format!(
            "container-started namespace={namespace} pod={pod} uid={pod_uid} container={container} id={id}"
        ),
        ContainerEnded { id } => format!("container-ended id={id}"),
    }
}

/// Reads a line [`ObservationLog`] printed: (wall-clock ms, host, the
/// observation); `None` for any other line.
pub fn parse_observation(line: &str) -> Option<(u64, String, crate::Observation)> {
    use crate::Observation::*;
    let mut words = line.split_whitespace();
    let (secs, ms) = words.next()?.split_once('.')?;
    let wall_ms = secs.parse::<u64>().ok()? * 1000 + ms.parse::<u64>().ok()?;
    let host = words.next()?.to_string();
    if words.next()? != OBS {
        return None;
    }
    let kind = words.next()?;
    let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
    let text = |k: &str| fields.get(k).map(|v| v.to_string());
    let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
    let o = match kind {
        "raft-leader" => RaftLeader {
            group: num("group")?,
            node: num("node")?,
            term: num("term")?,
        },
        "raft-applied" => RaftApplied {
            group: num("group")?,
            node: num("node")?,
            index: num("index")?,
            term: num("term")?,
            digest: num("digest")?,
        },
        "lease-acquired" => LeaseAcquired {
            lease: text("lease")?,
            transitions: num("transitions")?,
        },
        "container-started" => ContainerStarted {
            namespace: text("namespace")?,
            pod: text("pod")?,
            pod_uid: text("uid")?,
            container: text("container")?,
            id: text("id")?,
        },
        "container-ended" => ContainerEnded { id: text("id")? },
        _ => return None,
    };
    Some((wall_ms, host, o))
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
    /// Host names this process resolves itself (as `/etc/hosts` would):
    /// a real run's observers on the machine reach the containers by the
    /// names the scenario gives them.
    names: BTreeMap<String, String>,
    /// The address connections leave from, when not the machine's choice.
    source_ip: Option<std::net::IpAddr>,
}

impl RealNet {
    /// Listens on `bind_ip`, resolves through the system.
    pub fn new(bind_ip: &str) -> RealNet {
        RealNet {
            bind_ip: bind_ip.to_string(),
            names: BTreeMap::new(),
            source_ip: None,
        }
    }

    /// Resolves these names (name -> IP) before asking the system.
    pub fn with_names(mut self, names: BTreeMap<String, String>) -> RealNet {
        self.names = names;
        self
    }

    /// Connects from this address (one of the machine's).
    pub fn with_source(mut self, ip: std::net::IpAddr) -> RealNet {
        self.source_ip = Some(ip);
        self
    }

    fn resolve(&self, addr: &str) -> String {
        match addr.rsplit_once(':') {
            Some((host, port)) => match self.names.get(host) {
                Some(ip) => format!("{ip}:{port}"),
                None => addr.to_string(),
            },
            None => addr.to_string(),
        }
    }
}

#[async_trait(?Send)]
impl Net for RealNet {
    async fn connect(&self, addr: &str) -> io::Result<BoxConn> {
        let addr = self.resolve(addr);
        let stream = match self.source_ip {
            None => TcpStream::connect(&addr).await?,
            Some(ip) => {
                let to = tokio::net::lookup_host(&addr)
                    .await?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"))
                    })?;
                let socket = if to.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
                socket.connect(to).await?
            }
        };
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

    #[test]
    fn observation_lines_read_back() {
        use crate::Observation::*;
        let all = [
            RaftLeader {
                group: 1,
                node: 2,
                term: 7,
            },
            RaftApplied {
                group: 1,
                node: 3,
                index: 42,
                term: 7,
                digest: u64::MAX,
            },
            LeaseAcquired {
                lease: "kube-system/kube-scheduler".into(),
                transitions: 3,
            },
            ContainerStarted {
                namespace: "default".into(),
                pod: "web-abc12".into(),
                pod_uid: "u-1".into(),
                container: "web".into(),
                id: "c-9".into(),
            },
            ContainerEnded { id: "c-9".into() },
        ];
        for o in all {
            let line = format!("1700000000.042 m1 obs {}", observation_text(&o));
            assert_eq!(
                parse_observation(&line),
                Some((1_700_000_000_042, "m1".to_string(), o))
            );
        }
        assert_eq!(
            parse_observation("1700000000.042 m1 raft: became leader"),
            None
        );
        assert_eq!(
            parse_observation("1700000000.042 m1 obs raft-leader group=x"),
            None
        );
    }
}
