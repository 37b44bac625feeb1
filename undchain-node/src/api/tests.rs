//! The router without a node: routing, input checks and error answers,
//! and that the OpenAPI document names every route. Lookups answered by a
//! running node are tested end to end in `tests/it/api.rs`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;

async fn call(r: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect(body);
    v["error"].as_str().expect(body).to_owned()
}

/// A router over a feed no node drives: lookups are never answered.
fn idle() -> (Router, Feed) {
    let (feed, shared) = feed::channel(None);
    (router(shared), feed)
}

#[tokio::test]
async fn bad_path_parameters_get_400_naming_what_is_wrong() {
    let (r, _feed) = idle();
    for (uri, says) in [
        ("/blocks/abc", "height \"abc\""),
        ("/blocks/-1", "height \"-1\""),
        (
            "/blocks/99999999999999999999999",
            "expected a decimal integer",
        ),
        ("/payouts/x", "period \"x\""),
        ("/jobs/zz", "job id \"zz\": expected 64 hex digits"),
        ("/jobs/00", "expected 64 hex digits"),
        ("/accounts/nothex", "account key \"nothex\""),
    ] {
        let (status, body) = call(&r, "GET", uri, "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(error_of(&body).contains(says), "{uri}: {body}");
    }
}

#[tokio::test]
async fn bad_request_bodies_get_400_and_never_reach_the_node() {
    let (r, mut feed) = idle();
    for (body, says) in [
        ("", "body:"),
        ("{", "body:"),
        ("[]", "body:"),
        ("{\"envelope\": 5}", "body:"),
        ("{\"envelope\": \"ab\", \"extra\": 1}", "unknown field"),
        ("{\"envelope\": \"abc\"}", "odd number of hex digits"),
        ("{\"envelope\": \"zz\"}", "not a hex digit"),
        ("{\"envelope\": \"\"}", "empty"),
    ] {
        let (status, resp) = call(&r, "POST", "/requests", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert!(error_of(&resp).contains(says), "{body}: {resp}");
    }
    // Nothing was queued for the node task.
    let queued = tokio::time::timeout(Duration::ZERO, feed.next_query()).await;
    assert!(queued.is_err());
}

#[tokio::test]
async fn unknown_routes_and_periods_get_404_json() {
    let (r, _feed) = idle();
    let (status, body) = call(&r, "GET", "/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("no such route"));
    let (status, body) = call(&r, "GET", "/payouts/3", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error_of(&body).contains("period 3 was not settled"),
        "{body}"
    );
    let (status, body) = call(&r, "GET", "/blocks/0", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("keeps no blocks"), "{body}");
}

#[tokio::test]
async fn a_full_query_queue_answers_503_instead_of_waiting() {
    let (_feed, shared) = feed::channel(None);
    // Fill the queue; no node task drains it.
    for _ in 0..feed::QUERY_QUEUE {
        let (tx, _rx) = oneshot::channel();
        shared
            .queries
            .try_send(Query::Job(JobId(Hash32([0; 32])), tx))
            .unwrap();
    }
    let r = router(shared);
    let job = "00".repeat(32);
    let key = undchain_types::SigningKey::from_seed([1; 32])
        .public()
        .to_hex();
    for uri in [format!("/jobs/{job}"), format!("/accounts/{key}")] {
        let (status, body) = call(&r, "GET", &uri, "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert!(error_of(&body).contains("busy"), "{body}");
    }
}

#[tokio::test]
async fn status_metrics_explorer_and_document_are_served() {
    let (r, _feed) = idle();
    let (status, body) = call(&r, "GET", "/status", "").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    for k in [
        "chain_id",
        "node_id",
        "role",
        "height",
        "latest_block_hash",
        "block_time_us",
        "round",
        "peers",
    ] {
        assert!(v.get(k).is_some(), "{k} missing from {body}");
    }
    let (status, body) = call(&r, "GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("undchain_consensus_height"), "{body}");
    let (status, body) = call(&r, "GET", "/", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("new EventSource(\"/events\")"));
    let (status, body) = call(&r, "GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, OPENAPI);
}

/// Every route the router serves is in the document, and every path of
/// the document is served (not the fallback's 404).
#[tokio::test]
async fn the_openapi_document_names_exactly_the_served_routes() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    let paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served = [
        "/",
        "/openapi.json",
        "/metrics",
        "/status",
        "/blocks",
        "/blocks/{height}",
        "/jobs/{id}",
        "/accounts/{key}",
        "/validators",
        "/partners",
        "/payouts/{period}",
        "/requests",
        "/events",
    ];
    let mut a = paths.clone();
    a.sort();
    let mut b: Vec<String> = served.iter().map(|s| s.to_string()).collect();
    b.sort();
    assert_eq!(a, b);
    let (r, _feed) = idle();
    for p in paths {
        if p == "/events" || p == "/requests" {
            continue;
        }
        let uri = p
            .replace("{height}", "0")
            .replace("{period}", "0")
            .replace("{id}", "x")
            .replace("{key}", "x");
        let (status, body) = call(&r, "GET", &uri, "").await;
        assert!(
            !body.contains("no such route"),
            "{p}: {status} {body} (documented, not served)"
        );
    }
}

#[test]
fn hex_decodes_both_cases_and_refuses_the_rest() {
    assert_eq!(decode_hex("00fFaB").unwrap(), vec![0, 255, 171]);
    assert!(decode_hex("0").is_err());
    assert!(decode_hex("0g").is_err());
    assert!(decode_hex("é0").is_err());
}
