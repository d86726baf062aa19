//! Secrets out of everything the smoke step keeps or prints: a URL's userinfo is never part of a
//! displayed URL (reqwest turns it into basic auth), and the [`Redactor`] blanks configured header
//! values and URL credentials out of every text kept.
//!
//! APIs: none.

use base64::Engine as _;
use url::Url;

/// Replaces secrets with `***` in any text the step keeps or prints.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Add a secret (empty strings are ignored).
    pub fn add(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first, so a secret containing another is blanked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Add a URL's userinfo: as written, percent-decoded, and as the basic-auth token reqwest derives
    /// from it (a server that echoes request headers would otherwise hand it back).
    pub fn add_userinfo(&mut self, url: &Url) {
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|d| d.to_string())
                .unwrap_or_else(|_| part.to_string())
        };
        let (user, pass) = (url.username(), url.password());
        if user.is_empty() && pass.is_none() {
            return;
        }
        for part in [user, pass.unwrap_or("")] {
            self.add(part);
            self.add(&decode(part));
        }
        let pair = format!("{}:{}", decode(user), pass.map(decode).unwrap_or_default());
        self.add(&base64::engine::general_purpose::STANDARD.encode(pair));
    }

    /// The secrets, for masking.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// `text` with every secret replaced by `***`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// A URL as it may be printed: no userinfo, no fragment.
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redactor_blanks_userinfo_and_values() {
        let mut r = Redactor::default();
        r.add_userinfo(&Url::parse("https://user:pa%20ss@api.example.com/v1").unwrap());
        r.add("token-123");
        r.add("");
        let out = r.apply("user pa ss pa%20ss token-123 token-1234 Basic dXNlcjpwYSBzcw==");
        assert_eq!(out, "*** *** *** *** ***4 Basic ***");
    }
}
