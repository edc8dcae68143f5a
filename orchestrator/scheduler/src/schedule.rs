//! One decision: filter every node, score the feasible ones, pick the best.

use std::collections::BTreeMap;

use faultline_api::{Pod, Taint, Toleration};

use crate::cache::{workload_key, Cache, Resources, Slot};
use crate::unschedulable::{Reason, Unschedulable};

/// Score weights. Each component scores 0..=100, and each weight exceeds
/// the sum of the weighted maxima below it, so while a workload is balanced
/// (its domains' counts differ by at most one) spreading across datacenters
/// strictly beats spreading across zones, which beats spreading across
/// nodes, which beats free space. When counts are skewed further (some
/// domain is full or filtered out), the normalised steps shrink and the
/// preferences blend.
const WEIGHT_REGION: u64 = 8;
const WEIGHT_ZONE: u64 = 4;
const WEIGHT_NODE: u64 = 2;
const WEIGHT_LEAST_ALLOCATED: u64 = 1;

/// Kubernetes' toleration matching: an empty effect matches every effect,
/// an empty key (with `Exists`) every key; `Exists` matches any value,
/// `Equal` (or no operator) the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if !toleration.effect.is_empty() && toleration.effect != taint.effect {
        return false;
    }
    if !toleration.key.is_empty() && toleration.key != taint.key {
        return false;
    }
    match toleration.operator.as_str() {
        "" | "Equal" => toleration.value == taint.value,
        "Exists" => true,
        _ => false,
    }
}

/// The first `NoSchedule`/`NoExecute` taint none of `tolerations` tolerates.
fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Why nodes were filtered out, borrowed from the cache until the end.
#[derive(Default)]
struct Tally<'a> {
    not_ready: usize,
    unschedulable: usize,
    selector: usize,
    cpu: usize,
    memory: usize,
    pods: usize,
    taints: BTreeMap<(&'a str, &'a str), usize>,
}

/// A node that passed the filters: its slot, its workload counts (node,
/// zone, region) and its least-allocated score.
struct Candidate {
    slot: usize,
    counts: [u32; 3],
    least_allocated: u64,
}

/// SplitMix64's finaliser: a bijective mix of the tiebreak and a name hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Kubernetes' LeastAllocated: the free fraction of cpu and memory after
/// placement, 0..=100 each, averaged.
fn least_allocated(s: &Slot, after: Resources) -> u64 {
    let free = |alloc: i64, used: i64| -> u64 {
        let left = (alloc - used).max(0);
        if alloc <= 0 {
            0
        } else if alloc <= i64::MAX / 100 {
            (left * 100 / alloc) as u64
        } else {
            (left / (alloc / 100)) as u64
        }
    };
    let cpu = free(s.allocatable.cpu_milli, after.cpu_milli);
    let memory = free(s.allocatable.memory_bytes, after.memory_bytes);
    (cpu + memory) / 2
}

/// Min-max normalised spread score: 100 for the emptiest domain among the
/// feasible ones, 0 for the fullest.
fn spread(count: u32, min: u32, max: u32) -> u64 {
    if max <= min {
        100
    } else {
        (max - count) as u64 * 100 / (max - min) as u64
    }
}

/// The weighted spread scores of one topology level (node, zone or region)
/// for one decision, tabulated for the first few counts above the minimum
/// so the loop over nodes does not divide.
struct Level {
    min: u32,
    max: u32,
    weight: u64,
    table: [u64; Level::TABLE],
}

impl Level {
    const TABLE: usize = 64;

    fn new(min: u32, max: u32, weight: u64) -> Level {
        let mut table = [0; Level::TABLE];
        for (i, t) in table.iter_mut().enumerate() {
            *t = weight * spread(min.saturating_add(i as u32).min(max), min, max);
        }
        Level {
            min,
            max,
            weight,
            table,
        }
    }

    fn score(&self, count: u32) -> u64 {
        match self.table.get((count - self.min) as usize) {
            Some(&s) => s,
            None => self.weight * spread(count, self.min, self.max),
        }
    }
}

impl Cache {
    /// Chooses a node for `pod`: the feasible node (see the crate docs) with
    /// the highest score, ties broken by `tiebreak` (draw it from the
    /// run's seeded RNG for each decision: the same value replays the same
    /// choice, whatever order the cache was fed in). Reads the cache only;
    /// call [`assume`](Cache::assume) with the answer before the next
    /// decision. Scores every node, O(nodes) per decision.
    pub fn schedule(&self, pod: &Pod, tiebreak: u64) -> Result<String, Unschedulable> {
        let want = Resources::of_pod(pod);
        let selector = &pod.spec.node_selector;
        let tolerations = &pod.spec.tolerations;
        let workload = workload_key(pod).and_then(|k| self.workloads.get(&k));

        // The workload's pods per slot, dense for the loop below.
        let mut on_node: Vec<u32> = Vec::new();
        if let Some(w) = workload {
            on_node.resize(self.slots.len(), 0);
            for (&slot, &n) in &w.nodes {
                on_node[slot] = n;
            }
        }
        let count = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);
        let (zones, regions): (&[u32], &[u32]) = match workload {
            Some(w) => (&w.zones, &w.regions),
            None => (&[], &[]),
        };

        let mut tally = Tally::default();
        let mut total = 0;
        let mut feasible: Vec<Candidate> = Vec::with_capacity(self.node_count());
        let mut min = [u32::MAX; 3];
        let mut max = [0u32; 3];
        for (i, s) in self.slots.iter().enumerate() {
            if !s.present {
                continue;
            }
            total += 1;
            if !s.ready {
                tally.not_ready += 1;
                continue;
            }
            if s.unschedulable {
                tally.unschedulable += 1;
                continue;
            }
            if s.tainted || !selector.is_empty() {
                let node = self.info[i]
                    .node
                    .as_ref()
                    .expect("a present slot has its Node");
                if s.tainted {
                    if let Some(t) = untolerated(&node.spec.taints, tolerations) {
                        *tally.taints.entry((&t.key, &t.value)).or_default() += 1;
                        continue;
                    }
                }
                let labels = &node.metadata.labels;
                if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    tally.selector += 1;
                    continue;
                }
            }
            let after = s.requested + want;
            let free = s.allocatable - s.requested;
            let mut fits = true;
            if want.cpu_milli > 0 && want.cpu_milli > free.cpu_milli {
                tally.cpu += 1;
                fits = false;
            }
            if want.memory_bytes > 0 && want.memory_bytes > free.memory_bytes {
                tally.memory += 1;
                fits = false;
            }
            if after.pods > s.allocatable.pods {
                tally.pods += 1;
                fits = false;
            }
            if !fits {
                continue;
            }
            let counts = [
                count(&on_node, i),
                count(zones, s.zone as usize),
                count(regions, s.region as usize),
            ];
            for l in 0..3 {
                min[l] = min[l].min(counts[l]);
                max[l] = max[l].max(counts[l]);
            }
            feasible.push(Candidate {
                slot: i,
                counts,
                least_allocated: least_allocated(s, after),
            });
        }

        let levels = [
            Level::new(min[0], max[0], WEIGHT_NODE),
            Level::new(min[1], max[1], WEIGHT_ZONE),
            Level::new(min[2], max[2], WEIGHT_REGION),
        ];
        let mut best: Option<(u64, u64, usize)> = None;
        for c in &feasible {
            let score = levels[0].score(c.counts[0])
                + levels[1].score(c.counts[1])
                + levels[2].score(c.counts[2])
                + WEIGHT_LEAST_ALLOCATED * c.least_allocated;
            let tie = mix(tiebreak ^ self.slots[c.slot].name_hash);
            let better = match best {
                None => true,
                Some((bs, bt, bslot)) => {
                    (score, tie) > (bs, bt)
                        || (score, tie) == (bs, bt)
                            && self.info[c.slot].name < self.info[bslot].name
                }
            };
            if better {
                best = Some((score, tie, c.slot));
            }
        }
        if let Some((_, _, slot)) = best {
            return Ok(self.info[slot].name.clone());
        }

        let mut reasons = BTreeMap::new();
        let mut add = |reason: Reason, n: usize| {
            if n > 0 {
                reasons.insert(reason, n);
            }
        };
        add(Reason::NotReady, tally.not_ready);
        add(Reason::Unschedulable, tally.unschedulable);
        add(Reason::NodeSelectorMismatch, tally.selector);
        add(Reason::InsufficientCpu, tally.cpu);
        add(Reason::InsufficientMemory, tally.memory);
        add(Reason::TooManyPods, tally.pods);
        for ((key, value), n) in tally.taints {
            add(
                Reason::UntoleratedTaint {
                    key: key.to_string(),
                    value: value.to_string(),
                },
                n,
            );
        }
        Err(Unschedulable {
            nodes_total: total,
            reasons,
        })
    }
}
