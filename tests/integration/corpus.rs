//! The bad-input corpus: every case in `tests/corpus/*.yml` (inputs, an environments file, files to
//! create in the workspace) runs through the real binary against a recording proxy in front of moto. Each
//! must fail with exactly one `::error::` naming the input, a `hint:` after it, and no mutating AWS call.

use harness as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::faults::{FaultPlan, FaultProxy};
use common::{Action, Moto};

/// The environments file of a case that does not bring its own.
const BASE_CONFIG: &str = r#"
region: us-east-1
environments:
  stage:
    cluster: stage-cluster
    service: stage-backend
    container: backend
    ecr-repository: stage-cloudshop-backend
"#;

/// One file the runner creates in the workspace before the run.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    /// Path inside the workspace. `\xNN` escapes give non-UTF-8 bytes.
    path: String,
    /// Text contents.
    #[serde(default)]
    contents: Option<String>,
    /// Make a symlink to this target instead of a file.
    #[serde(default)]
    symlink: Option<String>,
    /// Make a file of this many bytes (spaces).
    #[serde(default)]
    size: Option<u64>,
    /// Make a directory.
    #[serde(default)]
    dir: bool,
}

/// One case.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case injects.
    #[allow(dead_code)]
    about: String,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    /// The environments file's text (default [`BASE_CONFIG`]); `~` writes none.
    #[serde(default = "base_config")]
    environments: Option<String>,
    #[serde(default)]
    files: Vec<FileSpec>,
    /// A substring the `::error` line must contain.
    expect: String,
}

fn base_config() -> Option<String> {
    Some(BASE_CONFIG.to_string())
}

/// A path with `\xNN` escapes turned into raw bytes.
fn raw_path(text: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                bytes.push(v);
                i += 4;
                continue;
            }
        }
        bytes.push(b[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

fn create(workspace: &Path, spec: &FileSpec) {
    let p = workspace.join(raw_path(&spec.path));
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    if let Some(target) = &spec.symlink {
        std::os::unix::fs::symlink(target, &p).expect("symlink");
    } else if spec.dir {
        std::fs::create_dir_all(&p).expect("mkdir");
    } else if let Some(size) = spec.size {
        let f = std::fs::File::create(&p).expect("create");
        // Real bytes, not a sparse file: a reader meets all of them.
        let mut w = std::io::BufWriter::new(f);
        let chunk = vec![b' '; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            std::io::Write::write_all(&mut w, &chunk[..n]).expect("write");
            left -= n as u64;
        }
    } else {
        std::fs::write(&p, spec.contents.as_deref().unwrap_or("")).expect("write");
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// What is wrong with the run of one case, if anything.
fn check(name: &str, case: &Case, proxy: &FaultProxy) -> Option<String> {
    let mut action = Action::new()
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    if let Some(text) = &case.environments {
        action = action.file(".github/cloudshop-deploy.yml", text);
    }
    for spec in &case.files {
        create(action.workspace_path(), spec);
    }
    for (k, v) in &case.inputs {
        action = action.input(k, v);
    }
    let before = proxy.mutating_calls().len();
    let res = action.run();
    let mut problems = Vec::new();
    if res.code == 0 {
        problems.push("exit 0".to_string());
    }
    let errors: Vec<&str> = res
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error"))
        .collect();
    if errors.len() != 1 {
        problems.push(format!("{} `::error` lines", errors.len()));
    }
    if let Some(first) = errors.first() {
        if !first.contains(case.expect.as_str()) {
            problems.push(format!("the error does not contain {:?}", case.expect));
        }
        let after: Vec<&str> = res
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("::error"))
            .collect();
        let error_text = after.first().copied().unwrap_or("");
        // The hint is on the error itself (`%0Ahint:` in the annotation) or a line right after it.
        let hinted = error_text.contains("hint:")
            || after.iter().skip(1).take(3).any(|l| l.contains("hint:"));
        if !hinted {
            problems.push("no `hint:` with the error".to_string());
        }
    }
    let mutating: Vec<String> = proxy.mutating_calls().into_iter().skip(before).collect();
    if !mutating.is_empty() {
        problems.push(format!("mutating calls: {mutating:?}"));
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{name}: {}\n{}\n", problems.join("; "), res.dump()))
    }
}

/// Every case of the corpus, run in order against one moto; all failures are reported together.
#[test]
fn every_bad_input_fails_once_with_a_hint_and_changes_nothing() {
    let moto = Moto::shared();
    let proxy = FaultProxy::start(&moto.endpoint, FaultPlan::none());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 40, "only {} cases", paths.len());
    let mut failures = Vec::new();
    for path in &paths {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(path).expect("read case");
        let case: Case = match yaml_serde::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: bad case file: {e}\n"));
                continue;
            }
        };
        if let Some(f) = check(&name, &case, &proxy) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}
