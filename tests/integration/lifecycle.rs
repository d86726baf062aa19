//! The ECR lifecycle policy of the docs (`docs/terraform/ecr-lifecycle.json`), applied by a small
//! evaluator of ECR's rules to a repository listing (tags, push age), so what it keeps is checked, not
//! assumed. The evaluator follows ECR's documented semantics:
//! - rules run by `rulePriority`, lowest first; unique priorities; a `tagStatus: any` rule comes last;
//! - a rule *selects* images by tag status and, for `tagged`, by `tagPatternList` (every pattern must
//!   match one of the image's tags; `*` is the only wildcard, at most four per pattern) or
//!   `tagPrefixList` (every prefix starts one of its tags);
//! - an image selected by a rule is not judged by any later rule, whether that rule expired it or not;
//! - `imageCountMoreThan n` keeps the newest `n` selected images (by push time) and expires the rest;
//!   `sinceImagePushed n days` expires the selected images pushed more than `n` days ago.
//!
//! CloudShop's repository holds three kinds of manifests, each with its own tag: the image (`<sha>`,
//! plus extra tags), the frontend artifact (`<sha>-frontend`) and the marker (`verified-<env>-<sha>`).
//! A rule sees one manifest's tags, so no rule can keep "the image whose marker exists": the policy
//! keeps the newest images by count, and the test shows both what that guarantees and where it ends.

use std::collections::BTreeSet;

use serde_json::Value;

/// One manifest of the listing.
#[derive(Debug, Clone)]
struct Image {
    tags: Vec<String>,
    /// Days since its push (smaller is newer).
    age_days: f64,
}

fn image(tags: &[&str], age_days: f64) -> Image {
    Image {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        age_days,
    }
}

/// ECR's wildcard match: `*` matches any run of characters, everything else itself.
fn wildcard(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == tag;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !tag.starts_with(first) || tag.len() < first.len() + last.len() || !tag.ends_with(last) {
        return false;
    }
    let mut rest = &tag[first.len()..tag.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Does the rule's selection take this image?
fn selects(selection: &Value, img: &Image) -> bool {
    match selection["tagStatus"].as_str().unwrap() {
        "any" => true,
        "untagged" => img.tags.is_empty(),
        "tagged" => {
            let patterns = strings(&selection["tagPatternList"]);
            let prefixes = strings(&selection["tagPrefixList"]);
            !img.tags.is_empty()
                && patterns
                    .iter()
                    .all(|p| img.tags.iter().any(|t| wildcard(p, t)))
                && prefixes
                    .iter()
                    .all(|p| img.tags.iter().any(|t| t.starts_with(p.as_str())))
        }
        other => panic!("tagStatus {other}"),
    }
}

/// The indexes of `images` the policy expires. Panics on a policy ECR would refuse.
fn expired(policy: &Value, images: &[Image]) -> BTreeSet<usize> {
    let mut rules: Vec<&Value> = policy["rules"].as_array().unwrap().iter().collect();
    rules.sort_by_key(|r| r["rulePriority"].as_u64().unwrap());
    let priorities: BTreeSet<u64> = rules
        .iter()
        .map(|r| r["rulePriority"].as_u64().unwrap())
        .collect();
    assert_eq!(priorities.len(), rules.len(), "unique rulePriority");
    for (i, r) in rules.iter().enumerate() {
        let s = &r["selection"];
        let status = s["tagStatus"].as_str().unwrap();
        assert!(
            status != "any" || i == rules.len() - 1,
            "`any` is the last rule"
        );
        let lists = [&s["tagPatternList"], &s["tagPrefixList"]];
        let listed = lists.iter().filter(|l| !l.is_null()).count();
        assert_eq!(
            status == "tagged",
            listed == 1,
            "a tagged rule has one list: {r}"
        );
        for p in strings(&s["tagPatternList"]) {
            assert!(p.matches('*').count() <= 4, "at most four wildcards: {p}");
        }
        assert_eq!(r["action"]["type"], "expire");
    }
    let mut judged = BTreeSet::new();
    let mut out = BTreeSet::new();
    for r in rules {
        let s = &r["selection"];
        let mut selected: Vec<usize> = (0..images.len())
            .filter(|i| !judged.contains(i) && selects(s, &images[*i]))
            .collect();
        // Newest first.
        selected.sort_by(|a, b| images[*a].age_days.total_cmp(&images[*b].age_days));
        let n = s["countNumber"].as_u64().unwrap();
        match s["countType"].as_str().unwrap() {
            "imageCountMoreThan" => out.extend(selected.iter().skip(n as usize)),
            "sinceImagePushed" => {
                assert_eq!(s["countUnit"], "days");
                out.extend(selected.iter().filter(|i| images[**i].age_days > n as f64));
            }
            other => panic!("countType {other}"),
        }
        judged.extend(selected);
    }
    out
}

fn policy() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/terraform/ecr-lifecycle.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn count(policy: &Value, priority: u64) -> usize {
    policy["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rulePriority"] == priority)
        .unwrap()["selection"]["countNumber"]
        .as_u64()
        .unwrap() as usize
}

/// One deploy's manifests in the listing: its image, its frontend artifact and its marker (if it passed).
type Release = (usize, usize, Option<usize>);

fn sha(i: usize) -> String {
    format!("{i:040x}")
}

/// A stage repository after `deploys` deploys, one a day, newest last; `failed(i)`: deploy `i` failed
/// (its image and frontend artifact were pushed, no marker). Returns the listing and, per deploy, the
/// indexes of its image, frontend artifact and marker.
fn history(deploys: usize, failed: impl Fn(usize) -> bool) -> (Vec<Image>, Vec<Release>) {
    let mut images = Vec::new();
    let mut releases = Vec::new();
    for i in 0..deploys {
        let age = (deploys - i) as f64;
        let s = sha(i);
        images.push(image(&[&s], age));
        images.push(image(&[&format!("{s}-frontend")], age));
        let marker = (!failed(i)).then(|| {
            images.push(image(&[&format!("verified-stage-{s}")], age - 0.01));
            images.len() - 1
        });
        let n = images.len();
        releases.push((
            if marker.is_some() { n - 3 } else { n - 2 },
            if marker.is_some() { n - 2 } else { n - 1 },
            marker,
        ));
    }
    (images, releases)
}

#[test]
fn the_wildcards_match_as_ecr_does() {
    assert!(wildcard("verified-*", "verified-stage-abc"));
    assert!(!wildcard("verified-*", "abc-verified-"));
    assert!(wildcard("*-frontend", "abc-frontend"));
    assert!(!wildcard("*-frontend", "abc-frontend-x"));
    assert!(wildcard("a*b*c", "a-b-c"));
    assert!(!wildcard("a*b*c", "a-c-b"));
    assert!(wildcard("latest", "latest") && !wildcard("latest", "latest2"));
}

/// ECR's own example A (the docs' "Filtering on multiple rules"): an image selected by rule 1 is not
/// judged again by rule 2, so image C survives although rule 2 alone would keep only one `beta*`.
#[test]
fn the_evaluator_agrees_with_ecrs_documented_example() {
    let policy = serde_json::json!({"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["beta*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
    ]});
    let images = [
        image(&["beta-1", "prod-1"], 10.0),
        image(&["beta-2", "prod-2"], 9.0),
        image(&["beta-3"], 8.0),
    ];
    assert_eq!(expired(&policy, &images), BTreeSet::from([0]));
}

/// A rule cannot "spare" anything by itself: a `tagPrefixList: ["verified-"]` expire rule with a count
/// only claims the markers (keeping the newest n), and the images the markers name are separate
/// manifests that a later catch-all rule still expires by age.
#[test]
fn sparing_the_markers_by_prefix_does_not_spare_their_images() {
    let policy = serde_json::json!({"rules": [
        {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["verified-"], "countType": "imageCountMoreThan", "countNumber": 9999}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}
    ]});
    let (images, releases) = history(60, |_| false);
    let gone = expired(&policy, &images);
    let (img, _, marker) = releases[0];
    assert!(!gone.contains(&marker.unwrap()), "the oldest marker stays");
    assert!(gone.contains(&img), "its image does not");
}

/// The shipped policy on 60 daily deploys, every fourth failed: the last 20 verified releases keep their
/// image, frontend artifact and marker; older markers, images beyond the newest 40 and day-old untagged
/// manifests expire; a fresh untagged manifest stays.
#[test]
fn the_shipped_policy_keeps_what_promotion_and_rollback_need() {
    let policy = policy();
    let (markers_kept, images_kept) = (count(&policy, 1), count(&policy, 4));
    assert_eq!(
        count(&policy, 2),
        images_kept,
        "a frontend artifact lives as long as its image"
    );
    let (mut images, releases) = history(60, |i| i % 4 == 3);
    images.push(image(&["stage-latest", &sha(1000)], 0.5));
    images.push(image(&[], 3.0));
    images.push(image(&[], 0.2));
    let n = images.len();
    let gone = expired(&policy, &images);

    let verified: Vec<&Release> = releases.iter().rev().filter(|r| r.2.is_some()).collect();
    for (img, front, marker) in verified.iter().take(markers_kept) {
        for i in [img, front, &marker.unwrap()] {
            assert!(!gone.contains(i), "kept: {:?}", images[*i]);
        }
    }
    for (_, _, marker) in verified.iter().skip(markers_kept) {
        assert!(gone.contains(&marker.unwrap()), "an older marker expires");
    }
    let oldest = releases[0];
    assert!(
        gone.contains(&oldest.0) && gone.contains(&oldest.1),
        "old images expire"
    );
    assert!(!gone.contains(&(n - 3)), "the newest extra tag stays");
    assert!(gone.contains(&(n - 2)), "untagged for 3 days: expired");
    assert!(!gone.contains(&(n - 1)), "untagged for hours: kept");
    let images_left = (0..n)
        .filter(|i| !gone.contains(i) && !images[*i].tags.is_empty())
        .filter(|i| {
            !images[*i]
                .tags
                .iter()
                .any(|t| t.starts_with("verified-") || t.ends_with("-frontend"))
        })
        .count();
    assert_eq!(images_left, images_kept);
}

/// Where tag rules end: the policy counts images, not verified ones. After more failed deploys in a row
/// than the image count minus the marker count, a marker outlives the image it names (a rollback to
/// it then stops before any change, "the image ... is no longer in the repository"). The docs state
/// this bound.
#[test]
fn a_long_run_of_failed_deploys_outlives_the_count() {
    let policy = policy();
    let (markers_kept, images_kept) = (count(&policy, 1), count(&policy, 4));
    let deploys = markers_kept + images_kept;
    // The first `markers_kept` deploys pass, then every later one fails.
    let (images, releases) = history(deploys, |i| i >= markers_kept);
    let gone = expired(&policy, &images);
    let (img, _, marker) = releases[0];
    assert!(
        !gone.contains(&marker.unwrap()),
        "the marker is among the newest {markers_kept}"
    );
    assert!(
        gone.contains(&img),
        "but {images_kept} newer images pushed it out"
    );
}
