//! `nmt serve`: translation over HTTP. axum on a small tokio runtime takes the requests; one
//! search thread (a thread of the compute pool, so the kernels fork and join from inside it)
//! runs the beam searches, several requests at a time (`batcher`).
//!
//! Routes: `POST /v1/translate`, `GET /v1/models`, `GET /health`, `GET /metrics`, and `GET /`
//! (a page to try the models in a browser). Every error is a JSON object
//! `{"error": {"field": ..., "message": ...}}` with a 4xx or 5xx status.

pub mod api;
pub mod batcher;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use self::api::{parse_request, FieldError, Limits, TranslateResponse};
use self::batcher::{Batching, Job, JobError};
use self::metrics::Metrics;
use crate::config::SearchConfig;
use crate::error::{Error, Result};
use crate::inference::Translator;

/// How `nmt serve` listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    pub limits: Limits,
    /// The largest request body.
    pub max_body_bytes: usize,
    /// A request not answered in this time gets 503.
    pub timeout: Duration,
    pub batching: Batching,
}

/// A model the server translates with and its name (the `--model` value). Every model's
/// translator carries the same default search settings.
pub struct ServedModel {
    pub name: String,
    pub translator: Translator,
}

/// What every request handler sees.
struct AppState {
    names: Vec<String>,
    /// The search settings a request's fields override (the command line's).
    defaults: SearchConfig,
    /// Each model's description for `GET /v1/models`.
    descriptions: Vec<serde_json::Value>,
    limits: Limits,
    timeout: Duration,
    /// The search thread's queue; None once shutting down.
    jobs: Mutex<Option<Sender<Job>>>,
    metrics: Arc<Metrics>,
}

const PAGE: &str = include_str!("page.html");

/// Serves `models` until SIGTERM or Ctrl-C, then finishes the requests in flight and
/// returns. `on_listening` gets the bound address (port 0 picks a free one).
pub fn serve(
    models: Vec<ServedModel>,
    cfg: ServeConfig,
    on_listening: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<()> {
    if models.is_empty() {
        return Err(Error::Usage("give at least one --model".into()));
    }
    let names: Vec<String> = models.iter().map(|m| m.name.clone()).collect();
    let descriptions = models.iter().map(describe).collect();
    let defaults = models[0].translator.search.clone();
    let mut translators: Vec<Translator> = models.into_iter().map(|m| m.translator).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(AppState {
        names,
        defaults,
        descriptions,
        limits: cfg.limits.clone(),
        timeout: cfg.timeout,
        jobs: Mutex::new(Some(tx)),
        metrics: metrics.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Server(format!("cannot start the HTTP runtime: {e}")))?;
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = runtime.block_on(tokio::net::TcpListener::bind(&addr)).map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {addr} ({e}): pick another --port or --host (port 0 picks a free port)"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    let app = router(state.clone(), cfg.max_body_bytes);
    // The HTTP side runs on the runtime's threads; this thread (a compute pool thread)
    // runs the searches until the queue's senders are gone.
    let http = std::thread::spawn(move || {
        runtime.block_on(async move {
            on_listening(bound);
            let shutdown = async move {
                shutdown_signal().await;
                eprintln!("nmt: shutting down after the requests in flight");
            };
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
            // Closing the queue ends the search thread once it has answered what it holds.
            state.jobs.lock().unwrap().take();
            served
        })
    });
    batcher::run(&mut translators, rx, &cfg.batching, &metrics);
    http.join()
        .map_err(|_| Error::Server("the HTTP thread panicked".into()))?
        .map_err(|e| Error::Server(e.to_string()))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
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
}

fn describe(m: &ServedModel) -> serde_json::Value {
    let cfg = &m.translator.model().cfg;
    let s = &m.translator.search;
    json!({
        "name": m.name,
        "layers": cfg.layers,
        "hidden": cfg.hidden,
        "emb": cfg.emb,
        "src_vocab": cfg.src_vocab,
        "tgt_vocab": cfg.tgt_vocab,
        "defaults": {
            "beam": s.beam,
            "max_len_ratio": s.max_len_ratio,
            "min_len": s.min_len,
            "length_penalty": s.length_penalty,
            "length_alpha": s.length_alpha,
        },
    })
}

fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/translate", post(translate))
        .fallback(|| async { error(StatusCode::NOT_FOUND, FieldError::body("no such route; the routes are POST /v1/translate, GET /v1/models, GET /health, GET /metrics and GET /")) })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, FieldError::body("method not allowed on this route: /v1/translate takes POST, the others GET")) })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// A JSON error answer.
fn error(status: StatusCode, e: FieldError) -> Response {
    (status, Json(json!({ "error": e }))).into_response()
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    s.metrics.request("/health", 200);
    Json(json!({ "status": "ok", "models": s.names.len() })).into_response()
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    s.metrics.request("/metrics", 200);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn models(State(s): State<Arc<AppState>>) -> Response {
    s.metrics.request("/v1/models", 200);
    Json(json!({ "models": s.descriptions })).into_response()
}

async fn translate(
    State(s): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let response = answer(&s, body).await;
    s.metrics
        .request("/v1/translate", response.status().as_u16());
    s.metrics.latency(started.elapsed());
    response
}

async fn answer(s: &AppState, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "the body is larger than this server takes (--max-body-bytes): send fewer or shorter texts".to_string()
            } else {
                format!("cannot read the body: {rejection}")
            };
            return error(status, FieldError::body(message));
        }
    };
    let request = match parse_request(&body, &s.names, &s.defaults, &s.limits) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = Job {
        model: request.model,
        texts: request.texts,
        search: request.search,
        deadline: Instant::now() + s.timeout,
        reply,
    };
    // Counted before it is queued: the search thread takes it off when it answers.
    s.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
    let queued = s
        .jobs
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|q| q.send(job).is_ok());
    if !queued {
        s.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            FieldError::body("the server is shutting down"),
        );
    }
    let timed_out = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            FieldError::body(format!(
                "not answered within {:.1} s (--timeout-s): the server is busy or the texts are long; try again or send shorter texts",
                s.timeout.as_secs_f64()
            )),
        )
    };
    match tokio::time::timeout(s.timeout, answer).await {
        Ok(Ok(Ok(results))) => {
            Json(TranslateResponse::new(&s.names[request.model], results)).into_response()
        }
        Ok(Ok(Err(JobError::Expired))) | Err(_) => timed_out(),
        Ok(Ok(Err(JobError::Failed(msg)))) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            FieldError::body(format!("the search failed: {msg}")),
        ),
        Ok(Err(_)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            FieldError::body("the search thread stopped"),
        ),
    }
}
