//! The axum layer: sockets, body limit, CORS, gzip, panics → 500 JSON, access logs, graceful
//! shutdown. Everything else is [`Api::handle`].

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use super::Api;
use crate::error::{Error, Result};

/// The router serving `api`.
pub fn router(api: Arc<Api>) -> Router {
    let options = api.options().clone();
    let limit = options.max_body_bytes;
    let handler = move |req: Request| {
        let api = Arc::clone(&api);
        async move { handle(api, req, limit).await }
    };
    let cors = cors(&options.cors_origins);
    Router::new()
        .fallback(handler)
        .layer(
            CompressionLayer::new().compress_when(DefaultPredicate::new().and(
                NotForContentType::const_new("application/vnd.apache.parquet"),
            )),
        )
        .layer(tower::util::option_layer(cors))
        .layer(CatchPanicLayer::custom(panic_response))
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([header::LINK, header::HeaderName::from_static("next-token")]);
    Some(if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    })
}

/// A handler panic becomes a 500 JSON answer; the server keeps running.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let reason = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".to_string());
    tracing::error!(%reason, "a request handler panicked");
    let body = serde_json::json!({
        "code": "InternalServerError",
        "description": format!("the request handler failed: {reason}"),
    });
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(api: Arc<Api>, req: Request, limit: usize) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let response = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => api.handle(http::Request::from_parts(parts, bytes)).await,
        Err(_) => {
            let body = serde_json::json!({
                "code": "PayloadTooLarge",
                "description": format!("body: larger than {limit} bytes (or not readable)"),
            });
            let mut r = Response::new(Bytes::from(body.to_string()));
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    };
    tracing::info!(
        target: "earthcatalog::access",
        %method,
        %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        bytes = response.body().len(),
        "request"
    );
    response.map(Body::from)
}

/// Serve `api` on `listener` until `shutdown` completes, reloading the catalog in the
/// background; requests in flight finish before it returns.
pub async fn serve(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "the listener".into());
    let reloader = tokio::spawn(Arc::clone(&api).reload_loop());
    let result = axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await;
    reloader.abort();
    result.map_err(|e| Error::io(addr, e))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
