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
//! without (as Kubernetes' cacher watches every kind it serves). A subscriber that falls more than [`FEED_EVENTS`] events behind is
//! ended, as Kubernetes ends a watcher that cannot keep up: its client
//! re-watches from the last revision it saw.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use faultline_env::Env;
use faultline_store::client::{prefix_end, StoreClient};
use faultline_store::ops::{Event, StoreError};
use tokio::sync::watch;

/// Events a feed keeps for late subscribers and slow readers.
pub const FEED_EVENTS: usize = 1024;

/// How a feed ended: `None` when its store watch closed or went silent,
/// `Some` when the store ended it with an error.
type End = Option<StoreError>;

/// The store watch of one resource kind and its recent events.
struct Feed {
    /// Recent events, oldest first; `first_seq` numbers the front one.
    events: RefCell<VecDeque<Rc<Event>>>,
    first_seq: Cell<u64>,
    /// Every event with a revision above this one is in `events` (or was
    /// not yet received).
    complete_after: Cell<i64>,
    /// Set once the store watch has ended.
    end: RefCell<Option<End>>,
    /// Bumped (to the next sequence number) whenever events arrive or the
    /// feed ends.
    tick: watch::Sender<u64>,
}

impl Feed {
    /// An empty feed of the events from revision `start` on.
    fn new(start: i64) -> Feed {
        Feed {
            events: RefCell::new(VecDeque::new()),
            first_seq: Cell::new(0),
            complete_after: Cell::new(start - 1),
            end: RefCell::new(None),
            tick: watch::channel(0).0,
        }
    }

    /// Whether every event from revision `start` on is here (or to come).
    fn covers(&self, start: i64) -> bool {
        !self.ended() && start > self.complete_after.get()
    }

    /// A subscriber to the events under `prefix` from revision `start` on.
    fn subscribe(self: &Rc<Self>, prefix: &[u8], start: i64) -> Subscription {
        Subscription {
            next: self.first_seq.get(),
            tick: self.tick.subscribe(),
            feed: self.clone(),
            prefix: prefix.to_vec(),
            start,
        }
    }

    fn next_seq(&self) -> u64 {
        self.first_seq.get() + self.events.borrow().len() as u64
    }

    fn ended(&self) -> bool {
        self.end.borrow().is_some()
    }

    fn push(&self, batch: Vec<Event>) {
        let mut events = self.events.borrow_mut();
        for ev in batch {
            events.push_back(Rc::new(ev));
        }
        while events.len() > FEED_EVENTS {
            let old = events.pop_front().expect("longer than the limit");
            self.first_seq.set(self.first_seq.get() + 1);
            self.complete_after
                .set(self.complete_after.get().max(old.kv.mod_revision));
        }
        drop(events);
        self.tick.send_replace(self.next_seq());
    }

    fn finish(&self, end: End) {
        *self.end.borrow_mut() = Some(end);
        self.tick.send_replace(self.next_seq());
    }
}

/// The feeds of one API server, by store prefix of their kind.
#[derive(Default)]
pub struct Cacher {
    feeds: RefCell<BTreeMap<Vec<u8>, Rc<Feed>>>,
}

impl Cacher {
    /// A subscription to the events under `prefix` (a kind's prefix
    /// `kind_prefix`, or a namespace inside it) from revision `start` on, or
    /// `None` when the kind's feed cannot replay from `start` and the
    /// caller must watch the store itself.
    pub fn subscribe(
        &self,
        env: &Env,
        store: &Rc<StoreClient>,
        kind_prefix: &[u8],
        prefix: &[u8],
        start: i64,
    ) -> Option<Subscription> {
        let mut feeds = self.feeds.borrow_mut();
        let feed = match feeds.get(kind_prefix) {
            Some(f) if f.covers(start) => f.clone(),
            // Live, but it cannot replay from `start`.
            Some(f) if !f.ended() => return None,
            _ => {
                let feed = start_feed(env, store, kind_prefix, start);
                feeds.insert(kind_prefix.to_vec(), feed.clone());
                feed
            }
        };
        Some(feed.subscribe(prefix, start))
    }
}

/// Opens the store watch of one kind from `start` and feeds its events.
fn start_feed(env: &Env, store: &Rc<StoreClient>, kind_prefix: &[u8], start: i64) -> Rc<Feed> {
    let feed = Rc::new(Feed::new(start));
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
    tick: watch::Receiver<u64>,
    /// Sequence number of the next event to look at.
    next: u64,
    /// Only keys under this prefix...
    prefix: Vec<u8>,
    /// ...and revisions from this one on.
    start: i64,
}

impl Subscription {
    /// The next non-empty batch of events, as the store's own watch stream
    /// gives them: `Err` when the store ended the watch, `None` when the
    /// feed closed or this subscriber fell too far behind. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Vec<Rc<Event>>, StoreError>> {
        loop {
            {
                let events = self.feed.events.borrow();
                let first = self.feed.first_seq.get();
                if self.next < first {
                    // Missed events were evicted: end, the client re-watches.
                    return None;
                }
                let out: Vec<Rc<Event>> = events
                    .iter()
                    .skip((self.next - first) as usize)
                    .filter(|e| {
                        e.kv.mod_revision >= self.start && e.kv.key.starts_with(&self.prefix)
                    })
                    .cloned()
                    .collect();
                self.next = first + events.len() as u64;
                if !out.is_empty() {
                    return Some(Ok(out));
                }
                if let Some(end) = &*self.feed.end.borrow() {
                    return end.clone().map(Err);
                }
            }
            // The feed's sender lives as long as the feed; an error here
            // cannot happen while `self.feed` holds it.
            let _ = self.tick.changed().await;
        }
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
                        String::from_utf8_lossy(&e.kv.key),
                        e.kv.mod_revision
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    use std::future::Future;

    #[test]
    fn subscribers_see_their_namespace_from_their_revision() {
        let feed = Rc::new(Feed::new(10));
        let mut all = feed.subscribe(b"/registry/pods/", 10);
        let mut ns_a = feed.subscribe(b"/registry/pods/a/", 10);
        assert_eq!(poll(&mut all), "none");
        feed.push(vec![
            put("/registry/pods/a/x", 10),
            put("/registry/pods/b/y", 11),
        ]);
        // A late subscriber from revision 11 sees only what follows it.
        let mut late = feed.subscribe(b"/registry/pods/", 11);
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
        let feed = Rc::new(Feed::new(1));
        let mut s = feed.subscribe(b"/k/", 1);
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
        let closed = Rc::new(Feed::new(1));
        let mut s = closed.subscribe(b"/k/", 1);
        closed.finish(None);
        assert_eq!(poll(&mut s), "closed");
    }

    #[test]
    fn eviction_ends_slow_subscribers_and_narrows_what_a_feed_replays() {
        let feed = Rc::new(Feed::new(1));
        let mut slow = feed.subscribe(b"/k/", 1);
        let mut fast = feed.subscribe(b"/k/", 1);
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
}
