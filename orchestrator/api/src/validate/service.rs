//! Services and endpoints.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::status::StatusCause;
use crate::types::*;

use super::{
    check_label_map, check_one_of, check_port, check_port_or_name, check_protocol, check_subdomain,
    duplicate, forbidden, invalid, is_dns1123_label, required, validate_meta, NameRule, Validate,
    DNS1123_LABEL_RULE,
};

// ------------------------------------------------------ Service, Endpoints

/// The range `nodePort` must fall in (Kubernetes' default).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

impl Validate for Service {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Label);
        let s = &self.spec;
        check_one_of(&mut out, &s.kind, "spec.type", &["ClusterIP", "NodePort"]);
        if s.ports.is_empty() {
            out.push(required("spec.ports", "a service needs at least one port"));
        }
        let mut names = BTreeSet::new();
        let mut ports = BTreeSet::new();
        let mut node_ports = BTreeSet::new();
        for (i, p) in s.ports.iter().enumerate() {
            let path = format!("spec.ports[{i}]");
            if p.name.is_empty() {
                if s.ports.len() > 1 {
                    out.push(required(
                        &format!("{path}.name"),
                        "every port must be named when a service has more than one",
                    ));
                }
            } else if !is_dns1123_label(&p.name) {
                out.push(invalid(
                    &format!("{path}.name"),
                    &p.name,
                    DNS1123_LABEL_RULE,
                ));
            } else if !names.insert(p.name.as_str()) {
                out.push(duplicate(&format!("{path}.name"), &p.name));
            }
            let protocol = check_protocol(&mut out, &p.protocol, &format!("{path}.protocol"));
            if check_port(&mut out, p.port, &format!("{path}.port"))
                && !ports.insert((p.port, protocol))
            {
                out.push(duplicate(&path, format!("{}/{protocol}", p.port)));
            }
            if let Some(target) = &p.target_port {
                check_port_or_name(&mut out, target, &format!("{path}.targetPort"));
            }
            if p.node_port != 0 {
                let field = format!("{path}.nodePort");
                if !NODE_PORT_RANGE.contains(&p.node_port) {
                    out.push(invalid(
                        &field,
                        p.node_port,
                        "provided port is not in the valid range. The range of valid ports \
                         is 30000-32767",
                    ));
                } else if !node_ports.insert(p.node_port) {
                    out.push(duplicate(&field, p.node_port));
                }
                if s.kind.is_empty() || s.kind == "ClusterIP" {
                    out.push(forbidden(
                        &field,
                        "may not be used when `type` is 'ClusterIP'",
                    ));
                }
            }
        }
        check_label_map(&mut out, &s.selector, "spec.selector");
        if !s.cluster_ip.is_empty()
            && s.cluster_ip != "None"
            && s.cluster_ip.parse::<IpAddr>().is_err()
        {
            out.push(invalid(
                "spec.clusterIP",
                &s.cluster_ip,
                "must be a valid IP address (e.g. 10.9.8.7) or \"None\"",
            ));
        }
        out
    }

    /// An allocated `spec.clusterIP` may not change. (An update that leaves
    /// it empty is accepted: the server keeps the allocated one.)
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut out = self.validate();
        let (new_ip, old_ip) = (&self.spec.cluster_ip, &old.spec.cluster_ip);
        if !old_ip.is_empty() && !new_ip.is_empty() && new_ip != old_ip {
            out.push(invalid(
                "spec.clusterIP",
                new_ip,
                &format!("field is immutable (was {old_ip:?})"),
            ));
        }
        out
    }
}

fn check_endpoint_address(out: &mut Vec<StatusCause>, a: &EndpointAddress, path: &str) {
    let field = format!("{path}.ip");
    if a.ip.is_empty() {
        out.push(required(&field, ""));
    } else if a.ip.parse::<IpAddr>().is_err() {
        out.push(invalid(
            &field,
            &a.ip,
            "must be a valid IP address (e.g. 10.9.8.7)",
        ));
    }
    if let Some(node) = a.node_name.as_deref().filter(|n| !n.is_empty()) {
        check_subdomain(out, node, &format!("{path}.nodeName"));
    }
}

impl Validate for Endpoints {
    fn validate(&self) -> Vec<StatusCause> {
        let mut out = validate_meta(&self.metadata, true, NameRule::Subdomain);
        for (i, subset) in self.subsets.iter().enumerate() {
            let path = format!("subsets[{i}]");
            for (j, a) in subset.addresses.iter().enumerate() {
                check_endpoint_address(&mut out, a, &format!("{path}.addresses[{j}]"));
            }
            for (j, a) in subset.not_ready_addresses.iter().enumerate() {
                check_endpoint_address(&mut out, a, &format!("{path}.notReadyAddresses[{j}]"));
            }
            let mut names = BTreeSet::new();
            for (k, p) in subset.ports.iter().enumerate() {
                let ppath = format!("{path}.ports[{k}]");
                check_port(&mut out, p.port, &format!("{ppath}.port"));
                check_protocol(&mut out, &p.protocol, &format!("{ppath}.protocol"));
                if p.name.is_empty() {
                    if subset.ports.len() > 1 {
                        out.push(required(&format!("{ppath}.name"), ""));
                    }
                } else if !is_dns1123_label(&p.name) {
                    out.push(invalid(
                        &format!("{ppath}.name"),
                        &p.name,
                        DNS1123_LABEL_RULE,
                    ));
                } else if !names.insert(p.name.as_str()) {
                    out.push(duplicate(&format!("{ppath}.name"), &p.name));
                }
            }
        }
        out
    }
}
