use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use xueji::auth::Role;
use xueji::cli;
use xueji::http::{AppState, Metrics};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// xueji: the student-status (学籍) rules service.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        #[command(flatten)]
        place: cli::Place,
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Load policy packages from this folder instead of the built-in ones.
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Allowed CORS origins for browser portals (repeatable), e.g. https://portal.example.
        #[arg(long = "cors-origin")]
        cors_origins: Vec<String>,
        /// On an empty store, load a small sample of the six seed jurisdictions (schools,
        /// students in several statuses, a pending request); tokens go to DIR/demo-tokens.json.
        #[arg(long)]
        demo: bool,
        /// The time zone whose calendar says what "today" is (the daily sweep, defaults, the
        /// latest date a sweep may be asked for), an IANA name.
        #[arg(long, env = "XUEJI_TZ", default_value = "Asia/Shanghai")]
        tz: chrono_tz::Tz,
        /// Seconds a client has to send a complete request head, from connecting (or from the
        /// first byte of its next request on a kept-alive connection); then it is closed.
        #[arg(long, env = "XUEJI_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_read_timeout: u64,
        /// Seconds a kept-alive connection may stay idle between requests; then it is closed.
        #[arg(long, env = "XUEJI_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
        idle_timeout: u64,
        /// Connections served at once; more wait in the listen backlog until one closes.
        #[arg(long, env = "XUEJI_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=xueji::http::MAX_CONNECTIONS_LIMIT as u64))]
        max_connections: u64,
        /// Folder of the other servers' public keys whose transfer certificates this server
        /// admits on (`xueji trust add` writes it); default DATA/trusted.
        #[arg(long, env = "XUEJI_TRUST")]
        trust: Option<PathBuf>,
        /// This server's name in the transfer certificates it signs (e.g. the bureau's).
        #[arg(long, env = "XUEJI_ISSUER", default_value = "xueji")]
        issuer: String,
    },
    /// Copy a store to another place, a data folder to a PostgreSQL database or back, then verify
    /// every chain, decision and log of the copy against the original (stop the server first).
    /// The destination must hold no store; the data folder's keys and admin token stay where
    /// they are (serve the copy with the same --data).
    Migrate {
        /// The store to copy: a data folder, or postgres://….
        #[arg(long)]
        from: xueji::engine::Location,
        /// Where to: an empty data folder, or an empty PostgreSQL database.
        #[arg(long)]
        to: xueji::engine::Location,
        /// The data folder whose transfer-certificate keys the check uses.
        #[arg(long, default_value = "./xueji-data")]
        data: PathBuf,
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Trust another server's transfer-certificate keys.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Policy authoring: check, test.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Re-hash every history chain, re-evaluate every recorded decision and check every
    /// jurisdiction's Merkle log (against checkpoints kept earlier, if given).
    Verify {
        #[command(flatten)]
        place: cli::Place,
        #[arg(long)]
        policies: Option<PathBuf>,
        /// A checkpoint file (from `xueji backup` or GET /v1/checkpoints): proves that no event
        /// it covers was changed, removed or rolled back since.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Write a consistent copy of the store to a new file, with its checkpoints beside it
    /// (`OUT.checkpoints.json`). Runs beside a serving `xueji serve` (the store is opened
    /// read-only and copied from one snapshot) or with the server stopped.
    Backup {
        #[arg(long, default_value = "./xueji-data")]
        data: PathBuf,
        /// The new file to write.
        out: PathBuf,
    },
    /// Restore a backup into an empty data folder, after verifying every chain and decision.
    Restore {
        /// The backup file.
        backup: PathBuf,
        #[arg(long, default_value = "./xueji-data")]
        data: PathBuf,
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Import students from CSV or XLSX files, in order; every row is checked like a single
    /// creation and, unless --partial, nothing of a file is stored when any of its rows fails
    /// (stop the server first).
    Import {
        #[command(flatten)]
        place: cli::Place,
        #[arg(long)]
        policies: Option<PathBuf>,
        /// The files (each at most 20,000 rows). While one is stored the next is checked.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// csv or xlsx (default: from each file's bytes).
        #[arg(long)]
        format: Option<xueji::exchange::FileFormat>,
        /// School of rows without a school column.
        #[arg(long)]
        school: Option<String>,
        /// Store the valid rows even if others fail.
        #[arg(long)]
        partial: bool,
        /// Check only; store nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the full report (every row, as JSON) to this file (owner-only: it may name
        /// students).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Then register the students stored (入学注册), one batch per school, effective on
        /// --register-date (default today): one upload, an enrolled intake.
        #[arg(long)]
        register: bool,
        #[arg(long, value_parser = |s: &str| xueji::domain::Date::parse(s))]
        register_date: Option<xueji::domain::Date>,
    },
    /// Export a school's roster (new, current, graduates) as CSV, XLSX or JSON (stop the server first).
    Export {
        #[command(flatten)]
        place: cli::Place,
        #[arg(long)]
        policies: Option<PathBuf>,
        #[arg(long)]
        school: String,
        /// new, current or graduates.
        #[arg(long, default_value = "current")]
        kind: xueji::engine::roster::RosterKind,
        /// csv or xlsx (default: from the --out extension; .json writes JSON).
        #[arg(long)]
        format: Option<xueji::exchange::FileFormat>,
        #[arg(long)]
        year: Option<i32>,
        /// Roster date YYYY-MM-DD (default today, or the end of --year if earlier).
        #[arg(long, value_parser = |s: &str| xueji::domain::Date::parse(s))]
        as_of: Option<xueji::domain::Date>,
        /// Only this grade (as placed on the roster's date).
        #[arg(long)]
        grade: Option<u8>,
        /// Only this class (as placed on the roster's date).
        #[arg(long)]
        class: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// One kind of transition for many students of a school (the registrar's year: graduate,
    /// promote, register, …), each through the policy as a single one; a progress bar, then a
    /// one-line summary (stop the server first).
    Batch(BatchArgs),
}

#[derive(clap::Args)]
struct BatchArgs {
    /// register, promote, graduate, complete, repeat_grade, change_class or semester_register.
    kind: String,
    #[command(flatten)]
    place: cli::Place,
    #[arg(long)]
    policies: Option<PathBuf>,
    #[arg(long)]
    school: String,
    /// Only this grade (and --class).
    #[arg(long)]
    grade: Option<u8>,
    #[arg(long)]
    class: Option<String>,
    /// Only these students (ids, comma-separated), instead of --grade/--class.
    #[arg(long, value_delimiter = ',')]
    students: Option<Vec<String>>,
    /// Effective date YYYY-MM-DD.
    #[arg(long, value_parser = |s: &str| xueji::domain::Date::parse(s))]
    date: xueji::domain::Date,
    #[arg(long)]
    reason: Option<String>,
    /// A shared param KEY=VALUE (repeatable; a JSON value, or else text), e.g. term=2026-fall.
    #[arg(long = "param")]
    params: Vec<String>,
    /// A supporting document every student has (its kind; repeatable).
    #[arg(long = "document")]
    documents: Vec<String>,
    /// promote: OLD=NEW class (repeatable).
    #[arg(long = "class-map")]
    class_map: Vec<String>,
    /// The school's last grade, when not the level's usual one (a 五四学制 junior school: 4).
    #[arg(long)]
    top_grade: Option<u8>,
    /// Decide every student; store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the report (every student) to this file, CSV or XLSX by its extension.
    #[arg(long)]
    report: Option<PathBuf>,
}

impl BatchArgs {
    fn spec(&self) -> Result<xueji::engine::batch::BatchSpec> {
        let pair = |s: &str| -> Result<(String, String)> {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| anyhow::anyhow!("应为 KEY=VALUE:{s}"))
        };
        let mut params = serde_json::Map::new();
        for p in &self.params {
            let (k, v) = pair(p)?;
            let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
            params.insert(k, value);
        }
        let mut class_map = std::collections::BTreeMap::new();
        for p in &self.class_map {
            let (k, v) = pair(p)?;
            class_map.insert(k, v);
        }
        let documents = self
            .documents
            .iter()
            .map(|d| serde_json::from_value(serde_json::json!({ "kind": d })))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("--document: {e}"))?;
        let reason = self
            .reason
            .as_deref()
            .map(|r| serde_json::from_value(serde_json::Value::String(r.to_owned())))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--reason: {e}"))?;
        Ok(xueji::engine::batch::BatchSpec {
            kind: self.kind.clone(),
            school: self.school.clone(),
            grade: self.grade,
            class: self.class.clone(),
            students: self.students.clone(),
            effective_date: self.date,
            reason,
            params,
            documents,
            class_map,
            top_grade: self.top_grade,
        })
    }
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Compile a package folder (or a folder of packages) and report every error with its position.
    Check { dir: PathBuf },
    /// Compile and run the packages' own test cases, and check each rule is tested both ways.
    Test { dir: PathBuf },
    /// What changes from one version of a package to another: rules, citations, parameters, and
    /// decisions on both versions' test cases.
    Diff { old: PathBuf, new: PathBuf },
    /// Print the JSON body for `PUT /v1/policies/{id}` and `POST .../impact` from a package folder.
    Bundle { dir: PathBuf },
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Add the keys of another server's `GET /v1/keys` answer (saved to FILE) to the trust list;
    /// a running server reads the list at its next start.
    Add {
        /// The saved `GET /v1/keys` answer (or one key of it).
        file: PathBuf,
        /// The trust folder (default DATA/trusted, as `serve --trust`).
        #[arg(long, env = "XUEJI_TRUST")]
        trust: Option<PathBuf>,
        #[arg(long, default_value = "./xueji-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token (the server must be stopped: the data file is opened exclusively).
    Create {
        #[command(flatten)]
        place: cli::Place,
        #[arg(long)]
        role: Role,
        #[arg(long)]
        jurisdiction: Option<String>,
        #[arg(long)]
        area: Option<String>,
        #[arg(long)]
        school: Option<String>,
        #[arg(long)]
        class: Option<String>,
        #[arg(long)]
        student: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// Refused from then on: a date (valid through that day, China time) or RFC 3339.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List every token: id, role, scope, label, created, expires, revoked (never a secret:
    /// only hashes are stored). The server must be stopped.
    List {
        #[command(flatten)]
        place: cli::Place,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it is refused from then on. The server must be stopped.
    Revoke {
        id: String,
        #[command(flatten)]
        place: cli::Place,
    },
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn main() -> Result<()> {
    let args = Cli::parse();
    match args.command {
        Command::Serve {
            place,
            addr,
            policies,
            cors_origins,
            demo,
            tz,
            header_read_timeout,
            idle_timeout,
            max_connections,
            trust,
            issuer,
        } => {
            init_tracing();
            let limits = xueji::http::ServeConfig {
                header_read_timeout: std::time::Duration::from_secs(header_read_timeout),
                idle_timeout: std::time::Duration::from_secs(idle_timeout),
                max_connections: usize::try_from(max_connections)
                    .unwrap_or(xueji::http::MAX_CONNECTIONS_LIMIT),
            };
            let keys = Keys { trust, issuer };
            serve(place, addr, policies, cors_origins, demo, tz, limits, keys)
        }
        Command::Trust {
            command: TrustCommand::Add { file, trust, data },
        } => {
            let published = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let dir = trust.unwrap_or_else(|| data.join("trusted"));
            let added = xueji::keys::trust_add(&dir, &published)?;
            println!(
                "已信任 {} 个公钥({}):{}",
                added.len(),
                dir.display(),
                added.join(", ")
            );
            Ok(())
        }
        Command::Policy {
            command: PolicyCommand::Check { dir },
        } => cli::policy_check(&dir),
        Command::Policy {
            command: PolicyCommand::Test { dir },
        } => cli::policy_test(&dir),
        Command::Policy {
            command: PolicyCommand::Diff { old, new },
        } => cli::policy_diff(&old, &new).map(|_| ()),
        Command::Policy {
            command: PolicyCommand::Bundle { dir },
        } => {
            println!("{}", cli::policy_bundle(&dir)?);
            Ok(())
        }
        Command::Backup { data, out } => {
            let backup = cli::backup(&data, &out)?;
            println!(
                "backup written to {} ({} records)",
                backup.file.display(),
                backup.records
            );
            for c in &backup.checkpoints {
                println!(
                    "checkpoint {}: {} events, root {}",
                    c.jurisdiction, c.size, c.root
                );
            }
            println!(
                "checkpoints written to {}",
                backup.checkpoints_file.display()
            );
            Ok(())
        }
        Command::Restore {
            backup,
            data,
            policies,
        } => cli::restore(&backup, &data, policies.as_deref()),
        Command::Migrate {
            from,
            to,
            data,
            policies,
        } => {
            // Drawn on standard error, and only on a terminal.
            let progress = indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} 条记录已复制 {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let ok = cli::migrate(&from, &to, &data, policies.as_deref(), &|n| {
                progress.set_position(n)
            });
            progress.finish_and_clear();
            if ok? { Ok(()) } else { std::process::exit(1) }
        }
        Command::Verify {
            place,
            policies,
            checkpoints,
        } => {
            if cli::verify(&place, policies.as_deref(), checkpoints.as_deref())? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Import {
            place,
            policies,
            files,
            format,
            school,
            partial,
            dry_run,
            report,
            register,
            register_date,
        } => {
            // Drawn on standard error, and only on a terminal.
            let progress = indicatif::ProgressBar::new(files.len() as u64).with_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} 个文件 {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let reports = xueji::exchange::cli::import(
                &place,
                policies.as_deref(),
                &files,
                &xueji::engine::import::ImportOptions {
                    format,
                    partial,
                    dry_run,
                    school,
                },
                |_| progress.inc(1),
            )?;
            progress.finish_and_clear();
            let all_ok = reports.iter().all(|r| r.as_ref().is_ok_and(|r| r.ok));
            if let Some(path) = &report {
                // One file: its report. Several: one entry per file, in order.
                let out = match reports.as_slice() {
                    [Ok(report)] => serde_json::to_value(report)?,
                    _ => serde_json::Value::Array(
                        files
                            .iter()
                            .zip(&reports)
                            .map(|(f, r)| match r {
                                Ok(report) => serde_json::json!({"file": f, "report": report}),
                                Err(e) => serde_json::json!({"file": f, "error": e}),
                            })
                            .collect(),
                    ),
                };
                xueji::engine::private::write(path, &serde_json::to_vec_pretty(&out)?)?;
            }
            for line in xueji::exchange::cli::import_summary(&files, &reports, dry_run, 20) {
                println!("{line}");
            }
            if register && !dry_run {
                let stored: Vec<String> = reports
                    .iter()
                    .flatten()
                    .filter(|r| r.stored > 0)
                    .flat_map(|r| r.rows.iter().filter(|row| row.ok))
                    .filter_map(|row| row.student.clone())
                    .collect();
                let date = register_date.unwrap_or_else(xueji::domain::Date::today);
                let bar = indicatif::ProgressBar::new(0).with_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} 名学生 {elapsed}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let lines = xueji::batch::cli::register_imported(
                    &place,
                    policies.as_deref(),
                    &stored,
                    date,
                    &|done, total| {
                        bar.set_length(total as u64);
                        bar.set_position(done as u64);
                    },
                )?;
                bar.finish_and_clear();
                for line in lines {
                    println!("{line}");
                }
            }
            if all_ok {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Batch(args) => {
            let spec = args.spec()?;
            // Drawn on standard error, and only on a terminal.
            let progress = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} 名学生 {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let out = xueji::batch::cli::run(
                &args.place,
                args.policies.as_deref(),
                &spec,
                args.dry_run,
                args.report.as_deref(),
                &|done, total| {
                    progress.set_length(total as u64);
                    progress.set_position(done as u64);
                },
            )?;
            progress.finish_and_clear();
            for b in &out.resumed {
                println!("已续办上次中断的批次 {}", b.id);
            }
            println!("{}", xueji::batch::cli::summary(&out, args.dry_run));
            if out
                .batch
                .as_ref()
                .is_some_and(|b| b.status == xueji::engine::batch::BatchStatus::Failed)
            {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Export {
            place,
            policies,
            school,
            kind,
            format,
            year,
            as_of,
            grade,
            class,
            out,
        } => {
            let n = xueji::exchange::cli::export(
                &place,
                policies.as_deref(),
                &school,
                format,
                &xueji::engine::roster::RosterQuery {
                    kind,
                    year,
                    as_of,
                    grade,
                    class,
                },
                &out,
            )?;
            println!("{n} students written to {}", out.display());
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    place,
                    role,
                    jurisdiction,
                    area,
                    school,
                    class,
                    student,
                    label,
                    expires,
                },
        } => {
            let (token, record) = cli::token_create(
                &place,
                xueji::engine::TokenRequest {
                    role,
                    jurisdiction,
                    area,
                    school,
                    class,
                    student,
                    label,
                    expires_at: expires,
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&record)?);
            println!("token (shown once): {token}");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::List { place, json },
        } => {
            let tokens = cli::token_list(&place)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                print!("{}", cli::token_table(&tokens));
            }
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Revoke { id, place },
        } => {
            let record = cli::token_revoke(&place, &id)?;
            println!("{}", serde_json::to_string_pretty(&record)?);
            Ok(())
        }
    }
}

/// Where `serve` finds the transfer-certificate keys it trusts, and the name it signs with.
struct Keys {
    trust: Option<PathBuf>,
    issuer: String,
}

#[allow(clippy::too_many_arguments)]
fn serve(
    place: cli::Place,
    addr: SocketAddr,
    policies: Option<PathBuf>,
    cors_origins: Vec<String>,
    demo: bool,
    tz: chrono_tz::Tz,
    limits: xueji::http::ServeConfig,
    keys: Keys,
) -> Result<()> {
    let data = place.data.clone();
    let ring = xueji::keys::load(&data, keys.trust.as_deref(), &keys.issuer)?;
    let xueji = Arc::new(
        cli::open(&place, policies.as_deref())?
            .with_time_zone(tz)
            .with_keys(ring),
    );
    match cli::bootstrap_admin(&xueji, &data)? {
        cli::Bootstrap::Written(path) => {
            tracing::info!(path = %path.display(), "first start: admin token written")
        }
        cli::Bootstrap::FromEnv { revoked } if !revoked.is_empty() => tracing::info!(
            revoked = ?revoked,
            "XUEJI_ADMIN_TOKEN changed: the earlier admin token is revoked"
        ),
        cli::Bootstrap::FromEnv { .. } | cli::Bootstrap::Kept => {}
    }
    if demo {
        match xueji::demo::load(&xueji, &data)? {
            Some(path) => tracing::info!(tokens = %path.display(), "demo data loaded"),
            None => tracing::info!("store not empty: demo data not loaded"),
        }
    }
    // A batch a crash (or a stop) interrupted goes on with the students it had not done.
    xueji.resume_batches()?;
    let cors = (!cors_origins.is_empty()).then(|| {
        let origins: Vec<_> = cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(tower_http::cors::Any)
            .allow_headers(tower_http::cors::Any)
    });
    let app = xueji::http::router(
        AppState {
            xueji: xueji.clone(),
            metrics: Arc::new(Metrics::default()),
            backup_dir: data.join("backups").into(),
        },
        cors,
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let for_sweeps = xueji.clone();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, data = %data.display(), store = %place.location(), header_read_timeout_s = limits.header_read_timeout.as_secs(), idle_timeout_s = limits.idle_timeout.as_secs(), max_connections = limits.max_connections, "xueji serving");
        let watcher = policies
            .clone()
            .map(|dir| tokio::spawn(watch_policies(for_sweeps.clone(), dir)));
        let sweeper = tokio::spawn(daily_sweep(for_sweeps));
        xueji::http::serve_with(listener, app, limits, shutdown_signal()).await?;
        sweeper.abort();
        if let Some(w) = watcher {
            w.abort();
        }
        tracing::info!("stopped accepting; in-flight requests finished");
        anyhow::Ok(())
    })?;
    drop(runtime);
    // The last reference: closing the store drains the writer, so every acknowledged write is on disk.
    match Arc::try_unwrap(xueji) {
        Ok(x) => drop(x),
        Err(_) => tracing::warn!("store still referenced at exit"),
    }
    Ok(())
}

/// Looks at the policy folder every two seconds; edited packages go through the activation gate.
async fn watch_policies(x: Arc<xueji::engine::Xueji>, dir: PathBuf) {
    let initial = match cli::load_packages(Some(&dir)) {
        Ok(set) => set,
        Err(e) => {
            tracing::error!(error = %e, "policy folder unreadable; not watching");
            return;
        }
    };
    let watch = Arc::new(std::sync::Mutex::new(
        xueji::engine::lifecycle::FolderWatch::new(&initial),
    ));
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        interval.tick().await;
        let (x, dir, watch) = (x.clone(), dir.clone(), watch.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut w = watch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            w.sync(&x, &dir)
        })
        .await;
        match result {
            Ok(Ok(s)) if !s.activated.is_empty() => {
                tracing::info!(activated = ?s.activated, "policy folder: new versions active")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "policy folder check failed"),
            Err(e) => tracing::error!(error = %e, "policy folder check panicked"),
        }
    }
}

/// Runs the deadline sweep for today once a day (and once at start).
async fn daily_sweep(x: Arc<xueji::engine::Xueji>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
    loop {
        interval.tick().await;
        let x = x.clone();
        match tokio::task::spawn_blocking(move || x.sweep(x.today(), None)).await {
            Ok(Ok(r)) => tracing::info!(
                evaluated = r.evaluated,
                applied = r.applied.len(),
                failed = r.failed.len(),
                "daily deadline sweep"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "daily deadline sweep failed"),
            Err(e) => tracing::error!(error = %e, "daily deadline sweep panicked"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}
