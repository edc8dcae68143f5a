//! The user of a simulated cluster: applies the scenario's deployments
//! (and their services) as soon as the API answers, then performs its
//! actions (scale, set an image) on time, as an operator with `kubectl`
//! would.

use std::collections::BTreeMap;
use std::time::Duration;

use faultline_api::{
    Container, ContainerPort, Deployment, DeploymentSpec as ApiDeploymentSpec, IntOrString,
    LabelSelector, ObjectMeta, PodTemplateSpec, Quantity, ResourceRequirements,
    RollingUpdateDeployment, Service, ServicePort,
};
use faultline_client::Client;
use faultline_env::Env;
use faultline_scenario::{ActionKind, DeploymentSpec, Scenario};

/// The Deployment object for a scenario entry.
pub fn deployment_object(d: &DeploymentSpec) -> Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), d.name.clone())].into();
    let mut requests = faultline_api::ResourceList::new();
    requests.insert("cpu".into(), Quantity::parse(&d.cpu).expect("validated"));
    requests.insert(
        "memory".into(),
        Quantity::parse(&d.memory).expect("validated"),
    );
    let probe = faultline_api::Probe {
        http_get: Some(faultline_api::HttpGetAction {
            path: "/healthz".into(),
            port: IntOrString::Int(8080),
        }),
        period_seconds: 10,
        ..Default::default()
    };
    let echo = d.image.starts_with("echo");
    let container = Container {
        name: "app".into(),
        image: d.image.clone(),
        ports: if echo {
            vec![ContainerPort {
                name: "http".into(),
                container_port: 8080,
                protocol: "TCP".into(),
            }]
        } else {
            Vec::new()
        },
        resources: ResourceRequirements {
            requests,
            limits: Default::default(),
        },
        readiness_probe: echo.then_some(probe),
        ..Default::default()
    };
    let rolling =
        (d.max_surge.is_some() || d.max_unavailable.is_some()).then(|| RollingUpdateDeployment {
            max_surge: d.max_surge.clone().map(int_or_string),
            max_unavailable: d.max_unavailable.clone().map(int_or_string),
        });
    Deployment {
        metadata: ObjectMeta {
            labels: labels.clone(),
            ..ObjectMeta::named(&d.namespace, &d.name)
        },
        spec: ApiDeploymentSpec {
            replicas: Some(d.replicas),
            selector: LabelSelector {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            },
            template: PodTemplateSpec {
                metadata: ObjectMeta {
                    labels,
                    ..Default::default()
                },
                spec: faultline_api::PodSpec {
                    containers: vec![container],
                    ..Default::default()
                },
            },
            strategy: faultline_api::DeploymentStrategy {
                kind: "RollingUpdate".into(),
                rolling_update: rolling,
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn int_or_string(s: String) -> IntOrString {
    s.parse::<i32>()
        .map(IntOrString::Int)
        .unwrap_or(IntOrString::String(s))
}

fn service_object(d: &DeploymentSpec, port: u16) -> Service {
    Service {
        metadata: ObjectMeta::named(&d.namespace, &d.name),
        spec: faultline_api::ServiceSpec {
            selector: [("app".to_string(), d.name.clone())].into(),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: port as i32,
                target_port: Some(IntOrString::Int(8080)),
                node_port: 0,
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The user, with an admin client: creates the scenario's deployments
/// (and services) as soon as the API answers, then performs its actions
/// on time.
pub async fn act(env: Env, c: Client, s: &Scenario) {
    let start = env.now();
    for d in &s.deployments {
        let obj = deployment_object(d);
        until_done(&env, || async {
            match c.create(&obj).await {
                Ok(_) => true,
                Err(e) => e.is_already_exists(),
            }
        })
        .await;
        if let Some(port) = d.port {
            let svc = service_object(d, port);
            until_done(&env, || async {
                match c.create(&svc).await {
                    Ok(_) => true,
                    Err(e) => e.is_already_exists(),
                }
            })
            .await;
        }
        env.trace(format_args!(
            "user: applied deployment {}/{}",
            d.namespace, d.name
        ));
    }
    let mut actions: Vec<_> = s.actions.to_vec();
    actions.sort_by_key(|a| a.at.0);
    for a in actions {
        env.sleep_until(start + a.at.0).await;
        let ns = s
            .deployments
            .iter()
            .find(|d| d.name == a.deployment)
            .map(|d| d.namespace.clone())
            .unwrap_or_else(|| "default".into());
        until_done(&env, || async {
            let Ok(mut d) = c.get::<Deployment>(&ns, &a.deployment).await else {
                return false;
            };
            match a.kind {
                ActionKind::Scale => d.spec.replicas = a.replicas,
                ActionKind::SetImage => {
                    for ct in &mut d.spec.template.spec.containers {
                        ct.image = a.image.clone().unwrap_or_default();
                    }
                }
            }
            c.update(&d).await.is_ok()
        })
        .await;
        env.trace(format_args!("user: {:?} {}", a.kind, a.deployment));
    }
}

async fn until_done<F, Fut>(env: &Env, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    while !f().await {
        env.sleep(Duration::from_secs(1)).await;
    }
}
