//! Peer links: one sender per peer keeps a connection and writes queued Raft messages, dropping them while the peer is unreachable.

use std::rc::Rc;
use std::time::Duration;

use faultline_env::tls::TlsClient;
use faultline_env::Env;
use faultline_raft::{Message, NodeId};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};

use crate::codec;
use crate::proto::{self, Frame, FrameReader};

/// A peer connection that has not been acknowledged for this long is dead.
const PEER_ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a receiver acknowledges a peer connection.
pub(super) const PEER_ACK_EVERY: Duration = Duration::from_millis(500);
/// An inbound peer connection silent for this long is closed.
pub(super) const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps a connection to one peer and writes its queued messages.
pub(super) async fn peer_sender(
    env: Env,
    from: NodeId,
    addr: String,
    tls: Option<TlsClient>,
    mut rx: mpsc::Receiver<Message>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut pending: Option<Message> = None;
    loop {
        // Wait for something to send before dialling.
        if pending.is_none() {
            match rx.recv().await {
                Some(m) => pending = Some(m),
                None => return,
            }
        }
        let conn = env
            .timeout(Duration::from_millis(500), env.net().connect(&addr))
            .await;
        let conn = match (conn, &tls) {
            (Ok(Ok(c)), None) => Ok(c),
            (Ok(Ok(c)), Some(tls)) => env
                .timeout(PEER_ACK_TIMEOUT, tls.connect(&addr, c))
                .await
                .map_err(|_| ())
                .and_then(|r| {
                    r.map_err(|e| env.trace(format_args!("store peer {addr}: TLS: {e}")))
                }),
            _ => Err(()),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(()) => {
                // Unreachable: what was queued is stale by the time we get
                // through; Raft will resend what still matters.
                pending = None;
                while rx.try_recv().is_ok() {}
                env.sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let (read, mut write) = proto::split(conn);
        // Acks from the receiver prove the path works both ways; the ack
        // reader raises `dead` when they stop (or the connection closes).
        // One watchdog per connection, not a timer per message: this loop
        // runs for every Raft message of the simulation.
        let dead = Rc::new(Notify::new());
        let acks = {
            let (dead, env, addr) = (dead.clone(), env.clone(), addr.clone());
            env.clone().spawn(async move {
                let mut reader = FrameReader::new(read, 1024);
                while let Ok(Ok(Frame::Ack)) = env.timeout(PEER_ACK_TIMEOUT, reader.next()).await {}
                env.trace(format_args!(
                    "store: connection to {addr} unacknowledged, redialling"
                ));
                dead.notify_one();
            })
        };
        let hello = proto::encode_frame(&Frame::Hello { from }).expect("hello encodes");
        let mut buf = hello;
        loop {
            if let Some(msg) = pending.take() {
                push_raft_frame(&mut buf, msg);
            }
            while buf.len() < (1 << 20) {
                match rx.try_recv() {
                    Ok(m) => push_raft_frame(&mut buf, m),
                    Err(_) => break,
                }
            }
            if !buf.is_empty() {
                // A peer that stops reading (partitioned, frozen) stops
                // acking too: the watchdog ends the write.
                let ok = tokio::select! {
                    biased;
                    r = write.write_all(&buf) => r.is_ok(),
                    _ = dead.notified() => false,
                };
                buf.clear();
                if !ok {
                    break;
                }
            }
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => pending = Some(m),
                    None => return,
                },
                _ = dead.notified() => break,
            }
        }
        acks.abort();
    }
}

fn push_raft_frame(buf: &mut Vec<u8>, msg: Message) {
    codec::encode_framed(&Frame::Raft(msg), buf).expect("raft messages fit in a frame");
}
