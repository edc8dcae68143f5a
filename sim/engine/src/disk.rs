//! The simulated disk: it outlives its host's crashes and misbehaves on
//! demand.
//!
//! Each file keeps its current bytes plus an undo log of the writes made
//! since its last `sync`. A process crash keeps everything (the kernel still
//! has the page cache); a power loss persists a random prefix of the
//! unsynced writes, may tear the first write it drops at a sector boundary,
//! and undoes the rest. Faults: bit flips in stored data, ENOSPC past a
//! capacity, EIO, slow I/O, an fsync that lies, and losing the whole disk.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use async_trait::async_trait;
use faultline_env::Disk;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::trace::Trace;

const SECTOR: usize = 512;

/// Faults currently switched on.
#[derive(Debug, Clone, Default)]
pub struct DiskFaults {
    /// Every operation fails with EIO.
    pub eio: bool,
    /// Writes that would grow the disk past this many bytes fail with ENOSPC.
    pub capacity: Option<u64>,
    /// Every operation takes this long first.
    pub slow: Option<Duration>,
    /// `sync` returns success without making anything durable.
    pub lying_fsync: bool,
}

/// What the undo log must restore for one unsynced change.
#[derive(Clone)]
enum Undo {
    /// `write_at(offset, data)` replaced `old` (the bytes before the old end
    /// of file) and possibly grew the file from `old_len`.
    Write {
        offset: usize,
        old: Vec<u8>,
        old_len: usize,
        written: usize,
    },
    /// `set_len` changed the length from `old_len`, cutting `tail` if it shrank.
    SetLen { old_len: usize, tail: Vec<u8> },
}

#[derive(Default, Clone)]
struct SimFile {
    data: Vec<u8>,
    undo: Vec<Undo>,
}

impl SimFile {
    fn write(&mut self, offset: usize, bytes: &[u8]) {
        let old_len = self.data.len();
        let end = offset + bytes.len();
        let old = self.data[offset.min(old_len)..end.min(old_len)].to_vec();
        self.undo.push(Undo::Write {
            offset,
            old,
            old_len,
            written: bytes.len(),
        });
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(bytes);
    }

    fn set_len(&mut self, len: usize) {
        let old_len = self.data.len();
        let tail = self.data[len.min(old_len)..].to_vec();
        self.undo.push(Undo::SetLen { old_len, tail });
        self.data.resize(len, 0);
    }

    /// Reverts one change (the newest not yet reverted). For a write, the
    /// first `keep` bytes stay (a torn write); 0 reverts it entirely.
    fn revert(&mut self, u: &Undo, keep: usize) {
        match u {
            Undo::Write {
                offset,
                old,
                old_len,
                written,
            } => {
                let keep = keep.min(*written);
                if keep < old.len() {
                    self.data[offset + keep..offset + old.len()].copy_from_slice(&old[keep..]);
                }
                self.data.truncate((*old_len).max(offset + keep));
            }
            Undo::SetLen { old_len, tail } => {
                if self.data.len() < *old_len {
                    self.data.extend_from_slice(tail);
                } else {
                    self.data.truncate(*old_len);
                }
            }
        }
    }

    fn power_loss(&mut self, rng: &mut ChaCha8Rng) -> (usize, usize) {
        let n = self.undo.len();
        if n == 0 {
            return (0, 0);
        }
        // Writes may reach the platter in order up to a random point.
        let kept = rng.random_range(0..=n);
        let undo = std::mem::take(&mut self.undo);
        let mut torn = 0;
        for (i, u) in undo.iter().enumerate().rev() {
            if i < kept {
                break;
            }
            let keep = match u {
                Undo::Write { written, .. }
                    if i == kept && *written > SECTOR && rng.random_bool(0.5) =>
                {
                    torn = 1;
                    rng.random_range(1..written.div_ceil(SECTOR)) * SECTOR
                }
                _ => 0,
            };
            self.revert(u, keep);
        }
        (n - kept, torn)
    }
}

/// A disk that survives its host's crashes.
pub struct SimDisk {
    host: String,
    files: RefCell<BTreeMap<String, SimFile>>,
    faults: RefCell<DiskFaults>,
    rng: RefCell<ChaCha8Rng>,
    trace: Rc<Trace>,
}

impl SimDisk {
    /// An empty disk for `host`; its faults draw from `rng`.
    pub fn new(host: &str, rng: ChaCha8Rng, trace: Rc<Trace>) -> SimDisk {
        SimDisk {
            host: host.to_string(),
            files: RefCell::new(BTreeMap::new()),
            faults: RefCell::new(DiskFaults::default()),
            rng: RefCell::new(rng),
            trace,
        }
    }

    /// A copy of this disk (files, faults, random stream) that writes to the
    /// same trace: what a fault would do to it, without doing it.
    pub fn fork(&self) -> SimDisk {
        SimDisk {
            host: self.host.clone(),
            files: RefCell::new(self.files.borrow().clone()),
            faults: RefCell::new(self.faults.borrow().clone()),
            rng: RefCell::new(self.rng.borrow().clone()),
            trace: self.trace.clone(),
        }
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: DiskFaults) {
        self.trace
            .line(&self.host, format_args!("disk faults {faults:?}"));
        *self.faults.borrow_mut() = faults;
    }

    /// The active faults.
    pub fn faults(&self) -> DiskFaults {
        self.faults.borrow().clone()
    }

    /// Power loss: unsynced writes are lost (a random prefix survives, the
    /// first lost write may be torn). Returns how many writes were lost.
    pub fn power_loss(&self) -> usize {
        let mut rng = self.rng.borrow_mut();
        let mut lost = 0;
        let mut torn = 0;
        for file in self.files.borrow_mut().values_mut() {
            let (l, t) = file.power_loss(&mut rng);
            lost += l;
            torn += t;
        }
        self.trace.line(
            &self.host,
            format_args!("disk power loss: {lost} unsynced writes lost, {torn} torn"),
        );
        lost
    }

    /// Flips one random bit in a random byte of a random non-empty file whose
    /// name starts with `prefix`. Returns `file@offset` or None if there is
    /// no such file.
    pub fn corrupt(&self, prefix: &str) -> Option<String> {
        let mut files = self.files.borrow_mut();
        let names: Vec<String> = files
            .iter()
            .filter(|(n, f)| n.starts_with(prefix) && !f.data.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        if names.is_empty() {
            return None;
        }
        let mut rng = self.rng.borrow_mut();
        let name = names[rng.random_range(0..names.len())].clone();
        let file = files.get_mut(&name).expect("listed above");
        let offset = rng.random_range(0..file.data.len());
        let bit = rng.random_range(0..8);
        file.data[offset] ^= 1 << bit;
        // The medium itself is damaged: undoing a later write must not heal it.
        for u in file.undo.iter_mut() {
            if let Undo::Write { offset: o, old, .. } = u {
                if offset >= *o && offset < *o + old.len() {
                    old[offset - *o] ^= 1 << bit;
                }
            }
        }
        let at = format!("{name}@{offset} bit {bit}");
        self.trace
            .line(&self.host, format_args!("disk corrupt {at}"));
        Some(at)
    }

    /// Loses every file (the disk was replaced).
    pub fn wipe(&self) {
        self.files.borrow_mut().clear();
        self.trace.line(&self.host, format_args!("disk wiped"));
    }

    /// Total bytes stored.
    pub fn used(&self) -> u64 {
        self.files
            .borrow()
            .values()
            .map(|f| f.data.len() as u64)
            .sum()
    }

    async fn gate(&self, op: &str, path: &str) -> io::Result<()> {
        let slow = self.faults.borrow().slow;
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        if self.faults.borrow().eio {
            return Err(io::Error::other(format!(
                "EIO: {op} {path} on {}",
                self.host
            )));
        }
        Ok(())
    }

    fn check_space(&self, path: &str, new_end: u64) -> io::Result<()> {
        let Some(cap) = self.faults.borrow().capacity else {
            return Ok(());
        };
        let files = self.files.borrow();
        let current = files.get(path).map(|f| f.data.len() as u64).unwrap_or(0);
        let growth = new_end.saturating_sub(current);
        let used: u64 = files.values().map(|f| f.data.len() as u64).sum();
        if growth > 0 && used + growth > cap {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "ENOSPC: {path} on {} ({used} of {cap} bytes used)",
                    self.host
                ),
            ));
        }
        Ok(())
    }
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path}: no such file"))
}

#[async_trait(?Send)]
impl Disk for SimDisk {
    async fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.gate("read", path).await?;
        self.files
            .borrow()
            .get(path)
            .map(|f| f.data.clone())
            .ok_or_else(|| not_found(path))
    }

    async fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        self.gate("write", path).await?;
        self.check_space(path, offset + data.len() as u64)?;
        self.files
            .borrow_mut()
            .entry(path.to_string())
            .or_default()
            .write(offset as usize, data);
        Ok(())
    }

    async fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        self.gate("set_len", path).await?;
        self.check_space(path, len)?;
        self.files
            .borrow_mut()
            .entry(path.to_string())
            .or_default()
            .set_len(len as usize);
        Ok(())
    }

    async fn sync(&self, path: &str) -> io::Result<()> {
        self.gate("sync", path).await?;
        if self.faults.borrow().lying_fsync {
            return Ok(());
        }
        match self.files.borrow_mut().get_mut(path) {
            Some(f) => {
                f.undo.clear();
                Ok(())
            }
            None => Err(not_found(path)),
        }
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.gate("rename", from).await?;
        let mut files = self.files.borrow_mut();
        let f = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_string(), f);
        Ok(())
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        self.gate("remove", path).await?;
        self.files.borrow_mut().remove(path);
        Ok(())
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        self.gate("list", "").await?;
        Ok(self.files.borrow().keys().cloned().collect())
    }

    async fn len(&self, path: &str) -> io::Result<u64> {
        self.gate("len", path).await?;
        self.files
            .borrow()
            .get(path)
            .map(|f| f.data.len() as u64)
            .ok_or_else(|| not_found(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn disk() -> SimDisk {
        let trace = Rc::new(Trace::new(tokio::time::Instant::now(), false));
        SimDisk::new("h", ChaCha8Rng::seed_from_u64(7), trace)
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn synced_data_survives_power_loss_and_unsynced_may_not() {
        let d = disk();
        d.write_at("f", 0, b"durable").await.unwrap();
        d.sync("f").await.unwrap();
        for i in 0..20u64 {
            d.write_at("f", 7 + i * 3, b"xyz").await.unwrap();
        }
        d.power_loss();
        let data = d.read("f").await.unwrap();
        assert!(data.starts_with(b"durable"));
        assert!(data.len() <= 67);
        // Whatever survived is a prefix of what was written.
        let full: Vec<u8> = b"durable"
            .iter()
            .copied()
            .chain(b"xyz".repeat(20))
            .collect();
        assert_eq!(&full[..data.len()], &data[..]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn overwrites_and_truncations_are_undone_exactly() {
        let d = disk();
        d.write_at("f", 0, &[1u8; 2000]).await.unwrap();
        d.sync("f").await.unwrap();
        d.write_at("f", 100, &[2u8; 3000]).await.unwrap();
        d.set_len("f", 50).await.unwrap();
        d.write_at("f", 50, &[3u8; 10]).await.unwrap();
        // Force every unsynced write to be lost by trying until kept == 0 is
        // drawn; the outcome must always be a state some prefix produced.
        let mut states = vec![vec![1u8; 2000]];
        let mut s1 = vec![1u8; 100];
        s1.extend([2u8; 3000]);
        states.push(s1);
        states.push(vec![1u8; 50]);
        let mut s3 = vec![1u8; 50];
        s3.extend([3u8; 10]);
        states.push(s3);
        d.power_loss();
        let got = d.read("f").await.unwrap();
        let torn_ok = got.len() >= 100 && got[..100] == [1u8; 100][..];
        assert!(
            states.contains(&got) || torn_ok,
            "unexpected state of len {}",
            got.len()
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn faults_fail_operations() {
        let d = disk();
        d.set_faults(DiskFaults {
            capacity: Some(10),
            ..Default::default()
        });
        assert_eq!(
            d.write_at("f", 0, &[0; 11]).await.unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        d.set_faults(DiskFaults {
            eio: true,
            ..Default::default()
        });
        assert!(d.write_at("f", 0, b"x").await.is_err());
        d.set_faults(DiskFaults::default());
        d.write_at("f", 0, b"abc").await.unwrap();
        d.sync("f").await.unwrap();
        assert!(d.corrupt("f").is_some());
        assert_ne!(d.read("f").await.unwrap(), b"abc");
    }
}
