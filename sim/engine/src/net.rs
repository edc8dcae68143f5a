//! The simulated network: TCP-like byte streams between hosts, with
//! per-link latency, jitter, loss, partitions and hold/release.
//!
//! Model (and why):
//! - A connection is two [`Pipe`]s, one per direction. A write becomes a
//!   segment due at `now + latency + jitter`, but never before the previous
//!   segment of the same pipe (TCP delivers in order). The reader sleeps on
//!   tokio's paused clock until the head segment is due, so quiet time costs
//!   nothing: this is what makes the engine event-driven.
//! - Random packet loss on a healthy link is what TCP hides by
//!   retransmitting: a lost segment arrives one retransmission timeout later
//!   (200 ms, doubling per consecutive loss).
//! - A partition drops segments. A dropped segment is never resent — the
//!   direction becomes a black hole — so a connection cut by a partition
//!   hangs until the application's timeout, as on a real network when a
//!   switch dies. Connecting across a partition hangs the same way.
//! - Hold queues segments on a link until release, then delivers them.
//! - Dropping a connection (or crashing its host) sends a FIN: the peer reads
//!   end-of-stream after the link latency, and its writes fail.
//!
//! Every random decision comes from the network's own seeded stream, in the
//! order the single-threaded runtime makes the calls.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use faultline_env::{BoxConn, Listener, Net};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::trace::Trace;

/// Index of a host in the world.
pub type HostId = usize;

/// Bytes a pipe accepts before the writer must wait for the reader (the
/// receive window), so a stalled reader applies back-pressure.
const WINDOW_BYTES: usize = 4 << 20;
/// First retransmission timeout after a random loss.
const RTO: Duration = Duration::from_millis(200);

/// Delay characteristics of a directed link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way base latency.
    pub latency: Duration,
    /// Extra uniform random delay in `[0, jitter]` per segment.
    pub jitter: Duration,
    /// Probability that a segment is lost (and retransmitted by "TCP").
    pub loss: f64,
}

impl LinkConfig {
    /// A link with a fixed latency, no jitter and no loss.
    pub fn latency(latency: Duration) -> LinkConfig {
        LinkConfig {
            latency,
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

/// The network of one world.
pub struct SimNet {
    state: RefCell<NetState>,
    rng: RefCell<ChaCha8Rng>,
    trace: Rc<Trace>,
}

type Queue = Rc<RefCell<ListenerQueue>>;

struct NetState {
    names: BTreeMap<String, HostId>,
    hosts: Vec<HostNet>,
    /// Listening sockets by (address, port); the address is a host name or
    /// one of its extra addresses, with the host that owns the socket.
    listeners: BTreeMap<(String, u16), (HostId, Queue)>,
    /// Extra addresses (pod IPs) and the host that last bound one.
    aliases: BTreeMap<String, HostId>,
    /// Base link configuration by (from datacenter, to datacenter).
    within: LinkConfig,
    between: LinkConfig,
    /// Per directed link overrides (faults: extra latency, loss).
    overrides: BTreeMap<(HostId, HostId), LinkConfig>,
    /// Directed links that drop everything.
    blocked: BTreeSet<(HostId, HostId)>,
    /// Directed links that queue everything until released.
    held: BTreeSet<(HostId, HostId)>,
    /// Live pipes per directed link, for release and crash handling.
    pipes: BTreeMap<(HostId, HostId), Vec<Weak<RefCell<Pipe>>>>,
}

struct HostNet {
    name: String,
    dc: String,
    up: bool,
    incarnation: u64,
    next_port: u16,
}

struct ListenerQueue {
    pending: VecDeque<(SimConn, String)>,
    waker: Option<Waker>,
}

impl SimNet {
    pub(crate) fn new(
        rng: ChaCha8Rng,
        trace: Rc<Trace>,
        within: LinkConfig,
        between: LinkConfig,
    ) -> SimNet {
        SimNet {
            state: RefCell::new(NetState {
                names: BTreeMap::new(),
                hosts: Vec::new(),
                listeners: BTreeMap::new(),
                aliases: BTreeMap::new(),
                within,
                between,
                overrides: BTreeMap::new(),
                blocked: BTreeSet::new(),
                held: BTreeSet::new(),
                pipes: BTreeMap::new(),
            }),
            rng: RefCell::new(rng),
            trace,
        }
    }

    pub(crate) fn add_host(&self, name: &str, dc: &str) -> HostId {
        let mut st = self.state.borrow_mut();
        assert!(!st.names.contains_key(name), "host {name} added twice");
        let id = st.hosts.len();
        st.names.insert(name.to_string(), id);
        st.hosts.push(HostNet {
            name: name.to_string(),
            dc: dc.to_string(),
            up: true,
            incarnation: 0,
            next_port: 49152,
        });
        id
    }

    /// Looks a host up by name.
    pub fn host_id(&self, name: &str) -> Option<HostId> {
        self.state.borrow().names.get(name).copied()
    }

    /// The host's name.
    pub fn host_name(&self, id: HostId) -> String {
        self.state.borrow().hosts[id].name.clone()
    }

    /// Marks a host down: its listeners vanish and every connection it had
    /// is closed (its tasks are being dropped by the world).
    pub(crate) fn host_down(&self, id: HostId) {
        let mut st = self.state.borrow_mut();
        st.hosts[id].up = false;
        st.hosts[id].incarnation += 1;
        st.listeners.retain(|_, (h, _)| *h != id);
        let now = Instant::now();
        let mut closing = Vec::new();
        for ((from, to), list) in st.pipes.iter_mut() {
            if *from == id || *to == id {
                list.retain(|w| match w.upgrade() {
                    Some(p) => {
                        closing.push(p);
                        false
                    }
                    None => false,
                });
            }
        }
        drop(st);
        for pipe in closing {
            let mut p = pipe.borrow_mut();
            if p.from == id {
                // Our side is gone: the peer reads end-of-stream.
                if !p.fin_queued {
                    p.fin_queued = true;
                    let at = p.last_at.max(now) + Duration::from_nanos(1);
                    p.push(Segment::fin(at));
                }
            } else {
                // Whatever was in flight to the dead host is lost.
                p.reader_gone = true;
                p.segments.clear();
                p.held.clear();
            }
            p.wake_all();
        }
    }

    pub(crate) fn host_up(&self, id: HostId) {
        self.state.borrow_mut().hosts[id].up = true;
    }

    pub(crate) fn incarnation(&self, id: HostId) -> u64 {
        self.state.borrow().hosts[id].incarnation
    }

    /// Blocks the directed link `from -> to`.
    pub fn block(&self, from: HostId, to: HostId) {
        self.state.borrow_mut().blocked.insert((from, to));
    }

    /// Unblocks the directed link `from -> to`.
    pub fn unblock(&self, from: HostId, to: HostId) {
        self.state.borrow_mut().blocked.remove(&(from, to));
    }

    /// Unblocks every link.
    pub fn unblock_all(&self) {
        self.state.borrow_mut().blocked.clear();
    }

    /// True when `from -> to` drops everything.
    pub fn is_blocked(&self, from: HostId, to: HostId) -> bool {
        self.state.borrow().blocked.contains(&(from, to))
    }

    /// Queues everything on `from -> to` until [`SimNet::release`].
    pub fn hold(&self, from: HostId, to: HostId) {
        self.state.borrow_mut().held.insert((from, to));
    }

    /// Delivers what was held on `from -> to`, in order, and stops holding.
    pub fn release(&self, from: HostId, to: HostId) {
        let pipes: Vec<_> = {
            let mut st = self.state.borrow_mut();
            st.held.remove(&(from, to));
            st.pipes
                .get_mut(&(from, to))
                .map(|l| {
                    l.retain(|w| w.strong_count() > 0);
                    l.iter().filter_map(|w| w.upgrade()).collect()
                })
                .unwrap_or_default()
        };
        let now = Instant::now();
        for pipe in pipes {
            let held: Vec<Segment> = pipe.borrow_mut().held.drain(..).collect();
            for mut seg in held {
                seg.at = self.due(from, to, now, &pipe.borrow());
                pipe.borrow_mut().push(seg);
            }
            pipe.borrow_mut().wake_all();
        }
    }

    /// Overrides the configuration of the directed link `from -> to`.
    pub fn set_link(&self, from: HostId, to: HostId, cfg: LinkConfig) {
        self.state.borrow_mut().overrides.insert((from, to), cfg);
    }

    /// Restores the default configuration of `from -> to`.
    pub fn reset_link(&self, from: HostId, to: HostId) {
        self.state.borrow_mut().overrides.remove(&(from, to));
    }

    /// The configuration in force on `from -> to`.
    pub fn link(&self, from: HostId, to: HostId) -> LinkConfig {
        let st = self.state.borrow();
        if let Some(cfg) = st.overrides.get(&(from, to)) {
            return *cfg;
        }
        if st.hosts[from].dc == st.hosts[to].dc {
            st.within
        } else {
            st.between
        }
    }

    /// Delivery time of a segment written now on `from -> to`.
    fn due(&self, from: HostId, to: HostId, now: Instant, pipe: &Pipe) -> Instant {
        let cfg = self.link(from, to);
        let mut rng = self.rng.borrow_mut();
        let mut delay = cfg.latency;
        if !cfg.jitter.is_zero() {
            delay += Duration::from_nanos(rng.random_range(0..=cfg.jitter.as_nanos() as u64));
        }
        if cfg.loss > 0.0 {
            let mut rto = RTO;
            while rng.random_bool(cfg.loss.min(0.99)) {
                delay += rto;
                rto = (rto * 2).min(Duration::from_secs(60));
            }
        }
        (now + delay).max(pipe.last_at)
    }

    fn register_pipe(&self, pipe: &Rc<RefCell<Pipe>>) {
        let (from, to) = {
            let p = pipe.borrow();
            (p.from, p.to)
        };
        let mut st = self.state.borrow_mut();
        let list = st.pipes.entry((from, to)).or_default();
        if list.len() > 64 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Rc::downgrade(pipe));
    }

    async fn connect(self: &Rc<Self>, src: HostId, addr: &str) -> io::Result<SimConn> {
        let (host, port) = parse_addr(addr)?;
        let dst = {
            let st = self.state.borrow();
            st.names.get(host).or_else(|| st.aliases.get(host)).copied()
        };
        let dst = dst.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("unknown host {host:?}"))
        })?;
        let incarnation = self.incarnation(src);
        // SYN
        let there = self.link(src, dst).latency;
        tokio::time::sleep(there).await;
        if !self.path_open(src, dst) || self.incarnation(src) != incarnation {
            return std::future::pending().await;
        }
        let listener = self
            .state
            .borrow()
            .listeners
            .get(&(host.to_string(), port))
            .filter(|(owner, _)| *owner == dst)
            .map(|(_, q)| q.clone());
        let back = self.link(dst, src).latency;
        let Some(listener) = listener else {
            tokio::time::sleep(back).await;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("connection refused by {addr}"),
            ));
        };
        let src_port = {
            let mut st = self.state.borrow_mut();
            let h = &mut st.hosts[src];
            h.next_port = h.next_port.checked_add(1).unwrap_or(49152);
            h.next_port
        };
        let now = Instant::now();
        let up = Rc::new(RefCell::new(Pipe::new(src, dst, now)));
        let down = Rc::new(RefCell::new(Pipe::new(dst, src, now)));
        self.register_pipe(&up);
        self.register_pipe(&down);
        let client = SimConn {
            net: self.clone(),
            read: down.clone(),
            write: up.clone(),
        };
        let server = SimConn {
            net: self.clone(),
            read: up,
            write: down,
        };
        let src_name = self.host_name(src);
        {
            let mut l = listener.borrow_mut();
            l.pending
                .push_back((server, format!("{src_name}:{src_port}")));
            if let Some(w) = l.waker.take() {
                w.wake();
            }
        }
        self.trace.net(1, src, dst, port as u64);
        // SYN-ACK
        tokio::time::sleep(back).await;
        Ok(client)
    }

    fn path_open(&self, a: HostId, b: HostId) -> bool {
        let st = self.state.borrow();
        st.hosts[a].up
            && st.hosts[b].up
            && !st.blocked.contains(&(a, b))
            && !st.blocked.contains(&(b, a))
    }

    /// Listens on `port` of `host`'s name, or of `ip` when given: an extra
    /// address (a pod IP) that routes to `host` from now on.
    fn bind(self: &Rc<Self>, host: HostId, ip: Option<&str>, port: u16) -> io::Result<SimListener> {
        let mut st = self.state.borrow_mut();
        let addr = match ip {
            None => st.hosts[host].name.clone(),
            Some(ip) => {
                if st.names.contains_key(ip) {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrNotAvailable,
                        format!("{ip} is a host name, not an extra address"),
                    ));
                }
                let taken = st
                    .listeners
                    .iter()
                    .any(|((a, _), (owner, _))| a == ip && *owner != host);
                if taken {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("address {ip} is in use by another host"),
                    ));
                }
                st.aliases.insert(ip.to_string(), host);
                ip.to_string()
            }
        };
        let key = (addr, port);
        if st.listeners.contains_key(&key) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("port {port} already in use on {}", key.0),
            ));
        }
        let q = Rc::new(RefCell::new(ListenerQueue {
            pending: VecDeque::new(),
            waker: None,
        }));
        st.listeners.insert(key.clone(), (host, q.clone()));
        Ok(SimListener {
            net: Rc::downgrade(self),
            key,
            queue: q,
        })
    }
}

fn parse_addr(addr: &str) -> io::Result<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("address {addr:?} has no port"),
        )
    })?;
    let port = port.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("address {addr:?} has a bad port"),
        )
    })?;
    Ok((host, port))
}

struct Segment {
    at: Instant,
    data: Vec<u8>,
    fin: bool,
}

impl Segment {
    fn fin(at: Instant) -> Segment {
        Segment {
            at,
            data: Vec::new(),
            fin: true,
        }
    }
}

/// One direction of a connection.
struct Pipe {
    from: HostId,
    to: HostId,
    segments: VecDeque<Segment>,
    /// Read position inside the head segment.
    offset: usize,
    /// Bytes queued and not yet read (the window).
    queued: usize,
    /// Delivery time of the last segment queued (in-order delivery).
    last_at: Instant,
    /// Segments waiting for a held link to be released.
    held: Vec<Segment>,
    fin_queued: bool,
    /// The reading side was dropped: writes fail.
    reader_gone: bool,
    /// A partition dropped a segment: nothing more is ever delivered.
    black_hole: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Pipe {
    fn new(from: HostId, to: HostId, now: Instant) -> Pipe {
        Pipe {
            from,
            to,
            segments: VecDeque::new(),
            offset: 0,
            queued: 0,
            last_at: now,
            held: Vec::new(),
            fin_queued: false,
            reader_gone: false,
            black_hole: false,
            reader: None,
            writer: None,
            timer: None,
        }
    }

    fn push(&mut self, seg: Segment) {
        self.last_at = self.last_at.max(seg.at);
        self.queued += seg.data.len();
        self.segments.push_back(seg);
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    fn wake_all(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// A simulated TCP connection.
pub struct SimConn {
    net: Rc<SimNet>,
    read: Rc<RefCell<Pipe>>,
    write: Rc<RefCell<Pipe>>,
}

impl SimConn {
    /// Queues `seg` on the write pipe according to the link's state.
    fn send(&self, data: Vec<u8>, fin: bool) {
        let (from, to) = {
            let p = self.write.borrow();
            (p.from, p.to)
        };
        let (blocked, held) = {
            let st = self.net.state.borrow();
            (
                st.blocked.contains(&(from, to)) || !st.hosts[to].up,
                st.held.contains(&(from, to)),
            )
        };
        let mut pipe = self.write.borrow_mut();
        if pipe.black_hole {
            return;
        }
        if blocked {
            pipe.black_hole = true;
            self.net.trace.net(3, from, to, data.len() as u64);
            return;
        }
        let now = Instant::now();
        if held {
            pipe.held.push(Segment { at: now, data, fin });
            return;
        }
        let at = self.net.due(from, to, now, &pipe);
        self.net.trace.net(2, from, to, data.len() as u64);
        pipe.push(Segment { at, data, fin });
    }
}

impl AsyncRead for SimConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut guard = this.read.borrow_mut();
        let pipe = &mut *guard;
        loop {
            let now = Instant::now();
            let Some((at, fin)) = pipe.segments.front().map(|h| (h.at, h.fin)) else {
                pipe.reader = Some(cx.waker().clone());
                return Poll::Pending;
            };
            if at > now {
                let timer = pipe
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                if timer.as_mut().poll(cx).is_pending() {
                    pipe.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                continue;
            }
            // Due: a partition that came up while the segment was in flight
            // drops it, and with it the rest of the stream.
            if !pipe.black_hole && this.net.is_blocked(pipe.from, pipe.to) {
                pipe.black_hole = true;
                this.net.trace.net(3, pipe.from, pipe.to, 0);
            }
            if pipe.black_hole {
                pipe.segments.clear();
                pipe.queued = 0;
                if let Some(w) = pipe.writer.take() {
                    w.wake();
                }
                pipe.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if fin {
                return Poll::Ready(Ok(()));
            }
            let offset = pipe.offset;
            let head = pipe.segments.front().expect("checked above");
            let n = (head.data.len() - offset).min(buf.remaining());
            buf.put_slice(&head.data[offset..offset + n]);
            let consumed = offset + n == head.data.len();
            pipe.queued -= n;
            if consumed {
                pipe.segments.pop_front();
                pipe.offset = 0;
            } else {
                pipe.offset += n;
            }
            if let Some(w) = pipe.writer.take() {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for SimConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        {
            let mut pipe = this.write.borrow_mut();
            if pipe.reader_gone {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "connection closed by peer",
                )));
            }
            if pipe.fin_queued {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "write after shutdown",
                )));
            }
            if pipe.queued >= WINDOW_BYTES {
                pipe.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = data.len().min(WINDOW_BYTES);
        this.send(data[..n].to_vec(), false);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let queued = this.write.borrow().fin_queued;
        if !queued {
            this.write.borrow_mut().fin_queued = true;
            this.send(Vec::new(), true);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimConn {
    fn drop(&mut self) {
        let queued = self.write.borrow().fin_queued;
        if !queued {
            self.write.borrow_mut().fin_queued = true;
            self.send(Vec::new(), true);
        }
        let mut r = self.read.borrow_mut();
        r.reader_gone = true;
        r.segments.clear();
        r.queued = 0;
        r.timer = None;
        if let Some(w) = r.writer.take() {
            w.wake();
        }
    }
}

/// A listening port on a simulated host.
pub struct SimListener {
    net: Weak<SimNet>,
    key: (String, u16),
    queue: Rc<RefCell<ListenerQueue>>,
}

impl Drop for SimListener {
    fn drop(&mut self) {
        if let Some(net) = self.net.upgrade() {
            let mut st = net.state.borrow_mut();
            let mine = st
                .listeners
                .get(&self.key)
                .is_some_and(|(_, q)| Rc::ptr_eq(q, &self.queue));
            if mine {
                st.listeners.remove(&self.key);
            }
        }
    }
}

#[async_trait(?Send)]
impl Listener for SimListener {
    async fn accept(&mut self) -> io::Result<(BoxConn, String)> {
        let queue = self.queue.clone();
        let (conn, peer) = std::future::poll_fn(|cx| {
            let mut q = queue.borrow_mut();
            match q.pending.pop_front() {
                Some(c) => Poll::Ready(c),
                None => {
                    q.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        Ok((Box::pin(conn), peer))
    }
}

/// The network as one host sees it (implements [`Net`]).
pub struct HostNetView {
    pub(crate) net: Rc<SimNet>,
    pub(crate) host: HostId,
    pub(crate) incarnation: u64,
}

impl HostNetView {
    fn alive(&self) -> io::Result<()> {
        if self.net.incarnation(self.host) != self.incarnation {
            return Err(io::Error::other("host crashed"));
        }
        Ok(())
    }
}

#[async_trait(?Send)]
impl Net for HostNetView {
    async fn connect(&self, addr: &str) -> io::Result<BoxConn> {
        self.alive()?;
        let conn = self.net.connect(self.host, addr).await?;
        Ok(Box::pin(conn))
    }

    async fn bind(&self, port: u16) -> io::Result<Box<dyn Listener>> {
        self.alive()?;
        Ok(Box::new(self.net.bind(self.host, None, port)?))
    }

    async fn bind_ip(&self, ip: &str, port: u16) -> io::Result<Box<dyn Listener>> {
        self.alive()?;
        Ok(Box::new(self.net.bind(self.host, Some(ip), port)?))
    }
}
