//! The frontend part: bucket, prefix and build folder, and the `exclude` and Cache-Control globs
//! compiled once, so the sync step only matches them. No AWS API.

use std::path::PathBuf;

use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};

use super::command::Command;
use super::error::{invalid, Error};
use super::schema::CacheRule;
use super::sources::{pick, Sources};
use super::validate::{inside_workspace, parse_bool, parse_list};
use crate::steps::frontend::values::Values;

/// The frontend (S3) part of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    /// The build folder (absolute, inside the workspace); `None` in a promotion or a rollback, which
    /// sync from a release artifact.
    pub dir: Option<PathBuf>,
    /// The workspace: the build folder, once its links are resolved, must still be inside it.
    pub workspace: PathBuf,
    pub bucket: String,
    /// Key prefix (no leading `/`, ends with `/` when set).
    pub prefix: String,
    /// Delete objects that are not in the build.
    pub delete: bool,
    /// Files not to upload (and not to delete).
    pub exclude: ExcludeGlobs,
    /// Cache-Control rules from the file, before the defaults.
    pub cache_rules: CacheRules,
    /// CloudFront distribution to invalidate.
    pub cloudfront_distribution_id: Option<String>,
    /// Placeholder substitutions: the environment's `api-url` and `frontend.values`.
    pub values: Values,
    /// Publish the build as a release artifact on deploy, and sync a promotion from the source's
    /// artifact (`frontend.artifact`, default true).
    pub artifact: bool,
}

/// The key glob errors are reported under, for `exclude` and `cache-control` alike.
const GLOB: &str = "frontend glob";

fn glob(g: &str) -> Result<Glob, Error> {
    Glob::new(g).map_err(|e| invalid(GLOB, format!("`{g}`: {e}")))
}

/// Globs of files not to upload (and not to delete), matched against the path relative to the build
/// folder (and against the key without the prefix on the bucket side).
#[derive(Debug, Clone, Default)]
pub struct ExcludeGlobs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl ExcludeGlobs {
    /// Compile `patterns` (globset syntax).
    pub fn new(patterns: Vec<String>) -> Result<Self, Error> {
        let mut b = GlobSetBuilder::new();
        for g in &patterns {
            b.add(glob(g)?);
        }
        let set = b
            .build()
            .map_err(|e| invalid(GLOB, format!("`{}`: {e}", patterns.join(", "))))?;
        Ok(ExcludeGlobs { patterns, set })
    }

    /// The globs as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn set(&self) -> &GlobSet {
        &self.set
    }

    /// Does any glob match `rel`?
    pub fn is_match(&self, rel: &str) -> bool {
        self.set.is_match(rel)
    }
}

/// Two sets are equal when they were compiled from the same globs.
impl PartialEq for ExcludeGlobs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

/// The user's Cache-Control rules, compiled, in order (the first match wins). The built-in defaults
/// that apply when none matches belong to the sync step.
#[derive(Debug, Clone, Default)]
pub struct CacheRules {
    rules: Vec<(CacheRule, GlobMatcher)>,
}

impl CacheRules {
    /// Compile `rules`.
    pub fn new(rules: Vec<CacheRule>) -> Result<Self, Error> {
        let rules = rules
            .into_iter()
            .map(|r| {
                let m = glob(&r.glob)?.compile_matcher();
                Ok((r, m))
            })
            .collect::<Result<_, Error>>()?;
        Ok(CacheRules { rules })
    }

    /// The Cache-Control value of the first rule that matches `rel`.
    pub fn find(&self, rel: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|(_, m)| m.is_match(rel))
            .map(|(r, _)| r.value.as_str())
    }

    /// The rules as written.
    pub fn rules(&self) -> impl Iterator<Item = &CacheRule> {
        self.rules.iter().map(|(r, _)| r)
    }
}

/// Two rule lists are equal when they were compiled from the same rules.
impl PartialEq for CacheRules {
    fn eq(&self, other: &Self) -> bool {
        self.rules().eq(other.rules())
    }
}

/// Build [`Frontend`] from the `frontend*` inputs and the `frontend:` section: `None` when turned off or
/// not configured; a bucket without a folder (or the reverse) is an error.
pub(super) fn build(src: &Sources, command: Command) -> Result<Option<Frontend>, Error> {
    let inputs = src.inputs;
    let frontend_file = src.env.frontend.clone().unwrap_or_default();
    let frontend_on = inputs
        .frontend
        .as_deref()
        .map(|v| parse_bool("frontend", v))
        .transpose()?;
    let bucket = pick(&inputs.frontend_bucket, &frontend_file.bucket);
    let dir = pick(&inputs.frontend_dir, &frontend_file.dir);
    let artifact = frontend_file.artifact.unwrap_or(true);
    // A promotion (and a rollback) syncs a release artifact: no build folder needed.
    let from_artifact = artifact && command != Command::Deploy;
    let (bucket, dir) = match (frontend_on, bucket, dir) {
        (Some(false), _, _) => return Ok(None),
        (_, None, None) if frontend_on.is_none() => return Ok(None),
        (_, None, _) => return Err(src.missing("frontend-bucket")),
        (_, Some(_), None) if !from_artifact => return Err(src.missing("frontend-dir")),
        (_, Some(bucket), dir) => (bucket, dir),
    };
    let prefix = pick(&inputs.frontend_prefix, &frontend_file.prefix)
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}/"))
        .unwrap_or_default();
    let mut exclude = frontend_file.exclude.clone();
    if let Some(v) = &inputs.frontend_exclude {
        exclude.extend(parse_list(v));
    }
    let exclude = ExcludeGlobs::new(exclude)?;
    let cache_rules = CacheRules::new(frontend_file.cache_control.clone())?;
    let values = Values::new(src.env.api_url.as_deref(), &frontend_file.values)
        .map_err(|e| invalid("frontend.values", format!("{e}; {}", e.hint())))?;
    Ok(Some(Frontend {
        dir: dir
            .map(|d| inside_workspace("frontend-dir", &src.ctx.workspace, &d))
            .transpose()?,
        workspace: src.ctx.workspace.clone(),
        bucket,
        prefix,
        delete: match &inputs.frontend_delete {
            Some(v) => parse_bool("frontend-delete", v)?,
            None => frontend_file.delete.unwrap_or(true),
        },
        exclude,
        cache_rules,
        cloudfront_distribution_id: pick(
            &inputs.cloudfront_distribution_id,
            &frontend_file.cloudfront_distribution_id,
        ),
        values,
        artifact,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(glob: &str, value: &str) -> CacheRule {
        CacheRule {
            glob: glob.into(),
            value: value.into(),
        }
    }

    #[test]
    fn globs_compile_once_and_match() {
        let ex =
            ExcludeGlobs::new(vec![".env".into(), "*.map".into(), "uploads/**".into()]).unwrap();
        for (rel, excluded) in [
            (".env", true),
            ("static/js/main.js.map", true),
            ("uploads/a/b.png", true),
            ("index.html", false),
            ("static/js/main.js", false),
        ] {
            assert_eq!(ex.is_match(rel), excluded, "{rel}");
        }
        assert!(!ExcludeGlobs::default().is_match("anything"));
        let rules = CacheRules::new(vec![
            rule("static/**", "max-age=60"),
            rule("*.html", "no-store"),
        ])
        .unwrap();
        for (rel, want) in [
            ("static/js/main.js", Some("max-age=60")),
            ("a/b.html", Some("no-store")),
            ("static/x.html", Some("max-age=60")),
            ("robots.txt", None),
        ] {
            assert_eq!(rules.find(rel), want, "{rel}");
        }
    }

    #[test]
    fn bad_globs_name_the_glob() {
        let err = ExcludeGlobs::new(vec!["ok/**".into(), "a[".into()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid `frontend glob`: `a[`: "),
            "{err}"
        );
        let err = CacheRules::new(vec![rule("{a", "x")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid `frontend glob`: `{a`: "),
            "{err}"
        );
    }
}
