//! Watch streams: where a watch's events come from, the decoded-event cache shared by a server's watches, and the streamed body.

use std::any::Any;
use std::cell::OnceCell;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use faultline_api::{Resource, Status, WatchEvent};
use faultline_store::client::{prefix_end, StoreClient, WatchStream};
use faultline_store::ops::{Event as StoreEvent, EventKind, KeyValue, StoreError};
use http::{header, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::respond::Query;
use super::verbs::selectors;
use super::{Body, Ctx};
use crate::cacher::Subscription;
use crate::registry::{decode, prefix, Strategy};

/// Where a watch's events come from.
enum Source {
    Feed(Subscription),
    /// A watch from a revision older than its kind's feed holds.
    Store(WatchStream),
}

impl Source {
    async fn next(&mut self) -> Option<Result<Vec<Rc<StoreEvent>>, StoreError>> {
        match self {
            Source::Feed(s) => s.next().await,
            Source::Store(s) => Some(
                s.next()
                    .await?
                    .map(|b| b.into_iter().map(Rc::new).collect()),
            ),
        }
    }
}

/// Store events decoded for the watches of one API server.
///
/// Every watch of a kind receives the same store events (from the kind's
/// one store watch, see [`Cacher`]), so without this an event that N
/// watches carry is decoded, turned into JSON for field selectors and
/// serialised N times. Entries are pure functions of the stored bytes and
/// the stamped revision, and a hit is confirmed against the bytes, so the
/// cache changes only the cost, never what a watch sends.
#[derive(Default)]
pub(super) struct WatchCache {
    entries: BTreeMap<WatchCacheKey, Rc<dyn Any>>,
    /// Insertion order, for evicting the oldest beyond [`WATCH_CACHE_ENTRIES`].
    order: VecDeque<WatchCacheKey>,
}

/// (store key, the value's mod revision, the resourceVersion stamped on it).
type WatchCacheKey = (Vec<u8>, i64, i64);

/// Entries kept: a store event is fanned out to all its watches within a
/// few simulated milliseconds, so a short memory is enough.
const WATCH_CACHE_ENTRIES: usize = 512;

/// One stored value, decoded once, with its derived forms built on demand.
pub(super) struct Decoded<T> {
    /// The stored bytes it was decoded from (a hit must match them).
    value: Vec<u8>,
    pub(super) obj: T,
    /// The object as JSON, for field selectors.
    json: OnceCell<Value>,
    /// The serialised watch lines: ADDED, MODIFIED, DELETED.
    lines: [OnceCell<Bytes>; 3],
}

impl<T: Resource> Decoded<T> {
    fn line(&self, kind: &'static str) -> Bytes {
        let i = match kind {
            "ADDED" => 0,
            "MODIFIED" => 1,
            "DELETED" => 2,
            other => unreachable!("no cached watch line of kind {other}"),
        };
        self.lines[i].get_or_init(|| line(kind, &self.obj)).clone()
    }

    pub(super) fn json(&self) -> &Value {
        self.json
            .get_or_init(|| serde_json::to_value(&self.obj).expect("objects always serialise"))
    }
}

impl WatchCache {
    /// `kv` decoded and stamped with `revision`, from the cache when an
    /// earlier watch already decoded it; `None` if it does not decode.
    fn decode<T: Resource>(&mut self, kv: &KeyValue, revision: i64) -> Option<Rc<Decoded<T>>> {
        let key: WatchCacheKey = (kv.key.clone(), kv.mod_revision, revision);
        if let Some(hit) = self.entries.get(&key) {
            if let Ok(d) = hit.clone().downcast::<Decoded<T>>() {
                if d.value == kv.value {
                    return Some(d);
                }
            }
        }
        let obj = decode::<T>(kv, revision).ok()?;
        let d = Rc::new(Decoded {
            value: kv.value.clone(),
            obj,
            json: OnceCell::new(),
            lines: Default::default(),
        });
        self.entries.insert(key.clone(), d.clone());
        self.order.push_back(key);
        while self.order.len() > WATCH_CACHE_ENTRIES {
            let old = self.order.pop_front().expect("longer than the limit");
            self.entries.remove(&old);
        }
        Some(d)
    }
}

/// A streamed response body fed from a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn line(kind: &str, object: &impl serde::Serialize) -> Bytes {
    let mut v = serde_json::to_vec(&WatchEvent {
        kind: kind.to_string(),
        object,
    })
    .expect("events always serialise");
    v.push(b'\n');
    Bytes::from(v)
}

/// `GET ...?watch=1`: newline-delimited watch events from
/// `resourceVersion` (exclusive; empty or 0 = the current state as ADDED
/// events, then changes), bookmarks if asked for, and an ERROR event with a
/// 410 status when that revision has been compacted.
pub(super) async fn watch<T: Strategy>(
    ctx: &Rc<Ctx>,
    ns: Option<String>,
    q: &Query,
) -> Result<Response<Body>, Status> {
    let sel = selectors(q, T::KIND)?;
    let from: i64 = match q.get("resourceVersion").unwrap_or("") {
        "" => 0,
        rv => rv
            .parse()
            .map_err(|_| Status::bad_request(format!("resourceVersion {rv:?} is not a number")))?,
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let env = ctx.reg.env.clone();
    let jitter = Duration::from_millis(rand::RngCore::next_u64(&mut *env.rng()) % 60_000);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(ctx.cfg.watch_timeout + jitter);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // Initial state for a watch from "now".
    let mut initial = Vec::new();
    let start = if from == 0 {
        let (items, rev) = ctx.reg.list::<T>(ns.as_deref()).await?;
        initial = items.into_iter().filter(|o| sel.matches(o)).collect();
        rev + 1
    } else {
        from + 1
    };
    let p = prefix::<T>(ns.as_deref());
    let store: Rc<StoreClient> = ctx.reg.store.clone();
    let every = ctx.cfg.bookmark_every;
    let env2 = env.clone();
    let ctx = ctx.clone();
    env.spawn(async move {
        for o in &initial {
            if tx.send(line("ADDED", o)).await.is_err() {
                return;
            }
        }
        let deadline = env2.now() + timeout;
        let kind = prefix::<T>(None);
        let subscribed = ctx.cacher.subscribe(&env2, &store, &kind, &p, start);
        let mut stream = match subscribed {
            Some(s) => Source::Feed(s),
            None => match store.watch(&p, &prefix_end(&p), start).await {
                Some(s) => Source::Store(s),
                None => return,
            },
        };
        let mut last = start - 1;
        loop {
            let wait = every.min(deadline.saturating_duration_since(env2.now()));
            if wait.is_zero() {
                return;
            }
            let batch = match env2.timeout(wait, stream.next()).await {
                Err(_) => {
                    if bookmarks && last > 0 {
                        let mut o = T::default();
                        o.set_type_meta();
                        o.meta_mut().resource_version = last.to_string();
                        if tx.send(line("BOOKMARK", &o)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Ok(None) => return,
                Ok(Some(Err(StoreError::Compacted { compact_revision }))) => {
                    let s = Status::gone(format!(
                        "too old resource version: {} ({compact_revision})",
                        start - 1
                    ));
                    let _ = tx.send(line("ERROR", &s)).await;
                    return;
                }
                Ok(Some(Err(e))) => {
                    let s = Status::unavailable(format!("watch ended: {e}"));
                    let _ = tx.send(line("ERROR", &s)).await;
                    return;
                }
                Ok(Some(Ok(events))) => events,
            };
            for ev in batch {
                last = ev.kv.mod_revision;
                let rev = ev.kv.mod_revision;
                let now: Option<Rc<Decoded<T>>> = match ev.kind {
                    EventKind::Put => match ctx.watch_cache.borrow_mut().decode::<T>(&ev.kv, rev) {
                        Some(o) => Some(o),
                        None => continue,
                    },
                    EventKind::Delete => None,
                };
                // Stamped with the event's revision, which is also what a
                // DELETED event built from it must carry.
                let before: Option<Rc<Decoded<T>>> = ev
                    .prev_kv
                    .as_ref()
                    .and_then(|kv| ctx.watch_cache.borrow_mut().decode::<T>(kv, rev));
                let was = before.as_ref().is_some_and(|o| sel.matches_decoded(o));
                let is = now.as_ref().is_some_and(|o| sel.matches_decoded(o));
                let out = match (was, is, now, before) {
                    (_, true, Some(o), _)
                        if ev.kv.create_revision == ev.kv.mod_revision || !was =>
                    {
                        o.line("ADDED")
                    }
                    (_, true, Some(o), _) => o.line("MODIFIED"),
                    (true, false, Some(o), _) => o.line("DELETED"),
                    (true, false, None, Some(o)) => o.line("DELETED"),
                    _ => continue,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = ChannelBody { rx }.boxed_unsync();
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a valid response"))
}
