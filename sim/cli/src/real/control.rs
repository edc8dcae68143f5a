//! The faults of a real run, as `faultline_faults::Control` sees them.
//!
//! The fault driver is synchronous (it decides, a backend acts), while
//! Docker and `nsenter` are not: each call here updates the run's own view
//! at once (what is up, what is cut) and queues what must happen for
//! real, which [`RealControl::apply`] then does, in order, before the
//! driver's next step.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use faultline_checker::ledger::Ledger;
use faultline_checker::raft::RaftMonitor;
use faultline_engine::SimDisk;
use faultline_faults::control::{control_plane_down, Outages};
use faultline_faults::Control;

use super::docker::RunDocker;
use super::netns::{self, Rule};

/// What must happen for real.
#[derive(Debug)]
enum Op {
    Kill(String),
    Start(String),
    Pause(String),
    Unpause(String),
    /// The kubelet-restart signal to a node's process.
    RestartKubelet(String),
    /// A new, empty container in place of a (killed) master's.
    LoseDisk(String),
    /// Add (`true`) or delete a rule in a host's namespace.
    Rule(String, Rule, bool),
}

/// A real run's hosts and faults.
pub struct RealControl {
    pub docker: Rc<RunDocker>,
    /// Every host's address (containers and the run's users).
    pub addrs: BTreeMap<String, String>,
    pub datacenters: BTreeMap<String, String>,
    pub masters: Vec<String>,
    pub nodes: Vec<String>,
    pub users: Vec<String>,
    pub raft: Rc<RefCell<RaftMonitor>>,
    pub ledger: Rc<Ledger>,
    /// Containers down (killed) and frozen.
    down: BTreeSet<String>,
    paused: BTreeSet<String>,
    /// (from, to) pairs cut, as the faults asked.
    blocked: BTreeSet<(String, String)>,
    /// Rules in force, by the container whose namespace holds them (put
    /// back when it starts again: a new container process gets a new
    /// namespace).
    rules: BTreeMap<String, BTreeSet<Rule>>,
    ops: Vec<Op>,
    pub outages: Outages,
    /// What went wrong doing a fault for real (the run reports it).
    pub errors: Vec<String>,
    /// Where a fault's disk would be (disk faults but `disk-loss` are
    /// refused before a real run starts; the trait still wants one).
    scratch: Rc<SimDisk>,
}

impl RealControl {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        docker: Rc<RunDocker>,
        addrs: BTreeMap<String, String>,
        datacenters: BTreeMap<String, String>,
        masters: Vec<String>,
        nodes: Vec<String>,
        users: Vec<String>,
        raft: Rc<RefCell<RaftMonitor>>,
        ledger: Rc<Ledger>,
    ) -> RealControl {
        RealControl {
            docker,
            addrs,
            datacenters,
            masters,
            nodes,
            users,
            raft,
            ledger,
            down: BTreeSet::new(),
            paused: BTreeSet::new(),
            blocked: BTreeSet::new(),
            rules: BTreeMap::new(),
            ops: Vec::new(),
            outages: Outages::default(),
            errors: Vec::new(),
            scratch: Rc::new(SimDisk::new(
                "scratch",
                rand_chacha::rand_core::SeedableRng::seed_from_u64(0),
                Rc::new(faultline_engine::Trace::new(
                    tokio::time::Instant::now(),
                    false,
                )),
            )),
        }
    }

    fn is_container(&self, host: &str) -> bool {
        self.masters.iter().chain(&self.nodes).any(|h| h == host)
    }

    /// Where the rule that cuts `from -> to` lives: in `to`'s namespace
    /// (what comes in from `from`), or, when `to` is not a container (a
    /// user of the run), in `from`'s (what goes out to `to`).
    fn rule_for(&self, from: &str, to: &str, loss_ppm: Option<u32>) -> Option<(String, Rule)> {
        let (host, chain, peer) = if self.is_container(to) {
            (to, "INPUT", from)
        } else if self.is_container(from) {
            (from, "OUTPUT", to)
        } else {
            return None;
        };
        let peer = self.addrs.get(peer)?.clone();
        Some((
            host.to_string(),
            Rule {
                chain,
                peer,
                loss_ppm,
            },
        ))
    }

    fn set_rule(&mut self, from: &str, to: &str, loss_ppm: Option<u32>, add: bool) {
        let Some((host, rule)) = self.rule_for(from, to, loss_ppm) else {
            return;
        };
        let set = self.rules.entry(host.clone()).or_default();
        let changed = if add {
            set.insert(rule.clone())
        } else {
            set.remove(&rule)
        };
        if changed {
            self.ops.push(Op::Rule(host, rule, add));
        }
    }

    /// Notes whether the control plane can serve the nodes, at `now_ns`.
    pub fn observe_control_plane(&mut self, now_ns: u64) {
        let down = control_plane_down(
            &self.masters,
            &self.nodes,
            |h| self.is_up(h),
            |a, b| self.blocked.contains(&(a.to_string(), b.to_string())),
        );
        self.outages.note(down, now_ns);
    }

    /// Does what the faults asked since the last call.
    pub async fn apply(ctl: &Rc<RefCell<RealControl>>) {
        let (ops, docker) = {
            let mut c = ctl.borrow_mut();
            (std::mem::take(&mut c.ops), c.docker.clone())
        };
        for op in ops {
            let result = match &op {
                Op::Kill(h) => {
                    // A frozen container is thawed first, or the kill
                    // waits for it.
                    let _ = docker.unpause(h).await;
                    docker.kill(h, "SIGKILL").await
                }
                Op::Start(h) => match docker.start(h).await {
                    Ok(()) => Self::network_up(ctl, h).await,
                    Err(e) => Err(e),
                },
                Op::Pause(h) => docker.pause(h).await,
                Op::Unpause(h) => docker.unpause(h).await,
                Op::RestartKubelet(h) => docker.kill(h, "SIGUSR1").await,
                // The new one rejoins the cluster it was part of, as the
                // simulator's master does after its first start: with no
                // data, which needs an operator.
                Op::LoseDisk(h) => docker.replace(h, &["--rejoin"]).await,
                Op::Rule(h, rule, add) => match docker.pid(h).await {
                    // Not running: its rules go back in when it starts.
                    None => Ok(()),
                    Some(pid) => {
                        let op = if *add { "-A" } else { "-D" };
                        netns::run(pid, "iptables", &rule.args(op)).await
                    }
                },
            };
            if let Err(e) = result {
                ctl.borrow_mut().errors.push(e);
            }
        }
    }

    /// Sets up `host`'s namespace after its container started: a node's
    /// pod addresses and routes to the other nodes' pods, and the fault
    /// rules in force there.
    pub async fn network_up(ctl: &Rc<RefCell<RealControl>>, host: &str) -> Result<(), String> {
        let (docker, node_index, nodes, addrs, rules) = {
            let c = ctl.borrow();
            (
                c.docker.clone(),
                c.nodes.iter().position(|n| n == host),
                c.nodes.clone(),
                c.addrs.clone(),
                c.rules.get(host).cloned().unwrap_or_default(),
            )
        };
        let mut pid = None;
        for _ in 0..100 {
            pid = docker.pid(host).await;
            if pid.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let pid = pid.ok_or_else(|| format!("{host}: its container did not start"))?;
        if let Some(i) = node_index {
            let own = format!("{}.0.0/16", faultline_runner::world::pod_prefix(i));
            let args = ["route", "add", "local", &own, "dev", "lo"];
            netns::run(pid, "ip", &args.map(String::from)).await?;
            for (j, other) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
                let prefix = format!("{}.0.0/16", faultline_runner::world::pod_prefix(j));
                let via = &addrs[other];
                let args = ["route", "add", &prefix, "via", via];
                netns::run(pid, "ip", &args.map(String::from)).await?;
            }
        }
        for rule in rules {
            netns::run(pid, "iptables", &rule.args("-A")).await?;
        }
        Ok(())
    }
}

impl Control for RealControl {
    fn masters(&self) -> Vec<String> {
        self.masters.clone()
    }
    fn hosts(&self) -> Vec<String> {
        self.masters
            .iter()
            .chain(&self.nodes)
            .chain(&self.users)
            .cloned()
            .collect()
    }
    fn lease_holder(&self, lease: &str) -> Option<String> {
        self.raft.borrow().lease_holder(lease)
    }
    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }
    fn users(&self) -> Vec<String> {
        self.users.clone()
    }
    fn nodes_running(&self, name: &str) -> Vec<String> {
        self.ledger.hosts_running(name)
    }
    fn datacenter(&self, host: &str) -> String {
        self.datacenters.get(host).cloned().unwrap_or_default()
    }
    fn leader(&self) -> Option<String> {
        let host = self.raft.borrow().latest_leader()?;
        self.is_up(&host).then_some(host)
    }
    fn is_up(&self, host: &str) -> bool {
        !self.down.contains(host) && !self.paused.contains(host)
    }
    fn crash(&mut self, host: &str, _power_loss: bool) {
        // Power loss is refused before a real run starts.
        if self.is_container(host) && self.down.insert(host.to_string()) {
            // Killed while frozen: nothing to thaw later.
            self.paused.remove(host);
            self.ops.push(Op::Kill(host.to_string()));
            self.ledger.host_down(host);
        }
    }
    fn restart(&mut self, host: &str) {
        if self.down.remove(host) {
            self.ops.push(Op::Start(host.to_string()));
        }
    }
    fn block(&mut self, from: &str, to: &str) {
        self.blocked.insert((from.to_string(), to.to_string()));
        self.set_rule(from, to, None, true);
    }
    fn unblock(&mut self, from: &str, to: &str) {
        self.blocked.remove(&(from.to_string(), to.to_string()));
        self.set_rule(from, to, None, false);
    }
    fn degrade(&mut self, from: &str, to: &str, loss: f64, _extra: Duration, _jitter: Duration) {
        // Added latency is refused before a real run starts; loss is a
        // random-drop rule.
        if loss > 0.0 {
            let ppm = (loss.clamp(0.0, 1.0) * 1e6).round() as u32;
            self.set_rule(from, to, Some(ppm), true);
        }
    }
    fn restore(&mut self, from: &str, to: &str) {
        let rules: Vec<Rule> = match self.rule_for(from, to, None) {
            Some((host, cut)) => self
                .rules
                .get(&host)
                .into_iter()
                .flatten()
                .filter(|r| r.chain == cut.chain && r.peer == cut.peer && r.loss_ppm.is_some())
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        for r in rules {
            self.set_rule(from, to, r.loss_ppm, false);
        }
    }
    fn pause(&mut self, host: &str) -> bool {
        if !self.is_container(host) || self.down.contains(host) {
            return false;
        }
        if self.paused.insert(host.to_string()) {
            self.ops.push(Op::Pause(host.to_string()));
        }
        true
    }
    fn resume(&mut self, host: &str) {
        if self.paused.remove(host) {
            self.ops.push(Op::Unpause(host.to_string()));
        }
    }
    fn restart_kubelet(&mut self, host: &str) -> bool {
        if !self.nodes.iter().any(|n| n == host) || !self.is_up(host) {
            return false;
        }
        self.ops.push(Op::RestartKubelet(host.to_string()));
        true
    }
    fn lose_disk(&mut self, host: &str) {
        if self.masters.iter().any(|m| m == host) {
            self.ops.push(Op::LoseDisk(host.to_string()));
        }
    }
    fn disk(&self, _host: &str) -> Rc<SimDisk> {
        self.scratch.clone()
    }
    fn note(&self, line: &str) {
        eprintln!("faultline real: {line}");
    }
}
