//! The `palisade` command: initialise, migrate and serve.

mod audit_verify;
mod authz_config;
mod config;
mod crypto;
mod init;
mod inspection_config;
mod lockout_config;
mod passwords_config;
mod ratelimit_config;
mod serve;
mod threats_config;
mod tokens_config;
mod tokens_task;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{CONFIG_FILE, Config, DEFAULT_DATA_DIR};
use palisade_store::Database;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: a request allocates dozens of small
/// buffers (headers, log lines, metric labels), and glibc's allocator showed up as
/// ~12% of CPU under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Palisade: authentication, authorization, a tamper-evident audit log, encryption
/// and request protection for backend services, behind one HTTP API.
///
/// Quick start: `palisade serve` runs on embedded defaults (SQLite in ./palisade-data,
/// 127.0.0.1:8080) and prints an admin API key on its first start.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, propagate_version = true)]
struct Cli {
    /// Configuration file. Default: ./palisade-data/palisade.toml
    #[arg(long, short, global = true, env = "PALISADE_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: palisade.toml with fresh secrets (mode 0600), the
    /// database, and a first admin API key, printed once.
    ///
    /// Set PALISADE_BOOTSTRAP_ADMIN_KEY (32+ characters) to choose that key yourself.
    Init {
        /// Directory to create.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        dir: PathBuf,
    },
    /// Run the HTTP server. With no configuration, initialises ./palisade-data first
    /// and runs on the embedded defaults.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Work with the encryption keyring.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a version to key NAME: new data is sealed under it, data sealed
    /// before still opens. Audited. Running instances adopt it within
    /// crypto.refresh_ms.
    Rotate {
        /// The key's name (e.g. `default`).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the Merkle tree from every stored leaf; check every stored hash and
    /// every checkpoint signature. Exits non-zero and names the first index that does
    /// not match.
    Verify {
        /// A checkpoint saved earlier (from GET /v1/audit/checkpoint): also prove the
        /// log still extends it (no history was rewritten since).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { dir } => {
            let path = init::write_config(&dir)?;
            let config = load(&path)?;
            let db = open_migrated(&config).await?;
            let key = init::bootstrap_admin_key(&config, &db).await?;
            let keyring = crypto::create_default_key(&config, &db).await;
            db.close().await;
            keyring?;
            eprintln!("wrote {}", path.display());
            if let Some(key) = key {
                init::announce_admin_key(&key);
            }
            Ok(())
        }
        Command::Serve => {
            let path = cli
                .config
                .unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR).join(CONFIG_FILE));
            let first_start = !path.exists() && cli_is_default(&path);
            if first_start {
                init::write_config(path.parent().unwrap_or(Path::new(DEFAULT_DATA_DIR)))?;
                eprintln!("initialised {}", path.display());
            }
            let config = load(&path)?;
            // Dropped when `serve` returns: flushes pending spans, then the logs.
            let _observability =
                palisade_observe::init_observability(&config.log, &config.telemetry)?;
            if first_start || config.database.url.is_none() {
                // The embedded database is local: create the first key before serving.
                let db = open_migrated(&config).await?;
                if let Some(key) = init::bootstrap_admin_key(&config, &db).await? {
                    init::announce_admin_key(&key);
                }
                db.close().await;
            }
            serve::run(config).await
        }
        Command::Audit {
            command: AuditCommand::Verify { checkpoint },
        } => {
            let path = cli
                .config
                .unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR).join(CONFIG_FILE));
            let config = load(&path)?;
            let saved = checkpoint
                .map(|p| {
                    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
                })
                .transpose()?;
            let db = open_migrated(&config).await?;
            let result = audit_verify::run(&config, &db, saved.as_deref()).await;
            db.close().await;
            result
        }
        Command::Keys {
            command: KeysCommand::Rotate { name },
        } => {
            let path = cli
                .config
                .unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR).join(CONFIG_FILE));
            let config = load(&path)?;
            let db = open_migrated(&config).await?;
            let rotated = crypto::rotate(&config, &db, &name).await;
            db.close().await;
            let version = rotated?;
            eprintln!("key {name:?} rotated: version {version} is now active");
            Ok(())
        }
        Command::Migrate => {
            let path = cli
                .config
                .unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR).join(CONFIG_FILE));
            let config = load(&path)?;
            let db = open_migrated(&config).await?;
            db.close().await;
            eprintln!("migrations applied");
            Ok(())
        }
    }
}

/// Only the default location is initialised implicitly; a `--config` that does not
/// exist is a mistake worth reporting.
fn cli_is_default(path: &Path) -> bool {
    path == Path::new(DEFAULT_DATA_DIR).join(CONFIG_FILE)
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(path, std::env::vars())?)
}

async fn open_migrated(config: &Config) -> anyhow::Result<Database> {
    let db = Database::connect(&config.database, &config.data_dir())
        .await
        .context("opening the database")?;
    db.migrate().await.context("applying migrations")?;
    Ok(db)
}
