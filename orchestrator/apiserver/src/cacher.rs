//! The watch cache: one store watch per resource kind per API server,
//! fanned out to every client watch of that kind (Kubernetes' "cacher").
//!
//! Without it every client watch held a store watch of its own, so each
//! write to a pod went from the store to the API server once per kubelet,
//! controller and scheduler watching pods, with its previous value, and
//! every store watch got a progress notification every second. With it
//! the store sends each event once per API server.
//!
//! A feed keeps the most recent [`FEED_EVENTS`] events of its kind. A
//! client watch from revision `start` is served from the feed when the
//! feed holds every event after `start - 1`; otherwise (an older revision,
//! or no feed yet that can cover it) the caller watches the store directly,
//! which also answers "compacted" for a revision too old to replay. A feed
//! that ends (its store connection closed or went silent, or the store
//! ended the watch) ends every subscription the same way once they have
//! read what it holds, and the next client watch of that kind starts a new
//! feed. A feed lives as long as its store watch, with subscribers or
//! without (as Kubernetes' cacher watches every kind it serves). A
//! subscriber that falls more than [`FEED_EVENTS`] events behind is ended,
//! as Kubernetes ends a watcher that cannot keep up: its client re-watches
//! from the last revision it saw.
//!
//! Fan-out costs what it delivers, not watches times events. Each event is
//! decoded once per API server, lazily, and shared by every watch that
//! sends it ([`FeedEvent`]). Each subscriber has its own queue and is woken
//! only when something arrives for it. A kind with a trigger field
//! (Kubernetes' indexed triggers: `spec.nodeName` for pods) files the
//! subscribers that select one value of it (`spec.nodeName=n7`, each
//! kubelet) under that value, and an event goes only to the subscribers of
//! the values it had before and after the change, and to those without a
//! trigger: with N kubelets watching their pods, a pod's update costs one
//! kubelet's delivery, not N.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use faultline_env::Env;
use faultline_store::client::{prefix_end, StoreClient};
use faultline_store::ops::{Event, EventKind, KeyValue, StoreError};

/// Events a feed keeps for late subscribers, and a subscriber's queue
/// holds before it counts as too slow.
pub const FEED_EVENTS: usize = 1024;

/// How a feed ended: `None` when its store watch closed or went silent,
/// `Some` when the store ended it with an error.
type End = Option<StoreError>;

/// A stored value decoded and stamped with a revision, type-erased (the
/// watch that asks knows the type); `None` if it does not decode.
pub type DecodeFn = Box<dyn Fn(&KeyValue, i64) -> Option<Rc<dyn Any>>>;

/// The trigger field's value of a decoded object.
pub type TriggerFn = Box<dyn Fn(&dyn Any) -> String>;

/// How the objects of one kind are decoded, and read for the trigger.
pub struct Codec {
    pub decode: DecodeFn,
    /// For kinds that index their watches by a field.
    pub trigger: Option<TriggerFn>,
}

/// What one subscriber wants of its kind's events.
pub struct Want {
    /// Only keys under this prefix (the kind's, or a namespace's in it)...
    pub prefix: Vec<u8>,
    /// ...from this revision on...
    pub start: i64,
    /// ...and, when set on a kind with a trigger field, only events whose
    /// trigger values (before or after) include this one.
    pub trigger: Option<String>,
}

/// One store event as the watches of an API server share it: the objects
/// after and before it are decoded at most once, whichever watch asks
/// first.
pub struct FeedEvent {
    pub event: Event,
    codec: Rc<Codec>,
    now: OnceCell<Option<Rc<dyn Any>>>,
    before: OnceCell<Option<Rc<dyn Any>>>,
    /// The trigger values before and after (one if they are equal); empty
    /// for kinds without a trigger.
    triggers: Vec<String>,
}

impl FeedEvent {
    pub fn new(event: Event, codec: Rc<Codec>) -> FeedEvent {
        let mut fe = FeedEvent {
            event,
            codec,
            now: OnceCell::new(),
            before: OnceCell::new(),
            triggers: Vec::new(),
        };
        if let Some(trigger) = &fe.codec.trigger {
            let mut values: Vec<String> = [fe.now(), fe.before()]
                .into_iter()
                .flatten()
                .map(|o| trigger(&*o))
                .collect();
            values.dedup();
            fe.triggers = values;
        }
        fe
    }

    /// The object as this event left it (`None` for a delete, or a value
    /// that does not decode), stamped with the event's revision.
    pub fn now(&self) -> Option<Rc<dyn Any>> {
        self.now
            .get_or_init(|| match self.event.kind {
                EventKind::Put => (self.codec.decode)(&self.event.kv, self.event.kv.mod_revision),
                EventKind::Delete => None,
            })
            .clone()
    }

    /// The object before the event, stamped with the event's revision
    /// (which a DELETED event built from it carries).
    pub fn before(&self) -> Option<Rc<dyn Any>> {
        self.before
            .get_or_init(|| {
                let kv = self.event.prev_kv.as_ref()?;
                (self.codec.decode)(kv, self.event.kv.mod_revision)
            })
            .clone()
    }
}

/// One subscriber's queue.
struct Sub {
    queue: RefCell<VecDeque<Rc<FeedEvent>>>,
    waker: RefCell<Option<Waker>>,
    /// Fell more than [`FEED_EVENTS`] behind.
    dropped: Cell<bool>,
    /// Only keys under this prefix...
    prefix: Vec<u8>,
    /// ...and revisions from this one on.
    start: i64,
    /// ...and, when set, events whose trigger values include this one.
    trigger: Option<String>,
}

impl Sub {
    fn wants(&self, fe: &FeedEvent) -> bool {
        fe.event.kv.mod_revision >= self.start
            && fe.event.kv.key.starts_with(&self.prefix)
            && self
                .trigger
                .as_ref()
                .is_none_or(|t| fe.triggers.iter().any(|v| v == t))
    }

    /// Queues `fe` if this subscriber wants it; wakes it (once until it
    /// next waits).
    fn offer(&self, fe: &Rc<FeedEvent>) {
        if self.dropped.get() || !self.wants(fe) {
            return;
        }
        let mut q = self.queue.borrow_mut();
        q.push_back(fe.clone());
        if q.len() > FEED_EVENTS {
            q.clear();
            self.dropped.set(true);
        }
        drop(q);
        self.wake();
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// The store watch of one resource kind, its recent events and its
/// subscribers.
struct Feed {
    codec: Rc<Codec>,
    /// Recent events, oldest first, for subscribers that start late.
    events: RefCell<VecDeque<Rc<FeedEvent>>>,
    /// Every event with a revision above this one is in `events` (or was
    /// not yet received).
    complete_after: Cell<i64>,
    /// Set once the store watch has ended.
    end: RefCell<Option<End>>,
    /// Subscribers without a trigger value, in subscription order.
    all: RefCell<Vec<Weak<Sub>>>,
    /// Subscribers by trigger value, each list in subscription order.
    by_trigger: RefCell<BTreeMap<String, Vec<Weak<Sub>>>>,
}

impl Feed {
    /// An empty feed of the events from revision `start` on.
    fn new(start: i64, codec: Rc<Codec>) -> Feed {
        Feed {
            codec,
            events: RefCell::new(VecDeque::new()),
            complete_after: Cell::new(start - 1),
            end: RefCell::new(None),
            all: RefCell::new(Vec::new()),
            by_trigger: RefCell::new(BTreeMap::new()),
        }
    }

    /// Whether every event from revision `start` on is here (or to come).
    fn covers(&self, start: i64) -> bool {
        !self.ended() && start > self.complete_after.get()
    }

    /// A subscriber to the events under `prefix` from revision `start` on
    /// (with `trigger`, only those of that trigger value), given what the
    /// feed holds of them already.
    fn subscribe(self: &Rc<Self>, want: Want) -> Subscription {
        // A trigger value only narrows the events on a kind that has one.
        let trigger = want.trigger.filter(|_| self.codec.trigger.is_some());
        let sub = Rc::new(Sub {
            queue: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
            dropped: Cell::new(false),
            prefix: want.prefix,
            start: want.start,
            trigger,
        });
        for fe in self.events.borrow().iter() {
            sub.offer(fe);
        }
        match &sub.trigger {
            Some(t) => self
                .by_trigger
                .borrow_mut()
                .entry(t.clone())
                .or_default()
                .push(Rc::downgrade(&sub)),
            None => self.all.borrow_mut().push(Rc::downgrade(&sub)),
        }
        Subscription {
            feed: self.clone(),
            sub,
        }
    }

    fn ended(&self) -> bool {
        self.end.borrow().is_some()
    }

    /// Offers `fe` to the live subscribers in `list`, forgetting the gone.
    fn deliver(list: &mut Vec<Weak<Sub>>, fe: &Rc<FeedEvent>) {
        list.retain(|w| match w.upgrade() {
            Some(sub) => {
                sub.offer(fe);
                true
            }
            None => false,
        });
    }

    fn push(&self, batch: Vec<Event>) {
        for ev in batch {
            let fe = Rc::new(FeedEvent::new(ev, self.codec.clone()));
            {
                let mut events = self.events.borrow_mut();
                events.push_back(fe.clone());
                while events.len() > FEED_EVENTS {
                    let old = events.pop_front().expect("longer than the limit");
                    self.complete_after
                        .set(self.complete_after.get().max(old.event.kv.mod_revision));
                }
            }
            Feed::deliver(&mut self.all.borrow_mut(), &fe);
            let mut by_trigger = self.by_trigger.borrow_mut();
            for t in &fe.triggers {
                if let Some(list) = by_trigger.get_mut(t) {
                    Feed::deliver(list, &fe);
                    if list.is_empty() {
                        by_trigger.remove(t);
                    }
                }
            }
        }
    }

    fn finish(&self, end: End) {
        *self.end.borrow_mut() = Some(end);
        let wake = |w: &Weak<Sub>| {
            if let Some(s) = w.upgrade() {
                s.wake();
            }
        };
        self.all.borrow().iter().for_each(wake);
        self.by_trigger.borrow().values().flatten().for_each(wake);
    }
}

/// The feeds of one API server, by store prefix of their kind.
#[derive(Default)]
pub struct Cacher {
    feeds: RefCell<BTreeMap<Vec<u8>, Rc<Feed>>>,
}

impl Cacher {
    /// A subscription to the events of the kind under `kind_prefix` that
    /// `want` selects, or `None` when the kind's feed cannot replay from
    /// `want.start` and the caller must watch the store itself. `codec` is
    /// called when a new feed starts.
    pub fn subscribe(
        &self,
        env: &Env,
        store: &Rc<StoreClient>,
        kind_prefix: &[u8],
        want: Want,
        codec: impl FnOnce() -> Rc<Codec>,
    ) -> Option<Subscription> {
        let mut feeds = self.feeds.borrow_mut();
        let feed = match feeds.get(kind_prefix) {
            Some(f) if f.covers(want.start) => f.clone(),
            // Live, but it cannot replay from `start`.
            Some(f) if !f.ended() => return None,
            _ => {
                let feed = start_feed(env, store, kind_prefix, want.start, codec());
                feeds.insert(kind_prefix.to_vec(), feed.clone());
                feed
            }
        };
        Some(feed.subscribe(want))
    }
}

/// Opens the store watch of one kind from `start` and feeds its events.
fn start_feed(
    env: &Env,
    store: &Rc<StoreClient>,
    kind_prefix: &[u8],
    start: i64,
    codec: Rc<Codec>,
) -> Rc<Feed> {
    let feed = Rc::new(Feed::new(start, codec));
    let (f, store, p) = (feed.clone(), store.clone(), kind_prefix.to_vec());
    env.spawn(async move {
        let Some(mut stream) = store.watch(&p, &prefix_end(&p), start).await else {
            f.finish(None);
            return;
        };
        loop {
            match stream.next().await {
                Some(Ok(batch)) => f.push(batch),
                Some(Err(e)) => return f.finish(Some(e)),
                None => return f.finish(None),
            }
        }
    });
    feed
}

/// One client watch's place in a feed.
pub struct Subscription {
    feed: Rc<Feed>,
    sub: Rc<Sub>,
}

impl Subscription {
    /// The next non-empty batch of events, as the store's own watch stream
    /// gives them: `Err` when the store ended the watch, `None` when the
    /// feed closed or this subscriber fell too far behind. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Vec<Rc<FeedEvent>>, StoreError>> {
        poll_fn(|cx| {
            if self.sub.dropped.get() {
                // Missed events: end, the client re-watches.
                return Poll::Ready(None);
            }
            let mut q = self.sub.queue.borrow_mut();
            if !q.is_empty() {
                return Poll::Ready(Some(Ok(q.drain(..).collect())));
            }
            if let Some(end) = &*self.feed.end.borrow() {
                return Poll::Ready(end.clone().map(Err));
            }
            *self.sub.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_store::ops::{EventKind, KeyValue};

    fn put(key: &str, rev: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: b"v".to_vec(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: 0,
            },
            prev_kv: None,
        }
    }

    fn want(prefix: &[u8], start: i64, trigger: Option<String>) -> Want {
        Want {
            prefix: prefix.to_vec(),
            start,
            trigger,
        }
    }

    /// A codec for kinds without a trigger that decodes nothing.
    fn plain() -> Rc<Codec> {
        Rc::new(Codec {
            decode: Box::new(|_, _| None),
            trigger: None,
        })
    }

    /// A codec whose objects are their stored value, which is also their
    /// trigger value.
    fn by_value() -> Rc<Codec> {
        Rc::new(Codec {
            decode: Box::new(|kv, _| {
                Some(Rc::new(String::from_utf8_lossy(&kv.value).into_owned()) as Rc<dyn Any>)
            }),
            trigger: Some(Box::new(|o| {
                o.downcast_ref::<String>().expect("a string").clone()
            })),
        })
    }

    /// A put of `value` at `key`, changing it from `prev` if given.
    fn put_value(key: &str, rev: i64, value: &str, prev: Option<&str>) -> Event {
        let mut ev = put(key, rev);
        ev.kv.value = value.as_bytes().to_vec();
        ev.prev_kv = prev.map(|p| KeyValue {
            value: p.as_bytes().to_vec(),
            mod_revision: rev - 1,
            ..ev.kv.clone()
        });
        ev
    }

    /// What the subscriber has now, without waiting: (key, revision)s,
    /// "none" when it would wait, or how it ended.
    fn poll(s: &mut Subscription) -> String {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let fut = std::pin::pin!(s.next());
        match fut.poll(&mut cx) {
            std::task::Poll::Pending => "none".into(),
            std::task::Poll::Ready(None) => "closed".into(),
            std::task::Poll::Ready(Some(Err(e))) => format!("error: {e}"),
            std::task::Poll::Ready(Some(Ok(evs))) => evs
                .iter()
                .map(|e| {
                    format!(
                        "{}@{}",
                        String::from_utf8_lossy(&e.event.kv.key),
                        e.event.kv.mod_revision
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    use std::future::Future;

    #[test]
    fn subscribers_see_their_namespace_from_their_revision() {
        let feed = Rc::new(Feed::new(10, plain()));
        let mut all = feed.subscribe(want(b"/registry/pods/", 10, None));
        let mut ns_a = feed.subscribe(want(b"/registry/pods/a/", 10, None));
        assert_eq!(poll(&mut all), "none");
        feed.push(vec![
            put("/registry/pods/a/x", 10),
            put("/registry/pods/b/y", 11),
        ]);
        // A late subscriber from revision 11 sees only what follows it.
        let mut late = feed.subscribe(want(b"/registry/pods/", 11, None));
        feed.push(vec![put("/registry/pods/a/z", 12)]);
        assert_eq!(
            poll(&mut all),
            "/registry/pods/a/x@10 /registry/pods/b/y@11 /registry/pods/a/z@12"
        );
        assert_eq!(
            poll(&mut ns_a),
            "/registry/pods/a/x@10 /registry/pods/a/z@12"
        );
        assert_eq!(
            poll(&mut late),
            "/registry/pods/b/y@11 /registry/pods/a/z@12"
        );
        assert_eq!(poll(&mut all), "none");
        assert!(feed.covers(10) && !feed.covers(9));
    }

    #[test]
    fn an_ended_feed_is_drained_before_its_end_is_reported() {
        let feed = Rc::new(Feed::new(1, plain()));
        let mut s = feed.subscribe(want(b"/k/", 1, None));
        feed.push(vec![put("/k/a", 1)]);
        feed.finish(Some(StoreError::Compacted {
            compact_revision: 5,
        }));
        assert_eq!(poll(&mut s), "/k/a@1");
        assert_eq!(
            poll(&mut s),
            "error: revision has been compacted (compact revision 5)"
        );
        assert!(!feed.covers(2), "an ended feed serves no one new");
        let closed = Rc::new(Feed::new(1, plain()));
        let mut s = closed.subscribe(want(b"/k/", 1, None));
        closed.finish(None);
        assert_eq!(poll(&mut s), "closed");
    }

    #[test]
    fn eviction_ends_slow_subscribers_and_narrows_what_a_feed_replays() {
        let feed = Rc::new(Feed::new(1, plain()));
        let mut slow = feed.subscribe(want(b"/k/", 1, None));
        let mut fast = feed.subscribe(want(b"/k/", 1, None));
        for rev in 1..=FEED_EVENTS as i64 {
            feed.push(vec![put("/k/a", rev)]);
        }
        assert_eq!(poll(&mut fast).split(' ').count(), FEED_EVENTS);
        feed.push(vec![
            put("/k/a", FEED_EVENTS as i64 + 1),
            put("/k/b", FEED_EVENTS as i64 + 2),
        ]);
        // Revisions 1 and 2 are gone: the slow reader missed them.
        assert_eq!(poll(&mut slow), "closed");
        assert_eq!(
            poll(&mut fast),
            format!("/k/a@{} /k/b@{}", FEED_EVENTS + 1, FEED_EVENTS + 2)
        );
        assert!(!feed.covers(2) && feed.covers(3));
    }

    #[test]
    fn triggered_subscribers_get_only_their_values_before_and_after() {
        let feed = Rc::new(Feed::new(1, by_value()));
        let mut n1 = feed.subscribe(want(b"/registry/pods/", 1, Some("n1".into())));
        let mut n2 = feed.subscribe(want(b"/registry/pods/", 1, Some("n2".into())));
        let mut unbound = feed.subscribe(want(b"/registry/pods/", 1, Some(String::new())));
        let mut all = feed.subscribe(want(b"/registry/pods/", 1, None));
        feed.push(vec![
            put_value("/registry/pods/a/x", 1, "", None),
            put_value("/registry/pods/a/x", 2, "n1", Some("")),
            put_value("/registry/pods/a/y", 3, "n2", None),
            put_value("/registry/pods/a/x", 4, "n1", Some("n1")),
        ]);
        assert_eq!(poll(&mut n1), "/registry/pods/a/x@2 /registry/pods/a/x@4");
        assert_eq!(poll(&mut n2), "/registry/pods/a/y@3");
        assert_eq!(
            poll(&mut unbound),
            "/registry/pods/a/x@1 /registry/pods/a/x@2"
        );
        assert_eq!(poll(&mut all).split(' ').count(), 4);
        // A late subscriber replays only its value's events, and a dropped
        // one leaves the index.
        drop(n2);
        let mut late = feed.subscribe(want(b"/registry/pods/", 2, Some("n1".into())));
        assert_eq!(poll(&mut late), "/registry/pods/a/x@2 /registry/pods/a/x@4");
        feed.push(vec![put_value("/registry/pods/a/y", 5, "n2", Some("n2"))]);
        assert!(!feed.by_trigger.borrow().contains_key("n2"));
        assert_eq!(poll(&mut n1), "none");
    }
}
