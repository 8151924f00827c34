//! Backups: export → import round trips, validation of bad files, and the `nexus-campaign` CLI.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{ScratchDir, assert_same, campaign};
use nexus_store::backup::{
    BACKUP_VERSION, CampaignBackup, export_campaign, import_campaign, read_backup_file,
    write_backup_file,
};
use nexus_store::{CampaignChange, CampaignStore, SqliteStore};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus-campaign"))
        .args(args)
        .output()
        .expect("run nexus-campaign")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn seed_store(dir: &Path, id: &str, objects: u32) -> nexus_store::CampaignRecord {
    let record = campaign(id, objects);
    let mut store = SqliteStore::open(dir).unwrap();
    store
        .save_change(id, &CampaignChange::between(None, &record))
        .unwrap();
    record
}

#[test]
fn export_then_import_gives_back_the_same_campaign() {
    let source = ScratchDir::new("backup-src");
    let target = ScratchDir::new("backup-dst");
    let record = seed_store(source.path(), "journey", 300);
    let file = source.path().join("journey.json");

    let mut store = SqliteStore::open(source.path()).unwrap();
    let backup = export_campaign(&mut store, "journey").unwrap();
    write_backup_file(&backup, &file, false).unwrap();
    let read = read_backup_file(&file).unwrap();
    assert_eq!(read, backup, "the file holds exactly what was exported");

    let mut other = SqliteStore::open(target.path()).unwrap();
    let outcome = import_campaign(&mut other, read, None, false).unwrap();
    assert!(!outcome.replaced);
    assert_eq!(outcome.stats.objects_written, 301);
    assert_same(other.load_campaign("journey").unwrap().as_ref(), &record);

    // And once more under another name, next to the first.
    let renamed = import_campaign(
        &mut other,
        read_backup_file(&file).unwrap(),
        Some("journey-copy"),
        false,
    )
    .unwrap();
    assert_eq!(renamed.campaign_id, "journey-copy");
    let mut expected = record.clone();
    expected.campaign_id = "journey-copy".into();
    assert_same(
        other.load_campaign("journey-copy").unwrap().as_ref(),
        &expected,
    );
    assert_same(other.load_campaign("journey").unwrap().as_ref(), &record);
}

#[test]
fn import_refuses_to_overwrite_without_force() {
    let dir = ScratchDir::new("backup-force");
    let original = seed_store(dir.path(), "keep", 10);
    let backup = CampaignBackup::new(campaign("keep", 3));
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let error = import_campaign(&mut store, backup.clone(), None, false).unwrap_err();
    assert_eq!(error.code(), "already_exists");
    assert!(error.to_string().contains("--force"), "{error}");
    assert_same(store.load_campaign("keep").unwrap().as_ref(), &original);

    let outcome = import_campaign(&mut store, backup.clone(), None, true).unwrap();
    assert!(outcome.replaced);
    assert_same(
        store.load_campaign("keep").unwrap().as_ref(),
        &backup.campaign,
    );
}

#[test]
fn import_refuses_a_campaign_held_by_a_running_saver() {
    let dir = ScratchDir::new("backup-busy");
    let mut running = SqliteStore::open(dir.path()).unwrap();
    let _held = running.lock_campaign("live").unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let error = import_campaign(
        &mut store,
        CampaignBackup::new(campaign("live", 2)),
        None,
        true,
    )
    .unwrap_err();
    assert_eq!(error.code(), "locked", "{error}");
    assert_eq!(store.load_campaign("live").unwrap(), None);
}

#[test]
fn bad_backup_files_are_rejected_with_clear_errors() {
    let dir = ScratchDir::new("backup-bad");
    let good = serde_json::to_value(CampaignBackup::new(campaign("fine", 4))).unwrap();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value = good.clone();
        edit(&mut value);
        value.to_string()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "truncated",
            good.to_string()[..200].to_string(),
            "not valid JSON",
        ),
        ("garbage", "\u{0}\u{1}binary".to_string(), "not valid JSON"),
        ("array", "[1, 2, 3]".to_string(), "not a JSON object"),
        (
            "no format",
            r#"{"campaign": {}}"#.to_string(),
            "not a campaign backup",
        ),
        (
            "other format",
            with(&|v| v["format"] = "something-else".into()),
            "expected \"nexus-campaign-backup\"",
        ),
        (
            "newer version",
            with(&|v| v["version"] = (BACKUP_VERSION + 1).into()),
            "newer than",
        ),
        (
            "missing field",
            with(&|v| {
                v["campaign"].as_object_mut().unwrap().remove("environment");
            }),
            "missing field `environment`",
        ),
        (
            "wrong type",
            with(&|v| v["campaign"]["tick"] = "soon".into()),
            "does not describe a campaign",
        ),
        (
            "overflowing float",
            with(&|v| v["campaign"]["objects"]["3"]["state"]["position"][0] = 1e300.into()),
            "object 3: position",
        ),
        (
            "mismatched key",
            with(&|v| v["campaign"]["objects"]["3"]["state"]["id"] = 99.into()),
            "object keyed 3 says its id is 99",
        ),
        (
            "id reuse",
            with(&|v| v["campaign"]["next_object_id"] = 2.into()),
            "ids would be reused",
        ),
        (
            "dangling held item",
            with(&|v| v["campaign"]["players"]["ann"]["held_items"] = serde_json::json!([777])),
            "holds object 777",
        ),
        (
            "bad campaign id",
            with(&|v| v["campaign"]["campaign_id"] = "../../etc".into()),
            "invalid campaign id",
        ),
    ];
    for (name, content, expected) in cases {
        let file = dir.path().join("bad.json");
        std::fs::write(&file, content).unwrap();
        let error = read_backup_file(&file).unwrap_err();
        let message = error.to_string();
        assert_eq!(error.code(), "invalid_backup", "{name}: {message}");
        assert!(
            message.contains(expected),
            "{name}: {message:?} lacks {expected:?}"
        );
        assert!(
            message.contains("bad.json"),
            "{name}: names the file: {message}"
        );
    }
}

#[test]
fn the_command_line_lists_exports_and_imports() {
    let dir = ScratchDir::new("cli");
    let data = dir.path().join("data");
    let moved = dir.path().join("moved");
    let record = seed_store(&data, "cli-campaign", 25);
    seed_store(&data, "second", 2);
    let data_arg = data.to_str().unwrap();
    let file = dir.path().join("backup.json");
    let file_arg = file.to_str().unwrap();

    let out = cli(&["list", "--data-dir", data_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("cli-campaign\ttick 600\t26 objects\t2 players"),
        "{listing}"
    );
    assert!(listing.contains("second"), "{listing}");

    let out = cli(&[
        "export",
        "--data-dir",
        data_arg,
        "--campaign",
        "cli-campaign",
        "--out",
        file_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A second export does not silently replace the first backup.
    let out = cli(&[
        "export",
        "--data-dir",
        data_arg,
        "--campaign",
        "cli-campaign",
        "--out",
        file_arg,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );

    let moved_arg = moved.to_str().unwrap();
    let out = cli(&["import", "--data-dir", moved_arg, "--file", file_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported campaign cli-campaign"));
    let out = cli(&["import", "--data-dir", moved_arg, "--file", file_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&[
        "import",
        "--data-dir",
        moved_arg,
        "--file",
        file_arg,
        "--campaign",
        "renamed",
        "--force",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut store = SqliteStore::open(&moved).unwrap();
    assert_same(
        store.load_campaign("cli-campaign").unwrap().as_ref(),
        &record,
    );
    assert_eq!(
        store.list_campaigns().unwrap(),
        vec!["cli-campaign", "renamed"]
    );
}

#[test]
fn the_command_line_fails_cleanly_on_bad_input() {
    let dir = ScratchDir::new("cli-bad");
    let data_arg = dir.path().to_str().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{ this is not json").unwrap();
    let missing = dir.path().join("nowhere");

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec![], 2, "Usage: nexus-campaign"),
        (
            vec!["explode", "--data-dir", data_arg],
            2,
            "unrecognized subcommand",
        ),
        (vec!["list"], 2, "--data-dir <DIR>"),
        (
            vec!["export", "--data-dir", data_arg, "--out", "x.json"],
            2,
            "--campaign <ID>",
        ),
        (vec!["import", "--data-dir"], 2, "a value is required"),
        (
            vec!["list", "--data-dir", data_arg, "--bogus"],
            2,
            "unexpected argument '--bogus'",
        ),
        (
            vec!["list", "--data-dir", missing.to_str().unwrap()],
            1,
            "cannot open the data directory",
        ),
        (
            vec![
                "export",
                "--data-dir",
                data_arg,
                "--campaign",
                "absent",
                "--out",
                "x.json",
            ],
            1,
            "does not exist",
        ),
        (
            vec![
                "export",
                "--data-dir",
                data_arg,
                "--campaign",
                "../up",
                "--out",
                "x.json",
            ],
            1,
            "invalid campaign id",
        ),
        (
            vec![
                "import",
                "--data-dir",
                data_arg,
                "--file",
                junk.to_str().unwrap(),
            ],
            1,
            "not valid JSON",
        ),
        (
            vec![
                "import",
                "--data-dir",
                data_arg,
                "--file",
                "/no/such/file.json",
            ],
            1,
            "cannot read",
        ),
    ];
    for (args, code, expected) in cases {
        let out = cli(&args);
        let stderr = text(&out.stderr);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected) || stdout.contains(expected),
            "{args:?}: {stderr:?} lacks {expected:?}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(
        !missing.exists(),
        "a failed list must not create the directory"
    );
}
