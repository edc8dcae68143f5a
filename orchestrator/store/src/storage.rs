//! The durable Raft log over a [`Disk`].
//!
//! # On-disk layout
//! - `wal/{first_index:020}.log`: WAL segments. Each is a sequence of codec
//!   records ([`crate::codec`]), one postcard-encoded [`Entry`] per record,
//!   with consecutive indices starting at the index in the file name.
//!   Segments chain: each starts right after the previous one ends. A batch
//!   goes to the last segment unless it already holds [`SEGMENT_BYTES`], in
//!   which case a new segment named after the batch's first index starts.
//! - `snap/{index:020}.snap`: a snapshot: one codec record holding a
//!   postcard [`SnapshotHeader`] (meta, data length, xxh3 of the data),
//!   followed by the raw data. Written as `snap/{index:020}.snap.tmp`,
//!   synced, then renamed (atomic and durable). Only the newest is kept.
//! - `hardstate.0`, `hardstate.1`: two copies of one codec record holding
//!   postcard `(sequence, HardState)`. An update overwrites `.0`, syncs,
//!   then overwrites `.1`, syncs; open takes the valid copy with the highest
//!   sequence, so a torn or corrupted copy never loses the vote.
//!
//! # Truncation
//! A Raft conflict (an append whose first index is already stored) is done
//! by rewriting, not by a record: segments that start at or after the
//! conflict are removed (newest first, so a crash leaves a prefix), the
//! segment holding the conflict is cut with `set_len` and synced, and only
//! then are the new entries written. Dropping conflicting entries early is
//! safe: they are uncommitted, and the log is merely shorter, as after a
//! crash before they arrived.
//!
//! # Failures
//! The in-memory view only advances after a sync returns. A failed append
//! remembers the file it may have left garbage in; the next call cuts that
//! file back to its durable length (or removes a segment it was creating)
//! before writing, so a retry rewrites from the durable end.

use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use faultline_env::Disk;
use faultline_raft::{Entry, HardState, Restored, Snapshot, SnapshotMeta};
use serde::{Deserialize, Serialize};

use crate::codec::{self, decode_records, CodecError, Tail};

/// A segment holding at least this many bytes is closed: the next batch
/// starts a new one.
pub const SEGMENT_BYTES: u64 = 4 << 20;

const WAL_PREFIX: &str = "wal/";
const WAL_SUFFIX: &str = ".log";
const SNAP_PREFIX: &str = "snap/";
const SNAP_SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".tmp";
/// The two hard-state copies, written in this order.
pub const HARD_STATE_FILES: [&str; 2] = ["hardstate.0", "hardstate.1"];

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk is full (ENOSPC). Nothing was acknowledged; retrying after
    /// space is freed is safe.
    #[error("disk full during {op} of {path:?}")]
    StorageFull { path: String, op: &'static str },
    /// Any other I/O failure.
    #[error("I/O error during {op} of {path:?}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Both hard-state copies are unreadable: the term and vote are lost.
    /// Guessing could make this node vote twice in a term; the caller must
    /// decide (e.g. rejoin as a new member).
    #[error("both hard-state copies are corrupt ({detail}); term and vote are lost")]
    HardStateLost { detail: String },
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A caller bug: non-contiguous entries, a gap after the last index, or
    /// a rewrite of entries covered by the snapshot.
    #[error("invalid append: {0}")]
    InvalidAppend(String),
}

fn io_err(path: &str, op: &'static str) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_string();
    move |source| {
        if source.kind() == io::ErrorKind::StorageFull {
            StorageError::StorageFull { path, op }
        } else {
            StorageError::Io { path, op, source }
        }
    }
}

/// What [`Storage::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Entries restored after the snapshot.
    pub entries: u64,
    /// Index of the restored snapshot.
    pub snapshot_index: Option<u64>,
    /// The last segment ended in a torn (unsynced) record, now cut off.
    pub torn_tail: bool,
    /// Data that may have been acknowledged was lost: file, offset, what.
    /// Set exactly when `Restored::recovering` is.
    pub corruption: Option<String>,
    /// Problems fixed without losing anything (a bad hard-state copy
    /// rewritten from the good one, an abandoned snapshot temp file...).
    pub repaired: Vec<String>,
}

/// The header record of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub meta: SnapshotMeta,
    pub data_len: u64,
    pub data_xxh3: u64,
}

#[derive(Serialize, Deserialize)]
struct HardStateRecord {
    seq: u64,
    hard_state: HardState,
}

#[derive(Debug)]
struct Segment {
    first: u64,
    /// `(byte offset, term)` of entry `first + i`.
    entries: Vec<(u64, u64)>,
    /// Durable length in bytes.
    len: u64,
}

impl Segment {
    /// Index of the last entry (`first - 1` if empty).
    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }
}

fn wal_name(first: u64) -> String {
    format!("{WAL_PREFIX}{first:020}{WAL_SUFFIX}")
}

fn snap_name(index: u64) -> String {
    format!("{SNAP_PREFIX}{index:020}{SNAP_SUFFIX}")
}

fn parse_index(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The durable Raft log: WAL segments, the newest snapshot and the hard
/// state. Not thread-safe; one per replica.
pub struct Storage {
    disk: Rc<dyn Disk>,
    segments: BTreeMap<u64, Segment>,
    snapshot: Option<SnapshotMeta>,
    hard_state: HardState,
    hs_seq: u64,
    /// A file a failed write may have left bytes in beyond its durable end.
    dirty: Option<String>,
    segment_bytes: u64,
}

enum HsCopy {
    Missing,
    Invalid(String),
    Valid(u64, HardState),
}

impl Storage {
    /// Opens (or initialises) the log on `disk`. Never panics on bad data:
    /// corruption is reported in `Restored::recovering` and the report, and
    /// the bad part is removed from disk so it is never served.
    pub async fn open(disk: Rc<dyn Disk>) -> Result<(Storage, Restored, OpenReport), StorageError> {
        let files = disk.list().await.map_err(io_err("", "list"))?;
        let mut report = OpenReport::default();
        let mut problems: Vec<String> = Vec::new();

        // Abandoned snapshot writes: never renamed, so never acknowledged.
        for f in files
            .iter()
            .filter(|f| f.starts_with(SNAP_PREFIX) && f.ends_with(TMP_SUFFIX))
        {
            disk.remove(f).await.map_err(io_err(f, "remove"))?;
            report
                .repaired
                .push(format!("{f}: removed an unfinished snapshot"));
        }

        let (hard_state, hs_seq) = load_hard_state(&*disk, &mut report).await?;

        // Snapshots, newest first. A corrupt snapshot means state we relied
        // on (the log it replaced is gone) is lost: fall back to an older
        // intact one, else to nothing, and mark the replica recovering.
        let mut snaps: Vec<(u64, &String)> = files
            .iter()
            .filter_map(|f| parse_index(f, SNAP_PREFIX, SNAP_SUFFIX).map(|i| (i, f)))
            .collect();
        snaps.sort();
        let mut snapshot: Option<Snapshot> = None;
        for (index, name) in snaps.into_iter().rev() {
            if snapshot.is_some() {
                // Older than the chosen one: left over from an interrupted
                // clean-up.
                disk.remove(name).await.map_err(io_err(name, "remove"))?;
                continue;
            }
            let bytes = disk.read(name).await.map_err(io_err(name, "read"))?;
            match parse_snapshot(&bytes, index) {
                Ok(s) => snapshot = Some(s),
                Err(detail) => {
                    problems.push(format!("{name}: corrupt snapshot: {detail}"));
                    disk.remove(name).await.map_err(io_err(name, "remove"))?;
                }
            }
        }
        let snap_meta = snapshot.as_ref().map(|s| s.meta);
        let snap_index = snap_meta.map_or(0, |m| m.index);

        // WAL segments, oldest first.
        let mut wal: Vec<(u64, &String)> = files
            .iter()
            .filter_map(|f| parse_index(f, WAL_PREFIX, WAL_SUFFIX).map(|i| (i, f)))
            .collect();
        wal.sort();
        let mut segments: BTreeMap<u64, Segment> = BTreeMap::new();
        let mut entries: Vec<Entry> = Vec::new();
        let mut expected: Option<u64> = None;
        let mut doomed: Vec<u64> = Vec::new(); // segment files to delete
        let mut i = 0;
        while i < wal.len() {
            let (first, name) = wal[i];
            let is_last = i + 1 == wal.len();
            i += 1;
            if let Some(e) = expected {
                if first != e {
                    // A missing or misnamed segment: entries from `e` on
                    // were acknowledged once and are gone.
                    problems.push(format!(
                        "{name}: segment starts at index {first} but the log continues at {e}"
                    ));
                    doomed.extend(wal[i - 1..].iter().map(|(f, _)| *f));
                    break;
                }
            }
            let bytes = disk.read(name).await.map_err(io_err(name, "read"))?;
            let (records, tail) = decode_records(&bytes);
            let mut seg = Segment {
                first,
                entries: Vec::new(),
                len: 0,
            };
            let mut bad: Option<(u64, String)> = None;
            let mut offset = 0u64;
            for rec in records {
                let want = first + seg.entries.len() as u64;
                match codec::decode::<Entry>(rec) {
                    Ok(e) if e.index == want => {
                        seg.entries.push((offset, e.term));
                        entries.push(e);
                        offset += (codec::RECORD_HEADER_LEN + rec.len()) as u64;
                    }
                    Ok(e) => {
                        bad = Some((
                            offset,
                            format!("entry index {} where {want} was expected", e.index),
                        ));
                        break;
                    }
                    Err(err) => {
                        bad = Some((offset, format!("undecodable entry: {err}")));
                        break;
                    }
                }
            }
            let mut cut = None;
            if bad.is_none() {
                match tail {
                    Tail::Clean => {}
                    // A record cut short at the end of the last segment is an
                    // append that was never synced, hence never acknowledged:
                    // drop it silently.
                    Tail::Torn { offset } if is_last => {
                        report.torn_tail = true;
                        cut = Some(offset);
                    }
                    // A later segment is only started after this one was
                    // synced, so a torn record here lost synced data.
                    Tail::Torn { offset } => {
                        bad = Some((
                            offset,
                            "record cut short in a segment that is not the last".into(),
                        ))
                    }
                    Tail::Corrupt { offset, detail } => bad = Some((offset, detail)),
                }
            }
            if let Some((at, detail)) = &bad {
                // Acknowledged data may be lost: keep the valid prefix only,
                // and remove everything after it from disk.
                problems.push(format!("{name} at offset {at}: {detail}"));
                cut = Some(*at);
            }
            seg.len = cut.unwrap_or(bytes.len() as u64);
            if let Some(at) = cut {
                disk.set_len(name, at)
                    .await
                    .map_err(io_err(name, "truncate"))?;
                disk.sync(name).await.map_err(io_err(name, "sync"))?;
            }
            expected = Some(first + seg.entries.len() as u64);
            if seg.entries.is_empty() {
                // Nothing in it: remove it (appends recreate segments).
                doomed.push(first);
            } else {
                segments.insert(first, seg);
            }
            if bad.is_some() {
                doomed.extend(wal[i..].iter().map(|(f, _)| *f));
                break;
            }
        }
        // Newest first, so a crash during the clean-up leaves a prefix.
        for first in doomed.into_iter().rev() {
            let name = wal_name(first);
            disk.remove(&name).await.map_err(io_err(&name, "remove"))?;
        }

        // Connect the log to the snapshot.
        let mut drop_all = false;
        if let (Some(f), Some(l)) = (
            entries.first().map(|e| e.index),
            entries.last().map(|e| e.index),
        ) {
            if f > snap_index + 1 {
                // Entries snap_index+1 .. f-1 are missing: everything after
                // the gap is unusable.
                problems.push(format!(
                    "the log starts at index {f} but the snapshot covers only up to {snap_index}"
                ));
                drop_all = true;
            } else if f <= snap_index {
                if l < snap_index {
                    // A snapshot newer than the whole log (installed from
                    // the leader); the segments are obsolete.
                    drop_all = true;
                } else {
                    let at = &entries[(snap_index - f) as usize];
                    if Some(at.term) != snap_meta.map(|m| m.term) {
                        // The snapshot replaced a divergent log and the crash
                        // came before the old segments were removed: they
                        // are uncommitted entries of another history.
                        report.repaired.push(format!(
                            "discarded the log replaced by snapshot {snap_index}"
                        ));
                        drop_all = true;
                    } else {
                        entries.drain(..=(snap_index - f) as usize);
                    }
                }
            }
        }
        if drop_all {
            entries.clear();
            let firsts: Vec<u64> = segments.keys().rev().copied().collect();
            for first in firsts {
                let name = wal_name(first);
                disk.remove(&name).await.map_err(io_err(&name, "remove"))?;
                segments.remove(&first);
            }
        } else {
            // Segments wholly covered by the snapshot, oldest first (a crash
            // then leaves a suffix that still connects to the snapshot).
            let covered: Vec<u64> = segments
                .values()
                .filter(|s| s.last() <= snap_index)
                .map(|s| s.first)
                .collect();
            for first in covered {
                let name = wal_name(first);
                disk.remove(&name).await.map_err(io_err(&name, "remove"))?;
                segments.remove(&first);
            }
        }

        let recovering = !problems.is_empty();
        report.entries = entries.len() as u64;
        report.snapshot_index = snap_meta.map(|m| m.index);
        report.corruption = recovering.then(|| problems.join("; "));
        let storage = Storage {
            disk,
            segments,
            snapshot: snap_meta,
            hard_state,
            hs_seq,
            dirty: None,
            segment_bytes: SEGMENT_BYTES,
        };
        let restored = Restored {
            hard_state,
            snapshot,
            entries,
            recovering,
            blank: false,
        };
        Ok((storage, restored, report))
    }

    /// Index of the last entry (or of the snapshot if the log is empty; 0 if
    /// there is neither).
    pub fn last_index(&self) -> u64 {
        let snap = self.snapshot.map_or(0, |m| m.index);
        self.segments
            .values()
            .next_back()
            .map_or(snap, |s| s.last().max(snap))
    }

    /// Index of the first entry after the snapshot.
    pub fn first_index(&self) -> u64 {
        self.snapshot.map_or(0, |m| m.index) + 1
    }

    /// The stored snapshot's meta.
    pub fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.snapshot
    }

    /// Overrides [`SEGMENT_BYTES`] (tests use small segments).
    pub fn set_segment_bytes(&mut self, bytes: u64) {
        self.segment_bytes = bytes.max(1);
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Term of a stored entry (or of the snapshot's last entry).
    pub fn term(&self, index: u64) -> Option<u64> {
        if let Some(m) = self.snapshot {
            if m.index == index {
                return Some(m.term);
            }
            if index < m.index {
                return None;
            }
        }
        let (_, seg) = self.segments.range(..=index).next_back()?;
        let i = (index - seg.first) as usize;
        seg.entries.get(i).map(|&(_, term)| term)
    }

    /// Undoes what a failed write may have left beyond the durable end.
    async fn clear_dirty(&mut self) -> Result<(), StorageError> {
        let Some(name) = self.dirty.clone() else {
            return Ok(());
        };
        match self.segments.values().find(|s| wal_name(s.first) == name) {
            Some(seg) => {
                self.disk
                    .set_len(&name, seg.len)
                    .await
                    .map_err(io_err(&name, "truncate"))?;
                self.disk.sync(&name).await.map_err(io_err(&name, "sync"))?;
            }
            None => self
                .disk
                .remove(&name)
                .await
                .map_err(io_err(&name, "remove"))?,
        }
        self.dirty = None;
        Ok(())
    }

    /// Appends `entries` (contiguous). If `entries[0].index` is already
    /// stored, the stored suffix from there is removed first (a Raft
    /// conflict). Durable before returning: one write and one sync for the
    /// batch (plus one truncating sync on a conflict).
    pub async fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(head) = entries.first() else {
            return Ok(());
        };
        let first = head.index;
        for (i, e) in entries.iter().enumerate() {
            if e.index != first + i as u64 {
                return Err(StorageError::InvalidAppend(format!(
                    "entries are not contiguous: index {} at position {i} after {first}",
                    e.index
                )));
            }
        }
        let snap_index = self.snapshot.map_or(0, |m| m.index);
        if first <= snap_index {
            return Err(StorageError::InvalidAppend(format!(
                "entry {first} is covered by the snapshot at {snap_index}"
            )));
        }
        let last = self.last_index();
        if first > last + 1 {
            return Err(StorageError::InvalidAppend(format!(
                "entry {first} would leave a gap after the last index {last}"
            )));
        }
        // Encode before touching the disk: an oversized entry fails cleanly.
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            offsets.push((buf.len() as u64, e.term));
            codec::encode_framed(e, &mut buf)?;
        }
        self.clear_dirty().await?;
        if first <= last {
            self.truncate_from(first).await?;
        }
        let target = match self.segments.values().next_back() {
            Some(s) if s.len < self.segment_bytes => s.first,
            _ => first,
        };
        let name = wal_name(target);
        let base = self.segments.get(&target).map_or(0, |s| s.len);
        self.dirty = Some(name.clone());
        self.disk
            .write_at(&name, base, &buf)
            .await
            .map_err(io_err(&name, "write"))?;
        self.disk.sync(&name).await.map_err(io_err(&name, "sync"))?;
        self.dirty = None;
        let seg = self.segments.entry(target).or_insert_with(|| Segment {
            first: target,
            entries: Vec::new(),
            len: 0,
        });
        seg.entries
            .extend(offsets.into_iter().map(|(o, t)| (base + o, t)));
        seg.len = base + buf.len() as u64;
        Ok(())
    }

    /// Durably removes every stored entry with index >= `first`.
    async fn truncate_from(&mut self, first: u64) -> Result<(), StorageError> {
        // Whole segments, newest first: a crash leaves a prefix.
        let whole: Vec<u64> = self
            .segments
            .range(first..)
            .map(|(f, _)| *f)
            .rev()
            .collect();
        for f in whole {
            let name = wal_name(f);
            self.disk
                .remove(&name)
                .await
                .map_err(io_err(&name, "remove"))?;
            self.segments.remove(&f);
        }
        if let Some(seg) = self.segments.values_mut().next_back() {
            if seg.last() >= first {
                let keep = (first - seg.first) as usize;
                let at = seg.entries[keep].0;
                let name = wal_name(seg.first);
                self.disk
                    .set_len(&name, at)
                    .await
                    .map_err(io_err(&name, "truncate"))?;
                self.disk.sync(&name).await.map_err(io_err(&name, "sync"))?;
                seg.entries.truncate(keep);
                seg.len = at;
            }
        }
        Ok(())
    }

    /// Durably stores the hard state (both copies, one after the other).
    pub async fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        if hs == self.hard_state && self.hs_seq > 0 {
            return Ok(());
        }
        let seq = self.hs_seq + 1;
        let mut buf = Vec::new();
        codec::encode_framed(
            &HardStateRecord {
                seq,
                hard_state: hs,
            },
            &mut buf,
        )?;
        for name in HARD_STATE_FILES {
            write_whole(&*self.disk, name, &buf).await?;
        }
        self.hs_seq = seq;
        self.hard_state = hs;
        Ok(())
    }

    /// Durably stores `snapshot`, then removes the log it covers and older
    /// snapshots. If the log holds the snapshot's last entry with the same
    /// term, the entries after it are kept; otherwise (a follower installing
    /// a leader's snapshot) the whole log is discarded. A snapshot not newer
    /// than the stored one is ignored.
    pub async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let meta = snapshot.meta;
        if let Some(old) = self.snapshot {
            if meta.index <= old.index {
                return Ok(());
            }
        }
        let header = SnapshotHeader {
            meta,
            data_len: snapshot.data.len() as u64,
            data_xxh3: xxhash_rust::xxh3::xxh3_64(&snapshot.data),
        };
        let mut buf = Vec::with_capacity(snapshot.data.len() + 64);
        codec::encode_framed(&header, &mut buf)?;
        buf.extend_from_slice(&snapshot.data);
        let name = snap_name(meta.index);
        let tmp = format!("{name}{TMP_SUFFIX}");
        write_whole(&*self.disk, &tmp, &buf).await?;
        self.disk
            .rename(&tmp, &name)
            .await
            .map_err(io_err(&tmp, "rename"))?;

        let keep_suffix = self.term(meta.index) == Some(meta.term)
            && self
                .segments
                .values()
                .next_back()
                .is_some_and(|s| s.last() >= meta.index);
        if keep_suffix {
            // Oldest first: a crash leaves a suffix still connected.
            let covered: Vec<u64> = self
                .segments
                .values()
                .filter(|s| s.last() <= meta.index)
                .map(|s| s.first)
                .collect();
            for f in covered {
                let n = wal_name(f);
                self.disk.remove(&n).await.map_err(io_err(&n, "remove"))?;
                self.segments.remove(&f);
            }
        } else {
            // Newest first: a crash leaves a prefix, which open discards
            // (covered by, or conflicting with, the snapshot).
            let all: Vec<u64> = self.segments.keys().rev().copied().collect();
            for f in all {
                let n = wal_name(f);
                self.disk.remove(&n).await.map_err(io_err(&n, "remove"))?;
                self.segments.remove(&f);
            }
        }
        if let Some(old) = self.snapshot.replace(meta) {
            let n = snap_name(old.index);
            self.disk.remove(&n).await.map_err(io_err(&n, "remove"))?;
        }
        Ok(())
    }
}

/// Overwrites `name` with `data` and syncs it.
async fn write_whole(disk: &dyn Disk, name: &str, data: &[u8]) -> Result<(), StorageError> {
    disk.write_at(name, 0, data)
        .await
        .map_err(io_err(name, "write"))?;
    disk.set_len(name, data.len() as u64)
        .await
        .map_err(io_err(name, "truncate"))?;
    disk.sync(name).await.map_err(io_err(name, "sync"))
}

fn parse_snapshot(bytes: &[u8], index: u64) -> Result<Snapshot, String> {
    let (payload, used) = match codec::next_record(bytes) {
        Ok(Some(x)) => x,
        Ok(None) => return Err("header record is cut short".into()),
        Err(e) => return Err(format!("header: {e}")),
    };
    let header: SnapshotHeader = codec::decode(payload).map_err(|e| format!("header: {e}"))?;
    if header.meta.index != index {
        return Err(format!(
            "header says index {} but the file name says {index}",
            header.meta.index
        ));
    }
    let data = &bytes[used..];
    if data.len() as u64 != header.data_len {
        return Err(format!(
            "{} data bytes, header says {}",
            data.len(),
            header.data_len
        ));
    }
    if xxhash_rust::xxh3::xxh3_64(data) != header.data_xxh3 {
        return Err("data checksum mismatch".into());
    }
    Ok(Snapshot {
        meta: header.meta,
        data: Rc::from(data),
    })
}

async fn read_hs_copy(disk: &dyn Disk, name: &str) -> Result<HsCopy, StorageError> {
    let bytes = match disk.read(name).await {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HsCopy::Missing),
        Err(e) => return Err(io_err(name, "read")(e)),
    };
    let (records, tail) = decode_records(&bytes);
    if tail != Tail::Clean || records.len() != 1 {
        return Ok(HsCopy::Invalid(format!(
            "{name}: {} valid records, tail {tail:?}",
            records.len()
        )));
    }
    match codec::decode::<HardStateRecord>(records[0]) {
        Ok(r) => Ok(HsCopy::Valid(r.seq, r.hard_state)),
        Err(e) => Ok(HsCopy::Invalid(format!("{name}: {e}"))),
    }
}

/// Reads both hard-state copies and takes the valid one with the highest
/// sequence, rewriting a bad or missing copy from it. Writes go `.0` then
/// `.1`, so:
/// - `.0` bad and `.1` missing: the very first update was cut short; it was
///   never acknowledged, so the initial state is right;
/// - both bad (or `.1` bad and `.0` missing, which a crash cannot produce):
///   the vote is lost, [`StorageError::HardStateLost`].
async fn load_hard_state(
    disk: &dyn Disk,
    report: &mut OpenReport,
) -> Result<(HardState, u64), StorageError> {
    let a = read_hs_copy(disk, HARD_STATE_FILES[0]).await?;
    let b = read_hs_copy(disk, HARD_STATE_FILES[1]).await?;
    let best = match (&a, &b) {
        (HsCopy::Valid(sa, ha), HsCopy::Valid(sb, hb)) => {
            if sa >= sb {
                (*sa, *ha)
            } else {
                (*sb, *hb)
            }
        }
        (HsCopy::Valid(s, h), _) | (_, HsCopy::Valid(s, h)) => (*s, *h),
        (HsCopy::Missing, HsCopy::Missing) => return Ok((HardState::default(), 0)),
        (HsCopy::Invalid(d), HsCopy::Missing) => {
            report.repaired.push(format!(
                "{d}: an interrupted first hard-state write, ignored"
            ));
            return Ok((HardState::default(), 0));
        }
        (HsCopy::Invalid(da), HsCopy::Invalid(db)) => {
            return Err(StorageError::HardStateLost {
                detail: format!("{da}; {db}"),
            })
        }
        (HsCopy::Missing, HsCopy::Invalid(d)) => {
            return Err(StorageError::HardStateLost {
                detail: format!("{} is missing; {d}", HARD_STATE_FILES[0]),
            })
        }
    };
    // Repair copies that are not the chosen one (never touching the chosen
    // copy itself, so a crash during the repair cannot lose it).
    let mut buf = Vec::new();
    codec::encode_framed(
        &HardStateRecord {
            seq: best.0,
            hard_state: best.1,
        },
        &mut buf,
    )?;
    for (copy, name) in [(&a, HARD_STATE_FILES[0]), (&b, HARD_STATE_FILES[1])] {
        let stale = match copy {
            HsCopy::Valid(s, _) => *s < best.0,
            HsCopy::Missing | HsCopy::Invalid(_) => true,
        };
        if stale {
            write_whole(disk, name, &buf).await?;
            if let HsCopy::Invalid(d) = copy {
                report
                    .repaired
                    .push(format!("{d}: rewritten from the other copy"));
            }
        }
    }
    Ok((best.1, best.0))
}

#[cfg(test)]
mod tests;
