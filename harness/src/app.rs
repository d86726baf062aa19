//! A miniature CloudShop API on 127.0.0.1 for the smoke tests: `/health`, `/products` (Laptop, Mouse,
//! Keyboard), `/docs`, CORS preflights, and a static website page at `/`, with runtime switches
//! ([`Mode`]) to answer 500, hang, answer slowly, send wrong JSON, omit CORS headers, or flip to failing
//! after some requests. It counts and records every request.
//!
//! Products persist like the real API's: `POST /products` (JSON `name`, `price`, ...) answers 201 with
//! the product and its new `id`, `GET /products/{id}` reads it, `DELETE /products/{id}` answers 204, and
//! `GET /products` lists the seed (Laptop, Mouse, Keyboard) then the created ones. [`Mode::FailWrites`]
//! answers 500 to every POST (a read-only database user); [`Mode::StaleList`] leaves created products
//! out of the list (a write that does not show up); [`Mode::FailDeletes`] answers 500 to every DELETE
//! (a cleanup that fails).
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
    /// `POST` answers 500; reads and deletes are healthy.
    FailWrites,
    /// `GET /products` lists only the seed, not the created products; everything else is healthy.
    StaleList,
    /// `DELETE` answers 500 (and deletes nothing); everything else is healthy: a cleanup that fails.
    FailDeletes,
    /// `percent` of the requests (evenly spread by request number) answer 500; `/health` always
    /// answers, as a bad version that still passes its target group's health check does.
    ErrorShare(u32),
    /// `/products` (and `/products/{id}`) answers 500; everything else is healthy.
    ProductsFail,
}

/// Whether request `n` is one of the `percent` in every hundred that fail, spread evenly.
fn in_share(n: u64, percent: u32) -> bool {
    let p = u64::from(percent.min(100));
    (n + 1) * p / 100 > n * p / 100
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

/// A product created through `POST /products`.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: u64,
    /// The JSON object as stored (with `id`).
    pub json: serde_json::Value,
}

impl Product {
    /// Its `name` field.
    pub fn name(&self) -> &str {
        self.json.get("name").and_then(|n| n.as_str()).unwrap_or("")
    }
}

struct Shared {
    mode: Mutex<Mode>,
    products: Mutex<Vec<Product>>,
    count: AtomicU64,
    next_id: AtomicU64,
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

/// The seed's products, then the created ones (unless `stale`).
fn product_list(shared: &Shared, stale: bool) -> String {
    if stale {
        return PRODUCTS.to_string();
    }
    let created = shared.products.lock().unwrap();
    if created.is_empty() {
        return PRODUCTS.to_string();
    }
    let mut all: Vec<serde_json::Value> = serde_json::from_str(PRODUCTS).unwrap_or_default();
    all.extend(created.iter().map(|p| p.json.clone()));
    serde_json::Value::Array(all).to_string()
}

/// `POST /products`: a JSON object with a string `name` gets the next id (after the seed's 3).
fn create_product(shared: &Shared, body: &[u8]) -> Response {
    let mut v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => {
            return json(
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"detail":"body must be a JSON object"}"#,
            )
        }
    };
    if !v.get("name").is_some_and(|n| n.is_string()) {
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"detail":[{"loc":["body","name"],"msg":"field required"}]}"#,
        );
    }
    let mut products = shared.products.lock().unwrap();
    let id = 4 + shared.next_id.fetch_add(1, Ordering::SeqCst);
    v["id"] = id.into();
    products.push(Product {
        id,
        json: v.clone(),
    });
    json(StatusCode::CREATED, &v.to_string())
}

/// `/products/{id}`: GET reads, DELETE removes; the seed's products are read-only here.
fn product_by_id(shared: &Shared, method: &Method, id: &str) -> Response {
    let not_found = || json(StatusCode::NOT_FOUND, r#"{"detail":"Product not found"}"#);
    let Ok(id) = id.parse::<u64>() else {
        return not_found();
    };
    let mut products = shared.products.lock().unwrap();
    let at = products.iter().position(|p| p.id == id);
    match (method, at) {
        (&Method::GET | &Method::HEAD, Some(i)) => {
            json(StatusCode::OK, &products[i].json.to_string())
        }
        (&Method::DELETE, Some(i)) => {
            products.remove(i);
            StatusCode::NO_CONTENT.into_response()
        }
        (&Method::GET | &Method::HEAD | &Method::DELETE, None) => not_found(),
        _ => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"detail":"Method Not Allowed"}"#,
        ),
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
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
        Mode::FailWrites if method == Method::POST => return failure(500),
        Mode::FailDeletes if method == Method::DELETE => return failure(500),
        Mode::ErrorShare(p) if uri.path() != "/health" && in_share(n, *p) => return failure(500),
        Mode::ProductsFail if uri.path().starts_with("/products") => return failure(500),
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
                json(
                    StatusCode::OK,
                    &product_list(&shared, mode == Mode::StaleList),
                )
            }
        }
        (Method::POST, "/products") => create_product(&shared, &body),
        (_, p) if p.starts_with("/products/") => {
            product_by_id(&shared, &method, &p["/products/".len()..])
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
        products: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
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

    /// The products created through the API and not deleted.
    pub fn products(&self) -> Vec<Product> {
        self.shared.products.lock().unwrap().clone()
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

#[cfg(test)]
mod tests {
    use super::in_share;

    #[test]
    fn an_error_share_is_exact_over_every_hundred_requests() {
        for p in [0, 1, 8, 20, 50, 100] {
            let n = (0..1000).filter(|n| in_share(*n, p)).count();
            assert_eq!(n, 10 * p as usize, "{p}%");
            // Spread: never more than one failure above the share in any window of 10.
            let first_ten = (0..10).filter(|n| in_share(*n, p)).count();
            assert!(first_ten <= (p as usize).div_ceil(10), "{p}%: {first_ten}");
        }
    }
}
