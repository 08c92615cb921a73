//! Upgrades: a frozen copy of the first config format still loads, and a history file written by
//! the first schema version opens, keeps its checkpoints and accepts new runs.

use crate::helper::project::Project;
use dms::history::{HistoryFilter, HistoryReader, HistoryWriter};
use std::path::Path;

#[test]
fn the_first_config_format_still_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config-v1");
    let s = dms::config::load(&dir).expect("the v1 config loads");
    assert_eq!(s.sync.batch_size, 5000);
    assert_eq!(s.sync.initial_days, 1825);
    assert_eq!(s.backups.len(), 2);
    assert_eq!(s.tasks[0].name, "daily_update_us");
}

#[test]
fn a_version_1_history_opens_and_keeps_its_checkpoints() {
    let p = Project::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history-v1.db");
    let path = p.root().join("run/db/sync_history.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(&fixture, &path).unwrap();

    let before = HistoryReader::open(&path).unwrap().checkpoints().unwrap();
    assert_eq!(before.len(), 16);
    assert_eq!(
        HistoryReader::open(&path).unwrap().totals().unwrap(),
        None,
        "no totals before a writer migrates the file"
    );
    let mut db = HistoryWriter::open(&path, "test", std::time::Duration::from_secs(5))
        .expect("opens (and migrates) for writing");
    assert_eq!(
        HistoryReader::open(&path).unwrap().totals().unwrap(),
        db.totals().unwrap(),
        "a reader sees the migrated file"
    );
    assert_eq!(db.checkpoints().unwrap(), before);
    assert_eq!(db.history(&HistoryFilter::default()).unwrap().len(), 6);
    // The running totals behind /metrics start from the rows the file held.
    let totals = db.totals().unwrap().expect("migrated to version 3");
    let syncs: Vec<(&str, &str, u64)> = totals
        .syncs
        .iter()
        .map(|s| (s.backup.as_str(), s.status.as_str(), s.syncs))
        .collect();
    assert_eq!(
        syncs,
        [("backup1", "success", 5), ("backup2", "success", 1)]
    );
    assert_eq!(
        totals.records,
        [("backup1".to_string(), 6106), ("backup2".to_string(), 1298)]
    );
    assert_eq!(totals.durations.iter().map(|d| d.syncs).sum::<u64>(), 6);
    assert_eq!(totals.runs.len(), 1);
    assert_eq!(
        (
            totals.runs[0].task.as_str(),
            totals.runs[0].trigger.as_str(),
            totals.runs[0].runs
        ),
        ("daily_update_us", "once", 1)
    );
    let run = db.start_run("t", dms::history::Trigger::Manual).unwrap();
    db.finish_run(run, dms::history::Status::Success, None)
        .unwrap();
    assert_eq!(db.runs(Some("t"), 0).unwrap().len(), 1);
    assert_eq!(db.totals().unwrap().unwrap().runs.len(), 2);
}

#[test]
fn a_history_from_a_newer_dms_is_refused_with_a_clear_error() {
    let p = Project::new();
    let path = p.root().join("newer.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = HistoryWriter::open(&path, "test", std::time::Duration::from_secs(5))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("schema version 99") && err.contains("upgrade dms"),
        "{err}"
    );
}
