use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database file path per call, removed with its WAL files by `cleanup`.
fn temp_db() -> std::path::PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("herald-sqlite-{}-{n}.db", std::process::id()));
    cleanup(&path);
    path
}

fn cleanup(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

fn open(path: &Path) -> Box<dyn Backend> {
    match SqliteBackend::open(path) {
        Ok(b) => Box::new(b),
        Err(e) => panic!("open {}: {e}", path.display()),
    }
}

#[test]
fn conformance() {
    let path = temp_db();
    crate::store::conformance::run_all(&|| open(&path));
    cleanup(&path);
}

#[test]
fn racing_room_changes() {
    let path = temp_db();
    open(&path).migrate().unwrap();
    crate::store::conformance::racing_direct_rooms((0..4).map(|_| open(&path)).collect());
    crate::store::conformance::racing_invitations((0..5).map(|_| open(&path)).collect());
    cleanup(&path);
}

#[test]
fn concurrent_commits_keep_rooms_chained() {
    let path = temp_db();
    crate::store::conformance::concurrent_commits_keep_every_room_chained(&|| open(&path));
    cleanup(&path);
}

#[test]
fn rooms_are_back_filled_from_the_messages_stored_before_them() {
    let path = temp_db();
    let mut b = match SqliteBackend::open(&path) {
        Ok(b) => b,
        Err(e) => panic!("open: {e}"),
    };
    b.migrate().unwrap();
    let batch: Vec<NewChatMessage> = ["bf-a", "bf-b", "bf-a"]
        .iter()
        .map(|room| NewChatMessage {
            room_id: (*room).into(),
            sender: "s".into(),
            message: "m".into(),
            sent_at_ms: 1,
            mentions: vec![],
        })
        .collect();
    let ids: Vec<i64> = b.commit_chat(&batch).unwrap().messages.iter().map(|m| m.id).collect();
    // As a database of the previous version: no rooms table, schema at version 1.
    b.conn
        .execute_batch("DROP TABLE rooms; DELETE FROM schema_version WHERE version >= 2")
        .unwrap();
    b.migrate().unwrap();
    let mut heads = b.room_heads(&["bf-a", "bf-b"]).unwrap();
    heads.sort();
    assert_eq!(heads, vec![("bf-a".into(), ids[2]), ("bf-b".into(), ids[1])]);
    // The next message links to the back-filled head.
    let next = b.commit_chat(&batch[..1]).unwrap();
    assert_eq!(next.message_prev_ids, vec![ids[2]]);
    // Re-running the step (a crash before its version was recorded) changes nothing.
    b.conn
        .execute_batch("DELETE FROM schema_version WHERE version >= 2")
        .unwrap();
    b.migrate().unwrap();
    let head = b.room_heads(&["bf-a"]).unwrap();
    assert_eq!(head, vec![("bf-a".into(), next.messages[0].id)]);
    drop(b);
    cleanup(&path);
}

#[test]
fn pragmas_are_durable_wal() {
    let path = temp_db();
    let backend = match SqliteBackend::open(&path) {
        Ok(b) => b,
        Err(e) => panic!("open: {e}"),
    };
    let mode: String = backend.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    let sync: i64 = backend.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    let fk: i64 = backend.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
    assert_eq!(fk, 1);
    drop(backend);
    cleanup(&path);
}

#[test]
fn concurrent_migrate_and_commit_from_several_connections() {
    let path = temp_db();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut b = open(&path);
                b.migrate().unwrap();
                let batch: Vec<NewChatMessage> = (0..50)
                    .map(|i| NewChatMessage {
                        room_id: format!("room-{t}"),
                        sender: "alice".into(),
                        message: format!("m{i}"),
                        sent_at_ms: i,
                        mentions: vec![],
                    })
                    .collect();
                for _ in 0..10 {
                    b.commit_chat(&batch).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut b = open(&path);
    for t in 0..4 {
        let page = b
            .chat_history(
                &format!("room-{t}"),
                HistoryQuery {
                    limit: 1000,
                    before: None,
                    after: None,
                },
            )
            .unwrap();
        assert_eq!(page.len(), 500);
    }
    drop(b);
    cleanup(&path);
}

#[test]
fn many_workers_opening_a_new_file_at_once() {
    for _ in 0..50 {
        let path = temp_db();
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || SqliteBackend::open(&path).err().map(|e| e.to_string()))
            })
            .collect();
        for t in threads {
            if let Some(e) = t.join().unwrap() {
                panic!("{e}");
            }
        }
        cleanup(&path);
    }
}

#[test]
fn failed_commit_leaves_nothing_behind() {
    let path = temp_db();
    let mut b = match SqliteBackend::open(&path) {
        Ok(b) => b,
        Err(e) => panic!("open: {e}"),
    };
    b.migrate().unwrap();
    b.create_user("boom", "x", 0).unwrap();
    // Make the mention insert, which runs after the messages went in, fail.
    b.conn
        .execute_batch(
            "CREATE TRIGGER fail_boom BEFORE INSERT ON notifications
             WHEN NEW.recipient = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .unwrap();
    let batch = vec![NewChatMessage {
        room_id: "r".into(),
        sender: "s".into(),
        message: "hi @boom".into(),
        sent_at_ms: 1,
        mentions: vec!["boom".into()],
    }];
    assert!(matches!(b.commit_chat(&batch), Err(StoreError::Other(_))));
    let q = HistoryQuery {
        limit: 10,
        before: None,
        after: None,
    };
    assert!(b.chat_history("r", q).unwrap().is_empty());
    // The connection is still usable after the rollback.
    b.conn.execute_batch("DROP TRIGGER fail_boom").unwrap();
    assert_eq!(b.commit_chat(&batch).unwrap().notifications.len(), 1);
    drop(b);
    cleanup(&path);
}

#[test]
fn a_failed_group_leaves_nothing_behind() {
    let path = temp_db();
    let mut b = match SqliteBackend::open(&path) {
        Ok(b) => b,
        Err(e) => panic!("open: {e}"),
    };
    b.migrate().unwrap();
    b.conn
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON chat_messages
             WHEN NEW.message = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END",
        )
        .unwrap();
    crate::store::conformance::group_is_atomic(&mut b, "poison");
    drop(b);
    cleanup(&path);
}

#[test]
#[ignore = "timing, run with --ignored --nocapture"]
fn time_single_commit_of_500() {
    let path = temp_db();
    let mut b = open(&path);
    b.migrate().unwrap();
    crate::store::conformance::time_commit(b.as_mut(), "sqlite");
    drop(b);
    cleanup(&path);
}
