//! Child processes and scratch space: three replicas as child processes, killed and cleaned up when dropped.

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::STARTUP_TIMEOUT;

/// A temporary directory, removed when dropped.
pub(super) struct Scratch {
    pub(super) path: PathBuf,
}

impl Scratch {
    pub(super) fn new() -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).ok();
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Three replicas as child processes: killed (and their data removed) when
/// dropped, also on an error or a panic.
pub(super) struct Cluster {
    name: &'static str,
    dir: PathBuf,
    children: Vec<(String, Child, PathBuf)>,
}

impl Cluster {
    pub(super) fn new(name: &'static str, dir: &Path) -> Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Cluster {
            name,
            dir: dir.to_path_buf(),
            children: Vec::new(),
        })
    }

    /// Starts `cmd` with its output going to `<dir>/<label>.log`.
    pub(super) fn spawn(&mut self, label: &str, cmd: &mut Command) -> Result<()> {
        let log = self.dir.join(format!("{label}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {label}: {cmd:?}"))?;
        self.children.push((label.to_string(), child, log));
        Ok(())
    }

    /// Fails if any child has exited.
    fn check_alive(&mut self) -> Result<()> {
        for (label, child, _) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("{} {label} exited early ({status})", self.name);
            }
        }
        Ok(())
    }

    /// CPU time (user + system) the children have used so far, from
    /// `/proc/PID/stat` (assumes the usual 100 clock ticks per second).
    pub(super) fn cpu_seconds(&self) -> f64 {
        let ticks: u64 = self
            .children
            .iter()
            .filter_map(|(_, child, _)| {
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).ok()?;
                // Fields after the parenthesised command name; utime and
                // stime are fields 14 and 15 of the whole line.
                let rest = &stat[stat.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .sum();
        ticks as f64 / 100.0
    }

    /// The last lines of every child's log, for error messages.
    pub(super) fn log_tails(&self) -> String {
        let mut out = format!("{} logs (last lines):", self.name);
        for (label, _, log) in &self.children {
            let lines: Vec<String> = File::open(log)
                .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
                .unwrap_or_default();
            out.push_str(&format!("\n--- {label} ---"));
            for l in &lines[lines.len().saturating_sub(8)..] {
                out.push('\n');
                out.push_str(l);
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.children {
            let _ = child.kill();
        }
        for (_, child, _) in &mut self.children {
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` distinct free TCP ports on 127.0.0.1 (held together while chosen).
pub(super) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("choosing free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Polls `probe` until it yields a value, the children die, or time runs out.
pub(super) async fn wait_for<T, F, Fut>(
    cluster: &mut Cluster,
    what: &str,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        cluster
            .check_alive()
            .map_err(|e| e.context(cluster.log_tails()))?;
        if let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(3), probe()).await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{what} not ready after {STARTUP_TIMEOUT:?}\n{}",
                cluster.log_tails()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
