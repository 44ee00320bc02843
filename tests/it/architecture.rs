//! The walls: `domain/` and `policy/` stay free of I/O (never naming axum, redb, tokio, the store
//! or the engine), and the engine is the store's only client: nothing outside `src/engine/` and
//! `src/store/` names the store's module or reaches `Xueji::store()`.

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

/// Where `text` names the store's module (`store::…`, as a path segment of its own) or calls
/// `.store()`: the line numbers.
fn store_uses(text: &str) -> Vec<usize> {
    let names_store = |line: &str| {
        line.match_indices("store::").any(|(at, _)| {
            !line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        }) || line.contains(".store()")
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| names_store(line))
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn only_the_engine_reaches_the_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let engine = root.join("engine").display().to_string();
    let store = root.join("store").display().to_string();
    let outside: Vec<_> = files
        .iter()
        .filter(|(path, _)| !path.starts_with(&engine) && !path.starts_with(&store))
        .collect();
    // http, console, cli, main, exchange, batch, demo, keys, auth, codes, lib …
    assert!(outside.len() > 30, "{} files outside", outside.len());
    for (path, text) in outside {
        let lines = store_uses(text);
        assert!(
            lines.is_empty(),
            "{path} reaches the store past the engine at lines {lines:?}"
        );
    }
}

#[test]
fn the_store_check_sees_each_way_of_reaching_the_store() {
    for reach in [
        "use crate::store::Command;",
        "    let s = xueji::store::Store::open(p)?;",
        "(store::private::write(p, b))",
        "x.store().school(id)",
    ] {
        assert_eq!(store_uses(reach), vec![1], "{reach}");
    }
    for fine in [
        "x.restore_policies()?;",
        "use crate::engine::Store;",
        "self.find_school(id)",
    ] {
        assert!(store_uses(fine).is_empty(), "{fine}");
    }
}
