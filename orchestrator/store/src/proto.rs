//! The store's wire protocol: checksummed frames ([`crate::codec`] records
//! holding postcard values) over one TCP port that serves both peers and
//! clients. A peer opens with [`Frame::Hello`]; a client just sends requests.
//!
//! Why not gRPC or HTTP here: the store is the hot path of every simulated
//! second, frames are a few dozen bytes, and the same framing (length and
//! CRC) already guards the disk. Anything that is not a valid frame closes
//! the connection, which is all a server owes a confused or hostile peer.

use std::io;
use std::pin::Pin;

use faultline_raft::{Message, NodeId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{self, CodecError};
use crate::ops::{Command, Event, OpResult, RangeRequest, RangeResponse, StoreError};

/// Largest frame a client may send (requests are small; snapshots travel
/// between peers only).
pub const MAX_CLIENT_FRAME: usize = 4 << 20;

/// Everything that travels on a store connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of a peer connection.
    Hello { from: NodeId },
    /// A Raft message between peers.
    Raft(Message),
    /// Client -> server.
    Request { id: u64, request: Request },
    /// Server -> client, answering request `id`.
    Response { id: u64, response: Response },
    /// Receiver -> sender on a peer connection, twice a second: proof that
    /// the path works both ways. A lost message is never resent, so a
    /// connection cut by a partition hangs rather than fails; without acks
    /// the sender would write into it forever.
    Ack,
}

/// A client request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// A write, replicated through the Raft log and deduplicated by
    /// (client, seq).
    Write(Command),
    /// A read. `linearizable` reads are served by the leader after a
    /// read-index round; others by any replica from its local state.
    Range {
        range: RangeRequest,
        linearizable: bool,
    },
    /// Streams every event on `[key, range_end)` from `start_revision` on
    /// (0 = from the next revision) as `Response::Events`, until the
    /// connection closes. Served by any replica.
    Watch {
        key: Vec<u8>,
        range_end: Vec<u8>,
        start_revision: i64,
    },
    /// Renews a lease (leader only; not replicated, as in etcd).
    KeepAlive { lease: i64 },
    /// The replica's view of the cluster.
    Status,
}

/// A server response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Write {
        revision: i64,
        result: OpResult,
    },
    Range {
        revision: i64,
        range: RangeResponse,
    },
    /// A batch of watch events, in revision order.
    Events {
        events: Vec<Event>,
    },
    /// The watch ended (for example its start revision was compacted).
    WatchEnded {
        error: StoreError,
    },
    KeepAlive {
        ttl_ms: i64,
    },
    Status(StatusInfo),
    Error(ServerError),
}

/// A replica's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub id: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub commit: u64,
    pub applied: u64,
    pub revision: i64,
    /// Hash of the whole state machine (replicas that applied the same
    /// entries have the same digest).
    pub digest: u64,
    pub recovering: bool,
}

/// Why a request failed; the doc of each variant says whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ServerError {
    /// This replica is not the leader: retry at `leader` (an address) if
    /// known, else anywhere. Nothing was proposed, so retrying is safe.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    /// The request did not complete in time: it may or may not have taken
    /// effect. Retrying a write with the same (client, seq) is safe.
    #[error("timed out waiting for the cluster")]
    Timeout,
    /// The replica cannot serve right now (disk failure, shutting down).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The store rejected the request; retrying will not help.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// Errors reading frames from a connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("bad frame: {0}")]
    Codec(#[from] CodecError),
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
}

/// Reads frames from a byte stream, keeping partial input between calls.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader that rejects frames larger than `max` bytes.
    pub fn new(inner: R, max: usize) -> FrameReader<R> {
        FrameReader {
            inner,
            buf: Vec::with_capacity(8 << 10),
            start: 0,
            max,
        }
    }

    /// Changes the size limit (a peer, once identified, may send snapshots).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The next frame; `Err(Closed)` on a clean end of stream.
    pub async fn next(&mut self) -> Result<Frame, FrameError> {
        loop {
            let pending = &self.buf[self.start..];
            if pending.len() >= 4 {
                let len = u32::from_le_bytes(pending[0..4].try_into().expect("4 bytes")) as usize;
                if len > self.max {
                    return Err(FrameError::TooLarge { len, max: self.max });
                }
            }
            if let Some((payload, used)) = codec::next_record(pending)? {
                let frame = codec::decode(payload)?;
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(frame);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            // `read_buf` fills spare capacity without zeroing it first.
            let len = self.buf.len();
            self.buf.reserve(16 << 10);
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(if len == 0 {
                    FrameError::Closed
                } else {
                    FrameError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a frame",
                    ))
                });
            }
        }
    }
}

/// Encodes one frame.
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    codec::encode_framed(frame, &mut out)?;
    Ok(out)
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    frame: &Frame,
) -> Result<(), FrameError> {
    let bytes = encode_frame(frame)?;
    w.write_all(&bytes).await?;
    Ok(())
}

/// The reading half of a split connection.
pub type ReadHalf = tokio::io::ReadHalf<Pin<Box<dyn faultline_env::Conn>>>;
/// The writing half of a split connection.
pub type WriteHalf = tokio::io::WriteHalf<Pin<Box<dyn faultline_env::Conn>>>;

/// Splits a boxed connection into halves usable by two tasks.
pub fn split(conn: faultline_env::BoxConn) -> (ReadHalf, WriteHalf) {
    tokio::io::split(conn)
}
