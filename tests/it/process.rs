//! The real `xueji` binary as a child process of a test: started on a free port, awaited with
//! deadlines, and killed and reaped whatever happens to the test.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer `/healthz`, a signalled one to exit, a CLI
/// command to finish: bounds on a hang, far above what any of them takes.
pub(crate) const START_LIMIT: Duration = Duration::from_secs(30);
pub(crate) const EXIT_LIMIT: Duration = Duration::from_secs(30);
pub(crate) const CLI_LIMIT: Duration = Duration::from_secs(120);

/// A child process killed and reaped when dropped: a test that fails leaves no server running.
pub(crate) struct Reaped(pub(crate) std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // Reached while a failed test unwinds: a panic here would abort, so only say it.
            if let Err(e) = self.0.kill().and_then(|()| self.0.wait()) {
                eprintln!("could not stop process {}: {e}", self.0.id());
            }
        }
    }
}

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Waits for `child` to exit, at most `limit`; past it the child is killed and the test fails.
pub(crate) fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            // Already failing: a kill that finds the child gone is no further news.
            let killed = child.kill();
            let reaped = child.wait();
            panic!("{what}: still running after {limit:?} (killed: {killed:?}, then {reaped:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Command::output`, with a deadline: past `limit` the process is killed and the test fails.
pub(crate) fn output_within(
    command: &mut Command,
    limit: Duration,
    what: &str,
) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    // Drained on their own threads so that a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                p.read_to_end(&mut bytes).expect("read the child's output");
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = exit_within(&mut child, limit, what);
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Polls `/healthz` until the server answers, failing if it exits first or takes past `limit`.
pub(crate) async fn wait_up(
    client: &reqwest::Client,
    base: &str,
    server: &mut std::process::Child,
) {
    let start = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        if let Some(status) = server.try_wait().expect("try_wait") {
            panic!("the server exited before it answered: {status:?}");
        }
        assert!(
            start.elapsed() < START_LIMIT,
            "server did not answer /healthz within {START_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `xueji serve --data DATA` on 127.0.0.1:`port` with `XUEJI_ADMIN_TOKEN` = `admin`, output
/// discarded; not yet awaited (see [`wait_up`]).
pub(crate) fn serve(data: &Path, port: u16, admin: &str) -> Reaped {
    serve_on(data, None, port, admin)
}

/// [`serve`], with the store in `store` (`--store`: a PostgreSQL database) when given.
pub(crate) fn serve_on(data: &Path, store: Option<&str>, port: u16, admin: &str) -> Reaped {
    Reaped(
        serve_command(data, store, port)
            .env("XUEJI_ADMIN_TOKEN", admin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn xueji serve"),
    )
}

/// The `xueji serve` command line on 127.0.0.1:`port`, for a caller to add to (its own flags,
/// environment and output) and spawn; nothing of the test's environment says where the store is.
pub(crate) fn serve_command(data: &Path, store: Option<&str>, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xueji"));
    command
        .args([
            "serve",
            "--data",
            data.to_str().expect("utf-8"),
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("XUEJI_STORE");
    if let Some(store) = store {
        command.args(["--store", store]);
    }
    command
}

/// SIGTERM, then the exit within [`EXIT_LIMIT`], which must be a success.
#[cfg(unix)]
pub(crate) fn stop(mut server: Reaped) {
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = exit_within(&mut server, EXIT_LIMIT, "the server after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

/// `xueji ARGS…` run to its end within [`CLI_LIMIT`] (no admin token from the environment).
pub(crate) fn run_cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    let what = format!(
        "xueji {}",
        args.first()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    output_within(
        Command::new(env!("CARGO_BIN_EXE_xueji"))
            .args(args)
            .env_remove("XUEJI_ADMIN_TOKEN")
            .env_remove("XUEJI_STORE"),
        CLI_LIMIT,
        &what,
    )
}

/// A process's standard output and error, for assertion messages and searches.
pub(crate) fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
