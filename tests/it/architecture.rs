//! The core stays free of I/O: `domain/` and `policy/` never name axum, redb, tokio or the store.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).expect("utf-8"),
            ));
        }
    }
}

#[test]
fn domain_and_policy_do_not_depend_on_io_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root.join("domain"), &mut files);
    sources(&root.join("policy"), &mut files);
    assert!(files.len() > 5);
    for (path, text) in files {
        for banned in [
            "axum::",
            "redb::",
            "tokio::",
            "crate::store",
            "crate::http",
            "crate::engine",
        ] {
            assert!(!text.contains(banned), "{path} mentions {banned}");
        }
    }
}
