//! Inbound connections: a peer's Raft messages or a client's requests, each request answered on its own task.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use faultline_env::BoxConn;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};

use super::peer::{PEER_ACK_EVERY, PEER_IDLE_TIMEOUT};
use super::{Node, INTERNAL_CLIENT_BASE};
use crate::codec;
use crate::proto::{self, Frame, FrameError, FrameReader, Request, Response, ServerError};

/// A peer or client has this long to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one inbound connection: a peer (after `Hello`) or a client.
pub(super) async fn handle_conn(node: Rc<Node>, conn: BoxConn, conn_id: u64) {
    let conn = match &node.cfg.tls {
        None => conn,
        Some(tls) => match node
            .env
            .timeout(TLS_HANDSHAKE_TIMEOUT, tls.server.accept(conn))
            .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                node.env
                    .trace(format_args!("store connection {conn_id}: TLS: {e}"));
                return;
            }
            Err(_) => return,
        },
    };
    let (read, mut write) = proto::split(conn);
    let mut reader = FrameReader::new(read, proto::MAX_CLIENT_FRAME);
    let first = match reader.next().await {
        Ok(f) => f,
        Err(_) => return,
    };
    if let Frame::Hello { from } = first {
        if !node.cfg.members.contains_key(&from) {
            return;
        }
        reader.set_max(codec::MAX_RECORD_LEN);
        let env = node.env.clone();
        let acker = node.env.spawn(async move {
            let ack = proto::encode_frame(&Frame::Ack).expect("ack encodes");
            loop {
                if !matches!(
                    env.timeout(Duration::from_secs(1), write.write_all(&ack))
                        .await,
                    Ok(Ok(()))
                ) {
                    return;
                }
                env.sleep(PEER_ACK_EVERY).await;
            }
        });
        loop {
            match node.env.timeout(PEER_IDLE_TIMEOUT, reader.next()).await {
                Ok(Ok(Frame::Raft(msg))) if msg.from == from && msg.to == node.cfg.id => {
                    node.raft.borrow_mut().step(msg);
                    node.wake.notify_one();
                }
                _ => break,
            }
        }
        acker.abort();
        return;
    }
    // A client: responses (and watch events) go through one writer task.
    let (tx, mut rx) = mpsc::channel::<Frame>(1024);
    let writer = node.env.spawn(async move {
        while let Some(frame) = rx.recv().await {
            let mut buf = proto::encode_frame(&frame).expect("responses encode");
            while let Ok(f) = rx.try_recv() {
                buf.extend(proto::encode_frame(&f).expect("responses encode"));
            }
            if write.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    // A client may have this many requests in flight; past that, we stop
    // reading its connection (TCP back-pressure) instead of piling up tasks.
    let slots = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
    let mut frame = Ok(first);
    loop {
        match frame {
            Ok(Frame::Request { id, request }) => {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let node = node.clone();
                let tx = tx.clone();
                node.env.clone().spawn(async move {
                    if let Some(response) = handle_request(&node, id, conn_id, request, &tx).await {
                        let _ = tx.send(Frame::Response { id, response }).await;
                    }
                    drop(permit);
                });
            }
            Ok(_) => {
                let response = Response::Error(ServerError::BadRequest("unexpected frame".into()));
                let _ = tx.send(Frame::Response { id: 0, response }).await;
                break;
            }
            Err(FrameError::Closed) => break,
            Err(e) => {
                node.env
                    .trace(format_args!("store: dropping client connection: {e}"));
                break;
            }
        }
        frame = reader.next().await;
    }
    node.watchers.borrow_mut().retain(|w| w.conn != conn_id);
    drop(tx);
    // Let the last responses go out, but not wait forever on a client that
    // stopped reading.
    let abort = writer.abort_handle();
    if node
        .env
        .timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// Requests one client connection may have in flight.
const MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// Handles one request; `None` when the response was already streamed.
async fn handle_request(
    node: &Rc<Node>,
    id: u64,
    conn_id: u64,
    request: Request,
    tx: &mpsc::Sender<Frame>,
) -> Option<Response> {
    Some(match request {
        Request::Write(cmd) => {
            if cmd.client >= INTERNAL_CLIENT_BASE {
                Response::Error(ServerError::BadRequest(
                    "client id reserved for replicas".into(),
                ))
            } else {
                match node.write(cmd).await {
                    Ok((revision, result)) => Response::Write { revision, result },
                    Err(e) => Response::Error(e),
                }
            }
        }
        Request::Range {
            range,
            linearizable,
        } => match node.read(range, linearizable).await {
            Ok((revision, range)) => Response::Range { revision, range },
            Err(e) => Response::Error(e),
        },
        Request::Watch {
            key,
            range_end,
            start_revision,
        } => {
            node.watch(conn_id, id, key, range_end, start_revision, tx.clone())
                .await;
            return None;
        }
        Request::KeepAlive { lease } => match node.keep_alive(lease) {
            Ok(ttl_ms) => Response::KeepAlive { ttl_ms },
            Err(e) => Response::Error(e),
        },
        Request::Status => Response::Status(node.status()),
    })
}
