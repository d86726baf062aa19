//! `{name}` placeholders in write-sequence steps (path, body strings, header values, expected texts):
//! finding them, so config can refuse an unknown one, and filling them at run time. A placeholder is `{`,
//! a name (`[A-Za-z_][A-Za-z0-9_]*`), `}`; any other brace is plain text, so a JSON-looking string stays
//! as written. No AWS API.

/// Values every sequence has: `run_id` (`GITHUB_RUN_ID`, `local` outside Actions) and `unique` (the run
/// id, its attempt and random hex: a name no other run uses).
pub const BUILTINS: &[&str] = &["run_id", "unique"];

/// Where each placeholder of `text` is: `(start, end, name)`, `end` past the `}`.
fn spans(text: &str) -> Vec<(usize, usize, &str)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j] == b'_' || b[j].is_ascii_alphanumeric()) {
                j += 1;
            }
            if j > start && j < b.len() && b[j] == b'}' && !b[start].is_ascii_digit() {
                out.push((i, j + 1, &text[start..j]));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The placeholder names in `text`, in order.
pub fn vars(text: &str) -> Vec<&str> {
    spans(text).into_iter().map(|(_, _, name)| name).collect()
}

/// `text` with every placeholder replaced by `encode(value)`; `Err(name)` for the first name `value`
/// does not know.
pub fn fill(
    text: &str,
    value: impl Fn(&str) -> Option<String>,
    encode: impl Fn(&str) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, name) in spans(text) {
        let v = value(name).ok_or_else(|| name.to_string())?;
        out.push_str(&text[last..start]);
        out.push_str(&encode(&v));
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Every string in a JSON value (keys and leaves), for [`vars`].
pub fn json_strings(v: &serde_json::Value) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => out.push(s.as_str()),
            serde_json::Value::Array(a) => stack.extend(a.iter()),
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    out.push(k.as_str());
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    out
}

/// A JSON value with every string (keys and leaves) filled; `Err(name)` as [`fill`].
pub fn fill_json(
    v: &serde_json::Value,
    value: &impl Fn(&str) -> Option<String>,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let same = |s: &str| s.to_string();
    Ok(match v {
        Value::String(s) => Value::String(fill(s, value, same)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| fill_json(x, value))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut m = serde_json::Map::new();
            for (k, x) in o {
                m.insert(fill(k, value, same)?, fill_json(x, value)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_names_in_braces_and_nothing_else() {
        assert_eq!(vars("/products/{id}"), vec!["id"]);
        assert_eq!(vars("{a}{b_2}/{c}"), vec!["a", "b_2", "c"]);
        for plain in ["{}", "{ id }", "{1a}", "{id", "id}", "{a-b}", "{\"k\": 1}"] {
            assert!(vars(plain).is_empty(), "{plain}");
        }
        let v = |n: &str| (n == "id").then(|| "4 2".to_string());
        let enc = |s: &str| s.replace(' ', "%20");
        assert_eq!(fill("/p/{id}?x={}", v, enc).unwrap(), "/p/4%202?x={}");
        assert_eq!(fill("/p/{idd}", v, enc).unwrap_err(), "idd");
        let body = serde_json::json!({"name": "smoke-{id}", "tags": ["{id}", 3], "n": 1});
        assert_eq!(
            fill_json(&body, &v).unwrap(),
            serde_json::json!({"name": "smoke-4 2", "tags": ["4 2", 3], "n": 1})
        );
        let mut all = json_strings(&body);
        all.sort();
        assert_eq!(all, vec!["n", "name", "smoke-{id}", "tags", "{id}"]);
    }
}
