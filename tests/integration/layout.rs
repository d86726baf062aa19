//! The source tree keeps the shape the renovation gave it: no import circle among `src/` modules (checked
//! by `scripts/import-circles`, which also reads brace and `pub use` imports), no file above 600 lines
//! of non-test code, and no issue number cited in product code.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The most non-test lines a source file may hold before it should be split by concern.
const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no source files found");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn no_import_circle_in_src() {
    let out = Command::new("python3")
        .arg(Path::new(ROOT).join("scripts/import-circles"))
        .arg(Path::new(ROOT).join("src"))
        .output()
        .expect("python3 runs scripts/import-circles");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" cycles 0"),
        "import circles in src/:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_circle_finder_reads_brace_imports() {
    // A parent that re-exports its child, and a child importing the parent through a brace group:
    // the circle the finder must see, or its "0" above means nothing.
    let dir = std::env::temp_dir().join(format!("import-circles-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("part")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod part;\n").unwrap();
    std::fs::write(
        dir.join("part/mod.rs"),
        "mod child;\npub use child::Thing;\npub struct Error;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("part/child.rs"),
        "use super::{Error, other::{X}};\npub struct Thing;\n",
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(Path::new(ROOT).join("scripts/import-circles"))
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("CYCLE: ['part', 'part::child']"),
        "{stdout}"
    );
}

#[test]
fn the_circle_finder_sees_the_crate_root_behind_main() {
    // `main.rs` is the binary, a crate of its own: it must not hide `lib.rs`, whose re-export of a module
    // that names `crate::Trait` is a circle through the crate root.
    let dir = std::env::temp_dir().join(format!("import-circles-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        "pub mod run;\npub use run::main_with;\npub trait Trait {}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("run.rs"),
        "pub fn main_with(_: &dyn crate::Trait) {}\n",
    )
    .unwrap();
    std::fs::write(dir.join("main.rs"), "fn main() {}\n").unwrap();
    let out = Command::new("python3")
        .arg(Path::new(ROOT).join("scripts/import-circles"))
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CYCLE: ['', 'run']"), "{stdout}");
}

#[test]
fn no_source_file_is_too_long() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter_map(|(path, text)| {
            let lines = text
                .lines()
                .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
                .count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", path.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern (more than {MAX_LINES} lines before `#[cfg(test)]`): {long:?}"
    );
}

#[test]
fn no_issue_numbers_in_src() {
    let hits: Vec<String> = sources()
        .into_iter()
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.to_ascii_lowercase().contains("issue #"))
                .map(|(n, l)| format!("{}:{}: {l}", path.display(), n + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        hits.is_empty(),
        "product code cites issue numbers: {hits:#?}"
    );
}
