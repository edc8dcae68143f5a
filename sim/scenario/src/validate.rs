//! The checks a scenario's types cannot make: ranges, references between
//! sections (a traffic entry's service, an action's deployment, a fault's
//! target), and what a kind needs from the rest of the file (worker nodes,
//! a workload, a second datacenter). Each error names the position of the
//! entry at fault, looked up in the parsed document.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::fault::{Fault, FaultKind, FaultSpec};
use crate::invariant::{InvariantKind, InvariantSpec};
use crate::names::{client_names, master_names, node_names, traffic_clients};
use crate::parse::Source;
use crate::sections::{ActionKind, NemesisMode, StoreTuning};
use crate::{Scenario, ScenarioError};

type Result = std::result::Result<(), ScenarioError>;

/// Where things are in the file.
pub(crate) struct Positions<'a> {
    src: &'a Source<'a>,
    doc: &'a DeTable<'a>,
}

impl<'a> Positions<'a> {
    pub fn new(src: &'a Source<'a>, doc: &'a DeTable<'a>) -> Positions<'a> {
        Positions { src, doc }
    }

    /// The span of the value at a dotted path (`cluster.masters`); the
    /// file's start when it is not written (a default).
    fn at(&self, path: &[&str]) -> Range<usize> {
        let mut table = self.doc;
        let mut span = 0..0;
        for key in path {
            let Some(v) = table.get(*key) else {
                return 0..0;
            };
            span = v.span();
            match v.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        span
    }

    /// The span of the `index`-th (0-based) `[[section]]` table.
    fn entry(&self, section: &str, index: usize) -> Range<usize> {
        match self.doc.get(section).map(|v| v.get_ref()) {
            Some(DeValue::Array(items)) => items.get(index).map(|i| i.span()).unwrap_or(0..0),
            _ => 0..0,
        }
    }

    fn error(&self, span: Range<usize>, field: &str, msg: impl std::fmt::Display) -> ScenarioError {
        self.src.error(span, field, msg)
    }

    fn general(&self, msg: impl std::fmt::Display) -> ScenarioError {
        self.src.general(msg)
    }
}

/// Every check, in file order; the first failure is the error.
pub(crate) fn validate(s: &Scenario, p: &Positions<'_>) -> Result {
    cluster(s, p)?;
    tuning(s, p)?;
    deployments(s, p)?;
    actions(s, p)?;
    traffic(s, p)?;
    for (i, f) in s.faults.iter().enumerate() {
        fault(s, p, f, p.entry("fault", i))?;
    }
    overlapping_faults(s, p)?;
    nemesis(s, p)?;
    invariants(s, p)
}

fn cluster(s: &Scenario, p: &Positions<'_>) -> Result {
    if s.duration.0.is_zero() {
        return Err(p.error(p.at(&["duration"]), "duration", "must be positive"));
    }
    let dcs = &s.cluster.datacenters;
    let span = p.at(&["cluster", "datacenters"]);
    if dcs.is_empty() {
        return Err(p.error(span, "cluster.datacenters", "needs at least one datacenter"));
    }
    if dcs.iter().collect::<BTreeSet<_>>().len() != dcs.len() {
        return Err(p.error(span, "cluster.datacenters", "names must be unique"));
    }
    let masters = s.cluster.masters;
    if masters == 0 || masters > 9 {
        return Err(p.error(
            p.at(&["cluster", "masters"]),
            "cluster.masters",
            format!("{masters} masters: use 1 to 9 (3 or 5 are usual)"),
        ));
    }
    if let Some(w) = &s.workload {
        if w.clients == 0 {
            return Err(p.error(
                p.at(&["workload", "clients"]),
                "workload.clients",
                "must be at least 1",
            ));
        }
        if !(w.rate > 0.0 && w.rate <= 100_000.0) {
            return Err(p.error(
                p.at(&["workload", "rate"]),
                "workload.rate",
                format!("{} is not in (0, 100000]", w.rate),
            ));
        }
        if w.keys == 0 {
            return Err(p.error(
                p.at(&["workload", "keys"]),
                "workload.keys",
                "must be at least 1",
            ));
        }
        let m = &w.mix;
        if m.get + m.put + m.cas + m.delete + m.add == 0 {
            return Err(p.general("workload.mix: all weights are zero"));
        }
    }
    Ok(())
}

fn tuning(s: &Scenario, p: &Positions<'_>) -> Result {
    // Raft's election timeout must outlast its heartbeat (one tick).
    if s.store.election_ticks < 2 {
        return Err(p.general(format_args!(
            "store.election_ticks: {}: use at least 2 (the default is {})",
            s.store.election_ticks,
            StoreTuning::default().election_ticks
        )));
    }
    if s.store.tick.0.is_zero() {
        return Err(p.general("store.tick: must be positive"));
    }
    if s.control_plane.schedulers == 0 {
        return Err(p.general("control_plane.schedulers: must be at least 1"));
    }
    for q in [&s.cluster.node.cpu, &s.cluster.node.memory] {
        if let Err(e) = faultline_api::Quantity::parse(q) {
            return Err(p.general(format_args!("cluster.node: {e}")));
        }
    }
    Ok(())
}

fn deployments(s: &Scenario, p: &Positions<'_>) -> Result {
    let mut names = BTreeSet::new();
    for (i, dep) in s.deployments.iter().enumerate() {
        let span = p.entry("deployment", i);
        let field = format!("deployment ({})", dep.name);
        if !s.has_nodes() {
            return Err(p.error(
                span,
                &field,
                "a deployment needs worker nodes: set cluster.nodes_per_datacenter",
            ));
        }
        if !faultline_api::validate::is_dns1123_label(&dep.name) {
            return Err(p.error(
                span,
                &format!("{field}.name"),
                "must be a DNS label (lower case letters, digits and '-')",
            ));
        }
        if !names.insert((dep.namespace.clone(), dep.name.clone())) {
            return Err(p.error(span, &field, "defined twice"));
        }
        if dep.replicas < 0 {
            return Err(p.error(span, &format!("{field}.replicas"), "must be >= 0"));
        }
        for q in [&dep.cpu, &dep.memory] {
            if let Err(e) = faultline_api::Quantity::parse(q) {
                return Err(p.error(span, &field, e));
            }
        }
    }
    Ok(())
}

fn actions(s: &Scenario, p: &Positions<'_>) -> Result {
    for (i, act) in s.actions.iter().enumerate() {
        let span = p.entry("action", i);
        if !s.deployments.iter().any(|d| d.name == act.deployment) {
            return Err(p.error(
                span,
                "action.deployment",
                format!("no [[deployment]] named {:?}", act.deployment),
            ));
        }
        if act.at.0 >= s.duration.0 {
            return Err(p.error(span, "action.at", "is not before the end of the run"));
        }
        match act.kind {
            ActionKind::Scale if act.replicas.is_none_or(|r| r < 0) => {
                return Err(p.error(span, "action", "scale needs `replicas` >= 0"))
            }
            ActionKind::SetImage if act.image.is_none() => {
                return Err(p.error(span, "action", "set-image needs `image`"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The services users send traffic to.
fn served(s: &Scenario) -> BTreeSet<String> {
    s.traffic.iter().map(|t| t.service.clone()).collect()
}

fn traffic(s: &Scenario, p: &Positions<'_>) -> Result {
    let mut served = BTreeSet::new();
    for (i, tr) in s.traffic.iter().enumerate() {
        let span = p.entry("traffic", i);
        let field = format!("traffic ({})", tr.service);
        match s.deployments.iter().find(|d| d.name == tr.service) {
            None => {
                return Err(p.error(
                    span,
                    &format!("{field}.service"),
                    format!("no [[deployment]] named {:?}", tr.service),
                ))
            }
            Some(d) if d.port.is_none() => {
                return Err(p.error(
                    span,
                    &format!("{field}.service"),
                    format!(
                        "deployment {:?} has no `port`, so no Service to send requests to",
                        tr.service
                    ),
                ))
            }
            Some(_) => {}
        }
        if !served.insert(tr.service.clone()) {
            return Err(p.error(
                span,
                &field,
                "two [[traffic]] entries for one service: merge them",
            ));
        }
        if !(tr.rate > 0.0 && tr.rate <= 10_000.0) {
            return Err(p.error(
                span,
                &format!("{field}.rate"),
                format!("{} is not in (0, 10000] requests per second", tr.rate),
            ));
        }
        if tr.clients == Some(0) {
            return Err(p.error(span, &format!("{field}.clients"), "must be at least 1"));
        }
        if tr.timeout.0.is_zero() {
            return Err(p.error(span, &format!("{field}.timeout"), "must be positive"));
        }
        if tr.start.0 >= s.duration.0 {
            return Err(p.error(
                span,
                &format!("{field}.start"),
                "is not before the end of the run",
            ));
        }
    }
    Ok(())
}

fn fault(s: &Scenario, p: &Positions<'_>, f: &Fault, span: Range<usize>) -> Result {
    let kind = f.kind();
    let field = format!("fault ({})", kind.name());
    let dcs = &s.cluster.datacenters;
    if f.at.0 >= s.duration.0 {
        return Err(p.error(
            span,
            &field,
            format!(
                "at = {} is not before the end of the run ({})",
                f.at, s.duration
            ),
        ));
    }
    if f.spec.duration().is_some_and(|d| d.is_zero()) {
        return Err(p.error(span, &field, "`for` must be positive"));
    }
    if matches!(
        kind,
        FaultKind::DatacenterOutage | FaultKind::DatacenterPartition
    ) && !f.spec.target().is_some_and(|t| dcs.iter().any(|d| d == t))
    {
        return Err(p.error(
            span,
            &format!("{field}.target"),
            format!("needs a datacenter as `target` ({})", dcs.join(", ")),
        ));
    }
    if kind == FaultKind::DatacenterPartition && dcs.len() < 2 {
        return Err(p.error(span, &field, "needs at least two datacenters"));
    }
    if kind.hits_nodes() && !s.has_nodes() {
        return Err(p.error(
            span,
            &field,
            "there are no worker nodes: set cluster.nodes_per_datacenter",
        ));
    }
    if let Some(t) = f.spec.target() {
        if !target_ok(s, kind, t) {
            return Err(p.error(
                span,
                &format!("{field}.target"),
                format!("unknown target {t:?}: use {}", targets(s, kind)),
            ));
        }
    }
    match &f.spec {
        FaultSpec::Loss(l) if !(0.0..1.0).contains(&l.probability) => Err(p.error(
            span,
            &format!("{field}.probability"),
            format!("{} is not in [0, 1)", l.probability),
        )),
        FaultSpec::DiskCorruption(d) if d.bits == Some(0) => {
            Err(p.error(span, &format!("{field}.bits"), "must be at least 1"))
        }
        FaultSpec::ClockSkew(c) if c.offset.magnitude.is_zero() => {
            Err(p.error(span, &format!("{field}.offset"), "must not be zero"))
        }
        FaultSpec::ClockJump(c) if c.offset.magnitude.is_zero() => {
            Err(p.error(span, &format!("{field}.offset"), "must not be zero"))
        }
        FaultSpec::Partition(part) | FaultSpec::PartitionOneWay(part) => match &part.groups {
            Some(groups) => partition_groups(s, p, &field, span, part.target.is_some(), groups),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

fn partition_groups(
    s: &Scenario,
    p: &Positions<'_>,
    field: &str,
    span: Range<usize>,
    has_target: bool,
    groups: &[Vec<String>],
) -> Result {
    let gfield = format!("{field}.groups");
    if has_target {
        return Err(p.error(span, &gfield, "give either `target` or `groups`, not both"));
    }
    if groups.len() < 2 || groups.iter().any(|g| g.is_empty()) {
        return Err(p.error(span, &gfield, "needs at least two non-empty groups"));
    }
    let masters = master_names(s.cluster.masters);
    let nodes = node_names(s);
    let dcs = &s.cluster.datacenters;
    let users = traffic_clients(s);
    let store_clients = s
        .workload
        .as_ref()
        .map(|w| client_names(w.clients))
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for name in groups.iter().flatten() {
        let known = masters.contains(name)
            || nodes.contains(name)
            || dcs.contains(name)
            || users.iter().any(|u| u.name == *name)
            || store_clients.contains(name);
        if !known {
            return Err(p.error(
                span,
                &gfield,
                format!(
                    "unknown host or datacenter {name:?} (masters: {}; datacenters: {})",
                    masters.join(", "),
                    dcs.join(", ")
                ),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(p.error(span, &gfield, format!("{name:?} is in two groups")));
        }
    }
    Ok(())
}

/// Whether `t` names something a fault of `kind` can hit.
fn target_ok(s: &Scenario, kind: FaultKind, t: &str) -> bool {
    let masters = master_names(s.cluster.masters);
    let nodes = node_names(s);
    let dcs = &s.cluster.datacenters;
    let master = masters.iter().any(|m| m == t);
    let node = nodes.iter().any(|n| n == t);
    let dc = dcs.iter().any(|d| d == t);
    let one_of = |names: &[&str]| names.contains(&t);
    use FaultKind::*;
    match kind {
        Partition | PartitionOneWay => {
            master || dc || one_of(&["leader", "follower", "random", "minority", "majority"])
        }
        Loss | Latency => master || dc || one_of(&["leader", "follower", "random"]),
        LeaderKill => t == "leader",
        NodeCrash | NodeIsolate | KubeletRestart => {
            node || dc
                || t == "random"
                || t.strip_prefix("pod:")
                    .is_some_and(|d| s.deployments.iter().any(|x| x.name == d))
        }
        ControllerLeaderKill => one_of(&["controller-manager", "scheduler"]),
        MasterCrash | PowerLoss => {
            master
                || one_of(&[
                    "leader",
                    "follower",
                    "random",
                    "all",
                    "majority",
                    "one-per-datacenter",
                ])
        }
        DatacenterOutage | DatacenterPartition => true,
        Pause | ClockSkew | ClockJump => {
            master
                || node
                || one_of(&["leader", "follower", "random", "random-node"])
                || (s.has_nodes() && one_of(&["controller-manager", "scheduler"]))
        }
        DiskCorruption | DiskFull | DiskEio | DiskSlow | DiskLoss => {
            master || one_of(&["leader", "follower", "random"])
        }
    }
}

/// The targets a fault of `kind` accepts, for an error message.
fn targets(s: &Scenario, kind: FaultKind) -> String {
    let masters = master_names(s.cluster.masters).join(", ");
    let nodes = node_names(s).join(", ");
    let dcs = s.cluster.datacenters.join(", ");
    use FaultKind::*;
    match kind {
        NodeCrash | NodeIsolate | KubeletRestart => format!(
            "a node ({nodes}), a datacenter ({dcs}), random, or pod:DEPLOYMENT (a node running one of its pods)"
        ),
        MasterCrash | PowerLoss => format!(
            "a master ({masters}), or leader/follower/random/all/majority/one-per-datacenter"
        ),
        ControllerLeaderKill => "controller-manager or scheduler".to_string(),
        LeaderKill => "leader".to_string(),
        Pause | ClockSkew | ClockJump => format!(
            "a master ({masters}), a node ({nodes}), leader, follower, random (a master), random-node, or (with nodes) controller-manager/scheduler (the master holding its lease)"
        ),
        Partition | PartitionOneWay => format!(
            "a master ({masters}), a datacenter ({dcs}), or leader/follower/random/minority/majority"
        ),
        _ => format!("a master ({masters}), a datacenter ({dcs}), or leader/follower/random"),
    }
}

/// Two faults of the same kind on the same explicit target at overlapping
/// times contradict each other (the first one's heal would end the second
/// early).
fn overlapping_faults(s: &Scenario, p: &Positions<'_>) -> Result {
    let masters = master_names(s.cluster.masters);
    let nodes = node_names(s);
    let end = |f: &Fault| {
        f.spec
            .duration()
            .map(|d| f.at.0 + d)
            .unwrap_or(s.duration.0)
    };
    for (i, a) in s.faults.iter().enumerate() {
        for (j, b) in s.faults.iter().enumerate().skip(i + 1) {
            let named = a.spec.target().is_some_and(|t| {
                masters.iter().any(|m| m == t)
                    || nodes.iter().any(|n| n == t)
                    || s.cluster.datacenters.iter().any(|d| d == t)
            });
            if a.kind() == b.kind()
                && named
                && a.spec.target() == b.spec.target()
                && a.at.0 < end(b)
                && b.at.0 < end(a)
            {
                return Err(p.error(
                    p.entry("fault", j),
                    &format!("fault ({})", b.kind().name()),
                    format!(
                        "overlaps an earlier {} on {} (at {}): one fault per target at a time",
                        a.kind().name(),
                        a.spec.target().unwrap_or_default(),
                        a.at
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn nemesis(s: &Scenario, p: &Positions<'_>) -> Result {
    let Some(n) = &s.nemesis else {
        return Ok(());
    };
    if n.every.0.is_zero() {
        return Err(p.general("nemesis.every: must be positive"));
    }
    let kinds_span = p.at(&["nemesis", "kinds"]);
    if n.kinds.is_empty() {
        return Err(p.error(kinds_span, "nemesis.kinds", "needs at least one kind"));
    }
    if n.min_for.0.is_zero() || n.min_for > n.max_for {
        return Err(p.general(format_args!(
            "nemesis: min_for ({}) must be positive and at most max_for ({})",
            n.min_for, n.max_for
        )));
    }
    for k in n.weights.keys() {
        if !n.kinds.contains(k) {
            return Err(p.error(
                p.at(&["nemesis", "weights"]),
                "nemesis.weights",
                format!("{} is not in nemesis.kinds", k.name()),
            ));
        }
    }
    if let Some(m) = n.max_masters_down {
        if m > s.cluster.masters {
            return Err(p.error(
                p.at(&["nemesis", "max_masters_down"]),
                "nemesis.max_masters_down",
                format!("{m} is more than the {} masters", s.cluster.masters),
            ));
        }
    }
    if let Some(k) = n.kinds.iter().find(|k| k.hits_nodes() && !s.has_nodes()) {
        return Err(p.error(
            kinds_span,
            "nemesis.kinds",
            format!(
                "{} needs worker nodes: set cluster.nodes_per_datacenter",
                k.name()
            ),
        ));
    }
    if n.mode == NemesisMode::Unbounded {
        if let Some(i) = s.invariants.iter().position(|i| !i.is_safety()) {
            return Err(p.error(
                p.entry("invariant", i),
                &format!("invariant ({})", s.invariants[i].kind().name()),
                "an unbounded nemesis may take anything down: only safety invariants (and converges, judged after healing) can be checked",
            ));
        }
    }
    Ok(())
}

fn invariants(s: &Scenario, p: &Positions<'_>) -> Result {
    if s.invariants.is_empty() {
        return Err(p.general("no [[invariant]]: a scenario must check something"));
    }
    let served = served(s);
    for (i, inv) in s.invariants.iter().enumerate() {
        let span = p.entry("invariant", i);
        let kind = inv.kind();
        let field = format!("invariant ({})", kind.name());
        use InvariantKind::*;
        let needs_workload = matches!(kind, Linearizable | NoLostWrites | WatchOrdered);
        if needs_workload && s.workload.is_none() {
            return Err(p.error(span, &field, "needs a [workload] to record a history"));
        }
        if kind == WatchOrdered && s.workload.as_ref().is_some_and(|w| !w.watch) {
            return Err(p.error(
                span,
                &field,
                "checks the workload's watcher, which `watch = false` turns off",
            ));
        }
        let needs_nodes = matches!(
            kind,
            DeploymentsReady | SingleBinding | NoOvercommit | SingleContainer | PendingExplained
        );
        if needs_nodes && !s.has_nodes() {
            return Err(p.error(
                span,
                &field,
                "needs worker nodes: set cluster.nodes_per_datacenter",
            ));
        }
        if inv.within().is_some_and(|w| w.is_zero()) {
            return Err(p.error(span, "invariant.within", "must be positive"));
        }
        if matches!(kind, Availability | Latency | StaticStability) {
            if s.traffic.is_empty() {
                return Err(p.error(span, &field, "needs [[traffic]] to a service to measure"));
            }
            if let Some(svc) = inv.service() {
                if !served.contains(svc) {
                    return Err(p.error(
                        span,
                        &format!("{field}.service"),
                        format!(
                            "no [[traffic]] to {svc:?} (traffic goes to: {})",
                            served.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        let at_least = match &inv.spec {
            InvariantSpec::Availability(a) => Some(a.at_least),
            InvariantSpec::StaticStability(st) => st.at_least,
            _ => None,
        };
        if let Some(a) = at_least.filter(|a| !(*a > 0.0 && *a <= 1.0)) {
            return Err(p.error(
                span,
                &format!("{field}.at_least"),
                format!("{a} is not in (0, 1]"),
            ));
        }
        match &inv.spec {
            InvariantSpec::Availability(a)
                if a.window.is_some_and(|w| w.0 < Duration::from_secs(1)) =>
            {
                return Err(p.error(span, &format!("{field}.window"), "must be at least 1s"));
            }
            InvariantSpec::Latency(l) if l.below.0.is_zero() => {
                return Err(p.error(span, &field, "needs a positive `below` (e.g. \"250ms\")"));
            }
            InvariantSpec::Latency(l) if l.quantile.is_some_and(|q| !(q > 0.0 && q < 1.0)) => {
                return Err(p.error(
                    span,
                    &format!("{field}.quantile"),
                    format!("{} is not in (0, 1)", l.quantile.unwrap_or_default()),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}
