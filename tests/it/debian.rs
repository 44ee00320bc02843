//! Debian packages the tests need (chromium for `browser`, PostgreSQL for `pg_server`), installed
//! with apt-get when missing. Also compiled into the bench (`benches/engine.rs`), which starts
//! its PostgreSQL server through `pg_server`.

/// Installs Debian packages with apt-get (as root) when `missing` says something is absent. The
/// lock file makes a second test process wait for the first one's install instead of running
/// apt-get beside it; a fresh machine without package lists gets `apt-get update` first.
pub fn install_debian_packages(lock_name: &str, packages: &[&str], missing: impl Fn() -> bool) {
    if !missing() {
        return;
    }
    let lock =
        std::fs::File::create(std::env::temp_dir().join(lock_name)).expect("the install lock file");
    lock.lock().expect("the install lock");
    if missing() {
        let mut install = vec!["install", "-y", "--no-install-recommends"];
        install.extend(packages);
        if apt_get(&install).is_err() {
            apt_get(&["update"]).unwrap_or_else(|e| panic!("{e}"));
            apt_get(&install).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("apt-get could not start: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "apt-get {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
