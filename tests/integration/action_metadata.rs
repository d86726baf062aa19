//! action.yml and the binary agree: every declared input is read, every input read is declared, every
//! declared input has a description, and the Dockerfile follows the runner's rules for container actions.

use std::collections::BTreeSet;

fn action() -> yaml_serde::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    yaml_serde::from_str(&text).unwrap()
}

fn keys(v: &yaml_serde::Value, section: &str) -> BTreeSet<String> {
    v[section]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn inputs_match_the_binary() {
    let declared = keys(&action(), "inputs");
    let read: BTreeSet<String> = cloudshop_deploy::inputs::Inputs::names()
        .into_iter()
        .collect();
    assert_eq!(declared, read, "action.yml inputs and src/inputs.rs differ");
}

#[test]
fn everything_is_described() {
    let a = action();
    for section in ["inputs", "outputs"] {
        for (k, v) in a[section].as_mapping().unwrap() {
            let d = v["description"].as_str().unwrap_or("");
            assert!(
                d.len() > 10,
                "{section}.{} has no real description",
                k.as_str().unwrap()
            );
        }
    }
    assert_eq!(a["runs"]["using"].as_str(), Some("docker"));
}

#[test]
fn dockerfile_follows_the_container_action_rules() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let final_stage = text.rsplit("\nFROM ").next().unwrap();
    assert!(
        final_stage.starts_with("scratch"),
        "final stage must be FROM scratch"
    );
    for line in text.lines() {
        let l = line.trim_start().to_ascii_uppercase();
        assert!(
            !l.starts_with("USER "),
            "no USER in a container action: {line}"
        );
        assert!(
            !l.starts_with("WORKDIR ") || !final_stage.contains(line),
            "no WORKDIR in the final stage: {line}"
        );
    }
    assert!(
        final_stage.contains("ENTRYPOINT [\"/cloudshop-deploy\"]"),
        "absolute exec-form ENTRYPOINT"
    );
}

#[test]
fn readme_documents_every_input_and_output() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let a = action();
    for section in ["inputs", "outputs"] {
        let start = readme.find(&format!("<!-- {section}:start -->")).unwrap();
        let end = readme.find(&format!("<!-- {section}:end -->")).unwrap();
        let table = &readme[start..end];
        for name in keys(&a, section) {
            assert!(
                table.contains(&format!("| `{name}` |")),
                "README {section} table lacks `{name}`: run scripts/readme-tables"
            );
        }
    }
}

#[test]
fn readme_examples_are_valid_environments_files() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let file = blocks
        .iter()
        .find(|b| b.starts_with("region:"))
        .expect("the environments-file example");
    let parsed = cloudshop_deploy::config::parse_file("README", file).unwrap();
    assert_eq!(parsed.environments.len(), 2);
    let smoke = blocks
        .iter()
        .find(|b| b.trim_start().starts_with("smoke:"))
        .expect("the smoke example");
    let with_smoke = format!("{file}{smoke}").replace("\n  prod:", "\n  prodx:");
    // The snippet is indented for an environment; appended after prod it belongs to prod.
    let parsed = cloudshop_deploy::config::parse_file("README", &with_smoke).unwrap();
    let checks = parsed.environments["prodx"]
        .smoke
        .as_ref()
        .unwrap()
        .checks
        .as_ref()
        .unwrap();
    assert_eq!(checks.len(), 3);
    // And the whole thing validates like the binary would.
    let inputs =
        cloudshop_deploy::inputs::Inputs::from_env([("INPUT_ENVIRONMENT", "prodx")]).unwrap();
    let ctx = cloudshop_deploy::github::Context {
        sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        workspace: std::path::PathBuf::from("/github/workspace"),
        ..Default::default()
    };
    cloudshop_deploy::config::build(&inputs, &parsed, &ctx).unwrap();
}

/// action.yml's inputs are the one table of `src/cli/table.rs`: the same names in the same order, the
/// same descriptions, defaults and `required`.
#[test]
fn action_yml_inputs_equal_the_table() {
    use cloudshop_deploy::cli::table::INPUTS;
    let a = action();
    let declared = a["inputs"].as_mapping().unwrap();
    let names: Vec<&str> = declared.keys().map(|k| k.as_str().unwrap()).collect();
    let table: Vec<&str> = INPUTS.iter().map(|s| s.name).collect();
    assert_eq!(
        names, table,
        "action.yml inputs and src/cli/table.rs differ"
    );
    for spec in INPUTS {
        let yml = &declared[spec.name];
        assert_eq!(
            yml["description"].as_str(),
            Some(spec.description),
            "description of `{}`",
            spec.name
        );
        assert_eq!(
            yml["default"].as_str(),
            spec.default,
            "default of `{}`",
            spec.name
        );
        assert_eq!(
            yml["required"].as_bool(),
            Some(spec.required),
            "required of `{}`",
            spec.name
        );
    }
}

/// The README's inputs table is the one the table prints (`scripts/readme-tables` writes the same text
/// from action.yml, which the test above ties to the table).
#[test]
fn readme_inputs_table_is_the_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- inputs:start -->\n").unwrap() + "<!-- inputs:start -->\n".len();
    let end = readme.find("<!-- inputs:end -->").unwrap();
    assert_eq!(
        &readme[start..end],
        cloudshop_deploy::cli::table::readme_table(),
        "run scripts/readme-tables"
    );
}
