//! Authentication by bearer token and authorisation by role.
//!
//! The token file has Kubernetes' static-token format, one user per line:
//! `token,user,uid,"group1,group2"`. Groups name the role:
//!
//! | group                             | role        | may                                               |
//! |-----------------------------------|-------------|---------------------------------------------------|
//! | `system:masters`                  | admin       | everything                                        |
//! | `system:kube-scheduler`           | scheduler   | read everything; bind pods; write pod status, events, leases |
//! | `system:kube-controller-manager`  | controller  | everything except binding pods                    |
//! | `system:nodes` (user `system:node:NAME`) | node | read everything; its own Node and Lease; status and deletion of pods bound to it; events |

use std::collections::BTreeMap;

use faultline_api::Status;

/// What a user may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    Scheduler,
    Controller,
    /// A kubelet, for the named node only.
    Node(String),
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
}

/// Tokens to users.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    users: BTreeMap<String, User>,
}

/// A line of the token file that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token file line {line}: {why}")]
pub struct TokenFileError {
    pub line: usize,
    pub why: String,
}

impl Tokens {
    /// Parses a token file (`token,user,uid,"groups"`; `#` comments).
    pub fn parse(text: &str) -> Result<Tokens, TokenFileError> {
        let mut t = Tokens::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |why: String| TokenFileError { line: i + 1, why };
            let fields = split_csv(line);
            if fields.len() < 3 {
                return Err(err(format!(
                    "expected token,user,uid[,\"groups\"], found {} field(s)",
                    fields.len()
                )));
            }
            let (token, user) = (fields[0].clone(), fields[1].clone());
            if token.is_empty() || user.is_empty() {
                return Err(err("token and user must not be empty".into()));
            }
            let groups: Vec<&str> = fields
                .get(3)
                .map(|g| g.split(',').map(str::trim).collect())
                .unwrap_or_default();
            let role = role_of(&user, &groups).ok_or_else(|| {
                err(format!(
                    "user {user:?} is in no known group (system:masters, system:kube-scheduler, system:kube-controller-manager, system:nodes)"
                ))
            })?;
            if t.users.insert(token, User { name: user, role }).is_some() {
                return Err(err("duplicate token".into()));
            }
        }
        Ok(t)
    }

    /// Adds a token (for programmatic set-up: the simulator, `faultline up`).
    pub fn add(&mut self, token: &str, user: &str, role: Role) {
        self.users.insert(
            token.to_string(),
            User {
                name: user.to_string(),
                role,
            },
        );
    }

    /// A token of a user with `role` (the first in token order), for a
    /// component that runs beside the API server.
    pub fn token_for(&self, role: &Role) -> Option<String> {
        self.users
            .iter()
            .find(|(_, u)| u.role == *role)
            .map(|(t, _)| t.clone())
    }

    /// The user a request's `Authorization` header names, or 401.
    pub fn authenticate(&self, header: Option<&str>) -> Result<&User, Status> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(Status::unauthorized)?;
        self.users.get(token).ok_or_else(Status::unauthorized)
    }
}

fn role_of(user: &str, groups: &[&str]) -> Option<Role> {
    for g in groups {
        match *g {
            "system:masters" => return Some(Role::Admin),
            "system:kube-scheduler" => return Some(Role::Scheduler),
            "system:kube-controller-manager" => return Some(Role::Controller),
            "system:nodes" => {
                return user
                    .strip_prefix("system:node:")
                    .map(|n| Role::Node(n.to_string()))
            }
            _ => {}
        }
    }
    None
}

/// Splits one CSV line with `"` quoting.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// One request, as authorisation sees it.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// get, list, watch, create, update, patch, delete
    pub verb: &'a str,
    pub resource: &'a str,
    /// `status`, `binding`, `scale`, `log` or empty.
    pub sub: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// What remains to check once the stored object is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed only if the pod is bound to this node.
    IfPodOnNode(String),
    /// A create allowed only if the new object has this name (a node
    /// creates its own Node and Lease, no other).
    IfNamed(String),
    /// A read allowed only if a pod bound to this node uses the object (a
    /// Secret or ConfigMap), as Kubernetes' node authorizer decides.
    IfUsedOnNode(String),
}

/// Whether a pod's spec (as JSON) uses the Secret or ConfigMap
/// (`plural`) named `name`: in an environment variable (`valueFrom`,
/// `envFrom`), a volume (also projected) or, for a Secret, an image pull
/// secret.
pub fn pod_uses(spec: &serde_json::Value, plural: &str, name: &str) -> bool {
    use serde_json::Value;
    let refs: &[(&str, &str)] = match plural {
        "secrets" => &[
            ("secretKeyRef", "name"),
            ("secretRef", "name"),
            ("secret", "secretName"),
            ("secret", "name"),
        ],
        "configmaps" => &[
            ("configMapKeyRef", "name"),
            ("configMapRef", "name"),
            ("configMap", "name"),
        ],
        _ => return false,
    };
    fn walk(v: &Value, f: &mut impl FnMut(&serde_json::Map<String, Value>) -> bool) -> bool {
        match v {
            Value::Object(m) => f(m) || m.values().any(|x| walk(x, f)),
            Value::Array(items) => items.iter().any(|x| walk(x, f)),
            _ => false,
        }
    }
    let pull_secret = plural == "secrets"
        && spec["imagePullSecrets"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s["name"] == name));
    pull_secret
        || walk(spec, &mut |m| {
            refs.iter()
                .any(|(key, field)| m.get(*key).is_some_and(|r| r[*field] == name))
        })
}

fn read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

/// Decides whether `user` may do `a`.
pub fn authorize(user: &User, a: &Access<'_>) -> Result<Decision, Status> {
    let deny = || {
        let what = if a.sub.is_empty() {
            a.resource.to_string()
        } else {
            format!("{}/{}", a.resource, a.sub)
        };
        Err(Status::forbidden(format!(
            "User {:?} cannot {} resource {what:?}{}{}",
            user.name,
            a.verb,
            if a.name.is_empty() {
                String::new()
            } else {
                format!(" named {:?}", a.name)
            },
            if a.namespace.is_empty() {
                String::new()
            } else {
                format!(" in namespace {:?}", a.namespace)
            },
        )))
    };
    // Container output is for people: no component reads it, and a node
    // must not read another node's (Kubernetes' node authorizer agrees).
    if a.resource == "pods" && a.sub == "log" && user.role != Role::Admin {
        return deny();
    }
    // Secrets and ConfigMaps: a node reads one at a time, only those its
    // pods use; the scheduler none.
    if matches!(a.resource, "secrets" | "configmaps") {
        match &user.role {
            Role::Node(node) if a.verb == "get" => return Ok(Decision::IfUsedOnNode(node.clone())),
            Role::Node(_) | Role::Scheduler => return deny(),
            Role::Admin | Role::Controller => {}
        }
    }
    match &user.role {
        Role::Admin => Ok(Decision::Allow),
        Role::Controller => {
            if a.resource == "pods" && a.sub == "binding" {
                deny()
            } else {
                Ok(Decision::Allow)
            }
        }
        Role::Scheduler => {
            let ok = read(a.verb)
                || (a.resource == "pods" && matches!(a.sub, "binding" | "status"))
                || a.resource == "events"
                || a.resource == "leases";
            if ok {
                Ok(Decision::Allow)
            } else {
                deny()
            }
        }
        Role::Node(node) => {
            if read(a.verb) || a.resource == "events" {
                return Ok(Decision::Allow);
            }
            // Its own Node, and its own Lease in kube-node-lease (the
            // heartbeat): a create is checked against the new object's name.
            let own_kind = a.resource == "nodes"
                || (a.resource == "leases" && a.namespace == "kube-node-lease");
            if own_kind {
                return if a.verb == "create" {
                    Ok(Decision::IfNamed(node.clone()))
                } else if a.name == node {
                    Ok(Decision::Allow)
                } else {
                    deny()
                };
            }
            match a.resource {
                "pods" if a.sub == "status" || (a.sub.is_empty() && a.verb == "delete") => {
                    Ok(Decision::IfPodOnNode(node.clone()))
                }
                _ => deny(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_static_token_files() {
        let t = Tokens::parse(
            "# comment\nadm,admin,1,\"system:masters\"\nn1,system:node:node-1,2,\"system:nodes\"\n",
        )
        .unwrap();
        assert_eq!(
            t.authenticate(Some("Bearer adm")).unwrap().role,
            Role::Admin
        );
        assert_eq!(
            t.authenticate(Some("Bearer n1")).unwrap().role,
            Role::Node("node-1".into())
        );
        assert_eq!(t.authenticate(Some("Bearer x")).unwrap_err().code, 401);
        assert_eq!(t.authenticate(None).unwrap_err().code, 401);
        let e = Tokens::parse("a,b\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = Tokens::parse("a,b,c,\"nobody\"").unwrap_err();
        assert!(e.why.contains("no known group"), "{e}");
    }

    #[test]
    fn nodes_may_only_touch_their_own_objects() {
        let u = User {
            name: "system:node:n1".into(),
            role: Role::Node("n1".into()),
        };
        let acc = |verb, resource, sub, namespace, name| Access {
            verb,
            resource,
            sub,
            namespace,
            name,
        };
        assert!(authorize(&u, &acc("update", "nodes", "status", "", "n1")).is_ok());
        assert_eq!(
            authorize(&u, &acc("update", "nodes", "status", "", "n2"))
                .unwrap_err()
                .code,
            403
        );
        assert_eq!(
            authorize(&u, &acc("update", "pods", "status", "default", "p")).unwrap(),
            Decision::IfPodOnNode("n1".into())
        );
        assert!(authorize(&u, &acc("create", "deployments", "", "default", "")).is_err());
        assert!(authorize(&u, &acc("update", "leases", "", "kube-node-lease", "n2")).is_err());
        assert_eq!(
            authorize(&u, &acc("create", "nodes", "", "", "")).unwrap(),
            Decision::IfNamed("n1".into())
        );
        assert_eq!(
            authorize(&u, &acc("create", "leases", "", "kube-node-lease", "")).unwrap(),
            Decision::IfNamed("n1".into())
        );
        assert!(authorize(&u, &acc("create", "leases", "", "default", "")).is_err());
        assert!(authorize(&u, &acc("delete", "nodes", "", "", "n2")).is_err());
        let s = User {
            name: "sched".into(),
            role: Role::Scheduler,
        };
        assert!(authorize(&s, &acc("create", "pods", "binding", "default", "p")).is_ok());
        assert!(authorize(&s, &acc("delete", "pods", "", "default", "p")).is_err());
        assert!(authorize(&s, &acc("get", "pods", "log", "default", "p")).is_err());
        assert!(authorize(&u, &acc("get", "pods", "log", "default", "p")).is_err());
        assert_eq!(
            authorize(&u, &acc("get", "secrets", "", "default", "db")).unwrap(),
            Decision::IfUsedOnNode("n1".into())
        );
        assert!(authorize(&u, &acc("list", "secrets", "", "default", "")).is_err());
        assert!(authorize(&u, &acc("watch", "configmaps", "", "default", "")).is_err());
        assert!(authorize(&s, &acc("get", "secrets", "", "default", "db")).is_err());
    }

    #[test]
    fn a_pod_uses_the_secrets_and_configmaps_it_names() {
        let spec = serde_json::json!({
            "containers": [{"name": "a", "env": [
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "all"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "tls"}}],
            "imagePullSecrets": [{"name": "registry"}],
        });
        for name in ["db", "tls", "registry"] {
            assert!(pod_uses(&spec, "secrets", name), "{name}");
        }
        for name in ["cfg", "all"] {
            assert!(pod_uses(&spec, "configmaps", name), "{name}");
        }
        assert!(!pod_uses(&spec, "secrets", "cfg"));
        assert!(!pod_uses(&spec, "configmaps", "db"));
        assert!(!pod_uses(&spec, "secrets", "other"));
    }
}
