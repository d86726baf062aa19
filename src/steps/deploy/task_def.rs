//! The task definition as raw JSON: read the LIVE one (or a `task-definition` file), strip only the
//! read-only keys `RegisterTaskDefinition` rejects, swap the image of the chosen containers, diff, register.
//!
//! The JSON is never parsed into a fixed schema: a field this code (or this SDK version) does not know is
//! carried over untouched, so Terraform-managed settings and new ECS features survive a deploy.
//!
//! APIs: ECS `DescribeTaskDefinition` (raw response body), `RegisterTaskDefinition` (raw request body).

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::Error;

/// Keys of a described task definition that `RegisterTaskDefinition` rejects (they are set by ECS).
pub const READ_ONLY_KEYS: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// A described task definition: the definition (raw JSON) and its tags.
#[derive(Debug, Clone)]
pub struct Live {
    /// `taskDefinition` of the response.
    pub definition: Value,
    /// `tags` of the response (may be empty).
    pub tags: Vec<Value>,
}

impl Live {
    /// Its ARN.
    pub fn arn(&self) -> &str {
        self.definition
            .get("taskDefinitionArn")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Remove the read-only keys (and JSON nulls, which ECS treats as absent) from a definition.
pub fn strip(definition: &Value) -> Value {
    let mut out = definition.clone();
    if let Value::Object(map) = &mut out {
        for k in READ_ONLY_KEYS {
            map.shift_remove(*k);
        }
        map.retain(|_, v| !v.is_null());
    }
    out
}

/// Accept a file in either shape: a `RegisterTaskDefinition` input, or a `DescribeTaskDefinition` output
/// (`{"taskDefinition": {...}, "tags": [...]}`), which is what `aws ecs describe-task-definition` prints.
pub fn from_file_text(text: &str) -> Result<Live, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(mut map) = v else {
        return Err("the file is not a JSON object".into());
    };
    if let Some(Value::Object(td)) = map.remove("taskDefinition") {
        let tags = match map.remove("tags") {
            Some(Value::Array(t)) => t,
            _ => Vec::new(),
        };
        return Ok(Live {
            definition: Value::Object(td),
            tags,
        });
    }
    let tags = match map.remove("tags") {
        Some(Value::Array(t)) => t,
        _ => Vec::new(),
    };
    if !map.contains_key("containerDefinitions") {
        return Err("no `containerDefinitions` key: not a task definition".into());
    }
    Ok(Live {
        definition: Value::Object(map),
        tags,
    })
}

/// The container names of a definition, in order.
pub fn container_names(definition: &Value) -> Vec<String> {
    definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The family of a definition.
pub fn family(definition: &Value) -> Option<&str> {
    definition.get("family").and_then(Value::as_str)
}

/// Why the image could not be swapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapError {
    /// A named container is not in the definition.
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        available: Vec<String>,
    },
    /// No container was named and there are several.
    Ambiguous(Vec<String>),
}

/// Choose the containers to update: the named ones (all must exist), else the only one.
pub fn choose_containers(definition: &Value, wanted: &[String]) -> Result<Vec<String>, SwapError> {
    let available = container_names(definition);
    if wanted.is_empty() {
        return match available.as_slice() {
            [only] => Ok(vec![only.clone()]),
            _ => Err(SwapError::Ambiguous(available)),
        };
    }
    for w in wanted {
        if !available.contains(w) {
            return Err(SwapError::Unknown {
                name: w.clone(),
                available,
            });
        }
    }
    Ok(wanted.to_vec())
}

/// Set `image` of each named container; every other field stays as it is.
pub fn swap_images(definition: &mut Value, containers: &[String], image: &str) {
    if let Some(cs) = definition
        .get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
    {
        for c in cs.iter_mut() {
            let named = c
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| containers.iter().any(|w| w == n));
            if let (true, Value::Object(map)) = (named, c) {
                map.insert("image".into(), Value::String(image.to_string()));
            }
        }
    }
}

/// The image of a container.
pub fn image_of<'a>(definition: &'a Value, container: &str) -> Option<&'a str> {
    definition
        .get("containerDefinitions")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container))?
        .get("image")?
        .as_str()
}

/// One changed field between two definitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Path: `containerDefinitions[backend].image`, `cpu`, ...
    pub path: String,
    /// Old value as compact JSON (`None`: added).
    pub old: Option<String>,
    /// New value as compact JSON (`None`: removed).
    pub new: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => write!(f, "~ {}: {o} -> {n}", self.path),
            (None, Some(n)) => write!(f, "+ {}: {n}", self.path),
            (Some(o), None) => write!(f, "- {}: {o}", self.path),
            (None, None) => write!(f, "  {}", self.path),
        }
    }
}

/// The changed fields only. Arrays of objects that all have a `name` (containers, environment, port
/// mappings by name) are matched by name so a reorder is not reported as a change of every element.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn named(items: &[Value]) -> Option<Vec<(&str, &Value)>> {
    items
        .iter()
        .map(|i| i.get("name").and_then(Value::as_str).map(|n| (n, i)))
        .collect()
}

fn diff_into(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => diff_maps(path, a, b, out),
        (Value::Array(a), Value::Array(b)) => match (named(a), named(b)) {
            (Some(na), Some(nb)) => {
                for (name, va) in &na {
                    let p = format!("{path}[{name}]");
                    match nb.iter().find(|(n, _)| n == name) {
                        Some((_, vb)) => diff_into(&p, va, vb, out),
                        None => out.push(Change {
                            path: p,
                            old: Some(compact(va)),
                            new: None,
                        }),
                    }
                }
                for (name, vb) in &nb {
                    if !na.iter().any(|(n, _)| n == name) {
                        out.push(Change {
                            path: format!("{path}[{name}]"),
                            old: None,
                            new: Some(compact(vb)),
                        });
                    }
                }
            }
            _ if a.len() == b.len() => {
                for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                    diff_into(&format!("{path}[{i}]"), va, vb, out);
                }
            }
            _ => out.push(Change {
                path: path.to_string(),
                old: Some(compact(old)),
                new: Some(compact(new)),
            }),
        },
        _ => out.push(Change {
            path: path.to_string(),
            old: Some(compact(old)),
            new: Some(compact(new)),
        }),
    }
}

fn diff_maps(path: &str, a: &Map<String, Value>, b: &Map<String, Value>, out: &mut Vec<Change>) {
    for (k, va) in a {
        match b.get(k) {
            Some(vb) => diff_into(&join(path, k), va, vb, out),
            None => out.push(Change {
                path: join(path, k),
                old: Some(compact(va)),
                new: None,
            }),
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            out.push(Change {
                path: join(path, k),
                old: None,
                new: Some(compact(vb)),
            });
        }
    }
}

/// The `RegisterTaskDefinition` request body: the stripped definition plus its tags (when any).
pub fn register_body(stripped: &Value, tags: &[Value]) -> Value {
    let mut body = stripped.clone();
    if let (Value::Object(map), false) = (&mut body, tags.is_empty()) {
        map.insert("tags".into(), Value::Array(tags.to_vec()));
    }
    body
}

// ---------------------------------------------------------------- raw I/O

/// Keeps the raw response body of one call, so fields the SDK's model drops are not lost.
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<bytes::Bytes>>>);

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "CaptureBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The orchestrator has buffered a non-streaming body by now, so `bytes()` is the whole reply.
        if let Some(b) = context.response().body().bytes() {
            if let Ok(mut slot) = self.0.lock() {
                *slot = Some(bytes::Bytes::copy_from_slice(b));
            }
        }
        Ok(())
    }
}

/// Describe a task definition (with its tags) and return the raw JSON.
pub async fn describe(ecs: &aws_sdk_ecs::Client, arn: &str) -> Result<Live, Error> {
    let capture = CaptureBody::default();
    let res = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .customize()
        .interceptor(capture.clone())
        .send()
        .await;
    if let Err(e) = res {
        return Err(Error::aws(
            "describe task definition",
            arn,
            crate::aws::describe(&e),
            "check that the deploy role may call `ecs:DescribeTaskDefinition`",
        ));
    }
    let body = capture.0.lock().ok().and_then(|mut s| s.take());
    let parsed: Option<Value> = body.and_then(|b| serde_json::from_slice(&b).ok());
    let Some(Value::Object(mut map)) = parsed else {
        return Err(Error::aws(
            "describe task definition",
            arn,
            "the response was not a JSON object".into(),
            "retry; if it persists, report it",
        ));
    };
    let definition = map.remove("taskDefinition").unwrap_or(Value::Null);
    if !definition.is_object() {
        return Err(Error::aws(
            "describe task definition",
            arn,
            "the response has no `taskDefinition`".into(),
            "retry; if it persists, report it",
        ));
    }
    let tags = match map.remove("tags") {
        Some(Value::Array(t)) => t,
        _ => Vec::new(),
    };
    Ok(Live { definition, tags })
}

/// Register `body` as a new revision, byte for byte as rendered; returns the new ARN.
pub async fn register(ecs: &aws_sdk_ecs::Client, body: &Value) -> Result<String, Error> {
    let family = family(body).unwrap_or_default().to_string();
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let len = bytes.len();
    // The typed builder cannot carry fields its model does not know, so the serialized request body is
    // replaced by the rendered JSON before signing (the signature then covers the real body).
    let res = ecs
        .register_task_definition()
        .family(&family)
        .customize()
        .mutate_request(move |req| {
            *req.body_mut() = SdkBody::from(bytes.clone());
            req.headers_mut().insert("content-length", len.to_string());
        })
        .send()
        .await;
    match res {
        Ok(out) => Ok(out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .unwrap_or_default()
            .to_string()),
        Err(e) => Err(Error::aws(
            "register task definition",
            &family,
            crate::aws::describe(&e),
            "the rendered definition was rejected; check the field named above (and `iam:PassRole` on the task and execution roles)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/cloudshop-backend:7",
            "family": "cloudshop-backend",
            "revision": 7,
            "status": "ACTIVE",
            "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.ecr-auth"}],
            "compatibilities": ["EC2", "FARGATE"],
            "registeredAt": 1.7e9,
            "registeredBy": "arn:aws:iam::123456789012:role/terraform",
            "cpu": "256",
            "memory": "512",
            "someFutureField": {"x": [1, 2]},
            "containerDefinitions": [
                {"name": "backend", "image": "repo:old", "essential": true,
                 "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "envoy:1"}
            ]
        })
    }

    #[test]
    fn strip_removes_only_read_only_keys() {
        let s = strip(&live());
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "family",
                "cpu",
                "memory",
                "someFutureField",
                "containerDefinitions"
            ]
        );
        assert_eq!(s["someFutureField"], json!({"x": [1, 2]}));
    }

    #[test]
    fn containers_are_chosen_or_refused() {
        let td = live();
        assert_eq!(
            choose_containers(&td, &[]),
            Err(SwapError::Ambiguous(vec![
                "backend".into(),
                "sidecar".into()
            ]))
        );
        assert_eq!(
            choose_containers(&td, &["api".into()]),
            Err(SwapError::Unknown {
                name: "api".into(),
                available: vec!["backend".into(), "sidecar".into()]
            })
        );
        assert_eq!(
            choose_containers(&td, &["backend".into()]).unwrap(),
            vec!["backend"]
        );
        let single = json!({"containerDefinitions": [{"name": "only", "image": "x"}]});
        assert_eq!(choose_containers(&single, &[]).unwrap(), vec!["only"]);
    }

    #[test]
    fn swap_changes_only_the_image_and_diff_says_so() {
        let old = strip(&live());
        let mut new = old.clone();
        swap_images(&mut new, &["backend".into()], "r/repo@sha256:abc");
        assert_eq!(image_of(&new, "backend"), Some("r/repo@sha256:abc"));
        assert_eq!(image_of(&new, "sidecar"), Some("envoy:1"));
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            vec![Change {
                path: "containerDefinitions[backend].image".into(),
                old: Some("\"repo:old\"".into()),
                new: Some("\"r/repo@sha256:abc\"".into()),
            }]
        );
        assert_eq!(
            changes[0].to_string(),
            "~ containerDefinitions[backend].image: \"repo:old\" -> \"r/repo@sha256:abc\""
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn diff_matches_named_items_and_reports_adds_and_removes() {
        let old = json!({"cpu": "256", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        let new = json!({"memory": "1024", "env": [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}]});
        let got: Vec<String> = diff(&old, &new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            got,
            [
                "- cpu: \"256\"",
                "~ env[B].value: \"2\" -> \"3\"",
                "+ memory: \"1024\""
            ]
        );
    }

    #[test]
    fn file_in_either_shape() {
        let described = json!({"taskDefinition": live(), "tags": [{"key": "k", "value": "v"}]});
        let l = from_file_text(&described.to_string()).unwrap();
        assert_eq!(l.tags.len(), 1);
        assert_eq!(family(&l.definition), Some("cloudshop-backend"));
        let input = json!({"family": "f", "containerDefinitions": [], "tags": []});
        let l = from_file_text(&input.to_string()).unwrap();
        assert_eq!(family(&l.definition), Some("f"));
        assert!(from_file_text("[]").is_err());
        assert!(from_file_text("{\"family\": \"f\"}").is_err());
    }

    #[test]
    fn register_body_keeps_tags() {
        let b = register_body(
            &json!({"family": "f"}),
            &[json!({"key": "a", "value": "b"})],
        );
        assert_eq!(b["tags"][0]["key"], "a");
        let b = register_body(&json!({"family": "f"}), &[]);
        assert!(b.get("tags").is_none());
    }
}
