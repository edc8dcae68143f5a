//! The cluster probe: after every fault has healed, it asks the API
//! whether the cluster converged (`deployments-ready`, `converges`) and
//! whether pods still pending say why (`pending-explained`).

use std::time::Duration;

use faultline_api::{Deployment, Node, Pod, Service};
use faultline_client::{Client, ListParams};
use faultline_env::Env;

use crate::auditor::Findings;

/// What the cluster probe checks.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// `deployments-ready` / `converges`: the deadline, and which
    /// deployments (None: all).
    pub ready: Option<(Duration, Option<Vec<String>>)>,
    /// `converges`: also every Service's endpoints equal its ready pods.
    pub endpoints: bool,
    /// `pending-explained`.
    pub pending: bool,
}

/// The cluster probe, started after healing with an admin client: waits
/// until every node of `expected_nodes` is Ready and every deployment has
/// its desired ready, updated replicas (and, for `converges`, every
/// Service's endpoints equal its ready pods); then checks that pods still
/// pending say why.
pub async fn probe(
    env: Env,
    c: Client,
    spec: ProbeSpec,
    expected_nodes: Vec<String>,
    findings: Findings,
) {
    let start = env.now();
    if let Some((within, only)) = &spec.ready {
        loop {
            let last =
                match cluster_state(&c, &expected_nodes, only.as_deref(), spec.endpoints).await {
                    Ok(()) => {
                        findings.borrow_mut().ready = Some(Ok(env.now() - start));
                        break;
                    }
                    Err(why) => why,
                };
            if env.now() - start >= *within {
                findings.borrow_mut().ready = Some(Err(format!(
                    "not converged {}s after healing: {last}",
                    within.as_secs()
                )));
                break;
            }
            env.sleep(Duration::from_secs(1)).await;
        }
    }
    if spec.pending {
        // Give the scheduler a retry round after healing.
        env.sleep(Duration::from_secs(35)).await;
        let verdict = loop {
            match c.list::<Pod>(None, &ListParams::default()).await {
                Ok(l) => break pending_explained(&l.items),
                Err(_) => env.sleep(Duration::from_secs(1)).await,
            }
        };
        findings.borrow_mut().pending = Some(verdict);
    }
    findings.borrow_mut().probed = true;
}

fn pending_explained(pods: &[Pod]) -> Result<String, String> {
    let pending: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.spec.node_name.is_empty() && p.metadata.deletion_timestamp.is_none())
        .collect();
    for p in &pending {
        let c = p
            .status
            .conditions
            .iter()
            .find(|c| c.kind == "PodScheduled");
        match c {
            Some(c)
                if c.status == "False" && c.reason == "Unschedulable" && !c.message.is_empty() => {}
            _ => {
                return Err(format!(
                    "pod {}/{} is pending without saying why (PodScheduled: {:?})",
                    p.metadata.namespace, p.metadata.name, c
                ));
            }
        }
    }
    match pending.first() {
        None => Ok("no pod left pending".into()),
        Some(p) => Ok(format!(
            "{} pending pod(s), each marked Unschedulable, e.g. {}: {}",
            pending.len(),
            p.metadata.name,
            p.status
                .conditions
                .iter()
                .find(|c| c.kind == "PodScheduled")
                .map(|c| c.message.as_str())
                .unwrap_or("")
        )),
    }
}

async fn cluster_state(
    c: &Client,
    expected_nodes: &[String],
    only: Option<&[String]>,
    endpoints: bool,
) -> Result<(), String> {
    let nodes = c
        .list::<Node>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list nodes: {e}"))?;
    for n in expected_nodes {
        match nodes.items.iter().find(|x| x.metadata.name == *n) {
            None => return Err(format!("node {n} is not registered")),
            Some(x) if !x.is_ready() => return Err(format!("node {n} is {}", x.ready_status())),
            _ => {}
        }
    }
    let deps = c
        .list::<Deployment>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list deployments: {e}"))?;
    for d in &deps.items {
        if only.is_some_and(|o| !o.contains(&d.metadata.name)) {
            continue;
        }
        let want = d.spec.replicas.unwrap_or(1);
        let st = &d.status;
        if st.observed_generation < d.metadata.generation
            || st.updated_replicas != want
            || st.ready_replicas != want
            || st.available_replicas != want
            || st.replicas != want
        {
            return Err(format!(
                "deployment {}/{} wants {want}: {} replicas, {} updated, {} ready, {} available (generation {} observed {})",
                d.metadata.namespace,
                d.metadata.name,
                st.replicas,
                st.updated_replicas,
                st.ready_replicas,
                st.available_replicas,
                d.metadata.generation,
                st.observed_generation
            ));
        }
    }
    if endpoints {
        endpoints_match_ready_pods(c).await?;
    }
    Ok(())
}

/// Every Service's Endpoints list exactly the IPs of its ready, running,
/// not terminating pods.
async fn endpoints_match_ready_pods(c: &Client) -> Result<(), String> {
    let services = c
        .list::<Service>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list services: {e}"))?;
    let pods = c
        .list::<Pod>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list pods: {e}"))?;
    let eps = c
        .list::<faultline_api::Endpoints>(None, &ListParams::default())
        .await
        .map_err(|e| format!("cannot list endpoints: {e}"))?;
    for svc in &services.items {
        if svc.spec.selector.is_empty() {
            continue;
        }
        let (ns, name) = (&svc.metadata.namespace, &svc.metadata.name);
        let want: std::collections::BTreeSet<&str> = pods
            .items
            .iter()
            .filter(|p| {
                p.metadata.namespace == *ns
                    && p.metadata.deletion_timestamp.is_none()
                    && p.is_ready()
                    && !p.status.pod_ip.is_empty()
                    && svc
                        .spec
                        .selector
                        .iter()
                        .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
            })
            .map(|p| p.status.pod_ip.as_str())
            .collect();
        let have: std::collections::BTreeSet<&str> = eps
            .items
            .iter()
            .filter(|e| e.metadata.namespace == *ns && e.metadata.name == *name)
            .flat_map(|e| e.subsets.iter())
            .flat_map(|s| s.addresses.iter())
            .map(|a| a.ip.as_str())
            .collect();
        if want != have {
            return Err(format!(
                "service {ns}/{name}: endpoints {:?} but ready pods {:?}",
                have, want
            ));
        }
    }
    Ok(())
}
