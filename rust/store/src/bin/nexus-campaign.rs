//! `nexus-campaign`: list, export and import campaigns of a Nexus Physics data directory or of a
//! cluster's PostgreSQL database (export from one, import into the other to move a campaign).
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use nexus_store::backup::{export_campaign, import_campaign, read_backup_file, write_backup_file};
use nexus_store::{CampaignStore, PostgresOptions, PostgresStore, SqliteStore, StoreError};
use tracing_subscriber::EnvFilter;

/// List, export and import campaigns of a Nexus Physics data directory (SQLite) or of a cluster's
/// PostgreSQL database.
///
/// Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad command line.
#[derive(Parser, Debug)]
#[command(name = "nexus-campaign", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the campaigns of a data directory.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a campaign to a JSON backup file.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The campaign to export.
        #[arg(long, value_name = "ID")]
        campaign: String,
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Validate a JSON backup and write it into the data directory. Never replaces a campaign
    /// that a running server holds.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// The backup file to read.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Import under this id instead of the backup's.
        #[arg(long, value_name = "ID")]
        campaign: Option<String>,
        /// Replace an existing campaign of that id.
        #[arg(long)]
        force: bool,
    },
}

/// Where the campaigns are: exactly one of the two.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct StoreArgs {
    /// A server's data directory (one SQLite file per campaign); import creates it if missing.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A cluster's PostgreSQL database, postgres://user[:password]@host[:port]/name.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

impl StoreArgs {
    /// Opens the store; `create` lets an import start a new data directory (reads never do, so
    /// a mistyped path is an error).
    fn open(&self, create: bool) -> Result<Box<dyn CampaignStore>, StoreError> {
        match (&self.data_dir, &self.database) {
            (_, Some(url)) => Ok(Box::new(PostgresStore::connect(
                url,
                PostgresOptions {
                    owner: format!("nexus-campaign:{}", nexus_store::postgres::default_owner()),
                    ..PostgresOptions::default()
                },
            )?)),
            (Some(dir), None) if create => Ok(Box::new(SqliteStore::open(dir)?)),
            (Some(dir), None) => Ok(Box::new(SqliteStore::open_existing(dir)?)),
            (None, None) => unreachable!("clap requires one of --data-dir and --database"),
        }
    }

    fn describe(&self) -> String {
        match (&self.data_dir, &self.database) {
            (Some(dir), _) => dir.display().to_string(),
            (None, Some(_)) => "the database".to_string(),
            (None, None) => String::new(),
        }
    }
}

fn main() -> ExitCode {
    // Bad command lines end here: clap's message, exit code 2.
    let cli = Cli::parse();
    init_tracing();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The command's own report of its failure (not a log line).
            eprintln!("nexus-campaign: error [{}]: {error}", error.code());
            ExitCode::from(1)
        }
    }
}

/// The store's log lines (e.g. a schema upgrade) to standard error, filtered by RUST_LOG (default
/// `info`); standard output stays the command's.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(command: Command) -> Result<(), StoreError> {
    match command {
        Command::List { store: location } => {
            let mut store = location.open(false)?;
            let ids = store.list_campaigns()?;
            if ids.is_empty() {
                println!("no campaigns in {}", location.describe());
            }
            for id in ids {
                // One unreadable campaign must not hide the others.
                match store.campaign_summary(&id) {
                    Ok(Some(s)) => println!(
                        "{id}\ttick {}\t{} objects\t{} players\t{} saves",
                        s.tick, s.object_count, s.player_count, s.revision
                    ),
                    Ok(None) => println!("{id}\t(never saved)"),
                    Err(e) => println!("{id}\tunreadable [{}]: {e}", e.code()),
                }
            }
            Ok(())
        }
        Command::Export {
            store,
            campaign,
            out,
            force,
        } => {
            let mut store = store.open(false)?;
            let backup = export_campaign(store.as_mut(), &campaign)?;
            write_backup_file(&backup, &out, force)?;
            println!(
                "exported campaign {campaign} (tick {}, {} objects, {} players) to {}",
                backup.campaign.tick,
                backup.campaign.objects.len(),
                backup.campaign.players.len(),
                out.display()
            );
            Ok(())
        }
        Command::Import {
            store,
            file,
            campaign,
            force,
        } => {
            let backup = read_backup_file(&file)?;
            let mut store = store.open(true)?;
            let outcome = import_campaign(store.as_mut(), backup, campaign.as_deref(), force)?;
            println!(
                "{} campaign {} from {} (tick {}, {} objects, {} players)",
                if outcome.replaced {
                    "replaced"
                } else {
                    "imported"
                },
                outcome.campaign_id,
                file.display(),
                outcome.stats.tick,
                outcome.stats.objects_written,
                outcome.stats.players_written
            );
            Ok(())
        }
    }
}
