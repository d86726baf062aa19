//! CloudFront for the frontend sync: check the distribution before any write, and after the sync
//! invalidate the paths of the HTML that changed (hashed assets get new names, so only pages go stale).
//!
//! AWS APIs: CloudFront `GetDistribution`, `CreateInvalidation`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use super::error::Error;
use super::local;
use crate::aws::describe;
use crate::github::commands;

/// More changed HTML paths than this are invalidated as `/*` (CloudFront bills per path).
const INVALIDATION_PATH_CAP: usize = 50;

/// Read the distribution, so a wrong ID fails before any write. A role allowed to invalidate but not to
/// read the distribution is common: that is only a warning.
pub(super) async fn check_distribution(
    cf: &aws_sdk_cloudfront::Client,
    id: &str,
) -> Result<(), Error> {
    match cf.get_distribution().id(id).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_distribution()) =>
        {
            Err(Error::NoSuchDistribution { id: id.to_string() })
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_access_denied()) => {
            commands::emit(
                commands::Level::Warning,
                None,
                &format!("cannot read CloudFront distribution `{id}` (cloudfront:GetDistribution denied); the invalidation will be tried after the sync"),
            );
            Ok(())
        }
        Err(e) => Err(Error::Aws {
            verb: "read",
            object: id.to_string(),
            detail: describe(&e),
        }),
    }
}

/// The CloudFront paths of changed HTML: each uploaded or deleted page, its folder path for an
/// `index.html` (`/` for the root one), `/*` when there are many. Paths are relative to the build
/// folder: a distribution serving a prefix has that prefix as its origin path.
pub(super) fn invalidation_paths<'a>(
    uploaded: impl Iterator<Item = &'a str>,
    deleted: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let mut paths = BTreeSet::new();
    for rel in uploaded.chain(deleted).filter(|r| local::is_html(r)) {
        let encoded = encode_path(rel);
        paths.insert(format!("/{encoded}"));
        if rel == "index.html" {
            paths.insert("/".to_string());
        } else if let Some(folder) = encoded.strip_suffix("/index.html") {
            paths.insert(format!("/{folder}/"));
        }
    }
    if paths.len() > INVALIDATION_PATH_CAP {
        return vec!["/*".to_string()];
    }
    paths.into_iter().collect()
}

/// Percent-encode a relative path for CloudFront (which wants the encoded form), keeping `/`.
fn encode_path(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

/// `CreateInvalidation` of `paths`; returns the invalidation ID.
pub(super) async fn invalidate(
    cf: &aws_sdk_cloudfront::Client,
    distribution_id: &str,
    paths: &[String],
) -> Result<String, Error> {
    use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
    let err = |detail: String| Error::Aws {
        verb: "invalidate",
        object: format!("cloudfront distribution {distribution_id}"),
        detail,
    };
    // Unique per call: CloudFront treats a repeated reference with other paths as an error.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    let batch = InvalidationBatch::builder()
        .caller_reference(format!("cloudshop-deploy-{nanos}"))
        .paths(
            Paths::builder()
                .quantity(paths.len() as i32)
                .set_items(Some(paths.to_vec()))
                .build()
                .map_err(|e| err(e.to_string()))?,
        )
        .build()
        .map_err(|e| err(e.to_string()))?;
    let out = cf
        .create_invalidation()
        .distribution_id(distribution_id)
        .invalidation_batch(batch)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_distribution())
            {
                Error::NoSuchDistribution {
                    id: distribution_id.to_string(),
                }
            } else {
                err(describe(&e))
            }
        })?;
    Ok(out
        .invalidation()
        .map(|i| i.id().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_paths_cover_pages_and_folders() {
        let up = [
            "index.html",
            "static/js/main.1234abcd.js",
            "about/index.html",
            "a b.html",
        ];
        let del = ["old.html", "static/old.css"];
        assert_eq!(
            invalidation_paths(up.into_iter(), del.into_iter()),
            vec![
                "/",
                "/a%20b.html",
                "/about/",
                "/about/index.html",
                "/index.html",
                "/old.html"
            ]
        );
        let many: Vec<String> = (0..60).map(|i| format!("p{i}.html")).collect();
        assert_eq!(
            invalidation_paths(many.iter().map(String::as_str), std::iter::empty()),
            vec!["/*"]
        );
        assert!(invalidation_paths(["x.js"].into_iter(), std::iter::empty()).is_empty());
    }
}
