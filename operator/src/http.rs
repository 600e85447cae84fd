//! `/metrics`, `/healthz`, `/readyz` (axum).

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    /// The metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Set once every store holds its first full list.
    pub ready: Arc<AtomicBool>,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stores not synced yet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        server.abort();
        let code: u16 = out[9..12].parse().unwrap();
        (StatusCode::from_u16(code).unwrap(), out)
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let state = HttpState {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
        };
        assert_eq!(
            get(router(state.clone()), "/healthz").await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(router(state.clone()), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(
            get(router(state.clone()), "/readyz").await.0,
            StatusCode::OK
        );
        let (code, body) = get(router(state), "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("netheal_leader 0"));
    }
}
