//! Pure parsers of single values: booleans, durations, lists, role ARNs, regions, URLs, image tags and
//! workspace paths. Each names the key it was given in its error. No AWS API.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::error::{invalid, Error};

/// Parse a boolean input (`true/false/yes/no/1/0/on/off`, any case).
pub fn parse_bool(key: &'static str, v: &str) -> Result<bool, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        other => Err(invalid(
            key,
            format!("`{other}` is not a boolean (use `true` or `false`)"),
        )),
    }
}

/// The longest duration any setting accepts: no wait in a job needs more (a GitHub-hosted job ends
/// after 6 h), and a deadline far in the future would overflow `Instant` arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parse a humantime duration; a bare number is seconds; `0` is zero; at most [`MAX_DURATION`].
pub fn parse_duration(key: &'static str, v: &str) -> Result<Duration, Error> {
    let v = v.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).map_err(|e| {
            invalid(
                key,
                format!("`{v}` is not a duration ({e}); write e.g. `30m`, `90s`, `1h 30m`"),
            )
        })?,
    };
    if d > MAX_DURATION {
        return Err(invalid(
            key,
            format!("`{v}` is longer than 24h; write at most `24h`"),
        ));
    }
    Ok(d)
}

/// A list input: comma- or newline-separated, blanks dropped.
pub fn parse_list(v: &str) -> Vec<String> {
    v.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Validate an IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path/name>`.
pub fn validate_role_arn(arn: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        invalid("role-to-assume", format!("`{arn}` is not an IAM role ARN ({why}); expected `arn:aws:iam::123456789012:role/NAME`"))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(bad(
            "it must have six `:`-separated parts starting with `arn`",
        ));
    }
    if !matches!(
        parts[1],
        "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b"
    ) {
        return Err(bad("unknown partition"));
    }
    if parts[2] != "iam" || !parts[3].is_empty() {
        return Err(bad("the service must be `iam` with an empty region"));
    }
    if parts[4].len() != 12 || !parts[4].chars().all(|c| c.is_ascii_digit()) {
        return Err(bad("the account must be 12 digits"));
    }
    let Some(name) = parts[5].strip_prefix("role/") else {
        return Err(bad("the resource must start with `role/`"));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
    {
        return Err(bad("the role name has characters IAM does not allow"));
    }
    Ok(())
}

/// The shape of a region name (`us-east-1`, `eu-central-2`); whether the region exists is STS's call.
pub fn validate_region(region: &str) -> Result<(), Error> {
    let ok = region.len() >= 4
        && region.len() <= 32
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.contains('-')
        && !region.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "aws-region",
            format!("`{region}` is not an AWS region (e.g. `us-east-1`)"),
        ))
    }
}

/// An `http://` or `https://` URL.
pub fn validate_url(key: &'static str, v: &str) -> Result<url::Url, Error> {
    let url = url::Url::parse(v.trim()).map_err(|e| invalid(key, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(key, "the URL must start with http:// or https://"));
    }
    Ok(url)
}

/// ECR tag rules: 1-128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn validate_tag(key: &'static str, tag: &str) -> Result<(), Error> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{tag}` is not a valid image tag (1-128 of letters, digits, `_`, `.`, `-`)"),
        ))
    }
}

/// Resolve `dir` against the workspace and refuse anything that leaves it: lexically, and, when the path
/// exists, also after following symlinks (a symlink loop is refused too).
pub fn inside_workspace(key: &'static str, workspace: &Path, dir: &str) -> Result<PathBuf, Error> {
    let candidate = Path::new(dir);
    let joined = if candidate.is_absolute() {
        candidate.to_path_buf()
    } else {
        workspace.join(candidate)
    };
    let mut normal = PathBuf::new();
    for comp in joined.components() {
        match comp {
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(invalid(key, format!("`{dir}` leaves the filesystem root")));
                }
            }
            Component::CurDir => {}
            other => normal.push(other.as_os_str()),
        }
    }
    let mut ws = PathBuf::new();
    for comp in workspace.components() {
        match comp {
            Component::CurDir => {}
            other => ws.push(other.as_os_str()),
        }
    }
    if !normal.starts_with(&ws) {
        return Err(invalid(
            key,
            format!("`{dir}` is outside the workspace `{}`", workspace.display()),
        ));
    }
    match normal.canonicalize() {
        Ok(real) => {
            if let Ok(real_ws) = workspace.canonicalize() {
                if !real.starts_with(&real_ws) {
                    return Err(invalid(
                        key,
                        format!("`{dir}` leads outside the workspace through a symlink"),
                    ));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(invalid(key, format!("`{dir}` cannot be resolved: {e}")));
        }
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(validate_role_arn("arn:aws:iam::746669238399:role/cloudshop-deploy-stage").is_ok());
        assert!(validate_role_arn("arn:aws:iam::746669238399:role/path/to/r").is_ok());
        for bad in [
            "",
            "arn:aws:iam::74666923839:role/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::746669238399:user/x",
            "arn:aws:iam::746669238399:role/",
        ] {
            assert!(validate_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_arn_errors_say_which_part_is_wrong() {
        for (arn, why) in [
            ("arn:aws:iam:746669238399:role/x", "six `:`-separated parts"),
            (
                "nra:aws:iam::746669238399:role/x",
                "six `:`-separated parts",
            ),
            ("arn:aws-mars:iam::746669238399:role/x", "unknown partition"),
            (
                "arn:aws:sts::746669238399:role/x",
                "the service must be `iam`",
            ),
            ("arn:aws:iam:us-east-1:746669238399:role/x", "empty region"),
            ("arn:aws:iam::74666923839a:role/x", "12 digits"),
            (
                "arn:aws:iam::746669238399:user/x",
                "must start with `role/`",
            ),
            (
                "arn:aws:iam::746669238399:role/a b",
                "characters IAM does not allow",
            ),
            ("arn:aws-cn:iam::746669238399:role/a+b=c,d.e@f_g-h", ""),
            ("arn:aws-us-gov:iam::746669238399:role/x", ""),
        ] {
            let got = validate_role_arn(arn);
            if why.is_empty() {
                assert!(got.is_ok(), "{arn}: {got:?}");
            } else {
                let msg = got.unwrap_err().to_string();
                assert!(
                    msg.starts_with(&format!(
                        "invalid `role-to-assume`: `{arn}` is not an IAM role ARN ("
                    )),
                    "{msg}"
                );
                assert!(msg.contains(why), "{arn}: `{msg}` lacks `{why}`");
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("k", "0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("k", "90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("k", "2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("k", "-1s").is_err());
        assert_eq!(parse_duration("k", "24h").unwrap(), MAX_DURATION);
        for huge in ["86401", "25h", "18446744073709551615", "1000years"] {
            let e = parse_duration("wait-timeout", huge)
                .unwrap_err()
                .to_string();
            assert!(e.contains("longer than 24h"), "{huge}: {e}");
        }
    }

    #[test]
    fn duration_table() {
        let secs = Duration::from_secs;
        for (input, want) in [
            (" 15 ", Some(secs(15))),
            ("1h 30m", Some(secs(5400))),
            ("90s", Some(secs(90))),
            ("500ms", Some(Duration::from_millis(500))),
            ("soon", None),
            ("", None),
        ] {
            match (parse_duration("wait-timeout", input), want) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{input:?}"),
                (Err(e), None) => {
                    let msg = e.to_string();
                    let head = format!(
                        "invalid `wait-timeout`: `{}` is not a duration (",
                        input.trim()
                    );
                    assert!(msg.starts_with(&head), "{msg}");
                    assert!(msg.ends_with("write e.g. `30m`, `90s`, `1h 30m`"), "{msg}");
                }
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn booleans() {
        for (input, want) in [
            ("true", Some(true)),
            (" YES ", Some(true)),
            ("1", Some(true)),
            ("On", Some(true)),
            ("false", Some(false)),
            ("no", Some(false)),
            ("0", Some(false)),
            ("OFF", Some(false)),
            ("maybe", None),
            ("", None),
        ] {
            match (parse_bool("dry-run", input), want) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{input:?}"),
                (Err(e), None) => assert_eq!(
                    e.to_string(),
                    format!(
                        "invalid `dry-run`: `{}` is not a boolean (use `true` or `false`)",
                        input.trim().to_ascii_lowercase()
                    )
                ),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn lists() {
        for (input, want) in [
            ("a", vec!["a"]),
            ("a, b\nc", vec!["a", "b", "c"]),
            (" ,\n a ,, ", vec!["a"]),
            ("", vec![]),
        ] {
            assert_eq!(parse_list(input), want, "{input:?}");
        }
    }

    #[test]
    fn tags() {
        for (tag, ok) in [
            ("0123456789abcdef0123456789abcdef01234567", true),
            ("v1.2.3", true),
            ("latest", true),
            ("a_b-c", true),
            (&*"x".repeat(128), true),
            (&*"x".repeat(129), false),
            ("", false),
            (".hidden", false),
            ("-dash", false),
            ("a b", false),
            ("a/b", false),
        ] {
            assert_eq!(validate_tag("image-tag", tag).is_ok(), ok, "{tag:?}");
        }
        assert_eq!(
            validate_tag("extra-tags", "a b").unwrap_err().to_string(),
            "invalid `extra-tags`: `a b` is not a valid image tag (1-128 of letters, digits, `_`, `.`, `-`)"
        );
    }

    #[test]
    fn regions() {
        for (region, ok) in [
            ("us-east-1", true),
            ("eu-central-2", true),
            ("us-gov-west-1", true),
            ("Mars", false),
            ("useast1", false),
            ("-us-east-1", false),
            ("us_east_1", false),
            ("a-b", false),
        ] {
            assert_eq!(validate_region(region).is_ok(), ok, "{region:?}");
        }
    }

    #[test]
    fn urls() {
        for (url, want) in [
            (
                "https://api.example.com/v1",
                Ok("https://api.example.com/v1"),
            ),
            (" http://127.0.0.1:8000 ", Ok("http://127.0.0.1:8000/")),
            (
                "ftp://host",
                Err("the URL must start with http:// or https://"),
            ),
            (
                "api.example.com",
                Err("not a URL (relative URL without a base)"),
            ),
        ] {
            match (validate_url("smoke-url", url), want) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_str(), want),
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), format!("invalid `smoke-url`: {want}"))
                }
                (got, want) => panic!("{url:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn workspace_paths() {
        let ws = Path::new("/github/workspace");
        for (dir, want) in [
            ("frontend/build", Ok("/github/workspace/frontend/build")),
            ("./a/../b", Ok("/github/workspace/b")),
            ("/github/workspace/x", Ok("/github/workspace/x")),
            ("../../etc", Err("is outside the workspace")),
            ("/etc", Err("is outside the workspace")),
            ("../../../../..", Err("leaves the filesystem root")),
        ] {
            match (inside_workspace("frontend-dir", ws, dir), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, PathBuf::from(want), "{dir}"),
                (Err(e), Err(want)) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with("invalid `frontend-dir`: "), "{msg}");
                    assert!(msg.contains(want), "{dir}: `{msg}` lacks `{want}`");
                }
                (got, want) => panic!("{dir}: got {got:?}, want {want:?}"),
            }
        }
    }
}
