use super::*;
use crate::meta::{ObjectReference, OwnerReference};
use crate::quantity::Quantity;
use crate::selector::label_map;

fn fields(causes: &[StatusCause]) -> Vec<&str> {
    causes.iter().map(|c| c.field.as_str()).collect()
}

fn has(causes: &[StatusCause], reason: &str, field: &str) -> bool {
    causes
        .iter()
        .any(|c| c.reason == reason && c.field == field)
}

#[track_caller]
fn assert_has(causes: &[StatusCause], reason: &str, field: &str) {
    assert!(
        has(causes, reason, field),
        "expected {reason} at {field}, got {causes:#?}"
    );
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: "echo".into(),
        ..Default::default()
    }
}

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta::named("default", "web-1"),
        spec: PodSpec {
            containers: vec![container("c")],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn deployment() -> Deployment {
    let app = label_map(&[("app", "web")]);
    Deployment {
        metadata: ObjectMeta::named("default", "web"),
        spec: DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: app.clone(),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: ObjectMeta {
                    labels: app,
                    ..Default::default()
                },
                spec: pod().spec,
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn service() -> Service {
    Service {
        metadata: ObjectMeta::named("default", "web"),
        spec: ServiceSpec {
            selector: label_map(&[("app", "web")]),
            ports: vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn q(s: &str) -> Quantity {
    Quantity::parse(s).expect("test quantity")
}

#[test]
fn name_formats() {
    for good in ["a", "web-1", "0", "a-b-c", &"a".repeat(63)] {
        assert!(is_dns1123_label(good), "{good:?}");
    }
    for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
        assert!(!is_dns1123_label(bad), "{bad:?}");
    }
    for good in ["a.b", "web-1.example.com", &"a".repeat(253)] {
        assert!(is_dns1123_subdomain(good), "{good:?}");
    }
    for bad in ["", "a..b", ".a", "a.", "a_b", "Web", &"a".repeat(254)] {
        assert!(!is_dns1123_subdomain(bad), "{bad:?}");
    }
    for good in [
        "app",
        "App_1.x-y",
        "example.com/tier",
        "k8s.io/a",
        &"a".repeat(63),
    ] {
        assert!(is_label_key(good), "{good:?}");
    }
    for bad in [
        "",
        "/a",
        "a/",
        "a/b/c",
        "-a",
        "a b",
        "Example.com/a",
        &"a".repeat(64),
    ] {
        assert!(!is_label_key(bad), "{bad:?}");
    }
    for good in ["", "web", "v1.2", "A_b-c"] {
        assert!(is_label_value(good), "{good:?}");
    }
    for bad in ["-web", "a b", "a/b", &"a".repeat(64)] {
        assert!(!is_label_value(bad), "{bad:?}");
    }
    for good in ["http", "h2", "web-api"] {
        assert!(is_port_name(good), "{good:?}");
    }
    for bad in ["", "80", "a--b", "-a", "HTTP", "abcdefghijklmnop"] {
        assert!(!is_port_name(bad), "{bad:?}");
    }
}

#[test]
fn meta_requires_name_and_namespace() {
    let e = validate_meta(&ObjectMeta::default(), true, NameRule::Subdomain);
    assert_has(&e, reason::REQUIRED, "metadata.name");
    assert_has(&e, reason::REQUIRED, "metadata.namespace");
    let m = ObjectMeta {
        generate_name: "web-".into(),
        namespace: "default".into(),
        ..Default::default()
    };
    assert!(validate_meta(&m, true, NameRule::Subdomain).is_empty());
    let m = ObjectMeta {
        generate_name: "Web-".into(),
        namespace: "default".into(),
        ..Default::default()
    };
    assert_has(
        &validate_meta(&m, true, NameRule::Subdomain),
        reason::INVALID,
        "metadata.generateName",
    );
    let e = validate_meta(&ObjectMeta::named("x", "n1"), false, NameRule::Subdomain);
    assert_has(&e, reason::FORBIDDEN, "metadata.namespace");
    let e = validate_meta(&ObjectMeta::named("Bad_NS", "a.b"), true, NameRule::Label);
    assert_has(&e, reason::INVALID, "metadata.namespace");
    assert_has(&e, reason::INVALID, "metadata.name");
    assert!(e[0].message.contains("\"a.b\""), "{e:?}");
    assert!(validate_meta(&ObjectMeta::named("ns", "a.b"), true, NameRule::Subdomain).is_empty());
}

#[test]
fn meta_checks_labels_annotations_and_owners() {
    let mut m = ObjectMeta::named("default", "web");
    m.labels = label_map(&[("bad key", "v"), ("ok", "bad value")]);
    m.annotations = label_map(&[("example.com/note", "anything at all, even spaces")]);
    let e = validate_meta(&m, true, NameRule::Subdomain);
    assert_eq!(fields(&e), vec!["metadata.labels", "metadata.labels"]);
    assert!(e[0].message.contains("\"bad key\""), "{e:?}");
    assert!(e[1].message.contains("\"bad value\""), "{e:?}");

    let mut m = ObjectMeta::named("default", "web");
    m.annotations = label_map(&[("big", &"x".repeat(ANNOTATIONS_BYTES_MAX))]);
    assert_has(
        &validate_meta(&m, true, NameRule::Subdomain),
        reason::TOO_LONG,
        "metadata.annotations",
    );

    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web-1".into(),
        uid: "u1".into(),
        controller: true,
        block_owner_deletion: true,
    };
    let mut m = ObjectMeta::named("default", "web");
    m.owner_references = vec![
        owner.clone(),
        OwnerReference {
            uid: String::new(),
            ..owner
        },
    ];
    let e = validate_meta(&m, true, NameRule::Subdomain);
    assert_has(&e, reason::REQUIRED, "metadata.ownerReferences[1].uid");
    assert_has(&e, reason::INVALID, "metadata.ownerReferences");
}

#[test]
fn a_good_pod_is_valid() {
    let mut p = pod();
    p.spec.containers[0].ports = vec![ContainerPort {
        name: "http".into(),
        container_port: 8080,
        protocol: String::new(),
    }];
    p.spec.containers[0]
        .resources
        .requests
        .insert("cpu".into(), q("250m"));
    p.spec.containers[0]
        .resources
        .limits
        .insert("cpu".into(), q("1"));
    p.spec.containers[0].readiness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: "/".into(),
            port: IntOrString::String("http".into()),
        }),
        period_seconds: 1,
        ..Default::default()
    });
    p.spec.restart_policy = "Always".into();
    p.spec.node_selector = label_map(&[(labels::ZONE, "z1")]);
    p.spec.tolerations = vec![Toleration {
        key: "k".into(),
        operator: "Exists".into(),
        effect: "NoExecute".into(),
        ..Default::default()
    }];
    assert_eq!(p.validate(), vec![]);
}

#[test]
fn a_pod_with_three_errors_reports_all_three() {
    let mut p = pod();
    p.spec.containers[0].image = String::new();
    p.spec.containers.push(container("c"));
    p.spec.restart_policy = "Sometimes".into();
    let e = p.validate();
    assert_eq!(
        fields(&e),
        vec![
            "spec.containers[0].image",
            "spec.containers[1].name",
            "spec.restartPolicy"
        ],
        "{e:#?}"
    );
    assert_eq!(e[0].reason, reason::REQUIRED);
    assert_eq!(e[1].reason, reason::DUPLICATE);
    assert_eq!(e[2].reason, reason::NOT_SUPPORTED);
    assert!(e[2].message.contains("\"Sometimes\""), "{}", e[2].message);
    assert!(e[2].message.contains("\"OnFailure\""), "{}", e[2].message);
}

#[test]
fn pod_containers() {
    let mut p = pod();
    p.spec.containers.clear();
    assert_has(&p.validate(), reason::REQUIRED, "spec.containers");
    let mut p = pod();
    p.spec.containers = vec![container(""), container("Bad_Name"), container("ok")];
    p.spec.containers[2].image = " echo".into();
    let e = p.validate();
    assert_has(&e, reason::REQUIRED, "spec.containers[0].name");
    assert_has(&e, reason::INVALID, "spec.containers[1].name");
    assert_has(&e, reason::INVALID, "spec.containers[2].image");
}

#[test]
fn pod_ports() {
    let port = |name: &str, n: i32| ContainerPort {
        name: name.into(),
        container_port: n,
        protocol: String::new(),
    };
    let mut p = pod();
    p.spec.containers[0].ports = vec![port("", 0), port("http", 80), port("http", 81)];
    p.spec.containers.push(container("d"));
    p.spec.containers[1].ports = vec![
        port("", 80),
        port("", 70000),
        ContainerPort {
            protocol: "ICMP".into(),
            ..port("", 90)
        },
    ];
    let e = p.validate();
    assert_has(
        &e,
        reason::INVALID,
        "spec.containers[0].ports[0].containerPort",
    );
    assert_has(&e, reason::DUPLICATE, "spec.containers[0].ports[2].name");
    assert_has(
        &e,
        reason::DUPLICATE,
        "spec.containers[1].ports[0].containerPort",
    );
    assert_has(
        &e,
        reason::INVALID,
        "spec.containers[1].ports[1].containerPort",
    );
    assert_has(
        &e,
        reason::NOT_SUPPORTED,
        "spec.containers[1].ports[2].protocol",
    );
    assert_eq!(e.len(), 5, "{e:#?}");
    // The same number over another protocol is a different port.
    let mut p = pod();
    p.spec.containers[0].ports = vec![
        port("", 53),
        ContainerPort {
            protocol: "UDP".into(),
            ..port("", 53)
        },
    ];
    assert_eq!(p.validate(), vec![]);
}

#[test]
fn pod_requests_must_not_exceed_limits() {
    let mut p = pod();
    let r = &mut p.spec.containers[0].resources;
    r.requests.insert("cpu".into(), q("2"));
    r.limits.insert("cpu".into(), q("500m"));
    r.requests.insert("memory".into(), q("64Mi"));
    r.limits.insert("memory".into(), q("128Mi"));
    r.requests.insert("gpu".into(), q("1"));
    let e = p.validate();
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_has(
        &e,
        reason::INVALID,
        "spec.containers[0].resources.requests[cpu]",
    );
    assert!(
        e[1].message.contains("cpu limit of 500m"),
        "{}",
        e[1].message
    );
    assert_has(
        &e,
        reason::NOT_SUPPORTED,
        "spec.containers[0].resources.requests[gpu]",
    );
}

#[test]
fn pod_probes_need_exactly_one_handler() {
    let mut p = pod();
    p.spec.containers[0].readiness_probe = Some(Probe::default());
    assert_has(
        &p.validate(),
        reason::REQUIRED,
        "spec.containers[0].readinessProbe",
    );
    p.spec.containers[0].readiness_probe = Some(Probe {
        http_get: Some(HttpGetAction {
            path: "/".into(),
            port: IntOrString::Int(0),
        }),
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::String("No".into()),
        }),
        period_seconds: -1,
        failure_threshold: -3,
        ..Default::default()
    });
    let e = p.validate();
    let path = "spec.containers[0].readinessProbe";
    assert_has(&e, reason::FORBIDDEN, &format!("{path}.tcpSocket"));
    assert_has(&e, reason::INVALID, &format!("{path}.httpGet.port"));
    assert_has(&e, reason::INVALID, &format!("{path}.tcpSocket.port"));
    assert_has(&e, reason::INVALID, &format!("{path}.periodSeconds"));
    assert_has(&e, reason::INVALID, &format!("{path}.failureThreshold"));
    assert_eq!(e.len(), 5, "{e:#?}");
}

#[test]
fn pod_tolerations_and_node_selector() {
    let mut p = pod();
    p.spec.tolerations = vec![
        Toleration {
            key: "k".into(),
            operator: "Exists".into(),
            value: "v".into(),
            ..Default::default()
        },
        Toleration {
            key: "k".into(),
            operator: "Greater".into(),
            ..Default::default()
        },
        Toleration {
            operator: "Equal".into(),
            effect: "NoWay".into(),
            ..Default::default()
        },
        // Empty key with Exists tolerates everything: valid.
        Toleration {
            operator: "Exists".into(),
            ..Default::default()
        },
    ];
    p.spec.node_selector = label_map(&[("zone", "a b")]);
    p.spec.termination_grace_period_seconds = Some(-1);
    let e = p.validate();
    assert_has(&e, reason::INVALID, "spec.tolerations[0].operator");
    let exists_with_value = e.iter().find(|c| c.field == "spec.tolerations[0].operator");
    assert!(
        exists_with_value.is_some_and(|c| c.message.contains("\"v\"")),
        "{e:#?}"
    );
    assert_has(&e, reason::NOT_SUPPORTED, "spec.tolerations[1].operator");
    assert_has(&e, reason::INVALID, "spec.tolerations[2].operator");
    assert_has(&e, reason::NOT_SUPPORTED, "spec.tolerations[2].effect");
    assert_has(&e, reason::INVALID, "spec.nodeSelector");
    assert_has(&e, reason::INVALID, "spec.terminationGracePeriodSeconds");
    assert_eq!(e.len(), 6, "{e:#?}");
}

#[test]
fn pod_updates_may_only_bind_once() {
    let old = pod();
    let mut bound = old.clone();
    bound.spec.node_name = "node-1".into();
    assert_eq!(bound.validate_update(&old), vec![]);
    assert_eq!(bound.validate_update(&bound), vec![]);

    let mut moved = bound.clone();
    moved.spec.node_name = "node-2".into();
    let e = moved.validate_update(&bound);
    assert_eq!(fields(&e), vec!["spec.nodeName"]);
    assert_eq!(e[0].reason, reason::FORBIDDEN);
    assert!(e[0].message.contains("\"node-1\""), "{}", e[0].message);

    let mut unbound = bound.clone();
    unbound.spec.node_name.clear();
    assert_has(
        &unbound.validate_update(&bound),
        reason::FORBIDDEN,
        "spec.nodeName",
    );

    let mut new_image = bound.clone();
    new_image.spec.containers[0].image = "other".into();
    new_image.spec.restart_policy = "Never".into();
    let e = new_image.validate_update(&bound);
    assert_eq!(fields(&e), vec!["spec"]);
    assert_eq!(e[0].reason, reason::FORBIDDEN);
    assert!(
        e[0].message.contains("containers, restartPolicy"),
        "{}",
        e[0].message
    );

    // Status and metadata changes are not the spec's business.
    let mut status = bound.clone();
    status.status.phase = "Running".into();
    status.metadata.labels = label_map(&[("a", "b")]);
    assert_eq!(status.validate_update(&bound), vec![]);
}

#[test]
fn a_good_deployment_is_valid() {
    let mut d = deployment();
    d.spec.strategy = DeploymentStrategy {
        kind: "RollingUpdate".into(),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::String("25%".into())),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    };
    assert_eq!(d.validate(), vec![]);
}

#[test]
fn deployment_selector_must_match_template() {
    let mut d = deployment();
    d.spec.template.metadata.labels = label_map(&[("app", "db")]);
    let e = d.validate();
    assert_eq!(fields(&e), vec!["spec.template.metadata.labels"]);
    assert_eq!(e[0].reason, reason::INVALID);
    assert!(
        e[0].message
            .contains("`selector` does not match template `labels`"),
        "{}",
        e[0].message
    );

    let mut d = deployment();
    d.spec.selector = LabelSelector::default();
    let e = d.validate();
    assert_eq!(fields(&e), vec!["spec.selector"]);
    assert_eq!(e[0].reason, reason::REQUIRED);

    let mut d = deployment();
    d.spec.selector.match_expressions = vec![
        LabelSelectorRequirement::new("env", "In", &[]),
        LabelSelectorRequirement::new("env", "Exists", &["x"]),
        LabelSelectorRequirement::new("env", "Gt", &["1"]),
    ];
    let e = d.validate();
    assert_eq!(
        fields(&e),
        vec![
            "spec.selector.matchExpressions[0].values",
            "spec.selector.matchExpressions[1].values",
            "spec.selector.matchExpressions[2].operator",
        ],
        "an invalid selector is not also reported as not matching: {e:#?}"
    );
}

#[test]
fn deployment_spec_rules() {
    let mut d = deployment();
    d.spec.replicas = Some(-1);
    d.spec.template.spec.containers[0].image.clear();
    d.spec.template.spec.restart_policy = "Never".into();
    d.spec.strategy.kind = "BlueGreen".into();
    let e = d.validate();
    assert_eq!(
        fields(&e),
        vec![
            "spec.replicas",
            "spec.template.spec.containers[0].image",
            "spec.template.spec.restartPolicy",
            "spec.strategy.type",
        ],
        "{e:#?}"
    );
}

#[test]
fn deployment_rolling_update_rules() {
    let with = |surge: Option<IntOrString>, unavailable: Option<IntOrString>| {
        let mut d = deployment();
        d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
            max_surge: surge,
            max_unavailable: unavailable,
        });
        d.validate()
    };
    let int = IntOrString::Int;
    let pct = |s: &str| IntOrString::String(s.into());
    let path = "spec.strategy.rollingUpdate";
    let e = with(Some(int(0)), Some(pct("0%")));
    assert_eq!(fields(&e), vec![format!("{path}.maxUnavailable")]);
    assert!(e[0].message.contains("may not be 0"), "{}", e[0].message);
    assert_eq!(with(Some(int(0)), None), vec![]);
    assert_eq!(with(Some(pct("200%")), Some(pct("100%"))), vec![]);
    let e = with(Some(pct("x%")), Some(pct("101%")));
    assert_has(&e, reason::INVALID, &format!("{path}.maxSurge"));
    assert_has(&e, reason::INVALID, &format!("{path}.maxUnavailable"));
    let e = with(Some(int(-1)), Some(pct("-5%")));
    assert_eq!(e.len(), 2, "{e:#?}");

    let mut d = deployment();
    d.spec.strategy = DeploymentStrategy {
        kind: "Recreate".into(),
        rolling_update: Some(RollingUpdateDeployment::default()),
    };
    assert_has(&d.validate(), reason::FORBIDDEN, path);
}

#[test]
fn workload_selectors_are_immutable() {
    let old = deployment();
    let mut new = old.clone();
    new.spec.replicas = Some(5);
    assert_eq!(new.validate_update(&old), vec![]);
    new.spec
        .selector
        .match_labels
        .insert("tier".into(), "front".into());
    new.spec
        .template
        .metadata
        .labels
        .insert("tier".into(), "front".into());
    let e = new.validate_update(&old);
    assert_eq!(fields(&e), vec!["spec.selector"]);
    assert!(e[0].message.contains("immutable"), "{}", e[0].message);

    let rs = |d: &Deployment| ReplicaSet {
        metadata: d.metadata.clone(),
        spec: ReplicaSetSpec {
            replicas: d.spec.replicas,
            selector: d.spec.selector.clone(),
            template: d.spec.template.clone(),
            min_ready_seconds: 0,
        },
        ..Default::default()
    };
    assert_eq!(rs(&old).validate(), vec![]);
    assert_has(
        &rs(&new).validate_update(&rs(&old)),
        reason::INVALID,
        "spec.selector",
    );
    let mut bad = rs(&old);
    bad.spec.template.metadata.labels.clear();
    assert_has(
        &bad.validate(),
        reason::INVALID,
        "spec.template.metadata.labels",
    );
}

#[test]
fn service_rules() {
    assert_eq!(service().validate(), vec![]);
    let mut s = service();
    s.metadata.name = "web.v1".into();
    s.spec.ports.clear();
    s.spec.kind = "LoadBalancer".into();
    let e = s.validate();
    assert_eq!(
        fields(&e),
        vec!["metadata.name", "spec.type", "spec.ports"],
        "{e:#?}"
    );

    let mut s = service();
    let p = |name: &str, port: i32| ServicePort {
        name: name.into(),
        port,
        ..Default::default()
    };
    s.spec.ports = vec![
        p("", 80),
        p("a", 0),
        p("a", 81),
        ServicePort {
            target_port: Some(IntOrString::String("Bad".into())),
            node_port: 80,
            ..p("b", 82)
        },
        ServicePort {
            node_port: 30001,
            ..p("c", 80)
        },
    ];
    let e = s.validate();
    assert_eq!(
        fields(&e),
        vec![
            "spec.ports[0].name",
            "spec.ports[1].port",
            "spec.ports[2].name",
            "spec.ports[3].targetPort",
            "spec.ports[3].nodePort",
            "spec.ports[3].nodePort",
            "spec.ports[4]",
            "spec.ports[4].nodePort",
        ],
        "{e:#?}"
    );
    assert_eq!(e[0].reason, reason::REQUIRED);
    assert_eq!(e[2].reason, reason::DUPLICATE);
    assert_eq!(e[4].reason, reason::INVALID);
    assert_eq!(e[5].reason, reason::FORBIDDEN);
    assert_eq!(e[6].reason, reason::DUPLICATE);

    let mut s = service();
    s.spec.kind = "NodePort".into();
    s.spec.ports[0].node_port = 30080;
    s.spec.cluster_ip = "10.0.0.1".into();
    assert_eq!(s.validate(), vec![]);
    let mut moved = s.clone();
    moved.spec.cluster_ip = "10.0.0.2".into();
    assert_has(
        &moved.validate_update(&s),
        reason::INVALID,
        "spec.clusterIP",
    );
    moved.spec.cluster_ip.clear();
    assert_eq!(moved.validate_update(&s), vec![]);
    moved.spec.cluster_ip = "ten".into();
    assert_has(&moved.validate(), reason::INVALID, "spec.clusterIP");
}

#[test]
fn endpoints_rules() {
    let mut e = Endpoints {
        metadata: ObjectMeta::named("default", "web"),
        subsets: vec![EndpointSubset {
            addresses: vec![EndpointAddress {
                ip: "10.0.0.5".into(),
                node_name: Some("node-1".into()),
                target_ref: None,
            }],
            not_ready_addresses: vec![],
            ports: vec![EndpointPort {
                port: 8080,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    assert_eq!(e.validate(), vec![]);
    e.subsets[0].addresses.push(EndpointAddress::default());
    e.subsets[0].not_ready_addresses.push(EndpointAddress {
        ip: "10.0.0".into(),
        ..Default::default()
    });
    e.subsets[0].ports.push(EndpointPort {
        name: "b".into(),
        port: 65536,
        ..Default::default()
    });
    let errs = e.validate();
    assert_eq!(
        fields(&errs),
        vec![
            "subsets[0].addresses[1].ip",
            "subsets[0].notReadyAddresses[0].ip",
            "subsets[0].ports[0].name",
            "subsets[0].ports[1].port",
        ],
        "{errs:#?}"
    );
}

#[test]
fn node_rules() {
    let mut n = Node {
        metadata: ObjectMeta {
            name: "node-1".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    n.status.capacity.insert("cpu".into(), q("4"));
    n.status.allocatable.insert("pods".into(), q("110"));
    assert_eq!(n.validate(), vec![]);
    let taint = |key: &str, effect: &str| Taint {
        key: key.into(),
        value: String::new(),
        effect: effect.into(),
    };
    n.spec.taints = vec![
        taint("a", "NoSchedule"),
        taint("a", "NoSchedule"),
        taint("", "Sometimes"),
        taint("b", ""),
    ];
    n.status.allocatable.insert("gpus".into(), q("1"));
    let e = n.validate();
    assert_eq!(
        fields(&e),
        vec![
            "spec.taints[1].effect",
            "spec.taints[2].key",
            "spec.taints[2].effect",
            "spec.taints[3].effect",
            "status.allocatable[gpus]",
        ],
        "{e:#?}"
    );
    assert_eq!(e[0].reason, reason::DUPLICATE);
    assert_eq!(e[2].reason, reason::NOT_SUPPORTED);
    assert_eq!(e[3].reason, reason::REQUIRED);
    assert_eq!(e[4].reason, reason::NOT_SUPPORTED);
}

#[test]
fn namespace_rules() {
    let mut ns = Namespace {
        metadata: ObjectMeta {
            name: "team-a".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(ns.validate(), vec![]);
    ns.metadata.name = "team.a".into();
    ns.metadata.namespace = "default".into();
    ns.status.phase = "Gone".into();
    assert_eq!(
        fields(&ns.validate()),
        vec!["metadata.name", "metadata.namespace", "status.phase"]
    );
    assert_eq!(ns.validate_update(&ns.clone()).len(), 3);
}

#[test]
fn lease_event_binding_scale_rules() {
    let mut lease = Lease {
        metadata: ObjectMeta::named("kube-node-lease", "node-1"),
        ..Default::default()
    };
    assert_eq!(lease.validate(), vec![]);
    lease.spec.lease_duration_seconds = Some(0);
    assert_has(
        &lease.validate(),
        reason::INVALID,
        "spec.leaseDurationSeconds",
    );
    lease.spec.lease_duration_seconds = Some(40);
    assert_eq!(lease.validate(), vec![]);

    let mut ev = Event {
        metadata: ObjectMeta::named("default", "web-1.1"),
        ..Default::default()
    };
    assert_eq!(
        fields(&ev.validate()),
        vec!["involvedObject.kind", "involvedObject.name"]
    );
    ev.involved_object = ObjectReference {
        kind: "Pod".into(),
        name: "web-1".into(),
        namespace: "other".into(),
        ..Default::default()
    };
    ev.event_type = "Info".into();
    assert_eq!(
        fields(&ev.validate()),
        vec!["involvedObject.namespace", "type"]
    );

    let mut b = Binding::default();
    assert_eq!(fields(&b.validate()), vec!["target.name"]);
    b.target.name = "node-1".into();
    assert_eq!(b.validate(), vec![]);
    b.target.kind = "Pod".into();
    assert_has(&b.validate(), reason::NOT_SUPPORTED, "target.kind");
    b.target.kind = "Node".into();
    assert_eq!(b.validate(), vec![]);

    let mut s = Scale::default();
    assert_eq!(s.validate(), vec![]);
    s.spec.replicas = -2;
    assert_eq!(fields(&s.validate()), vec!["spec.replicas"]);
}

#[test]
fn messages_follow_kubernetes_wording() {
    assert_eq!(required("f", "").message, "Required value");
    assert_eq!(required("f", "why").message, "Required value: why");
    assert_eq!(
        invalid("f", "x", "bad").message,
        "Invalid value: \"x\": bad"
    );
    assert_eq!(invalid("f", 7, "bad").message, "Invalid value: 7: bad");
    assert_eq!(
        not_supported("f", "x", &["a", "b"]).message,
        "Unsupported value: \"x\": supported values: \"a\", \"b\""
    );
    assert_eq!(duplicate("f", "x").message, "Duplicate value: \"x\"");
    assert_eq!(forbidden("f", "no").message, "Forbidden: no");
    assert_eq!(forbidden("f", "no").reason, "FieldValueForbidden");
}

#[test]
fn volumes_and_their_mounts() {
    let ok: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": "app", "defaultMode": 0o640,
                    "items": [{"key": "a", "path": "conf/a.txt", "mode": 0o600}]}},
                {"name": "creds", "secret": {"secretName": "db", "optional": true}}
            ],
            "containers": [{"name": "c", "image": "echo", "volumeMounts": [
                {"name": "config", "mountPath": "/etc/app"},
                {"name": "creds", "mountPath": "/etc/creds", "readOnly": true}
            ]}]
        }
    }))
    .expect("decodes");
    assert_eq!(ok.validate(), Vec::new());

    let mut p = ok.clone();
    p.spec.volumes.push(Volume {
        name: "config".into(),
        ..Default::default()
    });
    let v = &mut p.spec.volumes[0];
    let cm = v.config_map.as_mut().expect("configMap");
    cm.default_mode = Some(0o1000);
    cm.items[0].path = "../etc/passwd".into();
    cm.items.push(KeyToPath {
        key: String::new(),
        path: "..data".into(),
        mode: None,
    });
    p.spec.volumes[1].config_map = Some(ConfigMapVolumeSource::default());
    let c = &mut p.spec.containers[0];
    c.volume_mounts[0].mount_path = "etc/app".into();
    c.volume_mounts[1].name = "nothing".into();
    c.volume_mounts.push(VolumeMount {
        name: "creds".into(),
        mount_path: "/etc/creds/".into(),
        read_only: false,
    });
    c.volume_mounts.push(VolumeMount {
        name: "creds".into(),
        mount_path: "/etc/creds".into(),
        read_only: false,
    });
    let e = p.validate();
    let v = "spec.volumes";
    assert_has(
        &e,
        reason::INVALID,
        &format!("{v}[0].configMap.defaultMode"),
    );
    assert_has(
        &e,
        reason::INVALID,
        &format!("{v}[0].configMap.items[0].path"),
    );
    assert_has(
        &e,
        reason::REQUIRED,
        &format!("{v}[0].configMap.items[1].key"),
    );
    assert_has(
        &e,
        reason::INVALID,
        &format!("{v}[0].configMap.items[1].path"),
    );
    assert_has(&e, reason::FORBIDDEN, &format!("{v}[1].secret"));
    assert_has(&e, reason::DUPLICATE, &format!("{v}[2].name"));
    assert_has(&e, reason::REQUIRED, &format!("{v}[2]"));
    let m = "spec.containers[0].volumeMounts";
    assert_has(&e, reason::INVALID, &format!("{m}[0].mountPath"));
    assert_has(&e, reason::NOT_FOUND, &format!("{m}[1].name"));
    assert_has(&e, reason::INVALID, &format!("{m}[3].mountPath"));
    assert_has(&e, reason::INVALID, &format!("{m}[2].mountPath"));
    let found = e
        .iter()
        .find(|c| c.reason == reason::NOT_FOUND)
        .expect("not found");
    assert_eq!(found.message, "Not found: \"nothing\"");
}
