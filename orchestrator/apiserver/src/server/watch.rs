//! Watch streams: where a watch's events come from, how a kind's events are decoded once for every watch, and the streamed body.

use std::any::Any;
use std::cell::OnceCell;
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use faultline_api::{Resource, Status, WatchEvent};
use faultline_store::client::{prefix_end, StoreClient, WatchStream};
use faultline_store::ops::{EventKind, KeyValue, StoreError};
use http::{header, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::respond::Query;
use super::verbs::selectors;
use super::{Body, Ctx};
use crate::cacher::{Codec, FeedEvent, Subscription, TriggerFn, Want};
use crate::registry::{decode, prefix, Strategy};

/// Where a watch's events come from.
enum Source {
    Feed(Subscription),
    /// A watch from a revision older than its kind's feed holds.
    Store(WatchStream, Rc<Codec>),
}

impl Source {
    async fn next(&mut self) -> Option<Result<Vec<Rc<FeedEvent>>, StoreError>> {
        match self {
            Source::Feed(s) => s.next().await,
            Source::Store(s, codec) => Some(s.next().await?.map(|b| {
                b.into_iter()
                    .map(|ev| Rc::new(FeedEvent::new(ev, codec.clone())))
                    .collect()
            })),
        }
    }
}

/// One stored object decoded, with its derived forms built on demand and
/// shared by every watch that sends it (see [`FeedEvent`]).
pub(super) struct Decoded<T> {
    pub(super) obj: T,
    /// The object as JSON, for field selectors on fields the kind does
    /// not read typed.
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

/// How a feed of `T` decodes its events and reads their trigger values.
fn codec<T: Strategy>() -> Rc<Codec> {
    let trigger: Option<TriggerFn> = T::TRIGGER.map(|_| {
        Box::new(|o: &dyn Any| {
            o.downcast_ref::<Decoded<T>>()
                .map(|d| d.obj.trigger_value().to_string())
                .unwrap_or_default()
        }) as TriggerFn
    });
    Rc::new(Codec {
        decode: Box::new(|kv: &KeyValue, revision: i64| {
            let obj = decode::<T>(kv, revision).ok()?;
            Some(Rc::new(Decoded {
                obj,
                json: OnceCell::new(),
                lines: Default::default(),
            }) as Rc<dyn Any>)
        }),
        trigger,
    })
}

/// A decoded object of a feed event as `T`.
fn typed<T: 'static>(o: Option<Rc<dyn Any>>) -> Option<Rc<Decoded<T>>> {
    o?.downcast::<Decoded<T>>().ok()
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
        let want = Want {
            prefix: p.clone(),
            start,
            trigger: T::TRIGGER.and_then(|f| sel.exact_field(f)),
        };
        let subscribed = ctx.cacher.subscribe(&env2, &store, &kind, want, codec::<T>);
        let mut stream = match subscribed {
            Some(s) => Source::Feed(s),
            None => match store.watch(&p, &prefix_end(&p), start).await {
                Some(s) => Source::Store(s, codec::<T>()),
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
            for fe in batch {
                let ev = &fe.event;
                last = ev.kv.mod_revision;
                let now = typed::<T>(fe.now());
                if ev.kind == EventKind::Put && now.is_none() {
                    continue;
                }
                let before = typed::<T>(fe.before());
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
