//! Which fault kinds a real run does, how, and why it refuses the others:
//! the one table `faultline real run` checks a scenario against before it
//! starts anything, `faultline real kinds` prints, and
//! `docs/scenarios.md` documents.

use faultline_faults::PlannedFault;
use faultline_runner::scenario::{node_names, traffic_clients, FaultKind, Scenario};

const KILL: &str = "SIGKILL to the container (docker kill); started again (docker start) after \
                    `for`, its files kept (a process crash: the page cache survives)";
const CUT: &str = "iptables DROP rules in the containers' network namespaces (set from the \
                   machine with nsenter), per direction, removed when it heals";
const DISK: &str = "needs the simulator's disk: a real master writes through the kernel to its \
                    container's file system, which has no fault injection";

/// How a real run does `kind` (`Ok`), or why it cannot (`Err`). `netem`:
/// whether this machine's kernel has netem.
pub fn mechanism(kind: FaultKind, netem: bool) -> Result<&'static str, &'static str> {
    use FaultKind::*;
    match kind {
        MasterCrash | LeaderKill | NodeCrash | DatacenterOutage | ControllerLeaderKill => Ok(KILL),
        Partition | PartitionOneWay | NodeIsolate | DatacenterPartition => Ok(CUT),
        Loss => Ok(
            "iptables DROP rules with the `statistic` match (random, at the fault's \
                    probability) in the receiving container's network namespace",
        ),
        Pause => Ok(
            "docker pause (the cgroup freezer: no thread runs, nothing is read or \
                     sent), docker unpause after `for`",
        ),
        KubeletRestart => Ok(
            "SIGUSR1 to the node container's process: it aborts its kubelet \
                              and proxy and starts them anew over the same runtime, whose \
                              containers keep running",
        ),
        PowerLoss => Err(
            "losing unsynced writes needs the simulator's disk: killing a \
                          container leaves the machine's page cache, so nothing written is lost",
        ),
        Latency if netem => Err(
            "per-link delay needs netem with per-peer filters, which real \
                                 runs do not set up yet",
        ),
        Latency => Err(
            "this machine's kernel has no netem (sch_netem), the only way to delay \
                        packets for real",
        ),
        DiskLoss => Ok(
            "the master's container is killed and replaced by a new, empty one (same \
                        name and address) that starts after `for` and rejoins the cluster \
                        with no data: as in the simulator, that needs an operator",
        ),
        DiskCorruption | DiskFull | DiskEio | DiskSlow => Err(DISK),
        ClockSkew | ClockJump => Err("a container shares the machine's clock (Linux has no \
                                      namespace for the wall clock): skewing it would skew \
                                      the machine and every container"),
    }
}

/// Every kind with its mechanism or refusal, in the order files list them.
pub fn table(netem: bool) -> Vec<(&'static str, Result<&'static str, &'static str>)> {
    FaultKind::ALL
        .iter()
        .map(|k| (k.name(), mechanism(*k, netem)))
        .collect()
}

/// The most workers and users a run's /24 has addresses for.
pub const MAX_NODES: usize = 170;
pub const MAX_USERS: usize = 50;

/// Why `s` cannot run for real (empty: it can): each fault kind its
/// faults, its nemesis or this seed's plan use that cannot be done here,
/// and a cluster bigger than one run's network.
pub fn refusals(s: &Scenario, plan: &[PlannedFault], netem: bool) -> Vec<String> {
    let mut kinds: Vec<FaultKind> = s.faults.iter().map(|f| f.spec.kind()).collect();
    if let Some(n) = &s.nemesis {
        kinds.extend(n.kinds.iter().copied());
    }
    kinds.extend(plan.iter().map(|f| f.spec.kind()));
    kinds.sort();
    kinds.dedup();
    let mut out: Vec<String> = kinds
        .into_iter()
        .filter_map(|k| {
            mechanism(k, netem)
                .err()
                .map(|why| format!("fault kind `{}` cannot be done for real: {why}", k.name()))
        })
        .collect();
    let nodes = node_names(s).len();
    if nodes > MAX_NODES {
        out.push(format!(
            "{nodes} worker nodes: a real run has addresses for {MAX_NODES}"
        ));
    }
    let users = traffic_clients(s).len();
    if users > MAX_USERS {
        out.push(format!(
            "{users} traffic clients: a real run has addresses for {MAX_USERS}"
        ));
    }
    out
}
