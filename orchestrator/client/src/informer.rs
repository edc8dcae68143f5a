//! An informer: lists a kind, then watches from the list's revision,
//! keeping a local cache and telling subscribers what changed. It relists
//! when the watch's revision has been compacted (410), re-watches from the
//! last revision seen when a stream breaks, backs off with jitter from the
//! host's seeded randomness, and fails over between API servers through
//! its [`Client`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use faultline_api::Resource;
use rand::RngCore;
use tokio::sync::{mpsc, Notify};

use crate::client::{Client, ListParams, WatchItem};

/// What changed in the cache.
#[derive(Debug, Clone)]
pub enum Change<T> {
    Added(T),
    Modified {
        old: T,
        new: T,
    },
    Deleted(T),
    /// Periodic resync: reconcile everything.
    Resync,
}

struct Inner<T> {
    /// Shared, immutable objects: readers borrow them (`list_shared`,
    /// `for_each`) instead of deep-cloning the cache on every pass.
    cache: RefCell<BTreeMap<(String, String), Rc<T>>>,
    synced: Cell<bool>,
    synced_notify: Notify,
    subscribers: RefCell<Vec<mpsc::UnboundedSender<Change<T>>>>,
    /// Revision the cache reflects.
    revision: Cell<i64>,
}

/// A cached, watched view of one kind.
pub struct Informer<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Informer<T> {
    fn clone(&self) -> Self {
        Informer {
            inner: self.inner.clone(),
        }
    }
}

fn key_of<T: Resource>(o: &T) -> (String, String) {
    (o.meta().namespace.clone(), o.meta().name.clone())
}

impl<T: Resource> Informer<T> {
    /// Starts listing and watching `ns` (all namespaces with `None`) on the
    /// client's host; `resync` re-announces everything periodically.
    pub fn start(
        client: Client,
        ns: Option<String>,
        params: ListParams,
        resync: Option<Duration>,
    ) -> Informer<T> {
        let inf = Informer {
            inner: Rc::new(Inner {
                cache: RefCell::new(BTreeMap::new()),
                synced: Cell::new(false),
                synced_notify: Notify::new(),
                subscribers: RefCell::new(Vec::new()),
                revision: Cell::new(0),
            }),
        };
        let env = client.env().clone();
        env.spawn(inf.clone().run(client.clone(), ns, params));
        if let Some(every) = resync {
            let me = inf.clone();
            let env2 = env.clone();
            env.spawn(async move {
                loop {
                    env2.sleep(every).await;
                    me.emit(Change::Resync);
                }
            });
        }
        inf
    }

    /// Changes from now on (subscribe before the first sync to see every
    /// object as `Added`).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<T>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.subscribers.borrow_mut().push(tx);
        rx
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<T> {
        self.get_shared(ns, name).map(|o| T::clone(&o))
    }

    /// The cached object, shared rather than copied.
    pub fn get_shared(&self, ns: &str, name: &str) -> Option<Rc<T>> {
        self.inner
            .cache
            .borrow()
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Every cached object, in (namespace, name) order.
    pub fn list(&self) -> Vec<T> {
        self.inner
            .cache
            .borrow()
            .values()
            .map(|o| T::clone(o))
            .collect()
    }

    /// Every cached object, in (namespace, name) order, shared rather than
    /// copied: a pass over the cache costs one reference count per object.
    pub fn list_shared(&self) -> Vec<Rc<T>> {
        self.inner.cache.borrow().values().cloned().collect()
    }

    /// Cached objects of one namespace.
    pub fn list_ns(&self, ns: &str) -> Vec<T> {
        let mut out = Vec::new();
        self.for_each_ns(ns, |o| out.push(o.clone()));
        out
    }

    /// Cached objects of one namespace, shared rather than copied.
    pub fn list_ns_shared(&self, ns: &str) -> Vec<Rc<T>> {
        self.inner
            .cache
            .borrow()
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Visits the cached objects of one namespace without cloning.
    pub fn for_each_ns(&self, ns: &str, mut f: impl FnMut(&T)) {
        for (_, o) in self
            .inner
            .cache
            .borrow()
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
        {
            f(o);
        }
    }

    /// Visits every cached object without cloning.
    pub fn for_each(&self, mut f: impl FnMut(&T)) {
        for o in self.inner.cache.borrow().values() {
            f(o);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.cache.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn has_synced(&self) -> bool {
        self.inner.synced.get()
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> i64 {
        self.inner.revision.get()
    }

    /// Waits for the first complete list.
    pub async fn wait_synced(&self) {
        while !self.has_synced() {
            let n = self.inner.synced_notify.notified();
            if self.has_synced() {
                return;
            }
            n.await;
        }
    }

    fn emit(&self, c: Change<T>) {
        self.emit_with(|| c.clone());
    }

    /// Sends a change built by `make` to every subscriber; builds nothing
    /// when nobody listens (most informers have one subscriber or none).
    fn emit_with(&self, make: impl Fn() -> Change<T>) {
        let mut subscribers = self.inner.subscribers.borrow_mut();
        if subscribers.is_empty() {
            return;
        }
        subscribers.retain(|s| s.send(make()).is_ok());
    }

    fn apply(&self, item: WatchItem<T>) -> Result<(), bool /*relist*/> {
        match item {
            WatchItem::Added(o) | WatchItem::Modified(o) => {
                self.inner.revision.set(o.meta().revision());
                let key = key_of(&o);
                let new = Rc::new(o);
                let old = self.inner.cache.borrow_mut().insert(key, new.clone());
                match old {
                    Some(old) => self.emit_with(|| Change::Modified {
                        old: T::clone(&old),
                        new: T::clone(&new),
                    }),
                    None => self.emit_with(|| Change::Added(T::clone(&new))),
                }
            }
            WatchItem::Deleted(o) => {
                self.inner.revision.set(o.meta().revision());
                let old = self.inner.cache.borrow_mut().remove(&key_of(&o));
                if let Some(old) = old {
                    self.emit_with(|| Change::Deleted(T::clone(&old)));
                }
            }
            WatchItem::Bookmark(rv) => {
                if let Ok(r) = rv.parse::<i64>() {
                    self.inner.revision.set(r.max(self.inner.revision.get()));
                }
            }
            WatchItem::Error(s) => return Err(s.code == 410),
        }
        Ok(())
    }

    /// Replaces the cache with a fresh list, announcing the differences.
    fn replace(&self, items: Vec<T>, revision: i64) {
        let mut fresh: BTreeMap<(String, String), Rc<T>> = items
            .into_iter()
            .map(|o| (key_of(&o), Rc::new(o)))
            .collect();
        let old = std::mem::take(&mut *self.inner.cache.borrow_mut());
        let mut changes = Vec::new();
        for (k, o) in &old {
            match fresh.get(k) {
                None => changes.push(Change::Deleted(T::clone(o))),
                Some(n) if n.meta().resource_version != o.meta().resource_version => {
                    changes.push(Change::Modified {
                        old: T::clone(o),
                        new: T::clone(n),
                    })
                }
                Some(_) => {}
            }
        }
        for (k, o) in &fresh {
            if !old.contains_key(k) {
                changes.push(Change::Added(T::clone(o)));
            }
        }
        std::mem::swap(&mut *self.inner.cache.borrow_mut(), &mut fresh);
        self.inner.revision.set(revision);
        for c in changes {
            self.emit(c);
        }
        if !self.inner.synced.replace(true) {
            self.inner.synced_notify.notify_waiters();
        }
    }

    async fn run(self, client: Client, ns: Option<String>, params: ListParams) {
        let env = client.env().clone();
        let mut failures = 0u32;
        let backoff = |failures: u32| {
            let ms = (100u64 << failures.min(5)).min(3_000);
            Duration::from_millis(ms / 2 + env.rng().next_u64() % (ms / 2 + 1))
        };
        'relist: loop {
            let list = match client.list::<T>(ns.as_deref(), &params).await {
                Ok(l) => l,
                Err(e) => {
                    env.trace(format_args!("informer {}: list failed: {e}", T::PLURAL));
                    failures += 1;
                    env.sleep(backoff(failures)).await;
                    continue;
                }
            };
            let rev = list.revision();
            self.replace(list.items, rev);
            loop {
                let from = self.inner.revision.get().to_string();
                let mut stream = match client.watch::<T>(ns.as_deref(), &params, &from).await {
                    Ok(s) => s,
                    Err(e) if e.is_gone() => continue 'relist,
                    Err(_) => {
                        failures += 1;
                        env.sleep(backoff(failures)).await;
                        continue;
                    }
                };
                failures = 0;
                while let Some(item) = stream.next().await {
                    if let Err(relist) = self.apply(item) {
                        if relist {
                            continue 'relist;
                        }
                        break;
                    }
                }
                env.sleep(backoff(1)).await;
            }
        }
    }
}
