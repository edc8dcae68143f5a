//! The kinds the API serves, field for field a subset of Kubernetes'.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::impl_resource;
use crate::meta::{ObjectMeta, ObjectReference};
use crate::quantity::Quantity;

/// Resource name (`cpu`, `memory`, `pods`) to quantity.
pub type ResourceList = BTreeMap<String, Quantity>;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Declares a nested struct with camelCase names, defaults and unknown
/// fields refused.
macro_rules! object {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $fty,)*
        }
    };
}

/// Declares a top-level kind: an `object!` whose fields are
/// `apiVersion`, `kind`, `metadata`, then the given ones.
macro_rules! kind {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        object!(
            $(#[$doc])*
            $name {
                #[serde(skip_serializing_if = "String::is_empty")]
                api_version: String,
                #[serde(skip_serializing_if = "String::is_empty")]
                kind: String,
                metadata: ObjectMeta,
                $($(#[$fdoc])* $field: $fty,)*
            }
        );
    };
}

// ---------------------------------------------------------------- Namespace

kind!(
    /// A namespace: a scope for names.
    Namespace { spec: NamespaceSpec, status: NamespaceStatus }
);
object!(NamespaceSpec {});
object!(NamespaceStatus {
    #[serde(skip_serializing_if = "String::is_empty")]
    phase: String,
});
impl_resource!(Namespace, "Namespace", "", "v1", "namespaces", false);

// --------------------------------------------------------------------- Node

kind!(
    /// A machine that runs pods, registered by its kubelet.
    Node { spec: NodeSpec, status: NodeStatus }
);
object!(NodeSpec {
    #[serde(skip_serializing_if = "is_false")]
    unschedulable: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    taints: Vec<Taint>,
});
object!(
    /// Repels pods that do not tolerate it.
    Taint {
        key: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        value: String,
        /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
        effect: String,
    }
);
object!(NodeStatus {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    capacity: ResourceList,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    allocatable: ResourceList,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<NodeCondition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<NodeAddress>,
    #[serde(skip_serializing_if = "NodeSystemInfo::is_empty")]
    node_info: NodeSystemInfo,
    /// Where the node's kubelet serves (the API server reads container
    /// output there).
    #[serde(skip_serializing_if = "NodeDaemonEndpoints::is_empty")]
    daemon_endpoints: NodeDaemonEndpoints,
});
object!(NodeDaemonEndpoints {
    kubelet_endpoint: DaemonEndpoint,
});
object!(DaemonEndpoint {
    /// Kubernetes spells this one field with a capital letter.
    #[serde(rename = "Port")]
    port: i32,
});
impl NodeDaemonEndpoints {
    pub fn is_empty(&self) -> bool {
        self.kubelet_endpoint.port == 0
    }
}
object!(
    /// What the node runs, as its kubelet reports it (`kubectl get nodes`
    /// shows `kubeletVersion`).
    NodeSystemInfo {
        #[serde(skip_serializing_if = "String::is_empty")]
        kubelet_version: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        kube_proxy_version: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        container_runtime_version: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        operating_system: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        architecture: String,
    }
);
impl NodeSystemInfo {
    pub fn is_empty(&self) -> bool {
        *self == NodeSystemInfo::default()
    }
}
object!(NodeCondition {
    /// `Ready`
    #[serde(rename = "type")]
    kind: String,
    /// `True`, `False` or `Unknown`
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_heartbeat_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_transition_time: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
});
object!(NodeAddress {
    /// `InternalIP` or `Hostname`
    #[serde(rename = "type")]
    kind: String,
    address: String,
});
impl_resource!(Node, "Node", "", "v1", "nodes", false);

/// Well-known labels.
pub mod labels {
    /// The node's datacenter (Kubernetes' region label).
    pub const REGION: &str = "topology.kubernetes.io/region";
    /// The node's zone within the datacenter.
    pub const ZONE: &str = "topology.kubernetes.io/zone";
    pub const HOSTNAME: &str = "kubernetes.io/hostname";
}

impl Node {
    /// The `Ready` condition's status: `True`, `False`, `Unknown` or `""`.
    pub fn ready_status(&self) -> &str {
        self.status
            .conditions
            .iter()
            .find(|c| c.kind == "Ready")
            .map(|c| c.status.as_str())
            .unwrap_or("")
    }

    pub fn is_ready(&self) -> bool {
        self.ready_status() == "True"
    }
}

// ---------------------------------------------------------------------- Pod

kind!(
    /// A group of containers scheduled together onto one node.
    Pod { spec: PodSpec, status: PodStatus }
);
object!(PodSpec {
    /// Set once, by a binding; never changed afterwards.
    #[serde(skip_serializing_if = "String::is_empty")]
    node_name: String,
    containers: Vec<Container>,
    /// `Always` (default), `OnFailure` or `Never`.
    #[serde(skip_serializing_if = "String::is_empty")]
    restart_policy: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    termination_grace_period_seconds: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    scheduler_name: String,
    /// Kept and returned: pods here have no cluster DNS to choose.
    #[serde(skip_serializing_if = "String::is_empty")]
    dns_policy: String,
    /// Kept and returned: there are no service accounts here yet.
    #[serde(skip_serializing_if = "String::is_empty")]
    service_account_name: String,
    /// Kept as given (users, groups, sysctls): the built-in runtime has
    /// nothing to apply it to.
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<serde_json::Value>,
    /// Directories the containers can mount (`volumeMounts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<Volume>,
});
object!(
    /// A directory of files for the pod's containers: exactly one source.
    /// ConfigMaps and Secrets are served (projected as one file per key,
    /// read-only, kept up to date while the pod runs).
    Volume {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        config_map: Option<ConfigMapVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        secret: Option<SecretVolumeSource>,
    }
);
object!(
    /// A ConfigMap's keys as files.
    ConfigMapVolumeSource {
        name: String,
        /// Only these keys, at these paths; every key at its own name
        /// when empty.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        items: Vec<KeyToPath>,
        /// The files' permission bits (0644 when not given).
        #[serde(skip_serializing_if = "Option::is_none")]
        default_mode: Option<i32>,
        /// A missing ConfigMap (or item key) is then no error: the
        /// directory is empty (or lacks the file).
        #[serde(skip_serializing_if = "Option::is_none")]
        optional: Option<bool>,
    }
);
object!(
    /// A Secret's keys as files (decoded).
    SecretVolumeSource {
        secret_name: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        items: Vec<KeyToPath>,
        #[serde(skip_serializing_if = "Option::is_none")]
        default_mode: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        optional: Option<bool>,
    }
);
object!(
    /// One key of a ConfigMap or Secret projected to a file.
    KeyToPath {
        key: String,
        /// Relative to the volume; no `..` element.
        path: String,
        /// This file's permission bits (the volume's `defaultMode` when
        /// not given).
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<i32>,
    }
);
object!(
    /// Where a container sees one of its pod's volumes.
    VolumeMount {
        /// The volume's name in `spec.volumes`.
        name: String,
        /// An absolute path in the container.
        mount_path: String,
        /// ConfigMap and Secret volumes are read-only whatever this says,
        /// as in Kubernetes.
        #[serde(skip_serializing_if = "is_false")]
        read_only: bool,
    }
);
object!(Container {
    name: String,
    /// Names a built-in application of the container runtime (`echo`).
    image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<EnvVar>,
    /// Every key of a ConfigMap or Secret as a variable (before `env`,
    /// which wins).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env_from: Vec<EnvFromSource>,
    #[serde(skip_serializing_if = "String::is_empty")]
    working_dir: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<ContainerPort>,
    resources: ResourceRequirements,
    #[serde(skip_serializing_if = "Option::is_none")]
    readiness_probe: Option<Probe>,
    /// Failing this `failureThreshold` times in a row kills the container,
    /// which then restarts as its pod's `restartPolicy` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    liveness_probe: Option<Probe>,
    /// The pod's volumes this container sees, and where.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volume_mounts: Vec<VolumeMount>,
    /// Kept and returned: images are built in, nothing is pulled.
    #[serde(skip_serializing_if = "String::is_empty")]
    image_pull_policy: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    termination_message_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    termination_message_policy: String,
});
object!(EnvVar {
    name: String,
    /// May refer to earlier variables as `$(NAME)` (`$$` is a `$`).
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_from: Option<EnvVarSource>,
});
object!(
    /// Where a variable's value comes from: exactly one of these.
    EnvVarSource {
        /// The downward API: a field of the pod (`metadata.name`,
        /// `metadata.namespace`, `metadata.uid`, `spec.nodeName`,
        /// `status.podIP`, `status.hostIP`, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        field_ref: Option<ObjectFieldSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        config_map_key_ref: Option<KeySelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        secret_key_ref: Option<KeySelector>,
        /// Kept and returned; not resolved (no resource limits are
        /// exposed to containers here).
        #[serde(skip_serializing_if = "Option::is_none")]
        resource_field_ref: Option<serde_json::Value>,
    }
);
object!(ObjectFieldSelector {
    #[serde(skip_serializing_if = "String::is_empty")]
    api_version: String,
    field_path: String,
});
object!(
    /// A key of a ConfigMap or Secret in the pod's namespace.
    KeySelector {
        name: String,
        key: String,
        /// A missing object or key is then no error: the variable is
        /// left out.
        #[serde(skip_serializing_if = "Option::is_none")]
        optional: Option<bool>,
    }
);
object!(EnvFromSource {
    /// Prepended to every key.
    #[serde(skip_serializing_if = "String::is_empty")]
    prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    config_map_ref: Option<NamedRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_ref: Option<NamedRef>,
});
object!(NamedRef {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    optional: Option<bool>,
});
object!(ContainerPort {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    container_port: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol: String,
});
object!(ResourceRequirements {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    requests: ResourceList,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    limits: ResourceList,
});
object!(Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    http_get: Option<HttpGetAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_socket: Option<TcpSocketAction>,
    /// A command run in the container: exit code 0 is success. Runtimes
    /// that cannot run one (the built-in apps) fail the probe, saying so.
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<ExecAction>,
    initial_delay_seconds: i32,
    period_seconds: i32,
    timeout_seconds: i32,
    success_threshold: i32,
    failure_threshold: i32,
});
object!(HttpGetAction {
    #[serde(skip_serializing_if = "String::is_empty")]
    path: String,
    port: IntOrString,
});
object!(TcpSocketAction { port: IntOrString });
object!(ExecAction {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
});
object!(Toleration {
    #[serde(skip_serializing_if = "String::is_empty")]
    key: String,
    /// `Equal` (default) or `Exists`.
    #[serde(skip_serializing_if = "String::is_empty")]
    operator: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    /// Empty tolerates every effect.
    #[serde(skip_serializing_if = "String::is_empty")]
    effect: String,
});
object!(PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(skip_serializing_if = "String::is_empty")]
    phase: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<PodCondition>,
    // Kubernetes spells these `hostIP` and `podIP`; the aliases read what
    // earlier versions stored.
    #[serde(rename = "hostIP", alias = "hostIp", skip_serializing_if = "String::is_empty")]
    host_ip: String,
    #[serde(rename = "podIP", alias = "podIp", skip_serializing_if = "String::is_empty")]
    pod_ip: String,
    /// `podIP` again, as the list Kubernetes keeps for dual-stack pods.
    #[serde(rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pod_ips: Vec<PodIp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    container_statuses: Vec<ContainerStatus>,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
});
object!(PodIp { ip: String });
object!(PodCondition {
    /// `PodScheduled`, `Ready`, `ContainersReady`, `Initialized`
    #[serde(rename = "type")]
    kind: String,
    status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_transition_time: Option<String>,
});
object!(ContainerStatus {
    name: String,
    ready: bool,
    restart_count: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    image: String,
    /// The runtime's id for the running instance.
    #[serde(
        rename = "containerID",
        alias = "containerId",
        skip_serializing_if = "String::is_empty"
    )]
    container_id: String,
    /// Which of `waiting`, `running` or `terminated` it is in, as an object
    /// (`{"running": {}}`), as Kubernetes reports it.
    #[serde(
        skip_serializing_if = "ContainerStatusState::is_unknown",
        deserialize_with = "ContainerStatusState::read"
    )]
    state: ContainerStatusState,
    /// The previous instance's end, once the container restarted (or while
    /// it waits to restart): what `kubectl describe` shows as Last State.
    #[serde(skip_serializing_if = "ContainerStatusState::is_unknown")]
    last_state: ContainerStatusState,
});
object!(ContainerStatusState {
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<ContainerStateWaiting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    running: Option<ContainerStateRunning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminated: Option<ContainerStateTerminated>,
});
object!(ContainerStateWaiting {
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
});
object!(ContainerStateRunning {
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
});
object!(ContainerStateTerminated {
    exit_code: i32,
    /// The instance that ended.
    #[serde(rename = "containerID", skip_serializing_if = "String::is_empty")]
    container_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
});

impl ContainerStatusState {
    pub fn running() -> ContainerStatusState {
        ContainerStatusState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }
    }

    pub fn waiting() -> ContainerStatusState {
        ContainerStatusState {
            waiting: Some(ContainerStateWaiting::default()),
            ..Default::default()
        }
    }

    /// `waiting`, `running`, `terminated`, or empty when none is set.
    pub fn name(&self) -> &'static str {
        match (&self.waiting, &self.running, &self.terminated) {
            (Some(_), _, _) => "waiting",
            (_, Some(_), _) => "running",
            (_, _, Some(_)) => "terminated",
            _ => "",
        }
    }

    /// A waiting state with Kubernetes' `reason` and a message.
    pub fn waiting_because(reason: &str, message: String) -> ContainerStatusState {
        ContainerStatusState {
            waiting: Some(ContainerStateWaiting {
                reason: reason.into(),
                message,
            }),
            ..Default::default()
        }
    }

    /// The end of instance `container_id` with `exit_code` (reason
    /// `Completed` for 0, else `Error`, as Kubernetes reports them).
    pub fn terminated(container_id: &str, exit_code: i32) -> ContainerStatusState {
        ContainerStatusState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                container_id: container_id.into(),
                reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn is_unknown(&self) -> bool {
        self.name().is_empty()
    }

    /// Reads the object, or the bare name (`"running"`) that earlier
    /// versions stored.
    fn read<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ContainerStatusState, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(name) => match name.as_str() {
                "" => Ok(ContainerStatusState::default()),
                "running" => Ok(ContainerStatusState::running()),
                "waiting" => Ok(ContainerStatusState::waiting()),
                "terminated" => Ok(ContainerStatusState {
                    terminated: Some(ContainerStateTerminated::default()),
                    ..Default::default()
                }),
                other => Err(D::Error::custom(format!(
                    "unknown container state {other:?}"
                ))),
            },
            v => serde_json::from_value(v).map_err(D::Error::custom),
        }
    }
}
impl_resource!(Pod, "Pod", "", "v1", "pods", true);

impl Pod {
    /// True when the pod's `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.condition("Ready") == Some("True")
    }

    pub fn condition(&self, kind: &str) -> Option<&str> {
        self.status
            .conditions
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.status.as_str())
    }

    /// Sets (or adds) a condition; returns true when anything changed.
    pub fn set_condition(&mut self, kind: &str, status: &str, reason: &str, message: &str) -> bool {
        if let Some(c) = self.status.conditions.iter_mut().find(|c| c.kind == kind) {
            if c.status == status && c.reason == reason && c.message == message {
                return false;
            }
            c.status = status.to_string();
            c.reason = reason.to_string();
            c.message = message.to_string();
            return true;
        }
        self.status.conditions.push(PodCondition {
            kind: kind.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: None,
        });
        true
    }

    /// Succeeded or Failed: the pod will not run again.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.phase.as_str(), "Succeeded" | "Failed")
    }

    /// The sum of the containers' requests for `resource` (`cpu` in
    /// millicores, anything else in its base unit).
    pub fn request(&self, resource: &str) -> i64 {
        self.spec
            .containers
            .iter()
            .filter_map(|c| c.resources.requests.get(resource))
            .map(|q| {
                if resource == "cpu" {
                    q.milli_value()
                } else {
                    q.value()
                }
            })
            .sum()
    }
}

// ------------------------------------------------ Deployment and ReplicaSet

kind!(
    /// Declares a replicated workload; owns ReplicaSets, one per template.
    Deployment { spec: DeploymentSpec, status: DeploymentStatus }
);
object!(DeploymentSpec {
    replicas: Option<i32>,
    selector: LabelSelector,
    template: PodTemplateSpec,
    strategy: DeploymentStrategy,
    #[serde(skip_serializing_if = "is_zero32")]
    min_ready_seconds: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision_history_limit: Option<i32>,
    #[serde(skip_serializing_if = "is_false")]
    paused: bool,
    /// Seconds a rollout may go without progress before its `Progressing`
    /// condition turns False with `ProgressDeadlineExceeded` (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    progress_deadline_seconds: Option<i32>,
});
object!(DeploymentStrategy {
    /// `RollingUpdate` (default) or `Recreate`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rolling_update: Option<RollingUpdateDeployment>,
});
object!(RollingUpdateDeployment {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_surge: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_unavailable: Option<IntOrString>,
});
object!(DeploymentStatus {
    observed_generation: i64,
    replicas: i32,
    updated_replicas: i32,
    ready_replicas: i32,
    available_replicas: i32,
    unavailable_replicas: i32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<DeploymentCondition>,
});
object!(DeploymentCondition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    /// When the condition was last updated (for `Progressing`: the last
    /// progress, which the deadline counts from).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_update_time: Option<String>,
    /// When `status` last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_transition_time: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
});
impl_resource!(
    Deployment,
    "Deployment",
    "apps",
    "apps/v1",
    "deployments",
    true
);

kind!(
    /// Keeps a number of identical pods running.
    ReplicaSet { spec: ReplicaSetSpec, status: ReplicaSetStatus }
);
object!(ReplicaSetSpec {
    replicas: Option<i32>,
    selector: LabelSelector,
    template: PodTemplateSpec,
    #[serde(skip_serializing_if = "is_zero32")]
    min_ready_seconds: i32,
});
object!(ReplicaSetStatus {
    observed_generation: i64,
    replicas: i32,
    fully_labeled_replicas: i32,
    ready_replicas: i32,
    available_replicas: i32,
});
impl_resource!(
    ReplicaSet,
    "ReplicaSet",
    "apps",
    "apps/v1",
    "replicasets",
    true
);

object!(PodTemplateSpec {
    metadata: ObjectMeta,
    spec: PodSpec,
});

fn is_zero32(v: &i32) -> bool {
    *v == 0
}

/// Selects objects by their labels (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

object!(LabelSelectorRequirement {
    key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    operator: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
});

// ------------------------------------------------------ Service, Endpoints

kind!(
    /// A stable name and port in front of the ready pods its selector picks.
    Service { spec: ServiceSpec, status: ServiceStatus }
);
object!(ServiceSpec {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    selector: BTreeMap<String, String>,
    ports: Vec<ServicePort>,
    #[serde(rename = "clusterIP", skip_serializing_if = "String::is_empty")]
    cluster_ip: String,
    /// `ClusterIP` (default) or `NodePort`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    kind: String,
    /// `None` (the only behaviour here) or `ClientIP`, kept as given.
    #[serde(skip_serializing_if = "String::is_empty")]
    session_affinity: String,
});
object!(ServicePort {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol: String,
    port: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_port: Option<IntOrString>,
    /// The port every node's proxy serves the service on.
    #[serde(skip_serializing_if = "is_zero32")]
    node_port: i32,
});
object!(ServiceStatus {});
impl_resource!(Service, "Service", "", "v1", "services", true);

kind!(
    /// The addresses behind a Service, maintained by the endpoints controller.
    Endpoints {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        subsets: Vec<EndpointSubset>,
    }
);
object!(EndpointSubset {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<EndpointAddress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_ready_addresses: Vec<EndpointAddress>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<EndpointPort>,
});
object!(EndpointAddress {
    ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_ref: Option<ObjectReference>,
});
object!(EndpointPort {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    port: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    protocol: String,
});
impl_resource!(Endpoints, "Endpoints", "", "v1", "endpoints", true);

// -------------------------------------------------------------- Lease, Event

kind!(
    /// A lock with a holder and a renew time: node heartbeats and leader
    /// election.
    Lease { spec: LeaseSpec }
);
object!(LeaseSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    holder_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_duration_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acquire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    renew_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_transitions: Option<i32>,
});
impl_resource!(
    Lease,
    "Lease",
    "coordination.k8s.io",
    "coordination.k8s.io/v1",
    "leases",
    true
);

kind!(
    /// Something that happened to an object, for people to read.
    Event {
        involved_object: ObjectReference,
        #[serde(skip_serializing_if = "String::is_empty")]
        reason: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        message: String,
        /// `Normal` or `Warning`.
        #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
        event_type: String,
        #[serde(skip_serializing_if = "is_zero32")]
        count: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        first_timestamp: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_timestamp: Option<String>,
        source: EventSource,
    }
);
object!(EventSource {
    #[serde(skip_serializing_if = "String::is_empty")]
    component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
});
impl_resource!(Event, "Event", "", "v1", "events", true);

impl Event {
    /// The first occurrence (`count` 1, first and last timestamp `stamp`)
    /// of an Event of `event_type` about `involved_object`, reported by
    /// `component` and named by `metadata`, with its type meta set.
    pub fn first_occurrence(
        metadata: ObjectMeta,
        involved_object: ObjectReference,
        event_type: &str,
        reason: &str,
        message: &str,
        component: &str,
        stamp: String,
    ) -> Event {
        let mut event = Event {
            metadata,
            involved_object,
            reason: reason.to_string(),
            message: message.to_string(),
            event_type: event_type.to_string(),
            count: 1,
            first_timestamp: Some(stamp.clone()),
            last_timestamp: Some(stamp),
            source: EventSource {
                component: component.to_string(),
                host: String::new(),
            },
            ..Default::default()
        };
        crate::meta::Resource::set_type_meta(&mut event);
        event
    }
}

// ---------------------------------------------------- ConfigMap and Secret

kind!(
    /// Configuration as key-value pairs, for pods to read as environment
    /// variables or files.
    ConfigMap {
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        data: BTreeMap<String, String>,
        /// Values that are not UTF-8 text, base64-encoded.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        binary_data: BTreeMap<String, String>,
        /// Once true, the data can no longer change (and this cannot be
        /// unset): only deleting the object does.
        #[serde(skip_serializing_if = "Option::is_none")]
        immutable: Option<bool>,
    }
);
impl_resource!(ConfigMap, "ConfigMap", "", "v1", "configmaps", true);

kind!(
    /// Sensitive key-value pairs (passwords, keys, tokens). Stored like a
    /// ConfigMap, but readable by a node only when a pod bound to it uses
    /// them, and never written to logs or events.
    Secret {
        /// `Opaque` unless given; cannot change.
        #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
        secret_type: String,
        /// The values, base64-encoded.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        data: BTreeMap<String, String>,
        /// Write-only plain values: merged into `data` on write (winning
        /// over a key there), never stored or returned.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        string_data: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        immutable: Option<bool>,
    }
);
impl_resource!(Secret, "Secret", "", "v1", "secrets", true);

// ----------------------------------------------------------- sub-resources

kind!(
    /// `POST pods/{name}/binding`: binds a pod to a node, once.
    Binding { target: ObjectReference }
);
impl_resource!(Binding, "Binding", "", "v1", "bindings", true);

kind!(
    /// `deployments/{name}/scale`.
    Scale { spec: ScaleSpec, status: ScaleStatus }
);
object!(ScaleSpec { replicas: i32 });
object!(ScaleStatus {
    replicas: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    selector: String,
});
impl_resource!(
    Scale,
    "Scale",
    "autoscaling",
    "autoscaling/v1",
    "scale",
    true
);

/// An integer or a string (`maxSurge: 1` or `"25%"`, `port: 8080` or `"http"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl schemars::JsonSchema for IntOrString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrString".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // As Kubernetes' OpenAPI describes it.
        schemars::json_schema!({
            "description": "An integer or a string (a port name, a percentage).",
            "x-kubernetes-int-or-string": true
        })
    }
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl IntOrString {
    /// Resolves an absolute number or a percentage of `total`, rounding
    /// up or down as Kubernetes does for surge (up) and unavailable (down).
    pub fn scaled(&self, total: i32, round_up: bool) -> Result<i32, String> {
        match self {
            IntOrString::Int(v) => Ok(*v),
            IntOrString::String(s) => {
                let pct = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse::<i64>().ok())
                    .ok_or_else(|| format!("{s:?} is neither an integer nor a percentage"))?;
                let num = pct * total as i64;
                let v = if round_up {
                    (num + 99).div_euclid(100)
                } else {
                    num.div_euclid(100)
                };
                Ok(v as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;

    #[test]
    fn pods_round_trip_as_kubernetes_json() {
        let text = r#"{
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "echo",
                     "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}},
                     "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}
        }"#;
        let pod: Pod = serde_json::from_str(text).unwrap();
        assert_eq!(pod.request("cpu"), 250);
        assert_eq!(pod.request("memory"), 128 << 20);
        let back = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            back["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"],
            8080
        );
        assert_eq!(Pod::PLURAL, "pods");
    }

    #[test]
    fn addresses_and_ids_are_spelled_as_kubernetes_spells_them() {
        let mut pod = Pod::default();
        pod.status.pod_ip = "10.0.0.7".into();
        pod.status.host_ip = "192.168.0.1".into();
        pod.status.container_statuses.push(ContainerStatus {
            container_id: "sim://c1".into(),
            ..Default::default()
        });
        let v = serde_json::to_value(&pod).unwrap();
        assert_eq!(v["status"]["podIP"], "10.0.0.7");
        assert_eq!(v["status"]["hostIP"], "192.168.0.1");
        assert_eq!(
            v["status"]["containerStatuses"][0]["containerID"],
            "sim://c1"
        );
        // What earlier versions stored still reads.
        let old: Pod = serde_json::from_str(
            r#"{"metadata": {"name": "x"}, "spec": {"containers": []},
                "status": {"podIp": "10.0.0.8", "containerStatuses":
                  [{"name": "c", "ready": true, "restartCount": 0, "containerId": "x"}]}}"#,
        )
        .unwrap();
        assert_eq!(old.status.pod_ip, "10.0.0.8");
        assert_eq!(old.status.container_statuses[0].container_id, "x");
    }

    #[test]
    fn a_container_state_is_an_object_and_the_old_name_still_reads() {
        let c = ContainerStatus {
            name: "c".into(),
            state: ContainerStatusState::running(),
            ..Default::default()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["state"], serde_json::json!({"running": {}}));
        let back: ContainerStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back.state.name(), "running");
        let old: ContainerStatus = serde_json::from_str(
            r#"{"name": "c", "ready": false, "restartCount": 0, "state": "waiting"}"#,
        )
        .unwrap();
        assert_eq!(old.state, ContainerStatusState::waiting());
        let bad = serde_json::from_str::<ContainerStatus>(r#"{"name": "c", "state": "dancing"}"#);
        assert!(bad.unwrap_err().to_string().contains("dancing"));
        let k8s: ContainerStatus = serde_json::from_str(
            r#"{"name": "c", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}"#,
        )
        .unwrap();
        assert_eq!(k8s.state.name(), "terminated");
    }

    #[test]
    fn unknown_fields_are_noticed() {
        let v = serde_json::json!({"metadata": {"name": "x"}, "spec": {"nodname": "a"}});
        let (_, unknown) = crate::decode::from_value::<Pod>(v.clone()).unwrap();
        assert_eq!(unknown, vec!["spec.nodname"]);
        let err = crate::decode::from_value_strict::<Pod>(v).unwrap_err();
        assert!(err.to_string().contains("nodname"), "{err}");
    }

    #[test]
    fn int_or_string_scales_percentages() {
        let p = IntOrString::String("25%".into());
        assert_eq!(p.scaled(10, true).unwrap(), 3);
        assert_eq!(p.scaled(10, false).unwrap(), 2);
        assert_eq!(IntOrString::Int(1).scaled(10, true).unwrap(), 1);
        assert!(IntOrString::String("x".into()).scaled(10, true).is_err());
    }
}
