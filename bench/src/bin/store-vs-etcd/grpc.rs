//! A minimal gRPC client (unary calls over one HTTP/2 connection) and protobuf by hand: just what etcd's PutRequest and two responses need.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;

use super::PUT_TIMEOUT;

/// Runs hyper's connection task on the current thread's `LocalSet`.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

pub(super) struct Grpc {
    send: http2::SendRequest<Full<Bytes>>,
    authority: String,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Grpc {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Grpc {
    pub(super) async fn connect(addr: &str) -> Result<Grpc> {
        let tcp =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| anyhow!("connecting to {addr}: timed out"))?
                .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (send, conn) = http2::Builder::new(LocalExec)
            .handshake(TokioIo::new(tcp))
            .await
            .with_context(|| format!("HTTP/2 handshake with {addr}"))?;
        let conn = tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(Grpc {
            send,
            authority: addr.to_string(),
            conn,
        })
    }

    /// One unary call: `msg` is the encoded request; returns the encoded
    /// response. Fails unless `grpc-status` is 0.
    pub(super) async fn unary(&self, path: &str, msg: &[u8]) -> Result<Bytes> {
        let mut body = Vec::with_capacity(5 + msg.len());
        body.push(0); // not compressed
        body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        body.extend_from_slice(msg);
        let req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(body)))?;
        let mut send = self.send.clone();
        let call = async move {
            send.ready().await?;
            let resp = send.send_request(req).await?;
            if resp.status() != hyper::StatusCode::OK {
                bail!("HTTP status {}", resp.status());
            }
            // A "trailers-only" answer carries the status in the headers.
            if let Some(s) = resp.headers().get("grpc-status") {
                check_grpc_status(s, resp.headers().get("grpc-message"))?;
            }
            let collected = resp.into_body().collect().await?;
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let data = collected.to_bytes();
            match trailers.get("grpc-status") {
                Some(s) => check_grpc_status(s, trailers.get("grpc-message"))?,
                None => bail!("no grpc-status trailer"),
            }
            if data.len() < 5 || data[0] != 0 {
                bail!("bad gRPC response frame ({} bytes)", data.len());
            }
            let len = u32::from_be_bytes(data[1..5].try_into().expect("4 bytes")) as usize;
            if data.len() != 5 + len {
                bail!("gRPC frame length {len} but {} bytes", data.len() - 5);
            }
            Ok(data.slice(5..))
        };
        tokio::time::timeout(PUT_TIMEOUT, call)
            .await
            .map_err(|_| anyhow!("{path}: timed out after {PUT_TIMEOUT:?}"))?
    }
}

fn check_grpc_status(
    status: &hyper::header::HeaderValue,
    message: Option<&hyper::header::HeaderValue>,
) -> Result<()> {
    if status.as_bytes() == b"0" {
        return Ok(());
    }
    let message = message
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        .unwrap_or_default();
    bail!(
        "grpc-status {} {message}",
        String::from_utf8_lossy(status.as_bytes())
    )
}

// Protobuf, by hand: just what PutRequest and two responses need.

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
pub(super) fn pb_bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    pb_varint(out, (u64::from(field) << 3) | 2);
    pb_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

#[derive(Clone, Copy)]
pub(super) enum PbValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> PbValue<'a> {
    pub(super) fn varint(self) -> Option<u64> {
        match self {
            PbValue::Varint(v) => Some(v),
            _ => None,
        }
    }
    pub(super) fn bytes(self) -> Option<&'a [u8]> {
        match self {
            PbValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

fn pb_read_varint(buf: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf
            .split_first()
            .ok_or_else(|| anyhow!("truncated varint"))?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// The last occurrence of `field` in a message (protobuf's rule).
pub(super) fn pb_field(mut buf: &[u8], field: u32) -> Result<Option<PbValue<'_>>> {
    let mut found = None;
    while !buf.is_empty() {
        let tag = pb_read_varint(&mut buf)?;
        let value = match tag & 7 {
            0 => PbValue::Varint(pb_read_varint(&mut buf)?),
            1 | 5 => {
                let n = if tag & 7 == 1 { 8 } else { 4 };
                if buf.len() < n {
                    bail!("truncated fixed field");
                }
                buf = &buf[n..];
                PbValue::Fixed
            }
            2 => {
                let n = pb_read_varint(&mut buf)? as usize;
                if buf.len() < n {
                    bail!("truncated length-delimited field");
                }
                let (b, rest) = buf.split_at(n);
                buf = rest;
                PbValue::Bytes(b)
            }
            w => bail!("unsupported wire type {w}"),
        };
        if tag >> 3 == u64::from(field) {
            found = Some(value);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_round_trip() {
        let mut msg = Vec::new();
        pb_bytes(&mut msg, 1, b"key");
        pb_bytes(&mut msg, 2, &[7u8; 300]);
        assert_eq!(&msg[..5], &[0x0a, 3, b'k', b'e', b'y']);
        assert_eq!(&msg[5..8], &[0x12, 0xac, 0x02]);
        assert_eq!(
            pb_field(&msg, 1).unwrap().and_then(PbValue::bytes),
            Some(&b"key"[..])
        );
        assert_eq!(
            pb_field(&msg, 2)
                .unwrap()
                .and_then(PbValue::bytes)
                .map(<[u8]>::len),
            Some(300)
        );
        let mut header = Vec::new();
        pb_varint(&mut header, 3 << 3); // field 3, varint
        pb_varint(&mut header, 123_456);
        let mut resp = Vec::new();
        pb_bytes(&mut resp, 1, &header);
        let h = pb_field(&resp, 1)
            .unwrap()
            .and_then(PbValue::bytes)
            .unwrap();
        assert_eq!(
            pb_field(h, 3).unwrap().and_then(PbValue::varint),
            Some(123_456)
        );
        assert!(pb_field(&[0x0a, 5, 1], 1).is_err());
    }
}
