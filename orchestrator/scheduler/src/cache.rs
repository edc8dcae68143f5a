//! The scheduler's view of the cluster: nodes, and per node the pods bound
//! or assumed there, accounted incrementally.

use std::collections::BTreeMap;
use std::ops::{Add, Sub};

use faultline_api::{labels, Node, Pod};

/// The pod capacity of a node whose status does not say (Kubernetes' kubelet
/// default `maxPods`).
pub const DEFAULT_MAX_PODS: i64 = 110;

/// An amount of the resources the scheduler accounts: a node's allocatable,
/// what is requested on it, or one pod's request (`pods` = 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_milli: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// A number of pods.
    pub pods: i64,
}

impl Resources {
    /// What `pod` asks for: the sum of its containers' cpu and memory
    /// requests, and one pod.
    pub fn of_pod(pod: &Pod) -> Resources {
        Resources {
            cpu_milli: pod.request("cpu"),
            memory_bytes: pod.request("memory"),
            pods: 1,
        }
    }

    /// What `node` offers: `status.allocatable`, falling back to
    /// `status.capacity` per resource; missing `pods` means
    /// [`DEFAULT_MAX_PODS`], missing cpu or memory means none.
    pub fn allocatable_of(node: &Node) -> Resources {
        let get = |name: &str| {
            node.status
                .allocatable
                .get(name)
                .or_else(|| node.status.capacity.get(name))
        };
        Resources {
            cpu_milli: get("cpu").map(|q| q.milli_value()).unwrap_or(0),
            memory_bytes: get("memory").map(|q| q.value()).unwrap_or(0),
            pods: get("pods").map(|q| q.value()).unwrap_or(DEFAULT_MAX_PODS),
        }
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_add(o.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
            pods: self.pods.saturating_add(o.pods),
        }
    }
}

impl Sub for Resources {
    type Output = Resources;
    fn sub(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_sub(o.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_sub(o.memory_bytes),
            pods: self.pods.saturating_sub(o.pods),
        }
    }
}

/// The workload a pod belongs to, for spreading: its controller owner
/// reference's uid (the ReplicaSet), or else its namespace and labels. A pod
/// with neither is a workload of one and is not spread.
pub fn workload_key(pod: &Pod) -> Option<String> {
    let meta = &pod.metadata;
    if let Some(owner) = meta.controller() {
        if !owner.uid.is_empty() {
            return Some(format!("owner:{}", owner.uid));
        }
    }
    if meta.labels.is_empty() {
        return None;
    }
    let mut key = format!("labels:{}/", meta.namespace);
    for (i, (k, v)) in meta.labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    Some(key)
}

/// The key a pod is accounted under: its uid, or `namespace/name` for an
/// object that has none (tests, objects not yet created).
pub(crate) fn pod_key(pod: &Pod) -> String {
    if pod.metadata.uid.is_empty() {
        format!("{}/{}", pod.metadata.namespace, pod.metadata.name)
    } else {
        pod.metadata.uid.clone()
    }
}

/// The per-node facts a decision reads, packed for the hot loop.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    /// A Node object exists (a slot can also hold pods bound to a node the
    /// cache has not seen, or no longer sees).
    pub present: bool,
    pub ready: bool,
    pub unschedulable: bool,
    /// Has a `NoSchedule` or `NoExecute` taint.
    pub tainted: bool,
    pub allocatable: Resources,
    /// Bound and assumed pods' requests.
    pub requested: Resources,
    pub region: u32,
    pub zone: u32,
    /// A hash of the node name, mixed with the caller's tiebreak.
    pub name_hash: u64,
}

/// The per-node facts a decision reads rarely.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotInfo {
    pub name: String,
    pub node: Option<Node>,
}

/// One workload's pods per node, zone and datacenter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Workload {
    pub total: u32,
    /// Slot index to count (no zero entries).
    pub nodes: BTreeMap<usize, u32>,
    /// Zone id to count.
    pub zones: Vec<u32>,
    /// Region id to count.
    pub regions: Vec<u32>,
}

fn bump(v: &mut Vec<u32>, i: u32, up: bool) {
    let i = i as usize;
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    if up {
        v[i] += 1;
    } else {
        v[i] = v[i]
            .checked_sub(1)
            .expect("a workload count never goes negative");
    }
}

/// A pod the cache accounts.
#[derive(Debug, Clone)]
struct PodRecord {
    slot: usize,
    requests: Resources,
    workload: Option<String>,
    /// Decided by us, not yet confirmed by the watch.
    assumed: bool,
}

/// The scheduler's view of the cluster: nodes by name and, per node, the
/// pods bound or assumed there with their requests, kept incrementally so a
/// decision never rescans pods. Every update is idempotent: pods are keyed
/// by uid, so a repeated or late watch event changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    pub(crate) slots: Vec<Slot>,
    pub(crate) info: Vec<SlotInfo>,
    by_name: BTreeMap<String, usize>,
    free: Vec<usize>,
    nodes_present: usize,
    regions: BTreeMap<String, u32>,
    zones: BTreeMap<(String, String), u32>,
    pods: BTreeMap<String, PodRecord>,
    pub(crate) workloads: BTreeMap<String, Workload>,
}

/// FNV-1a: a stable hash of a node name (no per-process seed).
fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The number of nodes (Node objects) the cache holds.
    pub fn node_count(&self) -> usize {
        self.nodes_present
    }

    /// The number of pods accounted (bound or assumed).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The node called `name`, if the cache holds it.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.by_name
            .get(name)
            .and_then(|&i| self.info[i].node.as_ref())
    }

    /// The nodes, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> + '_ {
        self.by_name
            .values()
            .filter_map(|&i| self.info[i].node.as_ref())
    }

    /// What the pods bound or assumed on node `name` request (also for a
    /// node the cache has no Node object for but pods name).
    pub fn requested(&self, name: &str) -> Option<Resources> {
        self.by_name.get(name).map(|&i| self.slots[i].requested)
    }

    /// The allocatable resources of node `name`.
    pub fn allocatable(&self, name: &str) -> Option<Resources> {
        self.by_name
            .get(name)
            .filter(|&&i| self.slots[i].present)
            .map(|&i| self.slots[i].allocatable)
    }

    /// The node the pod with this uid is accounted on, and whether it is
    /// only assumed there.
    pub fn placement(&self, uid: &str) -> Option<(&str, bool)> {
        self.pods
            .get(uid)
            .map(|r| (self.info[r.slot].name.as_str(), r.assumed))
    }

    /// How many pods of `workload` (see [`workload_key`]) are on node `name`.
    pub fn workload_pods_on(&self, workload: &str, name: &str) -> u32 {
        let (Some(w), Some(&slot)) = (self.workloads.get(workload), self.by_name.get(name)) else {
            return 0;
        };
        w.nodes.get(&slot).copied().unwrap_or(0)
    }

    /// Adds or replaces a node. Pods already accounted on it (bound before
    /// the node was seen, or before its labels changed) stay accounted.
    pub fn upsert_node(&mut self, node: Node) {
        let slot = self.slot_for(&node.metadata.name);
        let label = |k: &str| {
            node.metadata
                .labels
                .get(k)
                .map(String::as_str)
                .unwrap_or("")
        };
        let region = self.region_id(label(labels::REGION));
        let zone = self.zone_id(label(labels::REGION), label(labels::ZONE));
        self.move_topology(slot, region, zone);
        let s = &mut self.slots[slot];
        if !s.present {
            self.nodes_present += 1;
        }
        s.present = true;
        s.ready = node.is_ready();
        s.unschedulable = node.spec.unschedulable;
        s.tainted = node
            .spec
            .taints
            .iter()
            .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
        s.allocatable = Resources::allocatable_of(&node);
        self.info[slot].node = Some(node);
    }

    /// Removes a node. Pods still bound to it stay accounted until they are
    /// removed (the garbage collector deletes them).
    pub fn remove_node(&mut self, name: &str) {
        let Some(&slot) = self.by_name.get(name) else {
            return;
        };
        let s = &mut self.slots[slot];
        if s.present {
            self.nodes_present -= 1;
        }
        s.present = false;
        s.ready = false;
        s.allocatable = Resources::default();
        self.info[slot].node = None;
        self.release_slot_if_empty(slot);
    }

    /// Applies a pod as the watch reports it: a bound, non-terminal pod is
    /// accounted on its node (confirming an assumption, or moving it); a
    /// terminal (Succeeded/Failed) pod releases its resources; an unbound
    /// pod changes nothing (an assumption stays until confirmed or
    /// forgotten).
    pub fn upsert_pod(&mut self, pod: &Pod) {
        let key = pod_key(pod);
        if pod.is_terminal() {
            self.remove_pod_uid(&key);
            return;
        }
        if pod.spec.node_name.is_empty() {
            return;
        }
        self.account(key, pod, &pod.spec.node_name, false);
    }

    /// Forgets a deleted pod, releasing its resources.
    pub fn remove_pod(&mut self, pod: &Pod) {
        self.remove_pod_uid(&pod_key(pod));
    }

    /// Forgets the pod with this uid, bound or assumed.
    pub fn remove_pod_uid(&mut self, uid: &str) {
        let Some(rec) = self.pods.remove(uid) else {
            return;
        };
        let slot = rec.slot;
        let s = &mut self.slots[slot];
        s.requested = s.requested - rec.requests;
        let (region, zone) = (s.region, s.zone);
        if let Some(wkey) = rec.workload {
            let w = self
                .workloads
                .get_mut(&wkey)
                .expect("an accounted pod's workload is accounted");
            w.total -= 1;
            let n = w
                .nodes
                .get_mut(&slot)
                .expect("an accounted pod's node is counted");
            *n -= 1;
            if *n == 0 {
                w.nodes.remove(&slot);
            }
            bump(&mut w.zones, zone, false);
            bump(&mut w.regions, region, false);
            if w.total == 0 {
                self.workloads.remove(&wkey);
            }
        }
        self.release_slot_if_empty(slot);
    }

    /// Accounts `pod` on node `node` before the watch confirms the binding,
    /// so the next decision sees the space taken. A later
    /// [`upsert_pod`](Cache::upsert_pod) of the bound pod confirms it;
    /// [`forget`](Cache::forget) undoes it if the binding fails.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let key = pod_key(pod);
        if self.pods.get(&key).is_some_and(|r| !r.assumed) {
            return; // the watch already confirmed a binding
        }
        self.account(key, pod, node, true);
    }

    /// Undoes [`assume`](Cache::assume) for a pod whose binding failed. A
    /// pod the watch has confirmed as bound is left alone.
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|r| r.assumed) {
            self.remove_pod_uid(uid);
        }
    }

    /// Accounts the pod `key` on `node`, replacing any previous record.
    fn account(&mut self, key: String, pod: &Pod, node: &str, assumed: bool) {
        let requests = Resources::of_pod(pod);
        let workload = workload_key(pod);
        if let Some(rec) = self.pods.get_mut(&key) {
            if self.info[rec.slot].name == node
                && rec.requests == requests
                && rec.workload == workload
            {
                rec.assumed = assumed;
                return;
            }
            self.remove_pod_uid(&key);
        }
        let slot = self.slot_for(node);
        let s = &mut self.slots[slot];
        s.requested = s.requested + requests;
        let (region, zone) = (s.region, s.zone);
        if let Some(wkey) = &workload {
            let w = self.workloads.entry(wkey.clone()).or_default();
            w.total += 1;
            *w.nodes.entry(slot).or_default() += 1;
            bump(&mut w.zones, zone, true);
            bump(&mut w.regions, region, true);
        }
        self.pods.insert(
            key,
            PodRecord {
                slot,
                requests,
                workload,
                assumed,
            },
        );
    }

    /// The slot for node `name`, created empty (no Node yet) if new.
    fn slot_for(&mut self, name: &str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let region = self.region_id("");
        let zone = self.zone_id("", "");
        let slot = Slot {
            region,
            zone,
            name_hash: name_hash(name),
            ..Slot::default()
        };
        let info = SlotInfo {
            name: name.to_string(),
            node: None,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                self.info[i] = info;
                i
            }
            None => {
                self.slots.push(slot);
                self.info.push(info);
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), i);
        i
    }

    /// Frees a slot that has neither a Node nor pods.
    fn release_slot_if_empty(&mut self, slot: usize) {
        let s = &self.slots[slot];
        if s.present || s.requested.pods > 0 {
            return;
        }
        let name = std::mem::take(&mut self.info[slot].name);
        self.by_name.remove(&name);
        self.slots[slot] = Slot::default();
        self.free.push(slot);
    }

    /// Moves the workload counts of the pods on `slot` to its new region
    /// and zone (a node's topology labels changed, or its Node arrived
    /// after pods bound to it).
    fn move_topology(&mut self, slot: usize, region: u32, zone: u32) {
        let s = &mut self.slots[slot];
        let (old_region, old_zone) = (s.region, s.zone);
        s.region = region;
        s.zone = zone;
        if (old_region, old_zone) == (region, zone) || s.requested.pods == 0 {
            return;
        }
        for w in self.workloads.values_mut() {
            let Some(&n) = w.nodes.get(&slot) else {
                continue;
            };
            for _ in 0..n {
                bump(&mut w.regions, old_region, false);
                bump(&mut w.zones, old_zone, false);
                bump(&mut w.regions, region, true);
                bump(&mut w.zones, zone, true);
            }
        }
    }

    fn region_id(&mut self, region: &str) -> u32 {
        if let Some(&id) = self.regions.get(region) {
            return id;
        }
        let id = self.regions.len() as u32;
        self.regions.insert(region.to_string(), id);
        id
    }

    /// Zones are named within their region.
    fn zone_id(&mut self, region: &str, zone: &str) -> u32 {
        if let Some(&id) = self.zones.get(&(region.to_string(), zone.to_string())) {
            return id;
        }
        let id = self.zones.len() as u32;
        self.zones
            .insert((region.to_string(), zone.to_string()), id);
        id
    }
}
