//! Architecture invariant: only `ticketing` runs SQL. Every table has one owner, so a change of schema or of
//! what a state means is made in one crate; other crates call named functions of the store (`Store::pool` is
//! private to this crate, and tests reach it through `testing::RawSql`).
//!
//! This test reads the other crates' sources (not their tests) and fails naming each file that queries the
//! database itself.

use std::path::{Path, PathBuf};

const CRATES: &[&str] = &["gateway", "watchers", "signaling", "cluster", "media", "chains", "turn"];
const FORBIDDEN: &[&str] = &["sqlx::query", "query_as::<", "query_scalar::<", "raw_pool", "RawSql", ".pool()"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn only_ticketing_runs_sql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let mut offenders = Vec::new();
    let mut read = 0;
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            read += 1;
            for (n, line) in text.lines().enumerate() {
                if FORBIDDEN.iter().any(|f| line.contains(f)) {
                    offenders.push(format!(
                        "{}:{}: {}",
                        file.strip_prefix(root).unwrap_or(&file).display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(read > 50, "expected to read the other crates' sources, read {read} files under {}", root.display());
    assert!(
        offenders.is_empty(),
        "SQL outside ticketing (move it behind a named function of ticketing's store):\n{}",
        offenders.join("\n")
    );
}
