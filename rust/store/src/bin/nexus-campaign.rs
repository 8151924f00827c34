//! `nexus-campaign`: list, export and import campaigns of a Nexus Physics data directory.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad command line.

use std::path::PathBuf;
use std::process::ExitCode;

use nexus_store::backup::{export_campaign, import_campaign, read_backup_file, write_backup_file};
use nexus_store::{CampaignStore, SqliteStore, StoreError};

const USAGE: &str = "\
usage:
  nexus-campaign list   --data-dir DIR
  nexus-campaign export --data-dir DIR --campaign ID --out FILE [--force]
  nexus-campaign import --data-dir DIR --file FILE [--campaign ID] [--force]

  list     show the campaigns of a data directory
  export   write a campaign to a JSON backup file (--force replaces an existing file)
  import   validate a JSON backup and write it into the data directory, as ID if given;
           refuses to replace an existing campaign without --force, and always refuses a
           campaign that a running server holds";

enum Command {
    List {
        data_dir: PathBuf,
    },
    Export {
        data_dir: PathBuf,
        campaign: String,
        out: PathBuf,
        force: bool,
    },
    Import {
        data_dir: PathBuf,
        file: PathBuf,
        campaign: Option<String>,
        force: bool,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") || args.is_empty() {
        println!("{USAGE}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let command = match parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("nexus-campaign: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nexus-campaign: error [{}]: {error}", error.code());
            ExitCode::from(1)
        }
    }
}

fn parse(args: &[String]) -> Result<Command, String> {
    let (verb, rest) = args.split_first().ok_or("missing command")?;
    let mut data_dir = None;
    let mut campaign = None;
    let mut out = None;
    let mut file = None;
    let mut force = false;
    let mut iter = rest.iter();
    while let Some(flag) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .filter(|v| !v.starts_with("--"))
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--campaign" => campaign = Some(value("--campaign")?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--file" => file = Some(PathBuf::from(value("--file")?)),
            "--force" => force = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let data_dir = data_dir.ok_or("--data-dir DIR is required")?;
    let no = |flag: &str, present: bool| {
        if present {
            Err(format!("{flag} does not apply to {verb}"))
        } else {
            Ok(())
        }
    };
    match verb.as_str() {
        "list" => {
            no("--campaign", campaign.is_some())?;
            no("--out", out.is_some())?;
            no("--file", file.is_some())?;
            no("--force", force)?;
            Ok(Command::List { data_dir })
        }
        "export" => {
            no("--file", file.is_some())?;
            Ok(Command::Export {
                data_dir,
                campaign: campaign.ok_or("export needs --campaign ID")?,
                out: out.ok_or("export needs --out FILE")?,
                force,
            })
        }
        "import" => {
            no("--out", out.is_some())?;
            Ok(Command::Import {
                data_dir,
                file: file.ok_or("import needs --file FILE")?,
                campaign,
                force,
            })
        }
        other => Err(format!("unknown command {other:?}")),
    }
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
