//! The local side of the frontend sync: walk the build folder without following links out of it, hash
//! every file (MD5 for the ETag, SHA-256 for the metadata) in one streamed pass, and decide each file's
//! Content-Type and Cache-Control. Pure file I/O; no AWS API.

use std::io::Read;
use std::path::{Path, PathBuf};

use globset::GlobSet;
use md5::Md5;
use sha2::{Digest, Sha256};

use super::error::Error;
use crate::config;

/// `Cache-Control` of HTML entry points and manifests: always revalidate.
const NO_CACHE: &str = "no-cache";
/// `Cache-Control` of content-hashed assets: their name changes when their bytes do.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else (favicon, robots.txt, unhashed images): a short cache.
pub const SHORT: &str = "public, max-age=300";

/// One file of the build, hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Path relative to the build folder, `/`-separated (the key without the prefix).
    pub rel: String,
    /// Where to read it from (a link inside the folder is resolved to its target).
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the bytes, lowercase hex (what a single-part ETag holds).
    pub md5: String,
    /// SHA-256 of the bytes, lowercase hex (stored as `x-amz-meta-sha256`).
    pub sha256: String,
}

/// A file found by the walk, not yet hashed.
#[derive(Debug, Clone)]
pub struct Found {
    /// Relative, `/`-separated.
    pub rel: String,
    /// The file to read.
    pub path: PathBuf,
}

/// Walk `dir`: every regular file (hidden ones too) that no `exclude` glob matches. A symbolic link is
/// followed only when its target (resolved fully) stays inside the folder; one that leads out stops the
/// walk with an error before anything is read through it. Returns the files sorted by path, and how many
/// were excluded.
pub fn walk(dir: &Path, workspace: &Path, exclude: &GlobSet) -> Result<(Vec<Found>, usize), Error> {
    let root = resolve_root(dir, workspace)?;
    let mut files = Vec::new();
    let mut excluded = 0usize;
    // `follow_links` descends into linked folders; every link is checked below before its contents are
    // yielded, and walkdir reports link loops as errors instead of looping.
    for entry in walkdir::WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| walk_error(e, &root))?;
        let path = entry.path();
        let rel_path = path.strip_prefix(&root).unwrap_or(path);
        if rel_path.as_os_str().is_empty() {
            continue;
        }
        let Some(rel) = rel_path.to_str() else {
            return Err(Error::NotUtf8 {
                path: path.to_path_buf(),
            });
        };
        let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
        if entry.path_is_symlink() {
            check_link(path, &root)?;
        }
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if exclude.is_match(&rel) {
            excluded += 1;
            continue;
        }
        if !ft.is_file() {
            return Err(Error::Walk {
                path: path.to_path_buf(),
                message: "not a regular file (socket, FIFO or device)".into(),
            });
        }
        files.push(Found {
            rel,
            path: path.to_path_buf(),
        });
    }
    Ok((files, excluded))
}

/// The build folder, resolved fully: it must be a folder inside the workspace.
fn resolve_root(dir: &Path, workspace: &Path) -> Result<PathBuf, Error> {
    let root = dir.canonicalize().map_err(|e| Error::Dir {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    // The config checked the path as written; a link on the way (`build -> /etc`) is caught here.
    if let Ok(ws) = workspace.canonicalize() {
        if !root.starts_with(&ws) {
            return Err(Error::SymlinkEscapes {
                link: dir.to_path_buf(),
                target: root,
                root: ws,
            });
        }
    }
    if !root.is_dir() {
        return Err(Error::Dir {
            dir: dir.to_path_buf(),
            message: "not a directory".into(),
        });
    }
    Ok(root)
}

/// A walk error, naming a link loop as one.
fn walk_error(e: walkdir::Error, root: &Path) -> Error {
    let path = e
        .path()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.to_path_buf());
    let message = match e.loop_ancestor() {
        Some(ancestor) => format!("symbolic link loop back to `{}`", ancestor.display()),
        None => e.to_string(),
    };
    Error::Walk { path, message }
}

/// A symbolic link is followed only when its target (resolved fully) stays inside `root`.
fn check_link(path: &Path, root: &Path) -> Result<(), Error> {
    let target = path.canonicalize().map_err(|e| Error::Walk {
        path: path.to_path_buf(),
        message: format!("broken symbolic link: {e}"),
    })?;
    if !target.starts_with(root) {
        return Err(Error::SymlinkEscapes {
            link: path.to_path_buf(),
            target,
            root: root.to_path_buf(),
        });
    }
    Ok(())
}

/// Hash one file in a single streamed pass (64 KiB at a time, so memory stays flat).
pub fn hash_file(found: &Found) -> Result<LocalFile, Error> {
    let io = |e: std::io::Error| Error::Walk {
        path: found.path.clone(),
        message: e.to_string(),
    };
    let mut f = std::fs::File::open(&found.path).map_err(io)?;
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok(LocalFile {
        rel: found.rel.clone(),
        path: found.path.clone(),
        size,
        md5: hex::encode(md5.finalize()),
        sha256: hex::encode(sha.finalize()),
    })
}

/// Content-Type from the `mime_guess` table, with `charset=utf-8` for text types (the build tools emit
/// UTF-8; without the charset browsers guess, and guess differently).
pub fn content_type(rel: &str) -> String {
    let mime = mime_guess::from_path(rel).first_or_octet_stream();
    let essence = mime.essence_str();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/manifest+json"
                | "application/xml"
                | "image/svg+xml"
        );
    if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

/// The Cache-Control rules: the user's (first match wins), then the built-in defaults.
#[derive(Debug, Clone)]
pub struct CacheRules {
    user: config::CacheRules,
}

impl CacheRules {
    /// The user's rules (compiled by the config) before the defaults.
    pub fn new(user: &config::CacheRules) -> Self {
        CacheRules { user: user.clone() }
    }

    /// The Cache-Control for a path relative to the build folder.
    pub fn for_path(&self, rel: &str) -> String {
        match self.user.find(rel) {
            Some(v) => v.to_string(),
            None => default_cache_control(rel).to_string(),
        }
    }
}

/// The built-in rule for a Create-React-App or Vite build.
fn default_cache_control(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if is_html(rel)
        || matches!(
            name,
            "asset-manifest.json" | "manifest.json" | "service-worker.js" | "sw.js"
        )
    {
        return NO_CACHE;
    }
    let under_assets = rel.starts_with("static/")
        || rel.starts_with("assets/")
        || rel.contains("/static/")
        || rel.contains("/assets/");
    if under_assets && is_content_hashed(name) {
        return IMMUTABLE;
    }
    SHORT
}

/// Is this an HTML page (served as an entry point)?
pub fn is_html(rel: &str) -> bool {
    let lower = rel.to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// Does the file name carry a content hash, as CRA (`main.8a7b6c5d.js`, `logo.3f2a1b9c0d.svg`) and Vite
/// (`index-BXkDg_3z.js`) write them? A token of 8 or more `[A-Za-z0-9_]` characters that has a digit or
/// mixes upper and lower case, so a plain word (`settings`) is not taken for a hash.
fn is_content_hashed(name: &str) -> bool {
    // Drop the extensions (`.js`, `.chunk.js`, `.js.map`) by looking at every token but the first.
    let mut tokens = name.split(['.', '-']);
    tokens.next();
    tokens.any(|t| {
        t.len() >= 8
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && (t.chars().any(|c| c.is_ascii_digit())
                || (t.chars().any(|c| c.is_ascii_uppercase())
                    && t.chars().any(|c| c.is_ascii_lowercase())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for (rel, want) in [
            ("index.html", "text/html; charset=utf-8"),
            (
                "static/js/main.8a7b6c5d.js",
                "text/javascript; charset=utf-8",
            ),
            ("static/css/main.8a7b6c5d.css", "text/css; charset=utf-8"),
            ("manifest.json", "application/json; charset=utf-8"),
            ("logo.svg", "image/svg+xml; charset=utf-8"),
            ("favicon.ico", "image/x-icon"),
            ("static/media/logo.png", "image/png"),
            ("fonts/a.woff2", "font/woff2"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("LICENSE", "application/octet-stream"),
        ] {
            assert_eq!(content_type(rel), want, "{rel}");
        }
    }

    #[test]
    fn default_cache_rules() {
        for (rel, want) in [
            ("index.html", NO_CACHE),
            ("about/index.html", NO_CACHE),
            ("asset-manifest.json", NO_CACHE),
            ("manifest.json", NO_CACHE),
            ("service-worker.js", NO_CACHE),
            ("static/js/main.8a7b6c5d.js", IMMUTABLE),
            ("static/js/787.8a7b6c5d.chunk.js", IMMUTABLE),
            ("static/js/main.8a7b6c5d.js.map", IMMUTABLE),
            (
                "static/media/logo.6ce24c58023cc2f8fd88fe9d219db6c6.svg",
                IMMUTABLE,
            ),
            ("assets/index-BXkDg_3z.js", IMMUTABLE),
            ("assets/index-4f3a2b1c.css", IMMUTABLE),
            ("assets/settings.png", SHORT),
            ("static/readme-settings.txt", SHORT),
            ("main.8a7b6c5d.js", SHORT),
            ("favicon.ico", SHORT),
            ("robots.txt", SHORT),
        ] {
            assert_eq!(default_cache_control(rel), want, "{rel}");
        }
    }

    #[test]
    fn user_rules_come_first() {
        let user = config::CacheRules::new(vec![
            config::CacheRule {
                glob: "static/**".into(),
                value: "max-age=60".into(),
            },
            config::CacheRule {
                glob: "*.html".into(),
                value: "no-store".into(),
            },
        ])
        .unwrap();
        let rules = CacheRules::new(&user);
        assert_eq!(rules.for_path("static/js/main.8a7b6c5d.js"), "max-age=60");
        assert_eq!(rules.for_path("a/b.html"), "no-store");
        assert_eq!(rules.for_path("robots.txt"), SHORT);
    }
}
