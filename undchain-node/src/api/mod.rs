//! The node's HTTP API, its Prometheus metrics and its live explorer page
//! (DESIGN.md "The reference node"; issue 18).
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | the explorer (one HTML page with its script, from the binary) |
//! | `GET /openapi.json` | the OpenAPI 3.0 document of every route here |
//! | `GET /metrics` | Prometheus metrics ([`metrics`]) |
//! | `GET /status` | chain, node, height, latest block hash, agreed time, round, peers |
//! | `GET /blocks` | the last 32 blocks this node stored (summaries) |
//! | `GET /blocks/{height}` | a decided block: header fields, `hash`, certificate, job ids |
//! | `GET /jobs/{id}` | a job: state, block, its ledger proof, its inclusion proof in the block's job file |
//! | `GET /accounts/{key}` | balance, escrow, nonce, the account's ledger proof |
//! | `GET /validators` | every registered validator: seat, trust, score, last vote |
//! | `GET /partners` | partners at this validator's desk and their load |
//! | `GET /payouts/{period}` | a settled payout period |
//! | `POST /requests` | `{"envelope": "<hex of a signed envelope>"}`, handed to the core as from the network |
//! | `GET /events` | server-sent events: one JSON object per block, job, payout, evidence, set change |
//!
//! Why axum: the node already runs on tokio, and axum is tokio's own HTTP
//! layer (hyper underneath), so the API is a few handlers on the node's
//! runtime with no second executor; server-sent events, JSON and typed
//! path handling come with it. The API is REST plus an event stream, which
//! suits `curl`, Prometheus, browsers and schemathesis; a JSON-RPC server
//! (jsonrpsee) would serve none of them better. The OpenAPI document is
//! hand-written JSON (`openapi.json`, served as is) and a test checks it
//! names every route the router serves.
//!
//! Safety of the node: handlers only read (the snapshot, the database
//! through its own read transactions) or queue a lookup for the node task
//! on a bounded queue (full: `503`). A submitted envelope goes through
//! [`undchain_roles::NodeCore::handle_envelope`], the path bytes from the
//! network take, and only user messages (client, partner, transaction
//! kinds) are taken. Bad input gets a `4xx` with `{"error": "..."}`
//! saying what was wrong.

pub mod feed;
pub mod metrics;
pub mod view;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tokio_stream::{Stream, StreamExt, wrappers::BroadcastStream};
use undchain_types::{BlockNumber, Hash32, JobId, PublicKey};

pub use feed::{ApiShared, Feed, Query};

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");
/// The explorer page served at `/`.
pub const EXPLORER: &str = include_str!("explorer.html");
/// Largest `POST /requests` body, bytes (hex of an envelope within the
/// default 1 MiB frame, and the JSON around it).
pub const MAX_BODY: usize = (2 << 20) + 1024;
/// How long a handler waits for the node task to answer a lookup.
pub const QUERY_PATIENCE: Duration = Duration::from_secs(5);

/// An error answer: a status and `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is busy or stopping: try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

type Answer = Result<Response, ApiError>;

fn json<T: serde::Serialize>(v: &T) -> Answer {
    Ok(axum::Json(v).into_response())
}

/// The router over one node's handles.
pub fn router(shared: ApiShared) -> Router {
    Router::new()
        .route("/", get(explorer))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/blocks", get(recent_blocks))
        .route("/blocks/{height}", get(block))
        .route("/jobs/{id}", get(job))
        .route("/accounts/{key}", get(account))
        .route("/validators", get(validators))
        .route("/partners", get(partners))
        .route("/payouts/{period}", get(payout))
        .route("/requests", post(submit))
        .route("/events", get(events))
        .fallback(|| async { ApiError::not_found("no such route: see /openapi.json") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// Serves the API on `listener` until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, shared: ApiShared) {
    if let Err(e) = axum::serve(listener, router(shared)).await {
        tracing::warn!(error = %e, "API server stopped");
    }
}

/// Binds `addr` and starts serving; returns the bound address and the
/// task. An address in use is tried again for `patience` (a node that
/// stopped a moment ago may still hold it).
pub async fn start(
    addr: SocketAddr,
    shared: ApiShared,
    patience: Duration,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let until = tokio::time::Instant::now() + patience;
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(listener, shared))))
}

async fn explorer() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        EXPLORER,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(s): State<ApiShared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn status(State(s): State<ApiShared>) -> Answer {
    json(&s.snapshot.borrow().status)
}

async fn validators(State(s): State<ApiShared>) -> Answer {
    json(&s.snapshot.borrow().validators)
}

async fn partners(State(s): State<ApiShared>) -> Answer {
    json(&s.snapshot.borrow().partners)
}

async fn recent_blocks(State(s): State<ApiShared>) -> Answer {
    json(&s.snapshot.borrow().recent_blocks)
}

fn number(what: &str, s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .map_err(|_| ApiError::bad(format!("{what} {s:?}: expected a decimal integer >= 0")))
}

fn hash(what: &str, s: &str) -> Result<Hash32, ApiError> {
    Hash32::from_hex(s)
        .filter(|_| s.len() == 64)
        .ok_or_else(|| ApiError::bad(format!("{what} {s:?}: expected 64 hex digits")))
}

async fn payout(State(s): State<ApiShared>, Path(p): Path<String>) -> Answer {
    let period = number("period", &p)?;
    let snap = s.snapshot.borrow().clone();
    match snap.payouts.iter().find(|x| x.period == period) {
        Some(v) => json(v),
        None => Err(ApiError::not_found(format!(
            "period {period} was not settled since this node started (periods settle at their last block)"
        ))),
    }
}

async fn block(State(s): State<ApiShared>, Path(h): Path<String>) -> Answer {
    let height = number("height", &h)?;
    let Some(reader) = s.blocks.clone() else {
        return Err(ApiError::not_found("this node keeps no blocks"));
    };
    let found = tokio::task::spawn_blocking(move || reader.block(BlockNumber(height)))
        .await
        .map_err(|_| ApiError::busy())?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("database: {e}")))?;
    match found {
        Some((b, jobs)) => json(&view::block_json(&b, &jobs)),
        None => Err(ApiError::not_found(format!(
            "block {height} is not decided yet (height {})",
            s.snapshot.borrow().status.height
        ))),
    }
}

async fn ask<T>(s: &ApiShared, q: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    s.queries.try_send(q(tx)).map_err(|_| ApiError::busy())?;
    match tokio::time::timeout(QUERY_PATIENCE, rx).await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(ApiError::busy()),
    }
}

async fn job(State(s): State<ApiShared>, Path(id): Path<String>) -> Answer {
    let id = JobId(hash("job id", &id)?);
    let Some((mut v, fee)) = ask(&s, |tx| Query::Job(id, tx)).await? else {
        return Err(ApiError::not_found(format!(
            "job {}: not known to this node (not filed here, not committed, not remembered as settled)",
            id.0
        )));
    };
    if let (true, Some(block), Some(reader)) = (v.state == "committed", v.block, s.blocks.clone()) {
        let found =
            tokio::task::spawn_blocking(move || reader.inclusion(BlockNumber(block), &id, fee))
                .await
                .map_err(|_| ApiError::busy())?
                .map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("database: {e}"))
                })?;
        v.inclusion =
            found.map(|(root, leaf, proof)| view::InclusionView::new(block, &root, &leaf, &proof));
    }
    json(&v)
}

async fn account(State(s): State<ApiShared>, Path(k): Path<String>) -> Answer {
    let key = PublicKey::from_hex(&k)
        .map_err(|e| ApiError::bad(format!("account key {k:?}: {e} (expected 64 hex digits)")))?;
    json(&ask(&s, |tx| Query::Account(key, tx)).await?)
}

/// Decodes lowercase or uppercase hex.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("{:?} is not a hex digit", c as char)),
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The body of `POST /requests`: `{"envelope": "<hex>"}` (no other field)
/// read into the envelope's bytes (not empty); a `400` saying what is
/// wrong otherwise. The bytes are not decoded here: the core takes them as
/// bytes from the network.
pub fn parse_submit_body(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        envelope: String,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad(format!(
            "body: {e} (expected {{\"envelope\": \"<hex of a signed envelope>\"}})"
        ))
    })?;
    let bytes = decode_hex(&b.envelope).map_err(|e| ApiError::bad(format!("envelope: {e}")))?;
    if bytes.is_empty() {
        return Err(ApiError::bad("envelope: empty"));
    }
    Ok(bytes)
}

/// The fuzz entry point of `fuzz/fuzz_targets/api_inputs.rs` (and of its
/// seed-corpus test): `data` as the body of `POST /requests`
/// ([`parse_submit_body`]) and, lossily made UTF-8, as each path parameter
/// (`/blocks/{height}`, `/payouts/{period}`, `/jobs/{id}`,
/// `/accounts/{key}`). Never panics on any input; it panics only on a bug:
/// a refusal that is not a `400`, or an accepted body whose envelope, as
/// lowercase hex in a fresh body, does not read back to the same bytes.
pub fn fuzz_api_inputs(data: &[u8]) {
    match parse_submit_body(data) {
        Ok(bytes) => {
            assert!(!bytes.is_empty());
            let hex = undchain_types::hash::to_hex(&bytes);
            let body = serde_json::json!({ "envelope": hex }).to_string();
            assert_eq!(parse_submit_body(body.as_bytes()), Ok(bytes));
        }
        Err(e) => assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e}"),
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(n) = number("height", &text) {
        assert_eq!(n.to_string().parse::<u64>(), Ok(n));
    }
    if let Ok(h) = hash("job id", &text) {
        assert_eq!(hash("job id", &h.to_hex()), Ok(h));
    }
    if let Ok(k) = PublicKey::from_hex(&text) {
        assert_eq!(PublicKey::from_hex(&k.to_hex()), Ok(k));
    }
}

async fn submit(State(s): State<ApiShared>, body: Bytes) -> Answer {
    let bytes = parse_submit_body(&body)?;
    match ask(&s, |tx| Query::Submit(bytes, tx)).await? {
        Ok(v) => Ok((StatusCode::ACCEPTED, axum::Json(v)).into_response()),
        Err(e) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e)),
    }
}

async fn events(
    State(s): State<ApiShared>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = s.events.upgrade().ok_or_else(ApiError::busy)?.subscribe();
    // A reader too slow for the buffer skips what it missed; the stream
    // ends when the node stops.
    let stream =
        BroadcastStream::new(rx).filter_map(|r| r.ok().map(|j| Ok(Event::default().data(&*j))));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests;
