//! The routing table: which Service owns each node port, the ready
//! endpoints behind it, the round-robin cursor and the passive-health
//! cooldowns.
//!
//! Sans-IO, like the rest of the orchestrator's cores: the table is fed
//! Services and Endpoints ([`Table::apply_service`],
//! [`Table::apply_endpoints`], and their `delete_` twins) and appends what
//! changed to a `Vec<Effect>` the driver acts on (open or close a listener)
//! and traces. It reads no clock: [`Backends::pick`], [`Backends::begin`],
//! [`Backends::end`] and [`Backends::fail`] take `now` as an argument.
//!
//! Rules:
//! - Every TCP port of a Service is served on the node at its `nodePort`
//!   when it has one, else at its `port`. Ports of other protocols are
//!   ignored.
//! - Two Services claiming one node port: the first by (namespace, name)
//!   wins, so every node (and every restart) agrees whatever order the
//!   objects arrived in; the losers are reported ([`Effect::Conflict`]) and
//!   take over, in the same order, when the winner lets go.
//! - The backends of a port are the Endpoints' ready `addresses` (never
//!   `notReadyAddresses`). In each subset the port is the one named like the
//!   Service port (what the endpoints controller writes: the Service port's
//!   name with the resolved target port), else the one matching the
//!   `targetPort` by number or by name (unset: the Service `port`). A subset
//!   with no matching port contributes nothing.
//! - Backends are kept sorted by address; picking is round robin, skipping
//!   endpoints in cooldown (entered by [`Backends::fail`], left after the
//!   cooldown or on an answer) and stalled endpoints: ones with requests in
//!   flight that have not answered anything for the stall timeout (a
//!   partitioned endpoint black-holes its pooled connections; without this,
//!   every request routed to it until the first upstream timeout fires
//!   would hang too). When every candidate is skipped they are tried
//!   anyway: a guess beats a certain 503.
//! - A retry avoids the endpoint that failed, passes over endpoints whose
//!   last outcome was a failure (their cooldown merely ran out: first
//!   attempts probe those, a retry should not bet on them), and prefers one
//!   on another node (`nodeName` of the address), since the pods of a dead
//!   node are often next to each other in address order.
//! - Each backend carries a caller-owned state `C` (the driver keeps idle
//!   upstream connections there). It survives endpoint-set changes for
//!   addresses that stay, is reset when the endpoint fails and dropped when
//!   the address leaves the set.
//!
//! A listener's [`Backends`] sit behind an `Rc<RefCell<_>>` the table
//! updates in place, so a listener keeps one handle for its whole life and
//! a request costs O(1) in the number of Services.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::{EndpointSubset, Endpoints, IntOrString, Service};
use tokio::time::Instant;

/// `(namespace, name)` of a Service and of its Endpoints.
pub type ServiceKey = (String, String);

/// The pod-side port a Service port forwards to, before resolution against
/// an Endpoints subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Number(u16),
    Name(String),
}

/// One TCP Service port as the proxy serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The Service port's name (empty for a single unnamed port).
    pub name: String,
    /// The Service port (`spec.ports[].port`).
    pub port: u16,
    /// Where the node listens: the `nodePort` if set, else `port`.
    pub listen: u16,
    pub target: Target,
}

impl PortSpec {
    /// `namespace/name:port-name` (or `:port-number` when unnamed), for
    /// trace lines.
    fn label(&self, key: &ServiceKey) -> String {
        if self.name.is_empty() {
            format!("{}/{}:{}", key.0, key.1, self.port)
        } else {
            format!("{}/{}:{}", key.0, key.1, self.name)
        }
    }
}

/// True for the protocols the proxy forwards (TCP; empty means TCP).
fn is_tcp(protocol: &str) -> bool {
    protocol.is_empty() || protocol == "TCP"
}

fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// The ports of `svc` the proxy serves: TCP ports with a valid number, one
/// per listen port (the first wins; validation forbids duplicates anyway).
pub fn service_ports(svc: &Service) -> Vec<PortSpec> {
    let mut out: Vec<PortSpec> = Vec::with_capacity(svc.spec.ports.len());
    for sp in &svc.spec.ports {
        if !is_tcp(&sp.protocol) {
            continue;
        }
        let Some(port) = port_number(sp.port) else {
            continue;
        };
        let listen = if sp.node_port != 0 {
            match port_number(sp.node_port) {
                Some(p) => p,
                None => continue,
            }
        } else {
            port
        };
        let target = match &sp.target_port {
            None | Some(IntOrString::Int(0)) => Target::Number(port),
            Some(IntOrString::Int(n)) => match port_number(*n) {
                Some(p) => Target::Number(p),
                None => continue,
            },
            Some(IntOrString::String(s)) if s.is_empty() => Target::Number(port),
            Some(IntOrString::String(s)) => Target::Name(s.clone()),
        };
        if out.iter().any(|p| p.listen == listen) {
            continue;
        }
        out.push(PortSpec {
            name: sp.name.clone(),
            port,
            listen,
            target,
        });
    }
    out
}

/// One ready endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address {
    /// `ip:port`.
    pub addr: Rc<str>,
    /// The node the pod runs on, when the Endpoints say.
    pub node: Option<Rc<str>>,
}

/// The ready endpoints behind `spec`, sorted by address and unique.
pub fn resolve(subsets: &[EndpointSubset], spec: &PortSpec) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    for subset in subsets {
        if subset.addresses.is_empty() {
            continue;
        }
        let tcp = || subset.ports.iter().filter(|p| is_tcp(&p.protocol));
        let found = tcp()
            .find(|p| p.name == spec.name)
            .or_else(|| match &spec.target {
                Target::Number(n) => tcp().find(|p| p.port == i32::from(*n)),
                Target::Name(name) => tcp().find(|p| p.name == *name),
            });
        let Some(port) = found.and_then(|p| port_number(p.port)) else {
            continue;
        };
        for a in &subset.addresses {
            if !a.ip.is_empty() {
                out.push(Address {
                    addr: format!("{}:{port}", a.ip).into(),
                    node: a.node_name.as_deref().map(Rc::from),
                });
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.addr == b.addr);
    out
}

/// What a table update changed, for the driver to act on and trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start listening on `port`; its backends are [`Table::backends`].
    Open { port: u16, service: String },
    /// Another Service now owns the open `port` (the listener stays).
    Retarget { port: u16, service: String },
    /// Stop listening on `port`.
    Close { port: u16, service: String },
    /// More than one Service claims `port`: `winner` is served.
    Conflict {
        port: u16,
        winner: String,
        losers: Vec<String>,
    },
    /// The endpoint set behind `port` changed.
    Endpoints {
        port: u16,
        service: String,
        addrs: Vec<Rc<str>>,
    },
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Open { port, service } => write!(f, "open :{port} for {service}"),
            Effect::Retarget { port, service } => write!(f, "retarget :{port} to {service}"),
            Effect::Close { port, service } => write!(f, "close :{port} of {service}"),
            Effect::Conflict {
                port,
                winner,
                losers,
            } => write!(
                f,
                "port {port} claimed by {winner} and {}: {winner} is served",
                losers.join(", ")
            ),
            Effect::Endpoints {
                port,
                service,
                addrs,
            } => {
                write!(f, "endpoints of {service} on :{port}: {}", addrs.len())?;
                for (i, a) in addrs.iter().enumerate() {
                    f.write_str(if i == 0 { " [" } else { " " })?;
                    f.write_str(a)?;
                }
                if !addrs.is_empty() {
                    f.write_str("]")?;
                }
                Ok(())
            }
        }
    }
}

/// One endpoint of a listener.
#[derive(Debug)]
pub struct Backend<C> {
    addr: Rc<str>,
    node: Option<Rc<str>>,
    /// Skipped by round robin until then (passive health).
    cooling_until: Option<Instant>,
    /// The last outcome was a failure ([`Backends::fail`]) rather than an
    /// answer: still a candidate once its cooldown is over (that is how a
    /// recovered endpoint is found), but not one a retry should bet on.
    suspect: bool,
    /// Requests begun and not yet ended.
    in_flight: u32,
    /// Since when requests have been in flight with no answer from this
    /// endpoint. Invariant: `Some` only while `in_flight > 0`.
    waiting_since: Option<Instant>,
    state: C,
}

impl<C> Backend<C> {
    /// `ip:port`.
    pub fn addr(&self) -> &Rc<str> {
        &self.addr
    }
}

/// Which endpoint [`Backends::pick`] chose; hand it back to
/// [`Backends::begin`], [`Backends::end`], [`Backends::fail`] or
/// [`Backends::state_mut`].
/// Stays meaningful across endpoint-set changes (it falls back to the
/// address).
#[derive(Debug, Clone)]
pub struct Pick {
    index: usize,
    generation: u64,
    /// The endpoint's `ip:port`.
    pub addr: Rc<str>,
    /// Its node, if known.
    pub node: Option<Rc<str>>,
}

/// The endpoints behind one listener.
#[derive(Debug)]
pub struct Backends<C> {
    /// `namespace/name:port` of the Service served.
    service: String,
    cooldown: Duration,
    /// An endpoint this long without answering its requests in flight is
    /// skipped.
    stall: Duration,
    /// Invariant: sorted by address, no duplicates.
    endpoints: Vec<Backend<C>>,
    /// Where the next round-robin scan starts.
    /// Invariant: `cursor < endpoints.len()`, or 0 when empty.
    cursor: usize,
    /// Bumped whenever `endpoints` is replaced, so a [`Pick`] taken before
    /// a change is not applied to the wrong index.
    generation: u64,
}

impl<C: Default> Backends<C> {
    fn new(service: String, cooldown: Duration, stall: Duration) -> Backends<C> {
        Backends {
            service,
            cooldown,
            stall,
            endpoints: Vec::new(),
            cursor: 0,
            generation: 0,
        }
    }

    /// `namespace/name:port` of the Service served.
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoints' addresses, in order.
    pub fn addrs(&self) -> impl Iterator<Item = &Rc<str>> {
        self.endpoints.iter().map(|b| &b.addr)
    }

    /// True when `addr` is in cooldown at `now`.
    pub fn is_cooling(&self, addr: &str, now: Instant) -> bool {
        self.find(addr)
            .is_some_and(|i| Self::cooling(&self.endpoints[i], now))
    }

    fn cooling(b: &Backend<C>, now: Instant) -> bool {
        b.cooling_until.is_some_and(|until| now < until)
    }

    /// True when `addr` has had requests in flight and no answer for the
    /// stall timeout.
    pub fn is_stalled(&self, addr: &str, now: Instant) -> bool {
        self.find(addr)
            .is_some_and(|i| self.stalled(&self.endpoints[i], now))
    }

    fn stalled(&self, b: &Backend<C>, now: Instant) -> bool {
        b.waiting_since
            .is_some_and(|since| now.saturating_duration_since(since) >= self.stall)
    }

    /// The stall timeout.
    pub fn stall_timeout(&self) -> Duration {
        self.stall
    }

    /// Since when the picked endpoint has had requests in flight without
    /// answering any (`None`: nothing in flight, or it left the set). It
    /// is stalled from `since + stall_timeout` on.
    pub fn waiting_since(&self, pick: &Pick) -> Option<Instant> {
        self.locate(pick)
            .and_then(|i| self.endpoints[i].waiting_since)
    }

    /// True when an endpoint other than the picked one is healthy (a
    /// retry would have somewhere good to go).
    pub fn has_alternative(&self, pick: &Pick, now: Instant) -> bool {
        self.endpoints
            .iter()
            .any(|b| b.addr != pick.addr && self.healthy(b, now))
    }

    /// Neither cooling down nor stalled.
    fn healthy(&self, b: &Backend<C>, now: Instant) -> bool {
        !Self::cooling(b, now) && !self.stalled(b, now)
    }

    fn find(&self, addr: &str) -> Option<usize> {
        self.endpoints
            .binary_search_by(|b| (*b.addr).cmp(addr))
            .ok()
    }

    fn locate(&self, pick: &Pick) -> Option<usize> {
        if pick.generation == self.generation {
            assert!(
                pick.index < self.endpoints.len(),
                "a pick of this generation"
            );
            Some(pick.index)
        } else {
            self.find(&pick.addr)
        }
    }

    /// The next endpoint in round-robin order that is healthy (neither
    /// cooling down nor stalled). For a retry, `avoid` is the attempt that
    /// failed: its endpoint is skipped, one whose cooldown merely ran out
    /// since it last failed is passed over (first attempts probe those, a
    /// retry should not), and one on another node is preferred (pods of a
    /// dead node sit next to each other in address order). When every
    /// candidate is skipped, the next one anyway (skipping is a preference,
    /// never a reason to fail). `None` when there is no endpoint but
    /// `avoid`'s.
    pub fn pick(&mut self, now: Instant, avoid: Option<&Pick>) -> Option<Pick> {
        let n = self.endpoints.len();
        let cursor = self.cursor;
        let order = || (0..n).map(move |i| (cursor + i) % n);
        let eps = &self.endpoints;
        let other = |i: &usize| avoid.is_none_or(|a| a.addr != eps[*i].addr);
        let ready = |i: &usize| other(i) && self.healthy(&eps[*i], now);
        let trusted = |i: &usize| ready(i) && (avoid.is_none() || !eps[*i].suspect);
        let elsewhere = |i: &usize| {
            trusted(i)
                && match (
                    avoid.and_then(|a| a.node.as_deref()),
                    eps[*i].node.as_deref(),
                ) {
                    (Some(failed), Some(node)) => failed != node,
                    _ => true,
                }
        };
        let chosen = order()
            .find(elsewhere)
            .or_else(|| order().find(trusted))
            .or_else(|| order().find(ready))
            .or_else(|| order().find(other))?;
        self.cursor = (chosen + 1) % n;
        let b = &self.endpoints[chosen];
        Some(Pick {
            index: chosen,
            generation: self.generation,
            addr: b.addr.clone(),
            node: b.node.clone(),
        })
    }

    /// The caller's state of the picked endpoint, if it is still in the set.
    pub fn state_mut(&mut self, pick: &Pick) -> Option<&mut C> {
        let i = self.locate(pick)?;
        Some(&mut self.endpoints[i].state)
    }

    /// The picked endpoint refused or timed out: it cools down until
    /// `now + cooldown`, and its state is reset (idle connections to a
    /// failing endpoint are not worth keeping).
    pub fn fail(&mut self, pick: &Pick, now: Instant) {
        if let Some(i) = self.locate(pick) {
            let b = &mut self.endpoints[i];
            b.cooling_until = Some(now + self.cooldown);
            b.suspect = true;
            b.state = C::default();
        }
    }

    /// A request to the picked endpoint begins (connecting included).
    pub fn begin(&mut self, pick: &Pick, now: Instant) {
        if let Some(i) = self.locate(pick) {
            let b = &mut self.endpoints[i];
            b.in_flight += 1;
            b.waiting_since.get_or_insert(now);
        }
    }

    /// A request begun with [`Backends::begin`] ended; `answered` when a
    /// response arrived, a sign of life that also ends a cooldown.
    pub fn end(&mut self, pick: &Pick, now: Instant, answered: bool) {
        if let Some(i) = self.locate(pick) {
            let b = &mut self.endpoints[i];
            // An endpoint that left and came back restarted its count.
            b.in_flight = b.in_flight.saturating_sub(1);
            if answered {
                b.cooling_until = None;
                b.suspect = false;
                b.waiting_since = Some(now);
            }
            if b.in_flight == 0 {
                b.waiting_since = None;
            }
        }
    }

    /// Replaces the endpoint set with `addrs` (sorted, unique), keeping the
    /// cooldown and state of addresses that stay. Returns false when
    /// nothing changed.
    fn replace(&mut self, addrs: &[Address]) -> bool {
        assert!(
            addrs.windows(2).all(|w| w[0].addr < w[1].addr),
            "addresses sorted and unique"
        );
        if self.endpoints.len() == addrs.len()
            && self
                .endpoints
                .iter()
                .zip(addrs)
                .all(|(b, a)| b.addr == a.addr && b.node == a.node)
        {
            return false;
        }
        let mut old = std::mem::take(&mut self.endpoints).into_iter().peekable();
        let mut fresh = Vec::with_capacity(addrs.len());
        for a in addrs {
            // Both lists are sorted: skip the old endpoints that left.
            while old.next_if(|b| b.addr < a.addr).is_some() {}
            match old.next_if(|b| b.addr == a.addr) {
                Some(mut kept) => {
                    kept.node = a.node.clone();
                    fresh.push(kept)
                }
                None => fresh.push(Backend {
                    addr: a.addr.clone(),
                    node: a.node.clone(),
                    cooling_until: None,
                    suspect: false,
                    in_flight: 0,
                    waiting_since: None,
                    state: C::default(),
                }),
            }
        }
        self.endpoints = fresh;
        self.cursor = if self.endpoints.is_empty() {
            0
        } else {
            self.cursor % self.endpoints.len()
        };
        self.generation += 1;
        true
    }

    fn check_invariants(&self) {
        assert!(
            self.endpoints.windows(2).all(|w| w[0].addr < w[1].addr),
            "{}: endpoints sorted and unique",
            self.service
        );
        assert!(
            self.cursor < self.endpoints.len() || (self.endpoints.is_empty() && self.cursor == 0),
            "{}: cursor in range",
            self.service
        );
        for b in &self.endpoints {
            assert!(
                b.waiting_since.is_none() || b.in_flight > 0,
                "{}: {} waits with nothing in flight",
                self.service,
                b.addr
            );
        }
    }
}

/// One open node port.
struct Route<C> {
    /// The Service served (the first claimant).
    owner: ServiceKey,
    /// The other claimants, in order, as last reported.
    losers: Vec<ServiceKey>,
    backends: Rc<RefCell<Backends<C>>>,
}

/// The node's ports and what each forwards to.
pub struct Table<C> {
    cooldown: Duration,
    stall: Duration,
    services: BTreeMap<ServiceKey, Vec<PortSpec>>,
    /// Ready subsets only (`notReadyAddresses` dropped).
    endpoints: BTreeMap<ServiceKey, Vec<EndpointSubset>>,
    /// Who claims each node port. Invariant: no empty sets; `k` claims `p`
    /// exactly when `services[k]` has a port listening on `p`.
    claims: BTreeMap<u16, BTreeSet<ServiceKey>>,
    /// Invariant: a route exists exactly for the claimed ports, owned by
    /// the first claimant.
    routes: BTreeMap<u16, Route<C>>,
}

fn key_of(ns: &str, name: &str) -> ServiceKey {
    (ns.to_string(), name.to_string())
}

fn show(key: &ServiceKey) -> String {
    format!("{}/{}", key.0, key.1)
}

impl<C: Default> Table<C> {
    /// An empty table; failed endpoints cool down for `cooldown`, and
    /// endpoints silent for `stall` with requests in flight are skipped.
    pub fn new(cooldown: Duration, stall: Duration) -> Table<C> {
        Table {
            cooldown,
            stall,
            services: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            claims: BTreeMap::new(),
            routes: BTreeMap::new(),
        }
    }

    /// The backends of an open port (shared with its listener).
    pub fn backends(&self, port: u16) -> Option<Rc<RefCell<Backends<C>>>> {
        self.routes.get(&port).map(|r| r.backends.clone())
    }

    /// The open ports, ascending.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.routes.keys().copied()
    }

    /// Number of Services known.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// A Service was added or changed.
    pub fn apply_service(&mut self, svc: &Service, out: &mut Vec<Effect>) {
        let key = key_of(&svc.metadata.namespace, &svc.metadata.name);
        let ports = service_ports(svc);
        if self.services.get(&key) == Some(&ports) {
            return;
        }
        let old = self.services.insert(key.clone(), ports).unwrap_or_default();
        self.reclaim(&key, &old, out);
    }

    /// A Service was deleted.
    pub fn delete_service(&mut self, ns: &str, name: &str, out: &mut Vec<Effect>) {
        let key = key_of(ns, name);
        if let Some(old) = self.services.remove(&key) {
            self.reclaim(&key, &old, out);
        }
    }

    /// Endpoints were added or changed.
    pub fn apply_endpoints(&mut self, ep: &Endpoints, out: &mut Vec<Effect>) {
        let key = key_of(&ep.metadata.namespace, &ep.metadata.name);
        let ready: Vec<EndpointSubset> = ep
            .subsets
            .iter()
            .filter(|s| !s.addresses.is_empty())
            .map(|s| EndpointSubset {
                addresses: s.addresses.clone(),
                not_ready_addresses: Vec::new(),
                ports: s.ports.clone(),
            })
            .collect();
        if self.endpoints.get(&key) == Some(&ready) {
            return;
        }
        self.endpoints.insert(key.clone(), ready);
        self.refresh(&key, out);
    }

    /// Endpoints were deleted.
    pub fn delete_endpoints(&mut self, ns: &str, name: &str, out: &mut Vec<Effect>) {
        let key = key_of(ns, name);
        if self.endpoints.remove(&key).is_some() {
            self.refresh(&key, out);
        }
    }

    /// Moves `key`'s claims from its `old` ports to its current ones and
    /// settles every port involved.
    fn reclaim(&mut self, key: &ServiceKey, old: &[PortSpec], out: &mut Vec<Effect>) {
        let mut touched = BTreeSet::new();
        for p in old {
            touched.insert(p.listen);
            if let Some(set) = self.claims.get_mut(&p.listen) {
                set.remove(key);
                if set.is_empty() {
                    self.claims.remove(&p.listen);
                }
            }
        }
        for p in self.services.get(key).into_iter().flatten() {
            touched.insert(p.listen);
            self.claims.entry(p.listen).or_default().insert(key.clone());
        }
        for port in touched {
            self.settle(port, out);
        }
    }

    /// Re-resolves the ports `key` serves after its Endpoints changed.
    fn refresh(&mut self, key: &ServiceKey, out: &mut Vec<Effect>) {
        let ports: Vec<u16> = self
            .services
            .get(key)
            .into_iter()
            .flatten()
            .map(|p| p.listen)
            .collect();
        for port in ports {
            self.settle(port, out);
        }
    }

    /// Brings the route of `port` in line with its claims and endpoints.
    fn settle(&mut self, port: u16, out: &mut Vec<Effect>) {
        let Some(claimants) = self.claims.get(&port) else {
            if let Some(route) = self.routes.remove(&port) {
                let service = route.backends.borrow().service.clone();
                out.push(Effect::Close { port, service });
            }
            return;
        };
        let mut iter = claimants.iter();
        let winner = iter.next().expect("claim sets are never empty").clone();
        let losers: Vec<ServiceKey> = iter.cloned().collect();
        let spec = self.services[&winner]
            .iter()
            .find(|p| p.listen == port)
            .expect("a claimant serves the port it claims");
        let label = spec.label(&winner);
        let addrs = self
            .endpoints
            .get(&winner)
            .map(|subsets| resolve(subsets, spec))
            .unwrap_or_default();
        let (cooldown, stall) = (self.cooldown, self.stall);
        let mut opened = false;
        let route = match self.routes.entry(port) {
            std::collections::btree_map::Entry::Vacant(v) => {
                opened = true;
                out.push(Effect::Open {
                    port,
                    service: label.clone(),
                });
                v.insert(Route {
                    owner: winner.clone(),
                    losers: Vec::new(),
                    backends: Rc::new(RefCell::new(Backends::new(label.clone(), cooldown, stall))),
                })
            }
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        };
        let mut backends = route.backends.borrow_mut();
        if route.owner != winner || backends.service != label {
            route.owner = winner.clone();
            backends.service = label.clone();
            out.push(Effect::Retarget {
                port,
                service: label.clone(),
            });
        }
        if route.losers != losers {
            if !losers.is_empty() {
                out.push(Effect::Conflict {
                    port,
                    winner: show(&winner),
                    losers: losers.iter().map(show).collect(),
                });
            }
            route.losers = losers;
        }
        // A new port always reports its endpoints, even none.
        if backends.replace(&addrs) || opened {
            out.push(Effect::Endpoints {
                port,
                service: label,
                addrs: addrs.into_iter().map(|a| a.addr).collect(),
            });
        }
    }

    /// Checks the table's invariants (tests and simulation call it after
    /// feeding it).
    pub fn check_invariants(&self) {
        for (port, set) in &self.claims {
            assert!(!set.is_empty(), "port {port}: empty claim set");
            for key in set {
                assert!(
                    self.services
                        .get(key)
                        .is_some_and(|ps| ps.iter().any(|p| p.listen == *port)),
                    "port {port}: claimed by {key:?}, which does not serve it"
                );
            }
            let route = self.routes.get(port).expect("a claimed port has a route");
            assert_eq!(
                Some(&route.owner),
                set.first(),
                "port {port}: owned by the first claimant"
            );
        }
        for (key, ports) in &self.services {
            for p in ports {
                assert!(
                    self.claims.get(&p.listen).is_some_and(|s| s.contains(key)),
                    "{key:?} serves {} without claiming it",
                    p.listen
                );
            }
        }
        for (port, route) in &self.routes {
            assert!(
                self.claims.contains_key(port),
                "port {port}: unclaimed route"
            );
            route.backends.borrow().check_invariants();
        }
    }
}

#[cfg(test)]
mod tests {
    use faultline_api::{EndpointAddress, EndpointPort, ObjectMeta, ServicePort};

    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(5);
    const STALL: Duration = Duration::from_millis(500);

    fn svc(ns: &str, name: &str, ports: &[(&str, i32, Option<IntOrString>)]) -> Service {
        let mut s = Service {
            metadata: ObjectMeta::named(ns, name),
            ..Default::default()
        };
        s.spec.ports = ports
            .iter()
            .map(|(n, p, t)| ServicePort {
                name: n.to_string(),
                protocol: "TCP".into(),
                port: *p,
                target_port: t.clone(),
                ..Default::default()
            })
            .collect();
        s
    }

    fn subset(ready: &[&str], not_ready: &[&str], ports: &[(&str, i32)]) -> EndpointSubset {
        let addr = |ip: &&str| EndpointAddress {
            ip: ip.to_string(),
            ..Default::default()
        };
        EndpointSubset {
            addresses: ready.iter().map(addr).collect(),
            not_ready_addresses: not_ready.iter().map(addr).collect(),
            ports: ports
                .iter()
                .map(|(n, p)| EndpointPort {
                    name: n.to_string(),
                    port: *p,
                    protocol: "TCP".into(),
                })
                .collect(),
        }
    }

    fn eps(ns: &str, name: &str, subsets: Vec<EndpointSubset>) -> Endpoints {
        Endpoints {
            metadata: ObjectMeta::named(ns, name),
            subsets,
            ..Default::default()
        }
    }

    /// Endpoints `ns/name` with the one ready address `ip:port` (port
    /// unnamed).
    fn one_endpoint(ns: &str, name: &str, ip: &str, port: i32) -> Endpoints {
        eps(ns, name, vec![subset(&[ip], &[], &[("", port)])])
    }

    /// The effects as trace lines.
    fn lines(out: &[Effect]) -> Vec<String> {
        out.iter().map(|e| e.to_string()).collect()
    }

    fn addrs(b: &Backends<u32>) -> Vec<String> {
        b.addrs().map(|a| a.to_string()).collect()
    }

    fn table() -> Table<u32> {
        Table::new(COOLDOWN, STALL)
    }

    #[test]
    fn a_service_opens_its_port_and_endpoints_fill_it() {
        let mut t = table();
        let mut out = Vec::new();
        t.apply_service(&svc("default", "web", &[("http", 80, None)]), &mut out);
        assert_eq!(
            out,
            vec![
                Effect::Open {
                    port: 80,
                    service: "default/web:http".into()
                },
                Effect::Endpoints {
                    port: 80,
                    service: "default/web:http".into(),
                    addrs: vec![]
                },
            ]
        );
        out.clear();
        let web = eps(
            "default",
            "web",
            vec![subset(
                &["10.0.0.2", "10.0.0.1"],
                &["10.0.0.9"],
                &[("http", 80)],
            )],
        );
        t.apply_endpoints(&web, &mut out);
        assert_eq!(
            lines(&out),
            vec!["endpoints of default/web:http on :80: 2 [10.0.0.1:80 10.0.0.2:80]"]
        );
        let b = t.backends(80).unwrap();
        assert_eq!(addrs(&b.borrow()), vec!["10.0.0.1:80", "10.0.0.2:80"]);
        t.check_invariants();

        // The same object again changes nothing.
        out.clear();
        t.apply_endpoints(&web, &mut out);
        t.apply_service(&svc("default", "web", &[("http", 80, None)]), &mut out);
        assert_eq!(out, vec![]);

        t.delete_service("default", "web", &mut out);
        assert_eq!(
            out,
            vec![Effect::Close {
                port: 80,
                service: "default/web:http".into()
            }]
        );
        assert!(t.backends(80).is_none());
        t.check_invariants();
    }

    #[test]
    fn endpoints_before_the_service_are_used_when_it_arrives() {
        let mut t = table();
        let mut out = Vec::new();
        t.apply_endpoints(&one_endpoint("a", "web", "10.0.0.1", 8080), &mut out);
        assert_eq!(out, vec![]);
        t.apply_service(
            &svc("a", "web", &[("", 80, Some(IntOrString::Int(8080)))]),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].to_string(),
            "endpoints of a/web:80 on :80: 1 [10.0.0.1:8080]"
        );
        // Endpoints deleted: the port stays open with no backends.
        out.clear();
        t.delete_endpoints("a", "web", &mut out);
        assert_eq!(out[0].to_string(), "endpoints of a/web:80 on :80: 0");
        assert!(t.backends(80).unwrap().borrow().is_empty());
        t.check_invariants();
    }

    #[test]
    fn target_ports_resolve_by_service_port_name_then_number_then_name() {
        let spec = |name: &str, target: Target| PortSpec {
            name: name.into(),
            port: 80,
            listen: 80,
            target,
        };
        let subsets = vec![
            subset(&["10.0.0.1"], &[], &[("http", 9000), ("", 8080)]),
            subset(&["10.0.0.2"], &[], &[("metrics", 9100), ("web", 8081)]),
            subset(&["10.0.0.3"], &[], &[("other", 1)]),
        ];
        let show = |v: Vec<Address>| v.iter().map(|a| a.addr.to_string()).collect::<Vec<_>>();
        // The endpoints controller's convention: the Service port's name.
        assert_eq!(
            show(resolve(&subsets, &spec("http", Target::Number(8080)))),
            vec!["10.0.0.1:9000"]
        );
        // A number.
        assert_eq!(
            show(resolve(&subsets, &spec("x", Target::Number(8081)))),
            vec!["10.0.0.2:8081"]
        );
        // A name.
        assert_eq!(
            show(resolve(&subsets, &spec("x", Target::Name("web".into())))),
            vec!["10.0.0.2:8081"]
        );
        assert!(resolve(&subsets, &spec("x", Target::Number(7))).is_empty());
    }

    #[test]
    fn service_ports_skip_other_protocols_and_prefer_node_ports() {
        let mut s = svc(
            "a",
            "b",
            &[
                ("dns", 53, None),
                ("http", 80, Some(IntOrString::String("web".into()))),
                ("admin", 9000, Some(IntOrString::Int(0))),
                ("bad", 70000, None),
            ],
        );
        s.spec.ports[0].protocol = "UDP".into();
        s.spec.ports[2].node_port = 30090;
        s.spec.ports[2].protocol = String::new();
        assert_eq!(
            service_ports(&s),
            vec![
                PortSpec {
                    name: "http".into(),
                    port: 80,
                    listen: 80,
                    target: Target::Name("web".into())
                },
                PortSpec {
                    name: "admin".into(),
                    port: 9000,
                    listen: 30090,
                    target: Target::Number(9000)
                },
            ]
        );
    }

    #[test]
    fn the_first_service_by_namespace_and_name_wins_a_port() {
        let mut t = table();
        let mut out = Vec::new();
        t.apply_endpoints(&one_endpoint("b", "web", "10.0.0.2", 80), &mut out);
        t.apply_endpoints(&one_endpoint("a", "web", "10.0.0.1", 80), &mut out);
        t.apply_service(&svc("b", "web", &[("", 80, None)]), &mut out);
        out.clear();
        // a/web sorts first: it takes the port over from b/web.
        t.apply_service(&svc("a", "web", &[("", 80, None)]), &mut out);
        assert_eq!(
            lines(&out),
            vec![
                "retarget :80 to a/web:80",
                "port 80 claimed by a/web and b/web: a/web is served",
                "endpoints of a/web:80 on :80: 1 [10.0.0.1:80]",
            ]
        );
        t.check_invariants();
        // The winner leaves: the loser takes over, the port stays open.
        out.clear();
        t.delete_service("a", "web", &mut out);
        assert_eq!(
            lines(&out),
            vec![
                "retarget :80 to b/web:80",
                "endpoints of b/web:80 on :80: 1 [10.0.0.2:80]",
            ]
        );
        // A loser's endpoints changing does not touch the winner's port.
        t.apply_service(&svc("c", "web", &[("", 80, None)]), &mut out);
        out.clear();
        t.apply_endpoints(&one_endpoint("c", "web", "10.0.0.3", 80), &mut out);
        assert_eq!(out, vec![]);
        t.check_invariants();
    }

    #[test]
    fn a_service_moving_ports_closes_the_old_and_opens_the_new() {
        let mut t = table();
        let mut out = Vec::new();
        t.apply_service(&svc("a", "web", &[("", 80, None)]), &mut out);
        out.clear();
        t.apply_service(&svc("a", "web", &[("", 81, None)]), &mut out);
        assert_eq!(
            lines(&out),
            vec![
                "close :80 of a/web:80",
                "open :81 for a/web:81",
                "endpoints of a/web:81 on :81: 0"
            ]
        );
        assert_eq!(t.ports().collect::<Vec<_>>(), vec![81]);
        t.check_invariants();
    }

    fn address(addr: &str) -> Address {
        Address {
            addr: addr.into(),
            node: None,
        }
    }

    fn backends(addrs: &[&str]) -> Backends<u32> {
        let mut b = Backends::new("a/web:80".into(), COOLDOWN, STALL);
        let v: Vec<Address> = addrs.iter().map(|a| address(a)).collect();
        b.replace(&v);
        b
    }

    fn picks(b: &mut Backends<u32>, now: Instant, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| b.pick(now, None).unwrap().addr.to_string())
            .collect()
    }

    #[test]
    fn round_robin_skips_cooling_endpoints_until_the_cooldown_ends() {
        let t0 = Instant::now();
        let mut b = backends(&["a:1", "b:1", "c:1"]);
        assert_eq!(picks(&mut b, t0, 4), vec!["a:1", "b:1", "c:1", "a:1"]);
        let p = b.pick(t0, None).unwrap();
        assert_eq!(&*p.addr, "b:1");
        b.fail(&p, t0);
        assert!(b.is_cooling("b:1", t0 + Duration::from_secs(4)));
        assert_eq!(picks(&mut b, t0, 4), vec!["c:1", "a:1", "c:1", "a:1"]);
        // Cooldown over: back in rotation.
        let later = t0 + COOLDOWN;
        assert_eq!(picks(&mut b, later, 3), vec!["b:1", "c:1", "a:1"]);
        // An answer ends a cooldown early.
        let p = b.pick(later, None).unwrap();
        b.begin(&p, later);
        b.fail(&p, later);
        assert!(b.is_cooling(&p.addr, later));
        b.end(&p, later, true);
        assert!(!b.is_cooling(&p.addr, later));
        b.check_invariants();
    }

    #[test]
    fn an_endpoint_silent_with_requests_in_flight_is_skipped() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut b = backends(&["a:1", "b:1"]);
        let a = b.pick(t0, None).unwrap();
        b.begin(&a, t0);
        b.begin(&a, at(100));
        // Slow is not stalled yet.
        assert!(!b.is_stalled("a:1", at(499)));
        assert_eq!(picks(&mut b, at(499), 2), vec!["b:1", "a:1"]);
        assert!(b.is_stalled("a:1", at(500)));
        assert_eq!(picks(&mut b, at(500), 2), vec!["b:1", "b:1"]);
        // An answer is a sign of life: the clock restarts from it.
        b.end(&a, at(600), true);
        assert!(!b.is_stalled("a:1", at(1000)));
        assert!(b.is_stalled("a:1", at(1100)));
        // Failures are not: still stalled until nothing is in flight.
        b.begin(&a, at(1100));
        b.end(&a, at(1200), false);
        assert!(b.is_stalled("a:1", at(1200)));
        b.end(&a, at(1300), false);
        assert!(!b.is_stalled("a:1", at(1300)));
        b.check_invariants();
        // Everyone stalled: round robin anyway.
        let p = b.pick(at(2000), None).unwrap();
        b.begin(&p, at(2000));
        let q = b.pick(at(2000), None).unwrap();
        b.begin(&q, at(2000));
        assert_eq!(picks(&mut b, at(3000), 2), vec!["a:1", "b:1"]);
        assert!(!b.has_alternative(&p, at(3000)));
        b.end(&q, at(3000), true);
        assert!(b.has_alternative(&p, at(3000)));
        assert!(!b.has_alternative(&q, at(3000)));
        // Ends reported for an endpoint that left are ignored.
        b.replace(&[address("c:1")]);
        b.end(&p, at(3000), true);
        b.check_invariants();
    }

    #[test]
    fn when_everything_is_cooling_down_it_is_tried_anyway() {
        let t0 = Instant::now();
        let mut b = backends(&["a:1", "b:1"]);
        for _ in 0..2 {
            let p = b.pick(t0, None).unwrap();
            b.fail(&p, t0);
        }
        assert_eq!(picks(&mut b, t0, 3), vec!["a:1", "b:1", "a:1"]);
    }

    #[test]
    fn a_retry_avoids_the_failed_endpoint_when_it_can() {
        let t0 = Instant::now();
        let mut b = backends(&["a:1", "b:1", "c:1"]);
        let first = b.pick(t0, None).unwrap();
        b.fail(&first, t0);
        let retry = b.pick(t0, Some(&first)).unwrap();
        assert_eq!(&*retry.addr, "b:1");
        // c cooling too: b is the only one that is neither.
        let c = b.pick(t0, None).unwrap();
        assert_eq!(&*c.addr, "c:1");
        b.fail(&c, t0);
        assert_eq!(&*b.pick(t0, Some(&first)).unwrap().addr, "b:1");
        // Everything cooling but `avoid` is still skipped.
        let mut one = backends(&["a:1"]);
        let only = one.pick(t0, None).unwrap();
        assert!(one.pick(t0, Some(&only)).is_none());
        assert_eq!(&*one.pick(t0, None).unwrap().addr, "a:1");
        let mut empty = backends(&[]);
        assert!(empty.pick(t0, None).is_none());
    }

    #[test]
    fn a_retry_passes_over_endpoints_that_failed_last_time() {
        let t0 = Instant::now();
        let mut b = backends(&["a:1", "b:1", "c:1"]);
        let a = b.pick(t0, None).unwrap();
        let bb = b.pick(t0, None).unwrap();
        b.fail(&a, t0);
        b.fail(&bb, t0);
        // Cooldowns over: first attempts probe them again...
        let later = t0 + COOLDOWN;
        let probe = b.pick(later, None).unwrap();
        assert_eq!(&*probe.addr, "c:1");
        let probe = b.pick(later, None).unwrap();
        assert_eq!(&*probe.addr, "a:1");
        b.fail(&probe, later);
        // ...but a retry goes to the one that answered last, not to b.
        let retry = b.pick(later, Some(&probe)).unwrap();
        assert_eq!(&*retry.addr, "c:1");
        // An answer clears the suspicion.
        b.begin(&bb, later);
        b.end(&bb, later, true);
        assert_eq!(&*b.pick(later, Some(&probe)).unwrap().addr, "b:1");
    }

    #[test]
    fn a_retry_prefers_an_endpoint_on_another_node() {
        let t0 = Instant::now();
        let on = |addr: &str, node: &str| Address {
            addr: addr.into(),
            node: Some(node.into()),
        };
        let mut b: Backends<u32> = Backends::new("a/web:80".into(), COOLDOWN, STALL);
        b.replace(&[
            on("10.1.0.1:80", "n1"),
            on("10.1.0.2:80", "n1"),
            on("10.2.0.1:80", "n2"),
        ]);
        let first = b.pick(t0, None).unwrap();
        assert_eq!(first.node.as_deref(), Some("n1"));
        b.fail(&first, t0);
        // Not 10.1.0.2, next in order: it is on the node that just failed.
        assert_eq!(&*b.pick(t0, Some(&first)).unwrap().addr, "10.2.0.1:80");
        // With no other node, another endpoint of the same one.
        let n2 = b.pick(t0, None).unwrap();
        assert_eq!(&*n2.addr, "10.1.0.2:80");
        let c = b.pick(t0, None).unwrap();
        b.fail(&c, t0);
        assert_eq!(&*c.addr, "10.2.0.1:80");
        assert_eq!(&*b.pick(t0, Some(&first)).unwrap().addr, "10.1.0.2:80");
    }

    #[test]
    fn endpoint_changes_keep_state_and_cooldown_of_the_survivors() {
        let t0 = Instant::now();
        let mut b = backends(&["a:1", "b:1", "c:1"]);
        let pa = b.pick(t0, None).unwrap();
        *b.state_mut(&pa).unwrap() = 7;
        let pb = b.pick(t0, None).unwrap();
        *b.state_mut(&pb).unwrap() = 8;
        b.fail(&pb, t0);
        assert_eq!(*b.state_mut(&pb).unwrap(), 0, "failing resets the state");
        let new: Vec<Address> = ["b:1", "c:1", "d:1"].iter().map(|a| address(a)).collect();
        assert!(b.replace(&new));
        assert!(!b.replace(&new));
        // A pick from before the change finds its endpoint by address...
        assert!(b.state_mut(&pa).is_none());
        assert!(b.is_cooling("b:1", t0));
        assert_eq!(*b.state_mut(&pb).unwrap(), 0);
        let pd = b.pick(t0, None).unwrap();
        assert_eq!(&*pd.addr, "d:1", "the cursor kept its place");
        *b.state_mut(&pd).unwrap() = 9;
        b.replace(&[address(&pd.addr)]);
        assert_eq!(*b.state_mut(&pd).unwrap(), 9);
        // ...and a failure reported for an endpoint that left is ignored.
        b.fail(&pa, t0);
        b.check_invariants();
        assert_eq!(addrs(&b), vec!["d:1"]);
    }

    #[test]
    fn not_ready_addresses_and_portless_subsets_are_never_backends() {
        let mut t = table();
        let mut out = Vec::new();
        t.apply_service(&svc("a", "web", &[("http", 80, None)]), &mut out);
        t.apply_endpoints(
            &eps(
                "a",
                "web",
                vec![
                    subset(&[], &["10.0.0.1"], &[("http", 80)]),
                    subset(&["10.0.0.2"], &[], &[("metrics", 9100)]),
                ],
            ),
            &mut out,
        );
        assert!(t.backends(80).unwrap().borrow().is_empty());
        t.check_invariants();
    }
}
