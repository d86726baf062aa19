//! A miniature CloudShop API on 127.0.0.1 for the smoke tests: `/health`, `/products` (Laptop, Mouse,
//! Keyboard), `/docs`, CORS preflights, and a static website page at `/`, with runtime switches
//! ([`Mode`]) to answer 500, hang, answer slowly, send wrong JSON, omit CORS headers, or flip to failing
//! after some requests. It counts and records every request.
//!
//! Two ways to run it:
//! - [`App::start`] serves on a runtime thread of its own, like the other servers of the harness: for
//!   tests that run the real binary (`Action::run` blocks while it runs).
//! - [`App::start_local`] (async) serves on the caller's tokio runtime, so a test with a paused clock
//!   (`#[tokio::test(start_paused = true)]`) sees the app's slowness and hangs in virtual time.
//!
//! The server is stopped when the handle is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// How the app behaves from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Everything answers as the real CloudShop API does.
    Healthy,
    /// Every request is answered with this status (and a short text body).
    Status(u16),
    /// Every request is accepted and never answered.
    Hang,
    /// Every request is answered correctly after this delay (tokio time: virtual under a paused clock).
    Slow(Duration),
    /// `/products` answers 200 with a JSON object instead of the array.
    WrongJson,
    /// No `Access-Control-*` headers on any reply (preflights still answer 200).
    NoCors,
    /// `Access-Control-Allow-Origin` is always this origin, whatever the request's `Origin`.
    CorsOrigin(String),
    /// The first `n` requests (counted from 0 since the app started) are healthy; every later one
    /// answers 500.
    FailAfter(u64),
    /// Requests numbered `from..to` (counted from 0 since the app started) answer 500; the others
    /// are healthy: a blip.
    FailBetween(u64, u64),
    /// Every request is answered 500 with its own headers in the body (as a debug page might leak
    /// them): proves the report never repeats a secret it was sent.
    EchoHeaders,
}

/// One request the app received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its number, from 0.
    pub n: u64,
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    mode: Mutex<Mode>,
    count: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

enum Runner {
    Task(tokio::task::JoinHandle<()>),
    Thread(Option<tokio::runtime::Runtime>),
}

/// A running app; stopped on drop.
pub struct App {
    base_url: String,
    shared: Arc<Shared>,
    runner: Runner,
}

/// The products of the seed's API.
const PRODUCTS: &str = r#"[{"id":1,"name":"Laptop","price":999.99},{"id":2,"name":"Mouse","price":29.99},{"id":3,"name":"Keyboard","price":79.99}]"#;

const INDEX_HTML: &str = "<!doctype html><html><head><title>CloudShop</title></head><body><div id=\"root\"></div><script src=\"/static/js/main.js\"></script></body></html>";

const DOCS_HTML: &str = "<!DOCTYPE html><html><head><title>CloudShop API - Swagger UI</title></head><body><div id=\"swagger-ui\"></div></body></html>";

fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

fn json(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn html(body: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn failure(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "text/plain")],
        "Internal Server Error",
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let n = shared.count.fetch_add(1, Ordering::SeqCst);
    shared.seen.lock().unwrap().push(Seen {
        n,
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).to_string(),
                )
            })
            .collect(),
    });
    let mode = shared.mode.lock().unwrap().clone();
    match &mode {
        Mode::Hang => std::future::pending::<()>().await,
        Mode::Slow(d) => tokio::time::sleep(*d).await,
        Mode::Status(code) => return failure(*code),
        Mode::FailAfter(k) if n >= *k => return failure(500),
        Mode::FailBetween(a, b) if (*a..*b).contains(&n) => return failure(500),
        Mode::EchoHeaders => {
            let dump: Vec<String> = headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            return (StatusCode::INTERNAL_SERVER_ERROR, dump.join("\n")).into_response();
        }
        _ => {}
    }
    let origin = headers.get(header::ORIGIN).cloned();
    let path = uri.path();
    let mut resp = match (method.clone(), path) {
        (Method::OPTIONS, _) => {
            if origin.is_some() && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
                let mut r = (StatusCode::OK, "OK").into_response();
                if !matches!(mode, Mode::NoCors) {
                    let h = r.headers_mut();
                    h.insert(
                        header::ACCESS_CONTROL_ALLOW_METHODS,
                        HeaderValue::from_static("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
                    );
                    h.insert(
                        header::ACCESS_CONTROL_MAX_AGE,
                        HeaderValue::from_static("600"),
                    );
                }
                r
            } else {
                json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    r#"{"detail":"Method Not Allowed"}"#,
                )
            }
        }
        (Method::GET | Method::HEAD, "/health") => json(StatusCode::OK, r#"{"status":"healthy"}"#),
        (Method::GET | Method::HEAD, "/products") => {
            if mode == Mode::WrongJson {
                json(
                    StatusCode::OK,
                    r#"{"detail":"products moved to /v2/products"}"#,
                )
            } else {
                json(StatusCode::OK, PRODUCTS)
            }
        }
        (Method::GET | Method::HEAD, "/docs") => html(DOCS_HTML),
        (Method::GET | Method::HEAD, "/" | "/index.html") => html(INDEX_HTML),
        (Method::GET | Method::HEAD, "/loop") => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/loop")
            .body(Body::empty())
            .unwrap_or_default(),
        // To the same app under another host name (`localhost`): a cross-host redirect.
        (Method::GET | Method::HEAD, "/away") => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .replace("127.0.0.1", "localhost");
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, format!("http://{host}/health"))
                .body(Body::empty())
                .unwrap_or_default()
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"detail":"Not Found"}"#),
    };
    if let Some(origin) = origin {
        let allow = match &mode {
            Mode::NoCors => None,
            Mode::CorsOrigin(o) => HeaderValue::from_str(o).ok(),
            _ => Some(origin),
        };
        if let Some(v) = allow {
            resp.headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            resp.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    resp
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        mode: Mutex::new(Mode::Healthy),
        count: AtomicU64::new(0),
        seen: Mutex::new(Vec::new()),
    })
}

impl App {
    /// Serve on the current tokio runtime (a paused clock applies to the app too).
    pub async fn start_local() -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("addr").port();
        let shared = shared();
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        App {
            base_url: format!("http://127.0.0.1:{port}"),
            shared,
            runner: Runner::Task(task),
        }
    }

    /// Serve on a runtime thread of its own (for tests that block on the real binary).
    pub fn start() -> App {
        let shared = shared();
        let (port, rt) = super::serve_on_own_thread(router(shared.clone()));
        App {
            base_url: format!("http://127.0.0.1:{port}"),
            shared,
            runner: Runner::Thread(Some(rt)),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The website page (`BASE/`), served as `text/html`.
    pub fn website_url(&self) -> String {
        format!("{}/", self.base_url)
    }

    /// Change how the app behaves from the next request on.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// Requests received so far for a path (query ignored).
    pub fn requests_to(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.uri.split('?').next() == Some(path))
            .count()
    }

    /// Every request received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Task(t) => t.abort(),
            // Hung requests would keep a graceful shutdown waiting: drop everything at once.
            Runner::Thread(rt) => {
                if let Some(rt) = rt.take() {
                    rt.shutdown_background();
                }
            }
        }
    }
}
