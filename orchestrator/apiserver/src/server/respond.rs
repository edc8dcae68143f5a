//! Responses, request bodies and the query string: the HTTP plumbing every verb shares.

use std::collections::BTreeMap;

use bytes::Bytes;
use faultline_api::decode::{self, FieldValidation};
use faultline_api::{Resource, Status};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::{Body, Ctx};

/// A response body of static bytes.
pub(super) fn bytes(b: &'static [u8]) -> Body {
    full(Bytes::from_static(b))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(super) fn json_response(code: u16, v: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(v).expect("responses always serialise");
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("a valid response")
}

pub(super) fn status_response(s: &Status) -> Response<Body> {
    json_response(s.code, s)
}

/// The parsed query string.
pub(super) struct Query(pub(super) BTreeMap<String, String>);

impl Query {
    /// Parses `application/x-www-form-urlencoded` pairs separated by `&`
    /// (empty ones skipped): a name without `=` has an empty value, the
    /// last of a repeated name wins; in names and values `+` is a space,
    /// `%XX` a byte, a `%` not followed by two hex digits stays as it is,
    /// and bytes that are not UTF-8 become U+FFFD.
    pub(super) fn parse(q: Option<&str>) -> Query {
        let mut m = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned() {
            m.insert(k, v);
        }
        Query(m)
    }
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub(super) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true"))
    }
}

pub(super) fn text(code: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(body.to_string()))
        .expect("a valid response")
}

pub(super) fn not_served(path: &str) -> Status {
    Status::failure(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    )
}

pub(super) fn method_not_allowed(method: &Method, what: &str) -> Status {
    Status::failure(
        405,
        "MethodNotAllowed",
        format!("{method} is not supported on {what}"),
    )
}

/// Reads a request body up to the configured limit.
pub(super) async fn read_body(ctx: &Ctx, req: Request<Incoming>) -> Result<Bytes, Status> {
    let limited = Limited::new(req.into_body(), ctx.cfg.max_body);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Status::failure(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than {} bytes", ctx.cfg.max_body),
        )),
        Err(e) => Err(Status::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

pub(super) fn content_type(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a request body as a `T`: JSON, the right kind; unknown fields
/// as `fv` says (see [`decode_value`]).
pub(super) fn decode_body<T: Resource>(
    body: &[u8],
    fv: FieldValidation,
) -> Result<(T, Vec<String>), Status> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("the request body is not valid JSON: {e}")))?;
    check_type::<T>(&v)?;
    decode_value(v, fv)
}

/// Decodes a JSON value as a `T`. Unknown fields are dropped, and named in
/// the returned warnings under `Warn`; `Strict` refuses them, as
/// kube-apiserver words it.
pub(super) fn decode_value<T: Resource>(
    v: Value,
    fv: FieldValidation,
) -> Result<(T, Vec<String>), Status> {
    let cannot = || {
        format!(
            "{kind} in version {version:?} cannot be handled as a {kind}",
            kind = T::KIND,
            version = T::API_VERSION.rsplit('/').next().unwrap_or("")
        )
    };
    let (obj, unknown) = decode::from_value::<T>(v)
        .map_err(|e| Status::bad_request(format!("{}: {e}", cannot())))?;
    let named: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match fv {
        FieldValidation::Strict if !named.is_empty() => Err(Status::bad_request(format!(
            "{}: strict decoding error: {}",
            cannot(),
            named.join(", ")
        ))),
        FieldValidation::Warn => Ok((obj, named)),
        _ => Ok((obj, Vec::new())),
    }
}

/// Adds one `Warning: 299 - "..."` header per warning (RFC 7234's
/// warn-code 299, as kube-apiserver sends; kubectl prints them).
pub(super) fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings.iter().take(MAX_WARNINGS) {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// A body with thousands of unknown fields gets this many warnings.
const MAX_WARNINGS: usize = 50;

fn check_type<T: Resource>(v: &Value) -> Result<(), Status> {
    if !v.is_object() {
        return Err(Status::bad_request(format!(
            "the request body must be a JSON object (a {})",
            T::KIND
        )));
    }
    let kind = v["kind"].as_str().unwrap_or("");
    let api_version = v["apiVersion"].as_str().unwrap_or("");
    if !kind.is_empty() && kind != T::KIND {
        return Err(Status::bad_request(format!(
            "the body is a {kind}, but this resource holds {} objects",
            T::KIND
        )));
    }
    if !api_version.is_empty() && api_version != T::API_VERSION {
        return Err(Status::bad_request(format!(
            "apiVersion {api_version:?} does not serve {}; use {:?}",
            T::KIND,
            T::API_VERSION
        )));
    }
    Ok(())
}

pub(super) fn require_json(ct: &str) -> Result<(), Status> {
    if ct.is_empty() || ct == "application/json" || ct == "*/*" {
        Ok(())
    } else {
        Err(Status::failure(
            415,
            "UnsupportedMediaType",
            format!("the content type {ct:?} is not supported; send application/json"),
        ))
    }
}
