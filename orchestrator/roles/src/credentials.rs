//! The bearer tokens of a cluster's roles: the admin, the scheduler, the
//! controller manager and one per node (`system:node:NAME`, the node
//! authorizer's identity).

use std::collections::BTreeMap;

use faultline_apiserver::{Role, Tokens};

/// A token per role and per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub admin: String,
    pub scheduler: String,
    pub controller: String,
    /// Node name → its token.
    pub nodes: BTreeMap<String, String>,
}

impl Credentials {
    /// Fixed, well-known tokens (`admin-token`, `scheduler-token`,
    /// `controller-token`, `node-NAME-token`): for simulated clusters and
    /// tests, where nobody else can reach the API.
    pub fn well_known<S: AsRef<str>>(nodes: &[S]) -> Credentials {
        Credentials {
            admin: "admin-token".into(),
            scheduler: "scheduler-token".into(),
            controller: "controller-token".into(),
            nodes: nodes
                .iter()
                .map(|n| (n.as_ref().to_string(), format!("node-{}-token", n.as_ref())))
                .collect(),
        }
    }

    /// The API server's token table: each token with its user and role.
    pub fn tokens(&self) -> Tokens {
        let mut t = Tokens::default();
        t.add(&self.admin, "admin", Role::Admin);
        t.add(&self.scheduler, "system:kube-scheduler", Role::Scheduler);
        t.add(
            &self.controller,
            "system:kube-controller-manager",
            Role::Controller,
        );
        for (n, token) in &self.nodes {
            t.add(token, &format!("system:node:{n}"), Role::Node(n.clone()));
        }
        t
    }

    /// The token of node `name`.
    pub fn node(&self, name: &str) -> Option<&str> {
        self.nodes.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_authenticates_with_its_own_token() {
        let c = Credentials::well_known(&["n1", "n2"]);
        let t = c.tokens();
        assert_eq!(t.token_for(&Role::Admin).as_deref(), Some("admin-token"));
        assert_eq!(
            t.token_for(&Role::Scheduler).as_deref(),
            Some("scheduler-token")
        );
        assert_eq!(
            t.token_for(&Role::Controller).as_deref(),
            Some("controller-token")
        );
        assert_eq!(
            t.token_for(&Role::Node("n2".into())).as_deref(),
            Some("node-n2-token")
        );
        assert_eq!(c.node("n1"), Some("node-n1-token"));
    }
}
