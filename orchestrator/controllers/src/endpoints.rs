//! The Endpoints controller: publishes the pods behind a Service.
//!
//! Modelled on Kubernetes' `pkg/controller/endpoint`: the Endpoints object
//! is named like the Service, carries the Service's labels, and lists every
//! pod that the Service's selector picks, has a `podIP`, is not terminal and
//! is not being deleted. Ready pods (Ready condition `True`) go to
//! `addresses`, the others to `notReadyAddresses`, each with `ip`,
//! `nodeName` and a `targetRef` to the pod. Each Service port resolves its
//! `targetPort` per pod: a number as is, a name by the pod's container ports
//! (same name and protocol; a pod without it is left out of that port),
//! unset as the Service port. Addresses are then grouped by their port set,
//! one subset per distinct set (Kubernetes' `RepackSubsets`), with
//! addresses sorted by IP and pod name and subsets by their ports, so equal
//! inputs give byte-equal objects.
//!
//! Simplified: no `publishNotReadyAddresses`, no headless label, no
//! trigger-time annotation, no EndpointSlices.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use faultline_api::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, IntOrString, ObjectMeta,
    ObjectReference, Pod, Resource, Service, ServicePort,
};

use crate::{Action, Object};

/// The Endpoints `svc` should have, or `None` for a Service without a
/// selector (its Endpoints are someone else's to manage). Pods of other
/// namespaces are ignored.
pub fn desired<P: Borrow<Pod>>(svc: &Service, pods: &[P]) -> Option<Endpoints> {
    if svc.spec.selector.is_empty() {
        return None;
    }
    // address -> (ports, ready); ports sorted and deduplicated.
    type Key = (String, String, String);
    let mut by_address: BTreeMap<Key, (EndpointAddress, Vec<EndpointPort>, bool)> = BTreeMap::new();
    for pod in pods.iter().map(Borrow::borrow) {
        if pod.metadata.namespace != svc.metadata.namespace
            || pod.status.pod_ip.is_empty()
            || pod.metadata.deletion_timestamp.is_some()
            || pod.is_terminal()
            || !svc
                .spec
                .selector
                .iter()
                .all(|(k, v)| pod.metadata.labels.get(k) == Some(v))
        {
            continue;
        }
        let mut ports: Vec<EndpointPort> = svc
            .spec
            .ports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: sp.name.clone(),
                    port: target_port(pod, sp)?,
                    protocol: protocol(&sp.protocol).to_string(),
                })
            })
            .collect();
        if ports.is_empty() && !svc.spec.ports.is_empty() {
            // No port resolves on this pod: it cannot serve the Service.
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        ports.dedup();
        let address = EndpointAddress {
            ip: pod.status.pod_ip.clone(),
            node_name: (!pod.spec.node_name.is_empty()).then(|| pod.spec.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Pod::KIND.to_string(),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let key = (
            pod.status.pod_ip.clone(),
            pod.metadata.name.clone(),
            pod.metadata.uid.clone(),
        );
        by_address.insert(key, (address, ports, pod.is_ready()));
    }

    // Group by port set; BTreeMap keys order the subsets deterministically.
    type PortKey = Vec<(String, i32, String)>;
    let mut subsets: BTreeMap<PortKey, EndpointSubset> = BTreeMap::new();
    for (address, ports, ready) in by_address.into_values() {
        let key: PortKey = ports
            .iter()
            .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
            .collect();
        let subset = subsets.entry(key).or_insert_with(|| EndpointSubset {
            ports,
            ..Default::default()
        });
        if ready {
            subset.addresses.push(address);
        } else {
            subset.not_ready_addresses.push(address);
        }
    }

    let mut ep = Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: svc.metadata.labels.clone(),
            ..Default::default()
        },
        subsets: subsets.into_values().collect(),
        ..Default::default()
    };
    ep.set_type_meta();
    Some(ep)
}

/// Reconciles the Endpoints of `svc`: a Create when none exist, an Update
/// (carrying `existing`'s `resourceVersion` and other metadata) when the
/// subsets or labels differ, otherwise nothing. A Service without a
/// selector is left alone.
pub fn reconcile<P: Borrow<Pod>>(
    svc: &Service,
    pods: &[P],
    existing: Option<&Endpoints>,
) -> Option<Action> {
    let want = desired(svc, pods)?;
    match existing {
        None => Some(Action::Create(Object::Endpoints(want))),
        Some(cur) if cur.subsets == want.subsets && cur.metadata.labels == want.metadata.labels => {
            None
        }
        Some(cur) => {
            let mut updated = cur.clone();
            updated.subsets = want.subsets;
            updated.metadata.labels = want.metadata.labels;
            Some(Action::Update(Object::Endpoints(updated)))
        }
    }
}

fn protocol(p: &str) -> &str {
    if p.is_empty() {
        "TCP"
    } else {
        p
    }
}

/// Kubernetes' `FindPort`: the pod-side port a Service port maps to.
fn target_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match &sp.target_port {
        None | Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| &p.name == name && protocol(&p.protocol) == protocol(&sp.protocol))
            .map(|p| p.container_port),
    }
}

#[cfg(test)]
mod tests {
    use faultline_api::{Container, ContainerPort, PodCondition};

    use super::*;
    use faultline_api::selector::label_map;

    fn service(ports: Vec<ServicePort>) -> Service {
        let mut svc = Service {
            metadata: ObjectMeta {
                uid: "uid-svc".into(),
                labels: label_map(&[("team", "a")]),
                ..ObjectMeta::named("default", "web")
            },
            ..Default::default()
        };
        svc.spec.selector = label_map(&[("app", "web")]);
        svc.spec.ports = ports;
        svc
    }

    fn port(name: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            name: name.into(),
            port,
            target_port: target,
            ..Default::default()
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, container_ports: &[(&str, i32)]) -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta {
                uid: format!("uid-{name}"),
                labels: label_map(&[("app", "web")]),
                ..ObjectMeta::named("default", name)
            },
            ..Default::default()
        };
        p.spec.node_name = "n1".into();
        p.spec.containers = vec![Container {
            name: "c".into(),
            ports: container_ports
                .iter()
                .map(|(n, p)| ContainerPort {
                    name: n.to_string(),
                    container_port: *p,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }];
        p.status.phase = "Running".into();
        p.status.pod_ip = ip.into();
        p.status.conditions.push(PodCondition {
            kind: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        });
        p
    }

    fn ips(addrs: &[EndpointAddress]) -> Vec<&str> {
        addrs.iter().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_are_split_and_sorted() {
        let svc = service(vec![port("http", 80, Some(IntOrString::Int(8080)))]);
        let mut deleting = pod("d", "10.0.0.9", true, &[]);
        deleting.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
        let mut failed = pod("f", "10.0.0.8", false, &[]);
        failed.status.phase = "Failed".into();
        let mut other = pod("o", "10.0.0.7", true, &[]);
        other.metadata.labels = label_map(&[("app", "db")]);
        let mut elsewhere = pod("e", "10.0.0.6", true, &[]);
        elsewhere.metadata.namespace = "prod".into();
        let pods = vec![
            pod("b", "10.0.0.2", true, &[]),
            pod("a", "10.0.0.1", true, &[]),
            pod("c", "10.0.0.3", false, &[]),
            pod("no-ip", "", true, &[]),
            deleting,
            failed,
            other,
            elsewhere,
        ];
        let Some(Action::Create(Object::Endpoints(ep))) = reconcile(&svc, &pods, None) else {
            panic!("expected a create")
        };
        assert_eq!(
            (ep.metadata.name.as_str(), ep.metadata.namespace.as_str()),
            ("web", "default")
        );
        assert_eq!(ep.metadata.labels, svc.metadata.labels);
        assert_eq!(ep.kind, "Endpoints");
        assert_eq!(ep.subsets.len(), 1);
        let s = &ep.subsets[0];
        assert_eq!(ips(&s.addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&s.not_ready_addresses), ["10.0.0.3"]);
        assert_eq!(
            s.ports,
            vec![EndpointPort {
                name: "http".into(),
                port: 8080,
                protocol: "TCP".into()
            }]
        );
        let a = &s.addresses[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (
                r.kind.as_str(),
                r.name.as_str(),
                r.namespace.as_str(),
                r.uid.as_str()
            ),
            ("Pod", "a", "default", "uid-a")
        );
        // Input order does not matter.
        let mut reversed = pods.clone();
        reversed.reverse();
        assert_eq!(desired(&svc, &reversed), Some(ep));
    }

    #[test]
    fn named_ports_resolve_per_pod_and_split_subsets() {
        let svc = service(vec![
            port("http", 80, Some(IntOrString::String("web".into()))),
            port("metrics", 9090, None),
        ]);
        let pods = vec![
            pod("old", "10.0.0.1", true, &[("web", 8080)]),
            pod("new", "10.0.0.2", true, &[("web", 8081)]),
            pod("unnamed", "10.0.0.3", true, &[]),
        ];
        let ep = desired(&svc, &pods).unwrap();
        assert_eq!(ep.subsets.len(), 3, "{ep:#?}");
        let by_ports: Vec<(Vec<i32>, Vec<&str>)> = ep
            .subsets
            .iter()
            .map(|s| (s.ports.iter().map(|p| p.port).collect(), ips(&s.addresses)))
            .collect();
        assert_eq!(
            by_ports,
            vec![
                (vec![8080, 9090], vec!["10.0.0.1"]),
                (vec![8081, 9090], vec!["10.0.0.2"]),
                (vec![9090], vec!["10.0.0.3"]),
            ]
        );
    }

    #[test]
    fn unchanged_endpoints_need_no_write_and_changes_keep_the_version() {
        let svc = service(vec![port("", 80, None)]);
        let pods = vec![pod("a", "10.0.0.1", true, &[])];
        let mut existing = desired(&svc, &pods).unwrap();
        existing.metadata.uid = "uid-ep".into();
        existing.metadata.resource_version = "42".into();
        assert_eq!(reconcile(&svc, &pods, Some(&existing)), None);
        let pods = vec![pod("a", "10.0.0.1", false, &[])];
        let Some(Action::Update(Object::Endpoints(ep))) = reconcile(&svc, &pods, Some(&existing))
        else {
            panic!("expected an update")
        };
        assert_eq!(ep.metadata.resource_version, "42");
        assert_eq!(ep.metadata.uid, "uid-ep");
        assert!(ep.subsets[0].addresses.is_empty());
        assert_eq!(ips(&ep.subsets[0].not_ready_addresses), ["10.0.0.1"]);
    }

    #[test]
    fn empty_and_selectorless_services() {
        let svc = service(vec![port("", 80, None)]);
        let Some(Action::Create(Object::Endpoints(ep))) = reconcile::<Pod>(&svc, &[], None) else {
            panic!("an empty Endpoints is still created")
        };
        assert!(ep.subsets.is_empty());
        let mut manual = svc.clone();
        manual.spec.selector.clear();
        assert_eq!(
            reconcile(&manual, &[pod("a", "10.0.0.1", true, &[])], None),
            None
        );
    }
}
