//! The client connections of one listener: what each is doing, when it
//! must be closed, and which one to shed when the listener is full.
//!
//! Sans-IO: a [`Slot`] is a connection's phase and deadline, moved along by
//! the driver (`on_bytes` from the byte stream, `on_request` and
//! `on_response` from the HTTP service) with `now` passed in; a
//! [`ConnSet`] counts a listener's connections and chooses victims. The
//! driver closes a connection when its deadline passes and aborts the
//! victims `ConnSet` hands back.
//!
//! Timeouts (why not hyper's `header_read_timeout` alone: hyper starts that
//! timer whenever it waits for a request head, idle keep-alive waits
//! included, so it cannot give an idle connection more time than a client
//! sending its headers slowly):
//! - a new connection must deliver its first request head within the
//!   header timeout of being accepted;
//! - after a response, the connection may idle for the idle timeout; once
//!   the first byte of the next request arrives, its head must be complete
//!   within the header timeout;
//! - while a request is being handled there is no connection deadline (the
//!   handler bounds its own reads and upstream calls).
//!
//! Shedding: a full listener admits a new connection by closing the one
//! that has waited longest without a request in progress (fresh, idle or
//! stuck in a partial head: least recently active first), and refuses it
//! only when every connection is busy. So thousands of idle connections
//! cost a newcomer nothing but a shed idler, where refusing new
//! connections would lock everyone out until the idlers time out; and a
//! newcomer is shed only after every connection that waited longer.
//! (Hand-written: tower's concurrency limits count requests in flight and
//! make newcomers wait, which is the opposite of what a flood of idle
//! connections calls for; the bookkeeping is a map and a scan.)

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, nothing received yet.
    Fresh,
    /// Between requests, nothing of the next one received.
    Idle,
    /// Part of a request head received.
    Head,
    /// A request is being handled.
    Busy,
}

/// One connection's phase and deadline. Shared (`Rc`) between the byte
/// stream, the HTTP service and the [`ConnSet`].
#[derive(Debug)]
pub struct Slot {
    phase: Cell<Phase>,
    /// When the phase began.
    since: Cell<Instant>,
    /// When the connection must be closed. Invariant: `None` exactly when
    /// `Busy`.
    deadline: Cell<Option<Instant>>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl Slot {
    /// A connection accepted at `now`.
    pub fn new(now: Instant, header_timeout: Duration, idle_timeout: Duration) -> Slot {
        Slot {
            phase: Cell::new(Phase::Fresh),
            since: Cell::new(now),
            deadline: Cell::new(Some(now + header_timeout)),
            header_timeout,
            idle_timeout,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// When the connection must be closed (`None` while busy).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get()
    }

    /// True when the next bytes would start a request head (the caller
    /// then reads the clock and calls [`Slot::on_bytes`]).
    pub fn awaits_head(&self) -> bool {
        matches!(self.phase.get(), Phase::Fresh | Phase::Idle)
    }

    /// Bytes arrived. The first bytes of a head start the header timeout
    /// (a fresh connection's is already running since it was accepted).
    pub fn on_bytes(&self, now: Instant) {
        match self.phase.get() {
            Phase::Fresh => self.enter(Phase::Head, now, self.deadline.get()),
            Phase::Idle => self.enter(Phase::Head, now, Some(now + self.header_timeout)),
            Phase::Head | Phase::Busy => {}
        }
    }

    /// A complete request head arrived: the handler runs.
    pub fn on_request(&self, now: Instant) {
        self.enter(Phase::Busy, now, None);
    }

    /// The handler produced its response: the connection idles.
    pub fn on_response(&self, now: Instant) {
        self.enter(Phase::Idle, now, Some(now + self.idle_timeout));
    }

    fn enter(&self, phase: Phase, now: Instant, deadline: Option<Instant>) {
        assert_eq!(
            deadline.is_none(),
            phase == Phase::Busy,
            "only a busy connection has no deadline"
        );
        self.phase.set(phase);
        self.since.set(now);
        self.deadline.set(deadline);
    }

    /// Shedding order: earlier goes first; busy connections are never shed.
    fn shed_rank(&self) -> Option<Instant> {
        match self.phase.get() {
            Phase::Fresh | Phase::Idle | Phase::Head => Some(self.since.get()),
            Phase::Busy => None,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The live connections of one listener, each with the caller's handle `H`
/// (the driver's abort handle).
#[derive(Debug)]
pub struct ConnSet<H> {
    max: usize,
    next_id: u64,
    /// By admission order. Invariant: `len() <= max`.
    live: BTreeMap<u64, (Rc<Slot>, Option<H>)>,
}

impl<H> ConnSet<H> {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> ConnSet<H> {
        assert!(max > 0, "a listener must admit at least one connection");
        ConnSet {
            max,
            next_id: 0,
            live: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Makes room for one more connection. Returns the handle of the
    /// connection shed to make it (the caller closes it), or [`Full`] when
    /// every connection is busy.
    pub fn make_room(&mut self) -> Result<Option<H>, Full> {
        if self.live.len() < self.max {
            return Ok(None);
        }
        // O(max) scan, only when full: admission stays cheap in the common
        // case and per-request work never touches the set.
        let victim = self
            .live
            .iter()
            .filter_map(|(id, (slot, _))| slot.shed_rank().map(|rank| (rank, *id)))
            .min()
            .map(|(_, id)| id)
            .ok_or(Full)?;
        let (_, handle) = self.live.remove(&victim).expect("victim is live");
        Ok(handle)
    }

    /// Adds a connection; call [`ConnSet::make_room`] first. Returns its id.
    pub fn insert(&mut self, slot: Rc<Slot>) -> u64 {
        assert!(self.live.len() < self.max, "make_room before insert");
        let id = self.next_id;
        self.next_id += 1;
        self.live.insert(id, (slot, None));
        id
    }

    /// Attaches the caller's handle to connection `id`, if still live.
    pub fn set_handle(&mut self, id: u64, handle: H) {
        if let Some(entry) = self.live.get_mut(&id) {
            entry.1 = Some(handle);
        }
    }

    /// Forgets connection `id` (it ended); a no-op if it was shed.
    pub fn remove(&mut self, id: u64) {
        self.live.remove(&id);
    }

    /// Forgets every connection, returning their handles (to close them).
    pub fn drain(&mut self) -> Vec<H> {
        std::mem::take(&mut self.live)
            .into_values()
            .filter_map(|(_, h)| h)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(5);
    const IDLE: Duration = Duration::from_secs(30);

    fn slot(now: Instant) -> Rc<Slot> {
        Rc::new(Slot::new(now, HEAD, IDLE))
    }

    #[test]
    fn deadlines_follow_the_request_cycle() {
        let t0 = Instant::now();
        let s = slot(t0);
        assert_eq!((s.phase(), s.deadline()), (Phase::Fresh, Some(t0 + HEAD)));
        // The first head's clock started at accept.
        s.on_bytes(t0 + Duration::from_secs(2));
        assert_eq!((s.phase(), s.deadline()), (Phase::Head, Some(t0 + HEAD)));
        s.on_bytes(t0 + Duration::from_secs(3));
        assert_eq!(s.deadline(), Some(t0 + HEAD));
        let t1 = t0 + Duration::from_secs(4);
        s.on_request(t1);
        assert_eq!((s.phase(), s.deadline()), (Phase::Busy, None));
        assert!(!s.awaits_head());
        s.on_bytes(t1);
        assert_eq!(s.phase(), Phase::Busy, "body bytes change nothing");
        let t2 = t1 + Duration::from_secs(1);
        s.on_response(t2);
        assert_eq!((s.phase(), s.deadline()), (Phase::Idle, Some(t2 + IDLE)));
        assert!(s.awaits_head());
        // The next head gets the header timeout from its first byte.
        let t3 = t2 + Duration::from_secs(20);
        s.on_bytes(t3);
        assert_eq!((s.phase(), s.deadline()), (Phase::Head, Some(t3 + HEAD)));
    }

    #[test]
    fn a_full_set_sheds_the_least_recently_active_connection() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut set: ConnSet<&str> = ConnSet::new(3);
        let busy = slot(at(0));
        let stalled = slot(at(1));
        let idle = slot(at(2));
        for (s, name) in [(&busy, "busy"), (&stalled, "stalled"), (&idle, "idle")] {
            assert_eq!(set.make_room(), Ok(None));
            let id = set.insert(s.clone());
            set.set_handle(id, name);
        }
        busy.on_bytes(at(3));
        busy.on_request(at(3));
        stalled.on_bytes(at(4));
        idle.on_bytes(at(3));
        idle.on_request(at(3));
        idle.on_response(at(5));
        // The oldest connection is busy: never shed.
        assert_eq!(set.make_room(), Ok(Some("stalled")));
        let id = set.insert(slot(at(6)));
        set.set_handle(id, "new");
        assert_eq!(set.make_room(), Ok(Some("idle")));
        let id = set.insert(slot(at(7)));
        set.set_handle(id, "newest");
        assert_eq!(set.make_room(), Ok(Some("new")));
        let id = set.insert(slot(at(8)));
        set.remove(id);
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn a_set_of_busy_connections_refuses_newcomers() {
        let t0 = Instant::now();
        let mut set: ConnSet<u32> = ConnSet::new(2);
        for i in 0..2 {
            let s = slot(t0);
            s.on_request(t0);
            let id = set.insert(s);
            set.set_handle(id, i);
        }
        assert_eq!(set.make_room(), Err(Full));
        assert_eq!(set.drain(), vec![0, 1]);
        assert!(set.is_empty());
        assert_eq!(set.make_room(), Ok(None));
    }
}
