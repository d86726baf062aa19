//! The frontend sync against moto S3 (and moto CloudFront), through the library functions, with a
//! recording proxy on loopback in front of moto so the order of PUTs and DELETEs is observed on the wire.

use harness as common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use cloudshop_deploy::config::{CacheRule, CacheRules, ExcludeGlobs, Frontend};
use cloudshop_deploy::report::{Report, Section, Timeline};
use cloudshop_deploy::steps::frontend::{self, Error, Stage, SyncReport};
use cloudshop_deploy::steps::Clients;
use common::Moto;

// ---------------------------------------------------------------- recording proxy

/// One event seen by the proxy, in order: a request arriving, or its answer leaving.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Start(String),
    End(String),
}

/// A reverse proxy on 127.0.0.1 in front of moto that logs `METHOD path?query` when each request
/// arrives and again when moto's answer is back; optionally it strips the `<ETag>` elements from
/// `ListObjectsV2` answers, as some S3-compatible servers list none.
struct Proxy {
    endpoint: String,
    log: Arc<Mutex<Vec<Ev>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Not joined: a keep-alive connection of the SDK may hold the graceful shutdown open; the thread
        // ends with the test process.
        drop(self.thread.take());
    }
}

impl Proxy {
    /// Start it on its own thread and runtime (tests run inside a tokio runtime, which may not block).
    fn start(upstream: &str) -> Proxy {
        Proxy::start_with(upstream, false)
    }

    /// [`Proxy::start`], with listings that carry no ETag when `strip_list_etags`.
    fn start_with(upstream: &str, strip_list_etags: bool) -> Proxy {
        use axum::{body::Body, extract::Request, response::Response, Router};
        let log: Arc<Mutex<Vec<Ev>>> = Arc::default();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let upstream = upstream.to_string();
        let l = log.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let http = reqwest::Client::new();
                let app = Router::new().fallback(move |req: Request| {
                    let (l, http, upstream) = (l.clone(), http.clone(), upstream.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let pq = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default();
                        let label = format!("{} {}", parts.method, without_x_id(&pq));
                        l.lock().unwrap().push(Ev::Start(label.clone()));
                        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                        let mut fwd = http.request(parts.method.clone(), format!("{upstream}{pq}"));
                        for (k, v) in &parts.headers {
                            if !matches!(
                                k.as_str(),
                                "host" | "content-length" | "transfer-encoding"
                            ) {
                                fwd = fwd.header(k, v);
                            }
                        }
                        let resp = fwd.body(body).send().await.unwrap();
                        let mut out = Response::builder().status(resp.status().as_u16());
                        for (k, v) in resp.headers() {
                            if !matches!(
                                k.as_str(),
                                "content-length" | "transfer-encoding" | "connection"
                            ) {
                                out = out.header(k, v);
                            }
                        }
                        let mut bytes = resp.bytes().await.unwrap();
                        if strip_list_etags
                            && parts.method == axum::http::Method::GET
                            && pq.contains("list-type=2")
                        {
                            bytes = without_etags(&String::from_utf8_lossy(&bytes)).into();
                        }
                        l.lock().unwrap().push(Ev::End(label));
                        out.body(Body::from(bytes)).unwrap()
                    }
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let port = port_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn events(&self) -> Vec<Ev> {
        self.log.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Requests that change something (anything but GET and HEAD).
    fn writes(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Start(l) if !l.starts_with("GET ") && !l.starts_with("HEAD ") => Some(l),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------- helpers

/// The XML without its `<ETag>...</ETag>` elements.
fn without_etags(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<ETag>") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("</ETag>")
            .map_or(rest.len(), |e| start + e + "</ETag>".len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `path?query` without the SDK's `x-id=Operation` parameter, for readable labels.
fn without_x_id(pq: &str) -> String {
    let Some((path, query)) = pq.split_once('?') else {
        return pq.to_string();
    };
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("x-id="))
        .collect();
    if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

const BUCKET: common::TestName = common::TestName("cloudshop-stage-web");
/// The sync state object (bookkeeping, not part of the website).
const STATE: &str = ".cloudshop-deploy/sync-state.json";

async fn clients_via(endpoint: &str) -> Clients {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .http_client(cloudshop_deploy::aws::http_client())
        .load()
        .await;
    Clients::new(sdk, true)
}

fn write(dir: &Path, rel: &str, contents: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, contents).unwrap();
}

/// A small Create-React-App build.
fn cra_build(dir: &Path) {
    write(
        dir,
        "index.html",
        br#"<!doctype html><html><head><script defer src="/static/js/main.8a7b6c5d.js"></script><link href="/static/css/main.1f2e3d4c.css" rel="stylesheet"></head><body><div id="root"></div></body></html>"#,
    );
    write(dir, "about.html", b"<!doctype html><p>about</p>");
    write(
        dir,
        "asset-manifest.json",
        br#"{"files":{"main.js":"/static/js/main.8a7b6c5d.js"}}"#,
    );
    write(dir, "manifest.json", br#"{"short_name":"CloudShop"}"#);
    write(dir, "favicon.ico", &[0u8, 0, 1, 0, 1, 0, 16, 16]);
    write(dir, "robots.txt", b"User-agent: *\nDisallow:\n");
    write(
        dir,
        "static/js/main.8a7b6c5d.js",
        b"console.log('cloudshop');",
    );
    write(dir, "static/css/main.1f2e3d4c.css", b"body{margin:0}");
    write(
        dir,
        "static/media/logo.6ce24c58023cc2f8.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    );
    write(
        dir,
        ".well-known/security.txt",
        b"Contact: mailto:security@example.com\n",
    );
}

/// A copy of `src` in a new folder: every file gets a new mtime.
fn fresh_copy(src: &Path) -> tempfile::TempDir {
    let dst = tempfile::tempdir().unwrap();
    for e in walkdir::WalkDir::new(src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(src).unwrap();
        if e.file_type().is_file() {
            write(
                dst.path(),
                rel.to_str().unwrap(),
                &std::fs::read(e.path()).unwrap(),
            );
        }
    }
    dst
}

fn cfg(dir: &Path) -> Frontend {
    Frontend {
        dir: Some(dir.to_path_buf()),
        workspace: dir.parent().unwrap().to_path_buf(),
        bucket: BUCKET.into(),
        prefix: String::new(),
        delete: true,
        exclude: Default::default(),
        cache_rules: Default::default(),
        cloudfront_distribution_id: None,
        values: Default::default(),
        artifact: false,
    }
}

async fn create_bucket(moto: &Moto) {
    moto.s3()
        .await
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
}

/// Seed `key` in the bucket as another tool would (no metadata of ours).
async fn put_foreign(moto: &Moto, key: &str, body: &'static [u8]) {
    moto.s3()
        .await
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap();
}

/// `prepare` as run.rs calls it: the step's section goes into the run's report on success.
async fn prepare(
    clients: &Clients,
    cfg: &Frontend,
    report: &mut Report,
) -> Result<frontend::Prepared, Error> {
    let mut sr = SyncReport::default();
    let prepared =
        frontend::prepare(clients, cfg, report.dry_run, &mut sr, &mut report.phases).await?;
    report.frontend = Some(sr);
    Ok(prepared)
}

/// prepare + apply + finalize (a release that passed), with no run report: the step's own section.
async fn sync(clients: &Clients, cfg: &Frontend) -> Result<SyncReport, Error> {
    let (mut sr, mut timeline) = (SyncReport::default(), Timeline::default());
    let prepared = frontend::prepare(clients, cfg, false, &mut sr, &mut timeline).await?;
    let synced = frontend::apply(clients, cfg, prepared, &mut sr, &mut timeline).await?;
    frontend::finalize(clients, cfg, synced, &mut sr, &mut timeline).await;
    assert_eq!(sr.unfinished, Vec::<String>::new());
    let phases: Vec<&str> = timeline.phases().iter().map(|p| p.name.as_str()).collect();
    assert!(
        phases.starts_with(&["frontend plan", "frontend sync"]),
        "{phases:?}"
    );
    Ok(sr)
}

async fn keys(moto: &Moto) -> Vec<String> {
    let out = moto
        .s3()
        .await
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

fn outputs(sr: &SyncReport) -> std::collections::BTreeMap<String, String> {
    let mut out = Vec::new();
    sr.outputs(&mut out);
    out.into_iter().collect()
}

fn position(events: &[Ev], ev: &Ev) -> usize {
    events
        .iter()
        .position(|e| e == ev)
        .unwrap_or_else(|| panic!("{ev:?} not seen in {events:#?}"))
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_uploads_everything_with_the_right_headers() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    let clients = clients_via(&moto.endpoint).await;

    let sr = sync(&clients, &cfg(build.path())).await.unwrap();
    assert_eq!(sr.stage, Stage::Done);
    assert_eq!(sr.uploaded, 10, "{sr:#?}");
    assert_eq!(sr.unchanged, 0);
    let o = outputs(&sr);
    assert_eq!(o["frontend-uploaded"], "10");
    assert_eq!(o["frontend-deleted"], "0");
    assert_eq!(o["frontend-unchanged"], "0");
    let total: u64 = walkdir::WalkDir::new(build.path())
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(o["frontend-bytes"], total.to_string());

    let s3 = moto.s3().await;
    for (key, ct, cc) in [
        ("index.html", "text/html; charset=utf-8", "no-cache"),
        ("about.html", "text/html; charset=utf-8", "no-cache"),
        (
            "asset-manifest.json",
            "application/json; charset=utf-8",
            "no-cache",
        ),
        (
            "manifest.json",
            "application/json; charset=utf-8",
            "no-cache",
        ),
        ("favicon.ico", "image/x-icon", "public, max-age=300"),
        (
            "robots.txt",
            "text/plain; charset=utf-8",
            "public, max-age=300",
        ),
        (
            "static/js/main.8a7b6c5d.js",
            "text/javascript; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        (
            "static/css/main.1f2e3d4c.css",
            "text/css; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        (
            "static/media/logo.6ce24c58023cc2f8.svg",
            "image/svg+xml; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        (
            ".well-known/security.txt",
            "text/plain; charset=utf-8",
            "public, max-age=300",
        ),
    ] {
        let h = s3
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_type(), Some(ct), "{key}");
        assert_eq!(h.cache_control(), Some(cc), "{key}");
        let bytes = std::fs::read(build.path().join(key)).unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(h.metadata().unwrap().get("sha256"), Some(&sha), "{key}");
        let body = s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            body.body.collect().await.unwrap().into_bytes().as_ref(),
            &bytes[..],
            "{key}"
        );
    }

    // The summary lists the changes.
    let mut md = String::new();
    sr.summary(&mut md);
    assert!(md.contains("`static/js/main.8a7b6c5d.js` | new"), "{md}");
    assert!(md.contains("| 10 | 0 | 0 | 0 |"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_upload_only_what_changed_and_index_html_goes_last() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let proxy = Proxy::start(&moto.endpoint);
    let clients = clients_via(&proxy.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());

    // First sync: every PUT is over before index.html's PUT starts, and index.html is the last PUT of a
    // website file; only the sync state is written after it.
    sync(&clients, &cfg(build.path())).await.unwrap();
    let state_put = format!("PUT /{BUCKET}/{STATE}");
    let ev: Vec<Ev> = proxy.events();
    let index_start = position(&ev, &Ev::Start(format!("PUT /{BUCKET}/index.html")));
    let index_end = position(&ev, &Ev::End(format!("PUT /{BUCKET}/index.html")));
    let state_start = position(&ev, &Ev::Start(state_put.clone()));
    assert!(index_end < state_start, "{ev:#?}");
    let puts: Vec<&Ev> = ev
        .iter()
        .filter(
            |e| matches!(e, Ev::End(l) | Ev::Start(l) if l.starts_with("PUT ") && *l != state_put),
        )
        .collect();
    assert_eq!(puts.len(), 20, "{ev:#?}");
    for e in &ev[index_start + 1..] {
        let ok = match e {
            Ev::End(l) => l.ends_with("/index.html") || *l == state_put || l.starts_with("GET "),
            Ev::Start(l) => *l == state_put || l.starts_with("GET "),
        };
        assert!(ok, "after index.html's PUT: {e:?}\n{ev:#?}");
    }
    for e in &ev[..index_start] {
        if let Ev::Start(l) = e {
            if l.starts_with("PUT ") {
                assert!(
                    ev[..index_start].contains(&Ev::End(l.clone())),
                    "{l} was not done before index.html"
                );
            }
        }
    }
    let about_end = position(&ev, &Ev::End(format!("PUT /{BUCKET}/about.html")));
    let js_end = position(
        &ev,
        &Ev::End(format!("PUT /{BUCKET}/static/js/main.8a7b6c5d.js")),
    );
    let about_start = position(&ev, &Ev::Start(format!("PUT /{BUCKET}/about.html")));
    assert!(js_end < about_start && about_end < index_start, "{ev:#?}");

    // Same build, fresh copy (new mtimes): nothing uploaded, nothing written.
    proxy.clear();
    let copy = fresh_copy(build.path());
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!(
        (sr.uploaded, sr.deleted, sr.unchanged, sr.bytes),
        (0, 0, 10, 0),
        "{sr:#?}"
    );
    assert_eq!(outputs(&sr)["frontend-uploaded"], "0");
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
    // ... and, thanks to the sync state, without a HEAD per file: one listing and one state read.
    let mut reads: Vec<String> = proxy
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Start(l) => Some(l),
            Ev::End(_) => None,
        })
        .collect();
    reads.sort();
    assert_eq!(
        reads,
        vec![
            format!("GET /{BUCKET}/.cloudshop-deploy/sync-state.json"),
            format!("GET /{BUCKET}/?list-type=2&prefix="),
        ]
    );

    // One file changed: one upload.
    proxy.clear();
    write(
        copy.path(),
        "robots.txt",
        b"User-agent: *\nDisallow: /admin\n",
    );
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!(
        (sr.uploaded, sr.deleted, sr.unchanged),
        (1, 0, 9),
        "{sr:#?}"
    );
    assert_eq!(sr.changes[0].key, "robots.txt");
    assert_eq!(sr.changes[0].action, frontend::Action::Changed);
    // The previous bytes are kept aside first (a server-side copy), so a rollback can put them back;
    // once the release is final, the copies go.
    assert_eq!(
        proxy.writes(),
        vec![
            format!("PUT /{BUCKET}/.cloudshop-deploy/previous/robots.txt"),
            format!("PUT /{BUCKET}/robots.txt"),
            format!("PUT /{BUCKET}/.cloudshop-deploy/previous/.cloudshop-deploy/sync-state.json"),
            state_put.clone(),
            format!("POST /{BUCKET}/?delete"),
        ]
    );

    // A new bundle, a new index.html, the old bundle removed: new asset, then index.html, then delete.
    proxy.clear();
    std::fs::remove_file(copy.path().join("static/js/main.8a7b6c5d.js")).unwrap();
    write(
        copy.path(),
        "static/js/main.99aa88bb.js",
        b"console.log('cloudshop v2');",
    );
    write(
        copy.path(),
        "index.html",
        b"<!doctype html><script src=\"/static/js/main.99aa88bb.js\"></script>",
    );
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!(
        (sr.uploaded, sr.deleted, sr.unchanged),
        (2, 1, 8),
        "{sr:#?}"
    );
    let ev = proxy.events();
    let js_end = position(
        &ev,
        &Ev::End(format!("PUT /{BUCKET}/static/js/main.99aa88bb.js")),
    );
    let index_start = position(&ev, &Ev::Start(format!("PUT /{BUCKET}/index.html")));
    let index_end = position(&ev, &Ev::End(format!("PUT /{BUCKET}/index.html")));
    let delete_start = position(&ev, &Ev::Start(format!("POST /{BUCKET}/?delete")));
    let delete_end = position(&ev, &Ev::End(format!("POST /{BUCKET}/?delete")));
    let state_start = position(&ev, &Ev::Start(state_put.clone()));
    // Nothing of the previous release is deleted before the release is final (after the state).
    assert!(js_end < index_start && index_end < delete_start, "{ev:#?}");
    assert!(state_start < delete_end, "{ev:#?}");
    let k = keys(&moto).await;
    assert!(
        !k.contains(&"static/js/main.8a7b6c5d.js".to_string()),
        "{k:?}"
    );
    assert!(
        k.contains(&"static/js/main.99aa88bb.js".to_string()),
        "{k:?}"
    );
    assert!(k.contains(&STATE.to_string()), "{k:?}");
    assert_eq!(k.len(), 11);

    // Without the state object (lost, or written by an older version), HEAD requests decide, and
    // nothing is uploaded.
    moto.s3()
        .await
        .delete_object()
        .bucket(BUCKET)
        .key(STATE)
        .send()
        .await
        .unwrap();
    proxy.clear();
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!(
        (sr.uploaded, sr.deleted, sr.unchanged),
        (0, 0, 10),
        "{sr:#?}"
    );
    let heads = proxy
        .events()
        .iter()
        .filter(|e| matches!(e, Ev::Start(l) if l.starts_with("HEAD ")))
        .count();
    assert_eq!(heads, 10);
    assert_eq!(proxy.writes(), vec![state_put.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cache_rule_is_applied_to_unchanged_bytes() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let clients = clients_via(&moto.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    sync(&clients, &cfg(build.path())).await.unwrap();

    let mut c = cfg(build.path());
    c.cache_rules = CacheRules::new(vec![CacheRule {
        glob: "*.txt".into(),
        value: "public, max-age=60".into(),
    }])
    .unwrap();
    let sr = sync(&clients, &c).await.unwrap();
    assert_eq!((sr.uploaded, sr.unchanged), (2, 8), "{sr:#?}");
    assert!(
        sr.changes
            .iter()
            .all(|c| c.action == frontend::Action::Metadata),
        "{sr:#?}"
    );
    let s3 = moto.s3().await;
    for key in ["robots.txt", ".well-known/security.txt"] {
        let h = s3
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(h.cache_control(), Some("public, max-age=60"));
    }
    // And the same rule again changes nothing.
    let sr = sync(&clients, &c).await.unwrap();
    assert_eq!((sr.uploaded, sr.unchanged), (0, 10));

    // An object changed out of band to another Content-Type is put right. S3 lists LastModified to the
    // second, and that is what tells the sync state's entry is stale: let a second pass first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s3.put_object()
        .bucket(BUCKET)
        .key("manifest.json")
        .body(ByteStream::from_static(br#"{"short_name":"CloudShop"}"#))
        .content_type("text/plain")
        .cache_control("no-cache")
        .send()
        .await
        .unwrap();
    let sr = sync(&clients, &c).await.unwrap();
    assert_eq!(sr.uploaded, 1, "{sr:#?}");
    let h = s3
        .head_object()
        .bucket(BUCKET)
        .key("manifest.json")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("application/json; charset=utf-8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_out_of_the_folder_is_refused_before_any_request() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let proxy = Proxy::start(&moto.endpoint);
    let clients = clients_via(&proxy.endpoint).await;
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "id_rsa", b"PRIVATE KEY");
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());

    // A link inside the folder is fine: its target is uploaded under the link's name.
    std::os::unix::fs::symlink(
        build.path().join("robots.txt"),
        build.path().join("robots2.txt"),
    )
    .unwrap();
    let sr = sync(&clients, &cfg(build.path())).await.unwrap();
    assert_eq!(sr.uploaded, 11);
    proxy.clear();

    // A link to a file outside, and one to a folder outside.
    for (name, target) in [
        ("secret.txt", outside.path().join("id_rsa")),
        ("static/ext", outside.path().to_path_buf()),
    ] {
        let link = build.path().join(name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut report = Report::new("deploy", "stage", false);
        let err = prepare(&clients, &cfg(build.path()), &mut report)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::SymlinkEscapes { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("refusing to follow") && msg.contains(name),
            "{msg}"
        );
        assert!(!cloudshop_deploy::Diagnose::hint(&err).is_empty());
        assert!(proxy.events().is_empty(), "{:?}", proxy.events());
        std::fs::remove_file(&link).unwrap();
    }
    // The build folder itself a link out of the workspace.
    let workspace = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(build.path(), workspace.path().join("build")).unwrap();
    let mut c = cfg(&workspace.path().join("build"));
    c.workspace = workspace.path().to_path_buf();
    let mut report = Report::new("deploy", "stage", false);
    let err = prepare(&clients, &c, &mut report).await.unwrap_err();
    assert!(matches!(err, Error::SymlinkEscapes { .. }), "{err}");
    assert!(proxy.events().is_empty(), "{:?}", proxy.events());
    // ... while a link that stays inside the workspace is fine.
    let inner = workspace.path().join("web/build");
    std::fs::create_dir_all(&inner).unwrap();
    cra_build(&inner);
    std::fs::remove_file(workspace.path().join("build")).unwrap();
    std::os::unix::fs::symlink(&inner, workspace.path().join("build")).unwrap();
    prepare(&clients, &c, &mut report).await.unwrap();

    assert!(!keys(&moto)
        .await
        .iter()
        .any(|k| k.contains("secret") || k.contains("id_rsa")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_one_clear_error_before_any_write() {
    let moto = Moto::shared();
    let proxy = Proxy::start(&moto.endpoint);
    let clients = clients_via(&proxy.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    let mut report = Report::new("deploy", "stage", false);
    let err = prepare(&clients, &cfg(build.path()), &mut report)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("failed to list `s3://{BUCKET}`: NoSuchBucket: the bucket does not exist")
    );
    assert!(cloudshop_deploy::Diagnose::hint(&err).contains("create the bucket"));
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
    assert!(!proxy.events().is_empty(), "the bucket was not even listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_and_writes_nothing() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    put_foreign(&moto, "old.js", b"old").await;
    let proxy = Proxy::start(&moto.endpoint);
    let clients = clients_via(&proxy.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());

    // run.rs stops after `prepare` in a dry run.
    let mut report = Report::new("deploy", "stage", true);
    let plan = prepare(&clients, &cfg(build.path()), &mut report)
        .await
        .unwrap()
        .plan;
    assert_eq!(plan.uploads().count(), 10);
    assert_eq!(plan.deletes, vec!["old.js".to_string()]);
    assert_eq!(
        plan.entry.as_ref().map(|u| u.key.as_str()),
        Some("index.html")
    );
    let sr = report.frontend.as_ref().unwrap();
    assert_eq!(sr.stage, Stage::Planned);
    assert_eq!((sr.uploaded, sr.deleted), (10, 1));
    let md = report.summary_markdown();
    assert!(
        md.contains("dry run: the plan") && md.contains("| to upload | to delete |"),
        "{md}"
    );
    assert!(md.contains("`old.js` | delete"), "{md}");
    assert_eq!(outputs(sr)["frontend-uploaded"], "10");
    assert_eq!(outputs(sr)["frontend-deleted"], "1");

    // A real run that stops after `prepare` (the backend failed, say) reports nothing done.
    let mut report = Report::new("deploy", "stage", false);
    prepare(&clients, &cfg(build.path()), &mut report)
        .await
        .unwrap();
    let sr = report.frontend.as_ref().unwrap();
    assert_eq!(outputs(sr)["frontend-uploaded"], "0");
    assert_eq!(outputs(sr)["frontend-deleted"], "0");
    assert!(report.summary_markdown().contains("not synced"));
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
    assert_eq!(keys(&moto).await, vec!["old.js".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_files_are_neither_uploaded_nor_deleted_and_the_prefix_is_respected() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    for key in ["web/uploads/user.png", "web/stale.css", "other/keep.txt"] {
        put_foreign(&moto, key, b"x").await;
    }
    let clients = clients_via(&moto.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    write(build.path(), ".env", b"SECRET=1");
    write(build.path(), "static/js/main.8a7b6c5d.js.map", b"{}");
    let mut c = cfg(build.path());
    c.prefix = "web/".into();
    c.exclude =
        ExcludeGlobs::new(vec![".env".into(), "*.map".into(), "uploads/**".into()]).unwrap();
    let sr = sync(&clients, &c).await.unwrap();
    assert_eq!(
        (sr.uploaded, sr.deleted, sr.excluded),
        (10, 1, 2),
        "{sr:#?}"
    );
    let k = keys(&moto).await;
    assert!(k.contains(&"web/uploads/user.png".to_string()), "{k:?}");
    assert!(k.contains(&"other/keep.txt".to_string()), "{k:?}");
    assert!(k.contains(&"web/index.html".to_string()), "{k:?}");
    assert!(
        k.contains(&"web/.well-known/security.txt".to_string()),
        "hidden files are uploaded: {k:?}"
    );
    assert!(
        !k.iter()
            .any(|k| k.ends_with(".env") || k.ends_with(".map") || k == "web/stale.css"),
        "{k:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_objects_compare_by_sha256() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let clients = clients_via(&moto.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    // Above the multipart threshold: 17 MiB of varied bytes.
    let big: Vec<u8> = (0..17u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(build.path(), "static/media/video.0a1b2c3d.mp4", &big);

    let sr = sync(&clients, &cfg(build.path())).await.unwrap();
    assert_eq!(sr.uploaded, 11);
    let s3 = moto.s3().await;
    let h = s3
        .head_object()
        .bucket(BUCKET)
        .key("static/media/video.0a1b2c3d.mp4")
        .send()
        .await
        .unwrap();
    assert!(
        h.e_tag().unwrap().contains('-'),
        "not multipart: {:?}",
        h.e_tag()
    );
    assert_eq!(h.content_length(), Some(big.len() as i64));
    assert_eq!(h.content_type(), Some("video/mp4"));
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("static/media/video.0a1b2c3d.mp4")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes().as_ref() == &big[..]);

    // Fresh copy: the multipart ETag is not an MD5, the stored SHA-256 proves it unchanged.
    let copy = fresh_copy(build.path());
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!((sr.uploaded, sr.unchanged), (0, 11), "{sr:#?}");

    // Same size, one byte different: the SHA-256 differs, so it is uploaded.
    let mut big2 = big.clone();
    big2[12345] ^= 0xff;
    write(copy.path(), "static/media/video.0a1b2c3d.mp4", &big2);
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!((sr.uploaded, sr.unchanged), (1, 10), "{sr:#?}");
    assert_eq!(sr.changes[0].action, frontend::Action::Changed);

    // A multipart object uploaded by someone else (no SHA-256): its bytes cannot be proven equal. Its
    // multipart ETag equals ours (same parts); only LastModified, listed to the second, differs.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mp = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("static/media/video.0a1b2c3d.mp4")
        .content_type("video/mp4")
        .cache_control("public, max-age=31536000, immutable")
        .send()
        .await
        .unwrap();
    let id = mp.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, chunk) in big2.chunks(8 * 1024 * 1024).enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(BUCKET)
            .key("static/media/video.0a1b2c3d.mp4")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("static/media/video.0a1b2c3d.mp4")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!((sr.uploaded, sr.unchanged), (1, 10), "{sr:#?}");
    // ... and after that upload it carries the SHA-256, so the next run skips it.
    let sr = sync(&clients, &cfg(copy.path())).await.unwrap();
    assert_eq!((sr.uploaded, sr.unchanged), (0, 11), "{sr:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_build_is_refused() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    put_foreign(&moto, "index.html", b"x").await;
    let clients = clients_via(&moto.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    let mut report = Report::new("deploy", "stage", false);
    let err = prepare(&clients, &cfg(build.path()), &mut report)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyBuild { .. }), "{err}");
    let err = prepare(&clients, &cfg(&build.path().join("nope")), &mut report)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Dir { .. }), "{err}");
    write(build.path(), STATE, b"{}");
    let err = prepare(&clients, &cfg(build.path()), &mut report)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Reserved { .. }), "{err}");
    assert_eq!(keys(&moto).await, vec!["index.html".to_string()]);
}

/// A distribution in moto's CloudFront, in front of the bucket.
async fn create_distribution(moto: &Moto) -> String {
    use aws_sdk_cloudfront::types::{
        DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig,
        ViewerProtocolPolicy,
    };
    let cf = aws_sdk_cloudfront::Client::new(&moto.sdk_config().await);
    let origin = Origin::builder()
        .id("web")
        .domain_name(format!("{BUCKET}.s3.amazonaws.com"))
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .unwrap();
    let config = DistributionConfig::builder()
        .caller_reference(moto.name("distribution"))
        .comment("cloudshop")
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .unwrap(),
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("web")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = cf
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .unwrap();
    out.distribution().unwrap().id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudfront_invalidates_the_changed_html_after_the_sync() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let dist = create_distribution(&moto).await;
    let proxy = Proxy::start(&moto.endpoint);
    let clients = clients_via(&proxy.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    let mut c = cfg(build.path());
    c.cloudfront_distribution_id = Some(dist.clone());
    sync(&clients, &c).await.unwrap();

    // A change of index.html and an asset: `/` and `/index.html` are invalidated, after the uploads.
    proxy.clear();
    write(build.path(), "index.html", b"<!doctype html><p>v2</p>");
    write(build.path(), "robots.txt", b"User-agent: *\n");
    let sr = sync(&clients, &c).await.unwrap();
    let id = sr.invalidation_id.clone().expect("an invalidation");
    assert_eq!(sr.invalidated_paths, vec!["/", "/index.html"]);
    let ev = proxy.events();
    let index_end = position(&ev, &Ev::End(format!("PUT /{BUCKET}/index.html")));
    let inv_start = ev
        .iter()
        .position(|e| matches!(e, Ev::Start(l) if l.starts_with("POST /2020-05-31/distribution/") && l.ends_with("/invalidation")))
        .unwrap_or_else(|| panic!("no CreateInvalidation in {ev:#?}"));
    assert!(index_end < inv_start, "{ev:#?}");
    let cf = aws_sdk_cloudfront::Client::new(&moto.sdk_config().await);
    let got = cf
        .get_invalidation()
        .distribution_id(&dist)
        .id(&id)
        .send()
        .await
        .unwrap();
    let mut paths = got
        .invalidation()
        .unwrap()
        .invalidation_batch()
        .unwrap()
        .paths()
        .unwrap()
        .items()
        .to_vec();
    paths.sort();
    assert_eq!(paths, vec!["/", "/index.html"]);
    let mut md = String::new();
    sr.summary(&mut md);
    assert!(
        md.contains(&format!("CloudFront invalidation `{id}`")),
        "{md}"
    );

    // No HTML changed: no invalidation.
    write(build.path(), "robots.txt", b"User-agent: *\nDisallow:\n");
    let sr = sync(&clients, &c).await.unwrap();
    assert_eq!(sr.uploaded, 1);
    assert!(sr.invalidation_id.is_none());

    // A wrong distribution ID fails in `prepare`, before any write.
    proxy.clear();
    write(build.path(), "robots.txt", b"changed again");
    c.cloudfront_distribution_id = Some("E0000000000000".into());
    let mut report = Report::new("deploy", "stage", false);
    let err = prepare(&clients, &c, &mut report).await.unwrap_err();
    assert!(matches!(err, Error::NoSuchDistribution { .. }), "{err}");
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
}

/// A build made once with placeholders: each environment's bucket gets its own API URL, content hashes and
/// ETags are of the substituted bytes, binary files are untouched, and the build folder stays as built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_are_replaced_with_the_environments_values() {
    use cloudshop_deploy::steps::frontend::values::Values;
    use md5::Digest as _;
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let clients = clients_via(&moto.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    let js = "fetch(\"__CLOUDSHOP_API_URL__/products\");const dsn=\"__CLOUDSHOP_SENTRY_DSN__\"";
    write(
        build.path(),
        "index.html",
        b"<script src=\"/static/js/main.1a2b.js\"></script>",
    );
    write(build.path(), "static/js/main.1a2b.js", js.as_bytes());
    write(build.path(), "logo.png", &[0x89, b'P', b'N', b'G', 1, 2, 3]);
    let mut cfg = cfg(build.path());
    let values = std::collections::BTreeMap::from([(
        "SENTRY_DSN".to_string(),
        "https://k@sentry.example/1".to_string(),
    )]);
    cfg.values = Values::new(
        Some("http://prod-alb-564047131.us-east-1.elb.amazonaws.com"),
        &values,
    )
    .unwrap();
    sync(&clients, &cfg).await.unwrap();

    let got = moto
        .s3()
        .await
        .get_object()
        .bucket(BUCKET)
        .key("static/js/main.1a2b.js")
        .send()
        .await
        .unwrap();
    let etag = got
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    let body = got.body.collect().await.unwrap().into_bytes();
    let want = "fetch(\"http://prod-alb-564047131.us-east-1.elb.amazonaws.com/products\");const dsn=\"https://k@sentry.example/1\"";
    assert_eq!(String::from_utf8_lossy(&body), want);
    assert_eq!(etag, hex::encode(md5::Md5::digest(want.as_bytes())));
    let png = moto
        .s3()
        .await
        .get_object()
        .bucket(BUCKET)
        .key("logo.png")
        .send()
        .await
        .unwrap();
    assert_eq!(
        png.body.collect().await.unwrap().into_bytes().as_ref(),
        &[0x89, b'P', b'N', b'G', 1, 2, 3]
    );
    assert_eq!(
        std::fs::read_to_string(build.path().join("static/js/main.1a2b.js")).unwrap(),
        js,
        "the build folder is never written"
    );
}

/// A placeholder with no value is refused in the preflight, naming the file and the placeholder, and
/// nothing is written to the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_placeholder_is_refused_before_any_write() {
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let proxy = Proxy::start(&moto.endpoint);
    let clients = clients_via(&proxy.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    write(
        build.path(),
        "static/js/config.js",
        b"window.CDN='__CLOUDSHOP_CDN_URL__'",
    );
    let mut report = Report::new("deploy", "stage", false);
    let err = prepare(&clients, &cfg(build.path()), &mut report)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "placeholder `__CLOUDSHOP_CDN_URL__` is left in `static/js/config.js` after substitution"
    );
    assert!(cloudshop_deploy::Diagnose::hint(&err).contains("frontend.values"));
    assert!(proxy.writes().is_empty(), "{:?}", proxy.writes());
    assert!(keys(&moto).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_without_etags_falls_back_to_head_not_to_a_reupload() {
    assert_eq!(
        without_etags("<C><Key>a</Key><ETag>&quot;x&quot;</ETag><Size>1</Size></C>"),
        "<C><Key>a</Key><Size>1</Size></C>"
    );
    let moto = Moto::shared();
    create_bucket(&moto).await;
    let proxy = Proxy::start_with(&moto.endpoint, true);
    let clients = clients_via(&proxy.endpoint).await;
    let build = tempfile::tempdir().unwrap();
    cra_build(build.path());
    let first = sync(&clients, &cfg(build.path())).await.unwrap();
    assert_eq!(first.uploaded, first.files);
    let listed = proxy
        .events()
        .iter()
        .any(|e| matches!(e, Ev::End(l) if l.starts_with("GET ") && l.contains("list-type=2")));
    assert!(listed, "{:#?}", proxy.events());

    // Same build, fresh copy (new mtimes): the listing cannot confirm anything, HEAD does; nothing written.
    proxy.clear();
    let copy = fresh_copy(build.path());
    let again = sync(&clients, &cfg(copy.path())).await.unwrap();
    let ev = proxy.events();
    assert_eq!(proxy.writes(), Vec::<String>::new(), "{ev:#?}");
    assert_eq!(
        (again.uploaded, again.unchanged),
        (0, again.files),
        "{ev:#?}"
    );
    let heads = ev
        .iter()
        .filter(|e| matches!(e, Ev::Start(l) if l.starts_with("HEAD ")))
        .count();
    assert_eq!(heads, again.files, "{ev:#?}");
}
