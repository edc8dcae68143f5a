//! Objects in the store: keys, optimistic concurrency, and the per-kind
//! rules the server applies on create and update (Kubernetes' "strategies").
//!
//! Layout: `/registry/{plural}/{namespace}/{name}` (or
//! `/registry/{plural}/{name}` for cluster-scoped kinds); the value is the
//! object's JSON without `resourceVersion`, which is the key's
//! `mod_revision` in the store, so every write is a compare-and-swap on it.

use std::rc::Rc;

use faultline_api::validate::Validate;
use faultline_api::{Resource, Status, StatusCause};
use faultline_env::Env;
use faultline_store::client::{prefix_end, single_key, ClientError, StoreClient};
use faultline_store::ops::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, KeyValue, Op, OpResult, PutRequest,
    RangeRequest, RequestOp, StoreError, TxnRequest,
};
use rand::RngCore;
use serde_json::Value;

/// Deliberate bugs, for proving that the checkers catch a broken control
/// plane. Never enable outside tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Bind pods with a blind write: no check that the pod is unbound and
    /// no compare-and-swap on its revision, so two schedulers racing for a
    /// pod can both bind it.
    pub unchecked_binding: bool,
}

/// What part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: metadata and spec; status is kept.
    Main,
    /// The status subresource: only status.
    Status,
}

/// The store-backed registry every handler goes through.
pub struct Registry {
    pub env: Env,
    pub store: Rc<StoreClient>,
    pub bugs: Bugs,
}

/// Store key of one object.
pub fn key<T: Resource>(ns: &str, name: &str) -> Vec<u8> {
    if T::NAMESPACED {
        format!("/registry/{}/{ns}/{name}", T::PLURAL).into_bytes()
    } else {
        format!("/registry/{}/{name}", T::PLURAL).into_bytes()
    }
}

/// Store key prefix of a kind, in one namespace or in all.
pub fn prefix<T: Resource>(ns: Option<&str>) -> Vec<u8> {
    match ns {
        Some(ns) if T::NAMESPACED => format!("/registry/{}/{ns}/", T::PLURAL).into_bytes(),
        _ => format!("/registry/{}/", T::PLURAL).into_bytes(),
    }
}

/// Every namespaced kind's plural: what a namespace holds.
pub const NAMESPACED_PLURALS: &[&str] = &[
    "pods",
    "services",
    "endpoints",
    "events",
    "deployments",
    "replicasets",
    "leases",
    "configmaps",
    "secrets",
];

/// A page of a list; see [`Registry::list_page`].
pub struct Page<T> {
    pub items: Vec<T>,
    /// The revision every page of this list is read at.
    pub revision: i64,
    /// Where the next page starts (the key after the prefix), if any.
    pub next: Option<Vec<u8>>,
}

/// Maps a store failure to the status a client sees.
pub fn store_status(e: ClientError) -> Status {
    match e {
        ClientError::Timeout {
            maybe_applied: true,
        } => Status::timeout(
            "the storage did not answer in time; the write may or may not have been applied",
        ),
        ClientError::Timeout { .. } => Status::unavailable("the storage is unavailable"),
        ClientError::Store(StoreError::Compacted { compact_revision }) => Status::gone(format!(
            "too old resource version: the store has compacted history up to {compact_revision}"
        )),
        ClientError::Store(StoreError::FutureRevision { revision, current }) => Status::failure(
            504,
            "Timeout",
            format!("Too large resource version: {revision}, current: {current}"),
        ),
        ClientError::Store(e) => Status::unavailable(format!("storage error: {e}")),
        ClientError::BadRequest(e) => Status::failure(500, "InternalError", e),
    }
}

fn internal(what: impl std::fmt::Display) -> Status {
    Status::failure(500, "InternalError", what.to_string())
}

/// Decodes a stored object and stamps its `resourceVersion`.
pub fn decode<T: Resource>(kv: &KeyValue, revision: i64) -> Result<T, Status> {
    let mut obj: T = serde_json::from_slice(&kv.value).map_err(|e| {
        internal(format!(
            "stored object {} does not decode: {e}",
            String::from_utf8_lossy(&kv.key)
        ))
    })?;
    obj.meta_mut().resource_version = revision.to_string();
    obj.set_type_meta();
    Ok(obj)
}

fn encode<T: Resource>(obj: &T) -> Vec<u8> {
    let mut o = obj.clone();
    o.meta_mut().resource_version.clear();
    o.set_type_meta();
    serde_json::to_vec(&o).expect("objects always serialise")
}

fn spec_of<T: Resource>(obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).expect("objects always serialise");
    match v.as_object_mut() {
        Some(m) => {
            m.remove("metadata");
            m.remove("status");
            m.remove("apiVersion");
            m.remove("kind");
            v
        }
        None => v,
    }
}

fn status_of<T: Resource>(obj: &T) -> Value {
    serde_json::to_value(obj).expect("objects always serialise")["status"].clone()
}

fn with_status_of<T: Resource>(target: &T, source: &T) -> Result<T, Status> {
    let mut v = serde_json::to_value(target).expect("objects always serialise");
    v["status"] = status_of(source);
    if v["status"].is_null() {
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
        }
    }
    serde_json::from_value(v).map_err(internal)
}

/// Per-kind rules beyond validation.
pub trait Strategy: Resource + Validate + PartialEq {
    /// Resets what a client may not set on create (for most kinds, status).
    fn prepare_for_create(&mut self) {}
    /// Fills in Kubernetes' defaults (`faultline_api::defaults`), on
    /// create and on every update of the object's spec.
    fn default_fields(&mut self) {}
    /// Whether the status subresource exists (else status is part of the
    /// main resource).
    const HAS_STATUS: bool = true;
    /// Other keys written in the same transaction as the object.
    fn side_writes(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        Vec::new()
    }
    /// The field whose `field=value` watches are indexed by value, as
    /// Kubernetes' cacher indexes pod watches by `spec.nodeName`: an event
    /// then reaches the watches of the values it had before and after, not
    /// every watch of the kind (each kubelet watches only its own pods).
    const TRIGGER: Option<&'static str> = None;
    /// This object's value of [`Strategy::TRIGGER`].
    fn trigger_value(&self) -> &str {
        ""
    }
    /// A field-selector field read from the typed object (`None`: read it
    /// from the object's JSON form instead, which costs a conversion).
    fn field(&self, path: &str) -> Option<String> {
        match path {
            "metadata.name" => Some(self.meta().name.clone()),
            "metadata.namespace" => Some(self.meta().namespace.clone()),
            _ => None,
        }
    }
}

/// The key holding a lease's current holder, for fencing.
pub fn fence_key(ns: &str, name: &str) -> Vec<u8> {
    format!("/fences/{ns}/{name}").into_bytes()
}

/// What a fenced request requires: the fence key holds this value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    pub fence: Option<(Vec<u8>, Vec<u8>)>,
    /// The header as sent, for error messages.
    pub text: String,
}

impl Guard {
    /// No precondition.
    pub fn none() -> Guard {
        Guard::default()
    }

    /// Parses `namespace/name=holder/transitions`.
    pub fn parse(header: &str) -> Result<Guard, Status> {
        let bad = || {
            Status::bad_request(format!(
                "x-faultline-fence {header:?} is not namespace/name=holder/transitions"
            ))
        };
        let (lease, value) = header.split_once('=').ok_or_else(bad)?;
        let (ns, name) = lease.split_once('/').ok_or_else(bad)?;
        if ns.is_empty() || name.is_empty() {
            return Err(bad());
        }
        Ok(Guard {
            fence: Some((fence_key(ns, name), value.as_bytes().to_vec())),
            text: header.to_string(),
        })
    }
}

impl Strategy for faultline_api::Namespace {
    fn prepare_for_create(&mut self) {
        self.status.phase = "Active".into();
    }
}
impl Strategy for faultline_api::Node {
    // A kubelet registers its node with its capacity in the status.
}
impl Strategy for faultline_api::Pod {
    fn default_fields(&mut self) {
        faultline_api::defaults::pod_spec(&mut self.spec);
    }
    fn prepare_for_create(&mut self) {
        self.status = Default::default();
        self.status.phase = "Pending".into();
    }
    const TRIGGER: Option<&'static str> = Some("spec.nodeName");
    fn trigger_value(&self) -> &str {
        &self.spec.node_name
    }
    fn field(&self, path: &str) -> Option<String> {
        match path {
            "metadata.name" => Some(self.metadata.name.clone()),
            "metadata.namespace" => Some(self.metadata.namespace.clone()),
            "spec.nodeName" => Some(self.spec.node_name.clone()),
            "status.phase" => Some(self.status.phase.clone()),
            _ => None,
        }
    }
}
impl Strategy for faultline_api::Deployment {
    fn default_fields(&mut self) {
        faultline_api::defaults::pod_spec(&mut self.spec.template.spec);
    }
    fn prepare_for_create(&mut self) {
        self.status = Default::default();
    }
}
impl Strategy for faultline_api::ReplicaSet {
    fn default_fields(&mut self) {
        faultline_api::defaults::pod_spec(&mut self.spec.template.spec);
    }
    fn prepare_for_create(&mut self) {
        self.status = Default::default();
    }
}
impl Strategy for faultline_api::Service {
    fn default_fields(&mut self) {
        faultline_api::defaults::service_spec(&mut self.spec);
    }
}
impl Strategy for faultline_api::Endpoints {
    const HAS_STATUS: bool = false;
}
impl Strategy for faultline_api::Lease {
    const HAS_STATUS: bool = false;
    fn side_writes(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let value = format!(
            "{}/{}",
            self.spec.holder_identity.as_deref().unwrap_or(""),
            self.spec.lease_transitions.unwrap_or(0)
        );
        vec![(
            fence_key(&self.metadata.namespace, &self.metadata.name),
            value.into_bytes(),
        )]
    }
}
impl Strategy for faultline_api::Event {
    const HAS_STATUS: bool = false;
}
impl Strategy for faultline_api::ConfigMap {
    const HAS_STATUS: bool = false;
}
impl Strategy for faultline_api::Secret {
    const HAS_STATUS: bool = false;
    /// `type` defaults to `Opaque`; `stringData` is merged into `data`
    /// (base64) and never stored, as kube-apiserver does.
    fn default_fields(&mut self) {
        use base64::Engine;
        if self.secret_type.is_empty() {
            self.secret_type = "Opaque".into();
        }
        for (k, v) in std::mem::take(&mut self.string_data) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            self.data.insert(k, encoded);
        }
    }
}

fn invalid<T: Resource>(name: &str, causes: Vec<StatusCause>) -> Status {
    Status::invalid(T::KIND, name, causes)
}

impl Registry {
    /// A random id in UUID v4 form, from the host's seeded stream.
    pub fn new_uid(&self) -> String {
        let mut b = [0u8; 16];
        self.env.rng().fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn random_suffix(&self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut rng = self.env.rng();
        (0..5)
            .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
            .collect()
    }

    fn now(&self) -> String {
        faultline_api::time::rfc3339(self.env.wall_ms())
    }

    /// Reads one object (linearizable).
    pub async fn get<T: Resource>(&self, ns: &str, name: &str) -> Result<T, Status> {
        match self.store.get(&key::<T>(ns, name)).await {
            Ok(Some(kv)) => decode(&kv, kv.mod_revision),
            Ok(None) => Err(Status::not_found(T::PLURAL, name)),
            Err(e) => Err(store_status(e)),
        }
    }

    /// Lists a kind (optionally in one namespace) at one revision; returns
    /// the objects and that revision.
    pub async fn list<T: Resource>(&self, ns: Option<&str>) -> Result<(Vec<T>, i64), Status> {
        let p = prefix::<T>(ns);
        let req = RangeRequest {
            range_end: prefix_end(&p),
            key: p,
            ..Default::default()
        };
        let (rev, r) = self.store.range(req, true).await.map_err(store_status)?;
        let items = r
            .kvs
            .iter()
            .map(|kv| decode(kv, kv.mod_revision))
            .collect::<Result<Vec<T>, Status>>()?;
        Ok((items, rev))
    }

    /// One page of a list (`limit`/`continue`), read at one revision so the
    /// pages together are a consistent snapshot, as kube-apiserver pages
    /// over etcd: up to `limit` objects that `keep` accepts, from `from`
    /// (the revision, and the first key of this page after the kind's
    /// prefix) or from the start.
    /// A compacted revision is 410 Gone: the client starts over.
    pub async fn list_page<T: Resource>(
        &self,
        ns: Option<&str>,
        limit: i64,
        from: Option<(i64, Vec<u8>)>,
        keep: &dyn Fn(&T) -> bool,
    ) -> Result<Page<T>, Status> {
        let p = prefix::<T>(ns);
        let end = prefix_end(&p);
        let (mut revision, mut key) = match from {
            Some((rev, start)) => (rev, [p.as_slice(), &start].concat()),
            None => (0, p.clone()),
        };
        let mut items = Vec::new();
        loop {
            let req = RangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                limit: limit - items.len() as i64,
                revision,
                ..Default::default()
            };
            let (rev, r) = self.store.range(req, true).await.map_err(|e| match e {
                ClientError::Store(StoreError::Compacted { .. }) => Status::gone(
                    "The provided continue parameter is too old to display a consistent \
                     list result. You can start a new list without the continue parameter.",
                ),
                e => store_status(e),
            })?;
            if revision == 0 {
                revision = rev;
            }
            let Some(last) = r.kvs.last() else {
                return Ok(Page {
                    items,
                    revision,
                    next: None,
                });
            };
            key = last.key.clone();
            key.push(0);
            for kv in &r.kvs {
                let obj: T = decode(kv, kv.mod_revision)?;
                if keep(&obj) {
                    items.push(obj);
                }
            }
            if !r.more {
                return Ok(Page {
                    items,
                    revision,
                    next: None,
                });
            }
            if items.len() as i64 >= limit {
                let next = key[p.len()..].to_vec();
                return Ok(Page {
                    items,
                    revision,
                    next: Some(next),
                });
            }
        }
    }

    /// Whether a namespace exists and takes new objects (namespaced objects
    /// need theirs; a namespace being deleted takes none, as in Kubernetes).
    async fn require_namespace(&self, ns: &str) -> Result<(), Status> {
        match self
            .store
            .get(&key::<faultline_api::Namespace>("", ns))
            .await
        {
            Ok(Some(kv)) => {
                let n: faultline_api::Namespace = decode(&kv, kv.mod_revision)?;
                match n.metadata.deletion_timestamp {
                    None => Ok(()),
                    Some(_) => Err(Status::forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ))),
                }
            }
            Ok(None) => Err(Status::not_found("namespaces", ns)),
            Err(e) => Err(store_status(e)),
        }
    }

    /// Whether nothing is left in namespace `ns` (of any namespaced kind).
    pub async fn namespace_is_empty(&self, ns: &str) -> Result<bool, Status> {
        for plural in NAMESPACED_PLURALS {
            let p = format!("/registry/{plural}/{ns}/").into_bytes();
            let req = RangeRequest {
                range_end: prefix_end(&p),
                key: p,
                count_only: true,
                ..Default::default()
            };
            let (_, r) = self.store.range(req, true).await.map_err(store_status)?;
            if r.count > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Creates `obj` in `ns`: assigns name (from `generateName`), uid,
    /// creation time and generation, validates, and writes it only if the
    /// key does not exist.
    pub async fn create<T: Strategy>(&self, ns: &str, mut obj: T, g: &Guard) -> Result<T, Status> {
        {
            let m = obj.meta_mut();
            if !m.resource_version.is_empty() {
                return Err(Status::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            if T::NAMESPACED {
                if !m.namespace.is_empty() && m.namespace != ns {
                    return Err(Status::bad_request(format!(
                        "the namespace of the object ({}) does not match the namespace on the request ({ns})",
                        m.namespace
                    )));
                }
                m.namespace = ns.to_string();
            } else if !m.namespace.is_empty() {
                return Err(Status::bad_request(format!(
                    "{} is not namespaced, but metadata.namespace is {:?}",
                    T::KIND,
                    m.namespace
                )));
            }
        }
        if obj.meta().name.is_empty() && !obj.meta().generate_name.is_empty() {
            let name = format!("{}{}", obj.meta().generate_name, self.random_suffix());
            obj.meta_mut().name = name;
        }
        obj.prepare_for_create();
        obj.default_fields();
        obj.set_type_meta();
        let (uid, now) = (self.new_uid(), self.now());
        {
            let m = obj.meta_mut();
            m.uid = uid;
            m.creation_timestamp = Some(now);
            m.deletion_timestamp = None;
            m.generation = 1;
        }
        let causes = obj.validate();
        if !causes.is_empty() {
            return Err(invalid::<T>(&obj.meta().name, causes));
        }
        if T::NAMESPACED {
            self.require_namespace(ns).await?;
        }
        let k = key::<T>(ns, &obj.meta().name);
        let absent = key_is(&k, CompareTarget::CreateRevision(0));
        let Some(rev) = self.txn_if(absent, writes(k, &obj), g).await? else {
            return Err(Status::already_exists(T::PLURAL, &obj.meta().name));
        };
        obj.meta_mut().resource_version = rev.to_string();
        Ok(obj)
    }

    /// Replaces an object (`Part::Main`: metadata and spec; `Part::Status`:
    /// status only). With a `resourceVersion` in `new` the write happens
    /// only if the object is still at that version (else 409 Conflict);
    /// without one it applies to whatever is current.
    pub async fn update<T: Strategy>(
        &self,
        ns: &str,
        name: &str,
        new: T,
        part: Part,
        check: &dyn Fn(&T) -> Result<(), Status>,
        g: &Guard,
    ) -> Result<T, Status> {
        if new.meta().name != name {
            return Err(Status::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                new.meta().name
            )));
        }
        if T::NAMESPACED && !new.meta().namespace.is_empty() && new.meta().namespace != ns {
            return Err(Status::bad_request(format!(
                "the namespace of the object ({}) does not match the namespace on the URL ({ns})",
                new.meta().namespace
            )));
        }
        let wanted = new.meta().resource_version.clone();
        for _ in 0..5 {
            let cur: T = self.get(ns, name).await?;
            check(&cur)?;
            if !wanted.is_empty() && wanted != cur.meta().resource_version {
                return Err(Status::conflict(
                    T::PLURAL,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let mut next = match part {
                Part::Status => {
                    if !T::HAS_STATUS {
                        return Err(Status::failure(
                            404,
                            "NotFound",
                            format!("{} has no status subresource", T::PLURAL),
                        ));
                    }
                    with_status_of(&cur, &new)?
                }
                Part::Main => {
                    let mut n = if T::HAS_STATUS {
                        with_status_of(&new, &cur)?
                    } else {
                        new.clone()
                    };
                    n.default_fields();
                    let (m, c) = (n.meta_mut(), cur.meta());
                    m.uid = c.uid.clone();
                    m.namespace = c.namespace.clone();
                    m.creation_timestamp = c.creation_timestamp.clone();
                    m.deletion_timestamp = c.deletion_timestamp.clone();
                    m.generation = c.generation;
                    m.generate_name = c.generate_name.clone();
                    if spec_of(&n) != spec_of(&cur) {
                        n.meta_mut().generation = cur.meta().generation + 1;
                    }
                    n
                }
            };
            next.set_type_meta();
            next.meta_mut().resource_version = cur.meta().resource_version.clone();
            let causes = next.validate_update(&cur);
            if !causes.is_empty() {
                return Err(invalid::<T>(name, causes));
            }
            if next == cur {
                return Ok(cur);
            }
            match self.swap(ns, name, &cur, &next, g).await? {
                Some(rev) => {
                    next.meta_mut().resource_version = rev.to_string();
                    return Ok(next);
                }
                None if !wanted.is_empty() => {
                    return Err(Status::conflict(
                        T::PLURAL,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ))
                }
                None => continue,
            }
        }
        Err(Status::conflict(
            T::PLURAL,
            name,
            "the object keeps changing; try again",
        ))
    }

    /// Writes `next` if the object is still at `cur`'s revision; returns the
    /// new revision, or `None` if it changed in between.
    pub async fn swap<T: Strategy>(
        &self,
        ns: &str,
        name: &str,
        cur: &T,
        next: &T,
        g: &Guard,
    ) -> Result<Option<i64>, Status> {
        let k = key::<T>(ns, name);
        let compare = key_is(&k, CompareTarget::ModRevision(cur.meta().revision()));
        self.txn_if(compare, writes(k, next), g).await
    }

    /// Writes `next` whatever is stored (only the `unchecked_binding` bug
    /// uses this).
    pub async fn blind_put<T: Strategy>(
        &self,
        ns: &str,
        name: &str,
        next: &T,
        g: &Guard,
    ) -> Result<i64, Status> {
        let txn = TxnRequest {
            compare: Vec::new(),
            success: writes(key::<T>(ns, name), next),
            failure: Vec::new(),
        };
        let (rev, _) = self.txn(txn, g).await?;
        Ok(rev)
    }

    /// Deletes the object if it is still at `cur`'s revision.
    pub async fn remove<T: Resource>(
        &self,
        ns: &str,
        name: &str,
        cur: &T,
        g: &Guard,
    ) -> Result<Option<i64>, Status> {
        let k = key::<T>(ns, name);
        let compare = key_is(&k, CompareTarget::ModRevision(cur.meta().revision()));
        let delete = RequestOp::DeleteRange(DeleteRangeRequest {
            key: k,
            range_end: Vec::new(),
            prev_kv: false,
        });
        self.txn_if(compare, vec![delete], g).await
    }

    /// Runs `ops` if `compare` holds; returns the new revision, or `None`
    /// if it did not hold.
    async fn txn_if(
        &self,
        compare: Compare,
        ops: Vec<RequestOp>,
        g: &Guard,
    ) -> Result<Option<i64>, Status> {
        let txn = TxnRequest {
            compare: vec![compare],
            success: ops,
            failure: Vec::new(),
        };
        let (rev, ok) = self.txn(txn, g).await?;
        Ok(ok.then_some(rev))
    }

    /// Runs a transaction; with a fence, only if the fence still holds
    /// (409 otherwise, naming the fence).
    async fn txn(&self, mut txn: TxnRequest, g: &Guard) -> Result<(i64, bool), Status> {
        if let Some((key, value)) = &g.fence {
            txn.compare
                .push(key_is(key, CompareTarget::Value(value.clone())));
        }
        let (rev, ok) = match self.store.write(Op::Txn(txn)).await {
            Ok((rev, OpResult::Txn(t))) => (rev, t.succeeded),
            Ok((_, other)) => return Err(internal(format!("unexpected store result {other:?}"))),
            Err(e) => return Err(store_status(e)),
        };
        if !ok {
            if let Some((key, value)) = &g.fence {
                let now = self.store.get(key).await.map_err(store_status)?;
                if now.as_ref().map(|kv| &kv.value) != Some(value) {
                    let holder = now
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                        .unwrap_or_else(|| "nobody".into());
                    return Err(Status::failure(
                        409,
                        "Conflict",
                        format!(
                            "fenced: the request was made as leader {:?}, but the lease is now held by {holder}",
                            g.text
                        ),
                    ));
                }
            }
        }
        Ok((rev, ok))
    }

    /// The current revision of the store (for watches from "now").
    pub async fn revision(&self) -> Result<i64, Status> {
        let mut req = single_key(b"/registry/");
        req.count_only = true;
        let (rev, _) = self.store.range(req, true).await.map_err(store_status)?;
        Ok(rev)
    }
}

/// A guard on one key: `target` (revision or value) equals the operand.
fn key_is(key: &[u8], target: CompareTarget) -> Compare {
    Compare {
        key: key.to_vec(),
        range_end: Vec::new(),
        op: CompareOp::Equal,
        target,
    }
}

/// The object's put plus its side writes.
fn writes<T: Strategy>(key: Vec<u8>, obj: &T) -> Vec<RequestOp> {
    let mut w = vec![put(key, encode(obj))];
    for (k, v) in obj.side_writes() {
        w.push(put(k, v));
    }
    w
}

fn put(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp::Put(PutRequest {
        key,
        value,
        lease: 0,
        prev_kv: false,
    })
}
