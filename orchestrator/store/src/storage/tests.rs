use std::cell::{Cell, RefCell};
use std::future::Future;

use async_trait::async_trait;
use proptest::prelude::*;

use super::*;

// ---- an in-memory disk that loses unsynced writes ----

#[derive(Clone, Debug)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Default, Clone, Debug)]
struct MemFile {
    /// What survives a crash (None: the file does not exist durably).
    durable: Option<Vec<u8>>,
    current: Vec<u8>,
    /// Unsynced operations since the last sync, in order.
    pending: Vec<Pending>,
}

fn apply_pending(buf: &mut Vec<u8>, p: &Pending) {
    match p {
        Pending::Write(off, data) => {
            let off = *off as usize;
            let end = off + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[off..end].copy_from_slice(data);
        }
        Pending::SetLen(n) => buf.resize(*n as usize, 0),
    }
}

/// How a crash tears: in the `file`-th file with unsynced operations, keep
/// the first `1 + ops % n` of them, cutting the last kept write to
/// `bytes % (len + 1)` bytes.
#[derive(Clone, Copy, Debug)]
struct Tear {
    file: usize,
    ops: usize,
    bytes: usize,
}

/// The test disk: `write_at`/`set_len` are volatile until `sync`; `rename`
/// and `remove` are durable at once. `fail_after(n, kind)` makes every
/// mutating call after the next `n` fail (a power cut or a full disk).
#[derive(Default)]
struct MemDisk {
    files: RefCell<BTreeMap<String, MemFile>>,
    fail: Cell<Option<(u32, io::ErrorKind)>>,
}

impl MemDisk {
    fn check(&self) -> io::Result<()> {
        match self.fail.get() {
            None => Ok(()),
            Some((0, kind)) => Err(io::Error::new(kind, "injected failure")),
            Some((n, kind)) => {
                self.fail.set(Some((n - 1, kind)));
                Ok(())
            }
        }
    }

    fn fail_after(&self, n: u32, kind: io::ErrorKind) {
        self.fail.set(Some((n, kind)));
    }

    fn heal(&self) {
        self.fail.set(None);
    }

    /// Power loss: drops unsynced operations, optionally tearing some.
    fn crash(&self, tear: Option<Tear>) {
        let mut files = self.files.borrow_mut();
        let dirty: Vec<String> = files
            .iter()
            .filter(|(_, f)| !f.pending.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        let torn = tear
            .filter(|_| !dirty.is_empty())
            .map(|t| (dirty[t.file % dirty.len()].clone(), t));
        let names: Vec<String> = files.keys().cloned().collect();
        for name in names {
            let f = files.get_mut(&name).expect("listed");
            let mut content = f.durable.clone();
            if let Some((tn, t)) = &torn {
                if *tn == name {
                    let keep = 1 + t.ops % f.pending.len();
                    let mut c = content.unwrap_or_default();
                    for (j, p) in f.pending[..keep].iter().enumerate() {
                        match p {
                            Pending::Write(off, data) if j + 1 == keep => {
                                let cut = t.bytes % (data.len() + 1);
                                apply_pending(&mut c, &Pending::Write(*off, data[..cut].to_vec()));
                            }
                            p => apply_pending(&mut c, p),
                        }
                    }
                    content = Some(c);
                }
            }
            match content {
                None => {
                    files.remove(&name);
                }
                Some(c) => {
                    f.durable = Some(c.clone());
                    f.current = c;
                    f.pending.clear();
                }
            }
        }
    }

    fn flip_bit(&self, name: &str, bit: u64) {
        let mut files = self.files.borrow_mut();
        let f = files.get_mut(name).expect("file exists");
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        if let Some(b) = f.current.get_mut(byte) {
            *b ^= mask;
        }
        if let Some(b) = f.durable.as_mut().and_then(|d| d.get_mut(byte)) {
            *b ^= mask;
        }
    }

    fn names(&self) -> Vec<String> {
        self.files.borrow().keys().cloned().collect()
    }

    fn size(&self, name: &str) -> usize {
        self.files.borrow().get(name).map_or(0, |f| f.current.len())
    }
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path} not found"))
}

#[async_trait(?Send)]
impl Disk for MemDisk {
    async fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.files
            .borrow()
            .get(path)
            .map(|f| f.current.clone())
            .ok_or_else(|| not_found(path))
    }

    async fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        let mut files = self.files.borrow_mut();
        let f = files.entry(path.to_string()).or_default();
        let p = Pending::Write(offset, data.to_vec());
        apply_pending(&mut f.current, &p);
        f.pending.push(p);
        Ok(())
    }

    async fn set_len(&self, path: &str, len: u64) -> io::Result<()> {
        self.check()?;
        let mut files = self.files.borrow_mut();
        let f = files.entry(path.to_string()).or_default();
        let p = Pending::SetLen(len);
        apply_pending(&mut f.current, &p);
        f.pending.push(p);
        Ok(())
    }

    async fn sync(&self, path: &str) -> io::Result<()> {
        self.check()?;
        let mut files = self.files.borrow_mut();
        let f = files.get_mut(path).ok_or_else(|| not_found(path))?;
        f.durable = Some(f.current.clone());
        f.pending.clear();
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.check()?;
        let mut files = self.files.borrow_mut();
        let f = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_string(), f);
        Ok(())
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        self.check()?;
        self.files.borrow_mut().remove(path);
        Ok(())
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.names())
    }

    async fn len(&self, path: &str) -> io::Result<u64> {
        self.files
            .borrow()
            .get(path)
            .map(|f| f.current.len() as u64)
            .ok_or_else(|| not_found(path))
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        data: format!("e{index}t{term}").into_bytes(),
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

async fn open(disk: &Rc<MemDisk>) -> (Storage, Restored, OpenReport) {
    let d: Rc<dyn Disk> = disk.clone();
    Storage::open(d).await.expect("open")
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { index, term },
        data: Rc::from(format!("state at {index}").into_bytes()),
    }
}

// ---- unit tests ----

#[tokio::test(flavor = "current_thread")]
async fn fresh_append_reopen() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, r, rep) = open(&disk).await;
    assert!(!r.recovering && r.entries.is_empty() && r.snapshot.is_none());
    assert_eq!(rep, OpenReport::default());
    assert_eq!(s.last_index(), 0);
    s.append(&entries(1..=3, 1)).await.unwrap();
    s.set_hard_state(HardState {
        term: 1,
        vote: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.last_index(), 3);
    assert_eq!(s.term(2), Some(1));
    disk.crash(None);
    let (s, r, rep) = open(&disk).await;
    assert_eq!(r.entries, entries(1..=3, 1));
    assert_eq!(
        r.hard_state,
        HardState {
            term: 1,
            vote: Some(2),
            ..Default::default()
        }
    );
    assert!(!r.recovering && !rep.torn_tail);
    assert_eq!(s.last_index(), 3);
    // Invalid appends are refused.
    let mut s = s;
    assert!(matches!(
        s.append(&[entry(5, 1)]).await,
        Err(StorageError::InvalidAppend(_))
    ));
    assert!(matches!(
        s.append(&[entry(4, 1), entry(6, 1)]).await,
        Err(StorageError::InvalidAppend(_))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn conflict_truncates_across_segments() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    s.set_segment_bytes(40);
    for i in 1..=10 {
        s.append(&[entry(i, 1)]).await.unwrap();
    }
    let segs = disk
        .names()
        .iter()
        .filter(|n| n.starts_with("wal/"))
        .count();
    assert!(segs > 2, "{:?}", disk.names());
    s.append(&entries(4..=5, 2)).await.unwrap();
    assert_eq!(s.last_index(), 5);
    disk.crash(None);
    let (_, r, _) = open(&disk).await;
    let mut want = entries(1..=3, 1);
    want.extend(entries(4..=5, 2));
    assert_eq!(r.entries, want);
    assert!(!r.recovering);
}

#[tokio::test(flavor = "current_thread")]
async fn torn_tail_is_not_corruption() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    s.append(&entries(1..=3, 1)).await.unwrap();
    // A batch that never got synced, torn mid-way.
    disk.fail_after(1, io::ErrorKind::Other); // the write lands, the sync fails
    assert!(s.append(&entries(4..=6, 1)).await.is_err());
    disk.heal();
    disk.crash(Some(Tear {
        file: 0,
        ops: 0,
        bytes: 40,
    }));
    let (mut s, r, rep) = open(&disk).await;
    assert!(rep.torn_tail && !r.recovering && rep.corruption.is_none());
    assert!(r.entries.len() >= 3 && r.entries[..3] == entries(1..=3, 1)[..]);
    // The log continues cleanly after the cut.
    let next = s.last_index() + 1;
    s.append(&[entry(next, 2)]).await.unwrap();
    let (_, r, rep) = open(&disk).await;
    assert!(!rep.torn_tail && !r.recovering);
    assert_eq!(r.entries.last().unwrap().index, next);
}

#[tokio::test(flavor = "current_thread")]
async fn corruption_keeps_the_valid_prefix_and_is_removed() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    s.set_segment_bytes(30);
    for i in 1..=6 {
        s.append(&[entry(i, 1)]).await.unwrap();
    }
    let wal: Vec<String> = disk
        .names()
        .into_iter()
        .filter(|n| n.starts_with("wal/"))
        .collect();
    assert!(wal.len() >= 3);
    // Damage the first record of the second segment.
    disk.flip_bit(&wal[1], 8 * 9);
    let (_, r, rep) = open(&disk).await;
    assert!(r.recovering);
    let detail = rep.corruption.unwrap();
    assert!(
        detail.contains(&wal[1]) && detail.contains("offset 0"),
        "{detail}"
    );
    let first_seg_entries = r.entries.len();
    assert!((1..6).contains(&first_seg_entries));
    assert_eq!(r.entries[..], entries(1..=first_seg_entries as u64, 1)[..]);
    // The bad part is gone for good.
    let (mut s, r, rep) = open(&disk).await;
    assert!(!r.recovering && rep.corruption.is_none());
    assert_eq!(r.entries.len(), first_seg_entries);
    let next = s.last_index() + 1;
    s.append(&[entry(next, 2)]).await.unwrap();
    let (_, r, _) = open(&disk).await;
    assert!(!r.recovering);
    assert_eq!(r.entries.len(), first_seg_entries + 1);
}

#[tokio::test(flavor = "current_thread")]
async fn gap_between_segments_is_corruption() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    s.set_segment_bytes(1);
    for i in 1..=4 {
        s.append(&[entry(i, 1)]).await.unwrap();
    }
    disk.files.borrow_mut().remove(&wal_name(2));
    let (_, r, rep) = open(&disk).await;
    assert!(r.recovering);
    assert!(rep.corruption.unwrap().contains("starts at index 3"));
    assert_eq!(r.entries, entries(1..=1, 1));
    assert_eq!(
        disk.names()
            .iter()
            .filter(|n| n.starts_with("wal/"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "current_thread")]
async fn hard_state_copies() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    let hs = HardState {
        term: 7,
        vote: Some(3),
        ..Default::default()
    };
    s.set_hard_state(hs).await.unwrap();
    disk.flip_bit(HARD_STATE_FILES[0], 70);
    let (_, r, rep) = open(&disk).await;
    assert_eq!(r.hard_state, hs);
    assert!(!r.recovering && rep.repaired.len() == 1, "{rep:?}");
    // Repaired: now the other copy can go bad too.
    disk.flip_bit(HARD_STATE_FILES[1], 3);
    let (mut s, r, _) = open(&disk).await;
    assert_eq!(r.hard_state, hs);
    // A newer state cut between the two copies: the newer one wins.
    disk.fail_after(3, io::ErrorKind::Other);
    let newer = HardState {
        term: 8,
        vote: None,
        ..Default::default()
    };
    assert!(s.set_hard_state(newer).await.is_err());
    disk.heal();
    disk.crash(None);
    let (_, r, _) = open(&disk).await;
    assert_eq!(r.hard_state, newer);
    // Both copies bad: refuse to guess.
    disk.flip_bit(HARD_STATE_FILES[0], 20);
    disk.flip_bit(HARD_STATE_FILES[1], 20);
    let d: Rc<dyn Disk> = disk.clone();
    assert!(matches!(
        Storage::open(d).await,
        Err(StorageError::HardStateLost { .. })
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn first_hard_state_write_torn() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    disk.fail_after(1, io::ErrorKind::Other);
    assert!(s
        .set_hard_state(HardState {
            term: 1,
            vote: Some(1),
            ..Default::default()
        })
        .await
        .is_err());
    disk.heal();
    disk.crash(Some(Tear {
        file: 0,
        ops: 0,
        bytes: 5,
    }));
    let (_, r, _) = open(&disk).await;
    assert_eq!(r.hard_state, HardState::default());
}

#[tokio::test(flavor = "current_thread")]
async fn snapshots() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    s.set_segment_bytes(60);
    for i in 1..=8 {
        s.append(&[entry(i, 1)]).await.unwrap();
    }
    s.save_snapshot(&snapshot(5, 1)).await.unwrap();
    assert_eq!(s.last_index(), 8);
    assert_eq!(s.first_index(), 6);
    let (_, r, rep) = open(&disk).await;
    assert_eq!(r.snapshot, Some(snapshot(5, 1)));
    assert_eq!(r.entries, entries(6..=8, 1));
    assert_eq!(rep.snapshot_index, Some(5));
    assert!(!r.recovering);
    // A leader's snapshot that conflicts with the log replaces all of it.
    let (mut s, _, _) = open(&disk).await;
    s.save_snapshot(&snapshot(7, 2)).await.unwrap();
    assert_eq!(s.last_index(), 7);
    assert!(!disk.names().iter().any(|n| n.starts_with("wal/")));
    assert_eq!(
        disk.names()
            .iter()
            .filter(|n| n.starts_with("snap/"))
            .count(),
        1
    );
    s.append(&entries(8..=9, 2)).await.unwrap();
    let (_, r, _) = open(&disk).await;
    assert_eq!(r.snapshot.unwrap().meta, SnapshotMeta { index: 7, term: 2 });
    assert_eq!(r.entries, entries(8..=9, 2));
    // A corrupt snapshot: no older one, so start empty and recover.
    disk.flip_bit(&snap_name(7), 8 * (disk.size(&snap_name(7)) as u64 - 2));
    let (s, r, rep) = open(&disk).await;
    assert!(
        r.recovering && r.snapshot.is_none() && r.entries.is_empty(),
        "{rep:?} {r:?}"
    );
    assert!(rep.corruption.unwrap().contains("snap/"));
    assert_eq!(s.last_index(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn interrupted_snapshot_install_discards_the_old_log() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    s.set_segment_bytes(1);
    s.append(&entries(1..=6, 1)).await.unwrap();
    s.append(&entries(7..=9, 1)).await.unwrap();
    // Snapshot at 8 of term 3 conflicts; crash right after the rename.
    disk.fail_after(4, io::ErrorKind::Other); // write, set_len, sync, rename
    assert!(s.save_snapshot(&snapshot(8, 3)).await.is_err());
    disk.heal();
    disk.crash(None);
    let (_, r, rep) = open(&disk).await;
    assert_eq!(r.snapshot.unwrap().meta.index, 8);
    assert!(r.entries.is_empty() && !r.recovering, "{rep:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn disk_full_then_retry() {
    let disk = Rc::new(MemDisk::default());
    let (mut s, _, _) = open(&disk).await;
    s.append(&entries(1..=2, 1)).await.unwrap();
    disk.fail_after(1, io::ErrorKind::StorageFull);
    let err = s.append(&entries(3..=4, 1)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::StorageFull { op: "sync", .. }),
        "{err}"
    );
    assert_eq!(s.last_index(), 2);
    disk.heal();
    s.append(&entries(3..=5, 1)).await.unwrap();
    let (_, r, _) = open(&disk).await;
    assert_eq!(r.entries, entries(1..=5, 1));
    // A failure creating a new segment, then a retry.
    let (mut s, _, _) = open(&disk).await;
    s.set_segment_bytes(1);
    disk.fail_after(1, io::ErrorKind::Other);
    assert!(matches!(
        s.append(&entries(6..=6, 1)).await,
        Err(StorageError::Io { .. })
    ));
    disk.heal();
    s.append(&entries(6..=7, 2)).await.unwrap();
    let (_, r, _) = open(&disk).await;
    assert_eq!(r.entries.len(), 7);
    assert_eq!(r.entries[6], entry(7, 2));
}

// ---- property tests ----

/// What the log should hold.
#[derive(Clone, Debug, PartialEq)]
struct State {
    snap: Option<SnapshotMeta>,
    entries: BTreeMap<u64, Entry>,
    hs: HardState,
}

impl State {
    fn snap_index(&self) -> u64 {
        self.snap.map_or(0, |m| m.index)
    }
    fn last(&self) -> u64 {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.snap_index())
    }
    fn from_restored(r: &Restored) -> State {
        State {
            snap: r.snapshot.as_ref().map(|s| s.meta),
            entries: r.entries.iter().map(|e| (e.index, e.clone())).collect(),
            hs: r.hard_state,
        }
    }
}

#[derive(Clone, Debug)]
enum StorageOp {
    /// Append `n` entries starting `back` before the end.
    Append { back: u64, n: u64, big: bool },
    HardState {
        term: u64,
        vote: Option<u64>,
        recovering: bool,
    },
    /// Snapshot at `back` before the end (keeps the suffix), or, if
    /// `install`, a leader's snapshot `back` past the end with a new term.
    Snapshot { back: u64, install: bool },
}

#[derive(Clone, Debug)]
struct Step {
    op: StorageOp,
    /// Power cut after this many mutating disk calls, then a crash.
    crash: Option<(u32, Option<Tear>)>,
}

fn storage_op() -> impl Strategy<Value = StorageOp> {
    prop_oneof![
        6 => (0..4u64, 1..4u64, prop::bool::weighted(0.1)).prop_map(|(back, n, big)| StorageOp::Append { back, n, big }),
        2 => (0..5u64, prop::option::of(1..4u64), any::<bool>()).prop_map(|(term, vote, recovering)| StorageOp::HardState { term, vote, recovering }),
        1 => (0..4u64, any::<bool>()).prop_map(|(back, install)| StorageOp::Snapshot { back, install }),
    ]
}

fn tear() -> impl Strategy<Value = Tear> {
    (0..4usize, 0..4usize, 0..400usize).prop_map(|(file, ops, bytes)| Tear { file, ops, bytes })
}

fn step() -> impl Strategy<Value = Step> {
    (
        storage_op(),
        prop::option::weighted(0.3, (0..8u32, prop::option::of(tear()))),
    )
        .prop_map(|(op, crash)| Step { op, crash })
}

/// Turns a generated op into concrete arguments and the state it produces.
enum Concrete {
    Append(Vec<Entry>),
    HardState(HardState),
    Snapshot(Snapshot),
}

fn concretize(op: &StorageOp, st: &State, tag: u64) -> (Concrete, State) {
    let mut next = st.clone();
    match op {
        StorageOp::Append { back, n, big } => {
            let start = st.last().saturating_sub(*back).max(st.snap_index()) + 1;
            let es: Vec<Entry> = (start..start + n)
                .map(|i| Entry {
                    term: tag,
                    index: i,
                    data: if *big {
                        vec![tag as u8; 300]
                    } else {
                        format!("{i}/{tag}").into_bytes()
                    },
                })
                .collect();
            next.entries.retain(|&i, _| i < start);
            next.entries.extend(es.iter().map(|e| (e.index, e.clone())));
            (Concrete::Append(es), next)
        }
        StorageOp::HardState {
            term,
            vote,
            recovering,
        } => {
            next.hs = HardState {
                term: *term,
                vote: *vote,
                recovering: *recovering,
            };
            (Concrete::HardState(next.hs), next)
        }
        StorageOp::Snapshot { back, install } => {
            let snap = if *install {
                let index = st.last() + back;
                Snapshot {
                    meta: SnapshotMeta {
                        index: index.max(1),
                        term: tag,
                    },
                    data: Rc::from(tag.to_le_bytes().to_vec()),
                }
            } else {
                let index = st.last().saturating_sub(*back).max(1);
                let term = st
                    .entries
                    .get(&index)
                    .map(|e| e.term)
                    .or(st.snap.filter(|m| m.index == index).map(|m| m.term))
                    .unwrap_or(tag);
                Snapshot {
                    meta: SnapshotMeta { index, term },
                    data: Rc::from(vec![index as u8; 5]),
                }
            };
            let m = snap.meta;
            if m.index > st.snap_index() {
                let keep = st.entries.get(&m.index).is_some_and(|e| e.term == m.term);
                next.snap = Some(m);
                if keep {
                    next.entries.retain(|&i, _| i > m.index);
                } else {
                    next.entries.clear();
                }
            }
            (Concrete::Snapshot(snap), next)
        }
    }
}

async fn run(s: &mut Storage, c: &Concrete) -> Result<(), StorageError> {
    match c {
        Concrete::Append(es) => s.append(es).await,
        Concrete::HardState(hs) => s.set_hard_state(*hs).await,
        Concrete::Snapshot(snap) => s.save_snapshot(snap).await,
    }
}

/// `r` is what an interrupted step from `a` towards `b` may leave: each of
/// snapshot and hard state is the old or the new one, the entries agree with
/// one side, and no entry both sides agree on is lost.
fn check_interrupted(r: &State, a: &State, b: &State) -> Result<(), TestCaseError> {
    prop_assert!(
        r.snap == a.snap || r.snap == b.snap,
        "snapshot {:?}",
        r.snap
    );
    prop_assert!(r.hs == a.hs || r.hs == b.hs);
    let agrees = |x: &State| r.entries.iter().all(|(i, e)| x.entries.get(i) == Some(e));
    prop_assert!(agrees(a) || agrees(b), "entries agree with neither side");
    let keys: Vec<u64> = r.entries.keys().copied().collect();
    let first = r.snap.map_or(0, |m| m.index) + 1;
    prop_assert!(
        keys.iter().copied().eq(first..first + keys.len() as u64),
        "not contiguous"
    );
    let mut i = first;
    while let (Some(x), Some(y)) = (a.entries.get(&i), b.entries.get(&i)) {
        if x != y {
            break;
        }
        prop_assert!(
            r.entries.contains_key(&i),
            "lost entry {} both sides hold",
            i
        );
        i += 1;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn crashes_keep_a_consistent_log(steps in prop::collection::vec(step(), 1..25)) {
        block_on(async {
            let disk = Rc::new(MemDisk::default());
            let (mut s, _, _) = open(&disk).await;
            s.set_segment_bytes(200);
            let mut st = State { snap: None, entries: BTreeMap::new(), hs: HardState::default() };
            for (tag, step) in steps.iter().enumerate() {
                let tag = tag as u64 + 1;
                let (c, next) = concretize(&step.op, &st, tag);
                match step.crash {
                    None => {
                        run(&mut s, &c).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                        st = next;
                    }
                    Some((after, tear)) => {
                        disk.fail_after(after, io::ErrorKind::Other);
                        let ok = run(&mut s, &c).await.is_ok();
                        disk.heal();
                        disk.crash(tear);
                        let (s2, r, rep) = open(&disk).await;
                        prop_assert!(!r.recovering, "{:?}", rep);
                        let got = State::from_restored(&r);
                        if ok {
                            prop_assert_eq!(&got, &next);
                        } else {
                            check_interrupted(&got, &st, &next)?;
                        }
                        s = s2;
                        s.set_segment_bytes(200);
                        st = got;
                    }
                }
                prop_assert_eq!(s.last_index(), st.last());
            }
            // A clean reopen gives back exactly the state.
            let (_, r, rep) = open(&disk).await;
            prop_assert!(!r.recovering && !rep.torn_tail);
            prop_assert_eq!(State::from_restored(&r), st);
            Ok(())
        })?;
    }

    #[test]
    fn a_flipped_bit_is_detected_or_harmless(
        ops in prop::collection::vec(storage_op(), 1..20),
        file in any::<prop::sample::Index>(),
        bit in any::<prop::sample::Index>(),
    ) {
        block_on(async {
            let disk = Rc::new(MemDisk::default());
            let (mut s, _, _) = open(&disk).await;
            s.set_segment_bytes(200);
            let mut st = State { snap: None, entries: BTreeMap::new(), hs: HardState::default() };
            // Entries a snapshot covered that may still sit in a segment
            // straddling it (served if the snapshot goes bad).
            let mut covered: BTreeMap<u64, Entry> = BTreeMap::new();
            for (tag, op) in ops.iter().enumerate() {
                let (c, next) = concretize(op, &st, tag as u64 + 1);
                run(&mut s, &c).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Some(m) = next.snap.filter(|m| Some(*m) != st.snap) {
                    if st.entries.get(&m.index).is_some_and(|e| e.term == m.term) {
                        covered.extend(st.entries.range(..=m.index).map(|(i, e)| (*i, e.clone())));
                    } else {
                        covered.clear();
                    }
                }
                st = next;
            }
            let names: Vec<String> = disk.names().into_iter().filter(|n| disk.size(n) > 0).collect();
            if names.is_empty() {
                return Ok(());
            }
            let name = &names[file.index(names.len())];
            disk.flip_bit(name, bit.index(disk.size(name) * 8) as u64);
            let d: Rc<dyn Disk> = disk.clone();
            let (_, r, rep) = Storage::open(d).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = State::from_restored(&r);
            prop_assert_eq!(got.hs, st.hs);
            prop_assert_eq!(r.recovering, rep.corruption.is_some());
            if r.recovering {
                // Never wrong data: whatever is served was written.
                prop_assert!(got.snap.is_none() || got.snap == st.snap);
                for (i, e) in &got.entries {
                    prop_assert!(st.entries.get(i).or(covered.get(i)) == Some(e), "entry {} differs", i);
                }
            } else if rep.torn_tail {
                // Only the very last record may look torn.
                prop_assert_eq!(got.snap, st.snap);
                let mut shorter = st.entries.clone();
                shorter.pop_last();
                prop_assert_eq!(&got.entries, &shorter);
            } else {
                prop_assert_eq!(&got, &st);
            }
            // Whatever was wrong has been cleaned up.
            let (_, r2, rep2) = open(&disk).await;
            prop_assert!(!r2.recovering && !rep2.torn_tail, "{:?}", rep2);
            prop_assert_eq!(State::from_restored(&r2), got);
            Ok(())
        })?;
    }
}
