//! Per-environment values in a frontend built once. The build carries placeholders
//! (`REACT_APP_API_URL=__CLOUDSHOP_API_URL__ npm run build`); before the sync, each text file's
//! `__CLOUDSHOP_<KEY>__` is replaced with the environment's value (`API_URL` is the environment's
//! `api-url`, the rest come from `frontend.values`). File names stay as they are, and the content hashes
//! and ETags are of the substituted bytes, because the sync hashes the staged copy. A placeholder left
//! over is an error before any upload: the site would call `__CLOUDSHOP_API_URL__` as a host.
//!
//! Pure file I/O; no AWS API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The key whose value is the environment's `api-url`.
pub const API_URL_KEY: &str = "API_URL";

/// Extensions of the files that are searched and substituted; everything else is copied byte for byte.
pub const TEXT_EXTENSIONS: [&str; 9] = [
    "html",
    "js",
    "mjs",
    "css",
    "json",
    "map",
    "txt",
    "svg",
    "webmanifest",
];

const PREFIX: &str = "__CLOUDSHOP_";
const SUFFIX: &str = "__";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`frontend.values` key `{0}` is not made of A-Z, 0-9 and _")]
    BadKey(String),
    #[error("`frontend.values` key `{0}` is reserved: its value is the environment's `api-url`")]
    ReservedKey(String),
    #[error("placeholder `{placeholder}` is left in `{file}` after substitution")]
    Leftover { file: String, placeholder: String },
    #[error("failed to stage `{file}`: {message}")]
    Io { file: String, message: String },
}

impl Error {
    pub fn hint(&self) -> String {
        match self {
            Error::BadKey(_) | Error::ReservedKey(_) => {
                "name the value like `SENTRY_DSN`; the build uses `__CLOUDSHOP_SENTRY_DSN__`".into()
            }
            Error::Leftover { placeholder, .. } => format!(
                "add the value to the environment (`api-url` for `__CLOUDSHOP_API_URL__`, else \
                 `frontend.values`), or remove `{placeholder}` from the build"
            ),
            Error::Io { .. } => "check that the runner's temporary folder is writable".into(),
        }
    }
}

/// The placeholder of a key: `API_URL` -> `__CLOUDSHOP_API_URL__`.
pub fn placeholder(key: &str) -> String {
    format!("{PREFIX}{key}{SUFFIX}")
}

/// A key is `[A-Z0-9_]+`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Is this file searched for placeholders (by its extension, case-insensitive)?
pub fn is_text(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| TEXT_EXTENSIONS.iter().any(|t| t.eq_ignore_ascii_case(ext)))
}

/// The substitutions of one environment, checked: `(placeholder, value)`, longest placeholder first so a
/// key that is a prefix of another (`API` and `API_URL`) never eats the longer one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(Vec<(String, String)>);

impl Values {
    /// From the environment's `api-url` (if any) and its `frontend.values`.
    pub fn new(api_url: Option<&str>, values: &BTreeMap<String, String>) -> Result<Values, Error> {
        let mut pairs = Vec::new();
        for (k, v) in values {
            if !valid_key(k) {
                return Err(Error::BadKey(k.clone()));
            }
            if k == API_URL_KEY {
                return Err(Error::ReservedKey(k.clone()));
            }
            pairs.push((placeholder(k), v.clone()));
        }
        if let Some(url) = api_url {
            pairs.push((
                placeholder(API_URL_KEY),
                url.trim_end_matches('/').to_string(),
            ));
        }
        pairs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(Values(pairs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text with every known placeholder replaced, and how many were.
    pub fn substitute(&self, text: &str) -> (String, usize) {
        let mut out = text.to_string();
        let mut n = 0;
        for (p, v) in &self.0 {
            let count = out.matches(p.as_str()).count();
            if count > 0 {
                n += count;
                out = out.replace(p.as_str(), v);
            }
        }
        (out, n)
    }
}

/// The first `__CLOUDSHOP_<KEY>__` in `text`, if any.
pub fn leftover(text: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = text[from..].find(PREFIX) {
        let start = from + i;
        let rest = &text[start + PREFIX.len()..];
        let key_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        // The key is at least one character, closed by the first `__` after it.
        let run = &rest[..key_len];
        if let Some(end) = run.get(1..).and_then(|r| r.find(SUFFIX)) {
            return Some(format!("{PREFIX}{}", &run[..end + 1 + SUFFIX.len()]));
        }
        from = start + PREFIX.len();
    }
    None
}

/// What staging did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staged {
    /// `(relative path, file to read)`: a substituted copy under the staging folder, else the original.
    pub files: Vec<(String, PathBuf)>,
    /// Files whose content changed.
    pub substituted_files: usize,
    /// Placeholders replaced in all.
    pub replacements: usize,
}

/// Substitute placeholders in the build's text files (`(relative path, file to read)`), writing each
/// changed file under `dest` (the build itself is never written: it may be staged again for another
/// environment). Fails on the first leftover placeholder, naming the file; nothing has been uploaded
/// then. Text that is not UTF-8 is left as it is (it cannot hold an ASCII placeholder the build tool
/// wrote).
pub fn stage(files: Vec<(String, PathBuf)>, dest: &Path, values: &Values) -> Result<Staged, Error> {
    let io = |file: &str, e: std::io::Error| Error::Io {
        file: file.to_string(),
        message: e.to_string(),
    };
    let mut staged = Staged::default();
    for (rel, src) in files {
        if !is_text(&rel) {
            staged.files.push((rel, src));
            continue;
        }
        let bytes = std::fs::read(&src).map_err(|e| io(&rel, e))?;
        let Ok(text) = String::from_utf8(bytes) else {
            staged.files.push((rel, src));
            continue;
        };
        let (out, n) = values.substitute(&text);
        if let Some(p) = leftover(&out) {
            return Err(Error::Leftover {
                file: rel,
                placeholder: p,
            });
        }
        if n == 0 {
            staged.files.push((rel, src));
            continue;
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(&rel, e))?;
        }
        std::fs::write(&target, out).map_err(|e| io(&rel, e))?;
        staged.substituted_files += 1;
        staged.replacements += n;
        staged.files.push((rel, target));
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(api: Option<&str>, kv: &[(&str, &str)]) -> Values {
        let map = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Values::new(api, &map).unwrap()
    }

    #[test]
    fn keys() {
        for (k, ok) in [
            ("API_URL", true),
            ("SENTRY_DSN", true),
            ("X1", true),
            ("", false),
            ("api_url", false),
            ("A-B", false),
            ("A B", false),
            ("Ä", false),
        ] {
            assert_eq!(valid_key(k), ok, "{k:?}");
        }
        let bad = BTreeMap::from([("lower".to_string(), "x".to_string())]);
        assert!(matches!(Values::new(None, &bad), Err(Error::BadKey(_))));
        let reserved = BTreeMap::from([("API_URL".to_string(), "x".to_string())]);
        assert!(matches!(
            Values::new(None, &reserved),
            Err(Error::ReservedKey(_))
        ));
    }

    #[test]
    fn text_files_by_extension() {
        for (rel, text) in [
            ("index.html", true),
            ("static/js/main.3f2a.js", true),
            ("assets/app.MJS", true),
            ("static/css/main.css", true),
            ("asset-manifest.json", true),
            ("static/js/main.js.map", true),
            ("robots.txt", true),
            ("logo.svg", true),
            ("site.webmanifest", true),
            ("logo.png", false),
            ("font.woff2", false),
            ("README", false),
            ("js/noext", false),
        ] {
            assert_eq!(is_text(rel), text, "{rel}");
        }
    }

    #[test]
    fn substitution_table() {
        let v = values(
            Some("http://stage-alb-458962299.us-east-1.elb.amazonaws.com/"),
            &[
                ("API", "short"),
                ("SENTRY_DSN", "https://k@sentry.example/1"),
            ],
        );
        let cases = [
            (
                r#"fetch("__CLOUDSHOP_API_URL__/products")"#,
                r#"fetch("http://stage-alb-458962299.us-east-1.elb.amazonaws.com/products")"#,
                1,
            ),
            (
                "__CLOUDSHOP_API__ and __CLOUDSHOP_API_URL__",
                "short and http://stage-alb-458962299.us-east-1.elb.amazonaws.com",
                2,
            ),
            (
                "dsn=__CLOUDSHOP_SENTRY_DSN__",
                "dsn=https://k@sentry.example/1",
                1,
            ),
            ("nothing here", "nothing here", 0),
        ];
        for (input, want, n) in cases {
            assert_eq!(v.substitute(input), (want.to_string(), n), "{input}");
        }
    }

    #[test]
    fn leftovers_are_found() {
        for (text, want) in [
            ("a __CLOUDSHOP_API_URL__ b", Some("__CLOUDSHOP_API_URL__")),
            ("__CLOUDSHOP_X__", Some("__CLOUDSHOP_X__")),
            ("__CLOUDSHOP_TRAILING___", Some("__CLOUDSHOP_TRAILING__")),
            ("__CLOUDSHOP_X__ABC", Some("__CLOUDSHOP_X__")),
            ("__CLOUDSHOP_ and __CLOUDSHOP_lower__", None),
            ("__CLOUDSHOP___", None),
            ("plain", None),
            ("x__CLOUDSHOP_ __CLOUDSHOP_KEY__", Some("__CLOUDSHOP_KEY__")),
        ] {
            assert_eq!(leftover(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn stage_copies_only_substituted_files_and_refuses_leftovers() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let png = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 3, b'_', b'_'];
        std::fs::write(
            src.path().join("index.html"),
            "<script>window.API='__CLOUDSHOP_API_URL__'</script>",
        )
        .unwrap();
        std::fs::write(src.path().join("logo.png"), png).unwrap();
        std::fs::write(src.path().join("robots.txt"), "User-agent: *").unwrap();
        let files: Vec<(String, PathBuf)> = ["index.html", "logo.png", "robots.txt"]
            .iter()
            .map(|r| (r.to_string(), src.path().join(r)))
            .collect();
        let v = values(
            Some("http://prod-alb-564047131.us-east-1.elb.amazonaws.com"),
            &[],
        );
        let staged = stage(files.clone(), dest.path(), &v).unwrap();
        assert_eq!((staged.substituted_files, staged.replacements), (1, 1));
        assert_eq!(
            staged.files,
            vec![
                ("index.html".to_string(), dest.path().join("index.html")),
                ("logo.png".to_string(), src.path().join("logo.png")),
                ("robots.txt".to_string(), src.path().join("robots.txt")),
            ],
            "only the substituted file is a copy"
        );
        assert_eq!(
            std::fs::read_to_string(dest.path().join("index.html")).unwrap(),
            "<script>window.API='http://prod-alb-564047131.us-east-1.elb.amazonaws.com'</script>"
        );
        assert_eq!(std::fs::read(src.path().join("logo.png")).unwrap(), png);
        // The source build is untouched: it may be staged again for another environment.
        assert!(std::fs::read_to_string(src.path().join("index.html"))
            .unwrap()
            .contains("__CLOUDSHOP_API_URL__"));

        std::fs::write(src.path().join("robots.txt"), "x __CLOUDSHOP_CDN_URL__").unwrap();
        let err = stage(files, tempfile::tempdir().unwrap().path(), &v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "placeholder `__CLOUDSHOP_CDN_URL__` is left in `robots.txt` after substitution"
        );
    }
}
