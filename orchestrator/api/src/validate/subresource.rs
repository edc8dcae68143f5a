//! Sub-resources: a pod's Binding and a workload's Scale.

use crate::status::StatusCause;
use crate::types::*;

use super::{check_non_negative, check_one_of, check_subdomain, required, Validate};

// ----------------------------------------------------------- sub-resources

impl Validate for Binding {
    /// Only the target: a Binding's name and namespace are the pod's, taken
    /// from the URL.
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = Vec::new();
        if self.target.name.is_empty() {
            out.push(required("target.name", "the node to bind to"));
        } else {
            check_subdomain(&mut out, &self.target.name, "target.name");
        }
        check_one_of(&mut out, &self.target.kind, "target.kind", &["Node"]);
        out
    }
}

impl Validate for Scale {
    /// Only the replica count: a Scale's name and namespace are its
    /// parent's, taken from the URL.
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = Vec::new();
        check_non_negative(&mut out, self.spec.replicas.into(), "spec.replicas");
        out
    }
}
