//! The JSONPath subset a capture needs: one value from a reply, named by `$`, `.key`, `['key']` and
//! `[N]` segments (`$.id`, `$.items[0].id`, `$['content-type']`). A capture must name exactly one value,
//! so wildcards, slices, filters and recursive descent are refused; a full RFC 9535 crate would accept
//! them and return several nodes, and adds a parser the binary does not otherwise need. No AWS API.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A compiled path; [`JsonPath::get`] reads one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    segments: Vec<Segment>,
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a path was refused, in words that show the supported forms.
fn refuse(text: &str, why: &str) -> String {
    format!("`{text}` is not a supported JSONPath ({why}): use `$.key`, `$.a.b` or `$.a[0].b`")
}

impl JsonPath {
    /// Parse `text`; `Err` says what is wrong.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| refuse(text, "it must start with `$`"))?;
        let b = rest.as_bytes();
        let mut segments = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len()
                        && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-')
                    {
                        j += 1;
                    }
                    if j == start {
                        return Err(refuse(text, "a `.` must be followed by a key"));
                    }
                    segments.push(Segment::Key(rest[start..j].to_string()));
                    i = j;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|k| i + k)
                        .ok_or_else(|| refuse(text, "a `[` is not closed"))?;
                    let inner = &rest[i + 1..close];
                    let quoted = |q: char| {
                        inner
                            .strip_prefix(q)
                            .and_then(|s| s.strip_suffix(q))
                            .filter(|s| !s.is_empty() && !s.contains(q))
                    };
                    if let Some(key) = quoted('\'').or_else(|| quoted('"')) {
                        segments.push(Segment::Key(key.to_string()));
                    } else if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit()) {
                        let n = inner
                            .parse()
                            .map_err(|_| refuse(text, "the index is too large"))?;
                        segments.push(Segment::Index(n));
                    } else {
                        return Err(refuse(
                            text,
                            &format!("`[{inner}]` is not an index or a quoted key"),
                        ));
                    }
                    i = close + 1;
                }
                _ => return Err(refuse(text, "expected `.` or `[`")),
            }
        }
        if segments.is_empty() {
            return Err(refuse(text, "`$` alone is the whole reply"));
        }
        Ok(JsonPath {
            text: text.to_string(),
            segments,
        })
    }

    /// The value the path names, if the reply has it.
    pub fn get<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.segments.iter().try_fold(v, |v, s| match s {
            Segment::Key(k) => v.get(k.as_str()),
            Segment::Index(n) => v.get(*n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_one_value() {
        let v =
            json!({"id": 7, "items": [{"id": "a"}, {"id": "b", "x-y": true}], "a": {"b": null}});
        let get = |p: &str| JsonPath::parse(p).unwrap().get(&v).cloned();
        assert_eq!(get("$.id"), Some(json!(7)));
        assert_eq!(get("$.items[1].id"), Some(json!("b")));
        assert_eq!(get("$.items[1]['x-y']"), Some(json!(true)));
        assert_eq!(get("$[\"items\"][0].id"), Some(json!("a")));
        assert_eq!(get("$.a.b"), Some(json!(null)));
        assert_eq!(get("$.items[2].id"), None);
        assert_eq!(get("$.id.deeper"), None);
        assert_eq!(get("$.nothing"), None);
        assert_eq!(
            JsonPath::parse("$.items[0].id").unwrap().to_string(),
            "$.items[0].id"
        );
    }

    #[test]
    fn everything_else_is_refused_with_the_supported_forms() {
        for (bad, why) in [
            ("id", "must start with `$`"),
            ("$", "whole reply"),
            ("$.", "followed by a key"),
            ("$..id", "followed by a key"),
            ("$.items[*].id", "`[*]` is not an index"),
            ("$.items[0:2]", "`[0:2]`"),
            ("$.items[?(@.id)]", "is not an index"),
            ("$.items[0", "not closed"),
            ("$ id", "expected `.` or `[`"),
            ("$.items[99999999999999999999999]", "too large"),
        ] {
            let err = JsonPath::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("use `$.key`"), "{err}");
        }
    }
}
