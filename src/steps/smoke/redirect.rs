//! Where a check's redirects may lead: never from https to http, never to a link-local or cloud metadata
//! address, at most [`MAX_REDIRECTS`] hops, and (when a check sends configured headers) never to another
//! origin.
//!
//! APIs: none (a reqwest redirect policy).

use url::Url;

/// Redirects followed before an attempt counts as failed.
pub const MAX_REDIRECTS: usize = 5;

/// Why a redirect was not followed.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
    #[error("redirect from https to `{0}` not followed: it would downgrade the connection")]
    Downgrade(String),
    #[error("redirect to `{0}` not followed: a link-local or cloud metadata address")]
    Metadata(String),
    #[error("redirect to another origin `{0}` not followed: the checks send configured headers")]
    OtherOrigin(String),
}

/// Link-local (169.254.0.0/16, where the EC2/ECS metadata and credential endpoints live; fe80::/10),
/// AWS's IPv6 metadata address, Alibaba's metadata address and the metadata host names: a smoke check
/// never has a reason to be sent there, and a redirect there is how a server steals credentials.
fn is_metadata_host(url: &Url) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let v4 = |ip: Ipv4Addr| ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200);
    let v6 = |ip: Ipv6Addr| {
        (ip.segments()[0] & 0xffc0) == 0xfe80
            || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            || ip.to_ipv4_mapped().is_some_and(v4)
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => v4(ip),
        Some(url::Host::Ipv6(ip)) => v6(ip),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            matches!(
                d.as_str(),
                "metadata"
                    | "metadata.google.internal"
                    | "instance-data"
                    | "instance-data.ec2.internal"
            )
        }
        None => false,
    }
}

/// Same scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Why `next` (after `previous`, the hops so far) must not be followed, if it must not.
fn refuse_redirect(previous: &[Url], next: &Url, guard_headers: bool) -> Option<RedirectRefused> {
    if previous.len() > MAX_REDIRECTS {
        return Some(RedirectRefused::TooMany);
    }
    if previous.iter().any(|u| u.scheme() == "https") && next.scheme() != "https" {
        return Some(RedirectRefused::Downgrade(next.scheme().to_string()));
    }
    if is_metadata_host(next) {
        return Some(RedirectRefused::Metadata(
            next.host_str().unwrap_or_default().to_string(),
        ));
    }
    let first = previous.first()?;
    // Only an upgrade of the same host to https on its default port keeps the headers (they stay with
    // that host, now encrypted); any other origin would receive them.
    let upgrade = first.scheme() == "http"
        && next.scheme() == "https"
        && first.host_str() == next.host_str()
        && first.port().is_none()
        && next.port().is_none();
    if guard_headers && !same_origin(first, next) && !upgrade {
        return Some(RedirectRefused::OtherOrigin(
            next.origin().ascii_serialization(),
        ));
    }
    None
}

/// Follow at most [`MAX_REDIRECTS`] redirects, never from https to http, never to a link-local or metadata
/// address. With `guard_headers` (a check sends configured headers, which reqwest would forward, unlike
/// `Authorization`), never to another origin (scheme, host, port): the secret would go with it. Only
/// `http://host` -> `https://host` is still followed.
pub fn redirect_policy(guard_headers: bool) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        match refuse_redirect(attempt.previous(), attempt.url(), guard_headers) {
            Some(why) => attempt.error(why),
            None => attempt.follow(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rules() {
        let u = |s: &str| Url::parse(s).unwrap();
        let why = |hops: &[&str], next: &str, guard: bool| {
            let hops: Vec<Url> = hops.iter().map(|h| u(h)).collect();
            refuse_redirect(&hops, &u(next), guard).map(|r| r.to_string())
        };
        let refused = |hops: &[&str], next: &str, guard: bool, want: &str| {
            let got = why(hops, next, guard).unwrap_or_default();
            assert!(
                got.contains(want),
                "{hops:?} -> {next} ({guard}): `{got}` lacks `{want}`"
            );
        };
        // Followed.
        assert_eq!(
            why(&["http://a.example/x"], "http://a.example/y", true),
            None
        );
        assert_eq!(
            why(&["http://a.example/x"], "https://a.example/y", true),
            None
        );
        assert_eq!(
            why(&["https://a.example/x"], "https://b.example/y", false),
            None
        );
        assert_eq!(
            why(&["http://127.0.0.1:8/x"], "http://127.0.0.2:9/", false),
            None
        );
        // Downgrades, also later in the chain and also without headers.
        refused(
            &["https://a.example/x"],
            "http://a.example/y",
            false,
            "from https to `http`",
        );
        refused(
            &["https://a.example/", "https://b.example/"],
            "http://b.example/",
            false,
            "downgrade",
        );
        // Link-local and metadata addresses, whatever the headers.
        for m in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.170.2/v2/credentials",
            "http://[fe80::1%25eth0]/",
            "http://[febf::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:169.254.169.254]/",
            "http://100.100.100.200/",
            "http://metadata.google.internal./",
            "https://instance-data/",
        ] {
            if let Ok(next) = Url::parse(m) {
                assert!(is_metadata_host(&next), "{m}");
                refused(&["http://a.example/"], m, false, "metadata address");
            }
        }
        assert!(!is_metadata_host(&u("http://169.255.0.1/")));
        assert!(!is_metadata_host(&u("http://[fec0::1]/")));
        // Configured headers stay with the first origin.
        refused(
            &["http://a.example/"],
            "http://b.example/",
            true,
            "another origin `http://b.example`",
        );
        refused(
            &["http://a.example/"],
            "http://a.example:8080/",
            true,
            "another origin",
        );
        refused(
            &["http://a.example:80/"],
            "https://a.example:8443/",
            true,
            "another origin",
        );
        refused(
            &["https://a.example/", "https://a.example/2"],
            "https://b.example/",
            true,
            "another origin",
        );
        // Bounded.
        let many = vec!["http://a.example/"; MAX_REDIRECTS + 1];
        refused(&many, "http://a.example/", false, "more than 5 redirects");
    }
}
