//! `nexus-campaign`: list, export and import campaigns of a Nexus Physics data directory.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nexus_store::backup::{export_campaign, import_campaign, read_backup_file, write_backup_file};
use nexus_store::{CampaignStore, SqliteStore, StoreError};
use tracing_subscriber::EnvFilter;

/// List, export and import campaigns of a Nexus Physics data directory.
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
        /// The server's data directory (where the campaign files are).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Write a campaign to a JSON backup file.
    Export {
        /// The server's data directory (where the campaign files are).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
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
        /// The server's data directory (created if missing).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
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
        Command::List { data_dir } => {
            let mut store = SqliteStore::open_existing(&data_dir)?;
            let ids = store.list_campaigns()?;
            if ids.is_empty() {
                println!("no campaigns in {}", data_dir.display());
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
            data_dir,
            campaign,
            out,
            force,
        } => {
            let mut store = SqliteStore::open_existing(&data_dir)?;
            let backup = export_campaign(&mut store, &campaign)?;
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
            data_dir,
            file,
            campaign,
            force,
        } => {
            let backup = read_backup_file(&file)?;
            let mut store = SqliteStore::open(&data_dir)?;
            let outcome = import_campaign(&mut store, backup, campaign.as_deref(), force)?;
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
