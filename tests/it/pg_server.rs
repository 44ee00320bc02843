//! A real PostgreSQL server for the tests (and the bench's PostgreSQL part, which compiles this
//! file in), started on first use and shared by the whole process; each caller gets a schema of
//! its own, so tests run in parallel.
//!
//! `XUEJI_TEST_POSTGRES=postgres://…` names a server to use. Otherwise the tests start their own
//! from Debian's binaries (`/usr/lib/postgresql/*/bin`), installing the `postgresql` package with
//! apt-get when they are missing (once, under a file lock, as `browser` does for chromium): a
//! throwaway cluster in a temp folder, on a free port of 127.0.0.1, with `fsync=on` as in
//! production. A watchdog in a session of its own stops it (`pg_ctl stop -m immediate`) and
//! removes the folder once the test process is gone, however it ended. It never skips: a server
//! that cannot be had fails the test.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A URL of a fresh, empty schema on the shared server: its search path is that schema only.
pub fn postgres_url() -> String {
    let server = server();
    let schema = format!("t_{:016x}", rand::random::<u64>());
    run_sql(server, &format!("CREATE SCHEMA {schema}"));
    let separator = if server.contains('?') { '&' } else { '?' };
    format!("{server}{separator}options=-csearch_path%3D{schema}")
}

/// Runs statements on `url`, on a thread of its own with its own runtime (callers may be inside
/// a runtime, where another one cannot be started).
pub fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
            let connection = tokio::spawn(connection);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            drop(client);
            connection
                .await
                .expect("the connection task")
                .expect("the connection");
        });
    })
    .join()
    .expect("the SQL thread");
}

fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("XUEJI_TEST_POSTGRES") {
        Ok(url) => url,
        Err(_) => start_server(),
    })
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| bin.join(b).exists())
        })
        .collect();
    // The newest major version.
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

/// Debian's PostgreSQL binaries, installed when missing.
fn install_postgres() -> PathBuf {
    crate::debian::install_debian_packages("xueji-postgres-install.lock", &["postgresql"], || {
        bin_dir().is_none()
    });
    bin_dir().expect("PostgreSQL's binaries are still missing after apt-get install postgresql")
}

/// A command run as the owner of the cluster: `postgres` when the tests run as root (initdb and
/// the server refuse root), the test's own user otherwise.
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn succeed(command: &mut Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_server() -> String {
    let bin = install_postgres();
    let root = std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0;
    let dir = tempfile::Builder::new()
        .prefix("xueji-postgres-")
        .tempdir()
        .expect("a temp folder")
        .keep();
    if root {
        succeed(
            Command::new("chown").args(["postgres:", &dir.display().to_string()]),
            "chown",
        );
    }
    let data = dir.join("data");
    let log = dir.join("server.log");
    succeed(
        as_owner(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            // The cluster's own files are not synced at creation (it is thrown away); the
            // server runs with fsync=on.
            .arg("--no-sync"),
        "initdb",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // The watchdog first: a test process killed while the server starts still leaves none.
    let stop = format!(
        "{} {} -D '{}' stop -m immediate",
        if root { "runuser -u postgres --" } else { "" },
        bin.join("pg_ctl").display(),
        data.display()
    );
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    // `setsid -f` forks the watchdog into a session of its own and returns at once: a Ctrl-C
    // to the test's process group does not reach it.
    let started = Command::new("setsid")
        .args(["-f", "sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the server's watchdog starts");
    assert!(started.success(), "setsid: {started}");
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k '{}' -c fsync=on -c max_connections=300",
        dir.display()
    );
    succeed(
        as_owner(&bin.join("pg_ctl"), root)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "-o", &options, "start"])
            // pg_ctl's server keeps the output pipes open: only the log file gets its output.
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        &format!("pg_ctl start (its log: {})", log.display()),
    );
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}
