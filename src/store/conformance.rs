//! The behaviour every `Backend` must show, run against each real store by its own test.

use super::backend::{Backend, StoreError};
use super::model::*;

const HOUR_MS: i64 = 3_600_000;
const NOW: i64 = 1_755_183_300_000;

/// Runs the whole suite; `open` returns a new connection to one fresh, empty store.
pub fn run_all(open: &dyn Fn() -> Box<dyn Backend>) {
    let mut first = open();
    first.migrate().expect("first migrate");
    let mut db = open();
    // A second start against an existing schema must be a no-op, not an error.
    db.migrate().expect("second migrate");
    first.migrate().expect("third migrate");
    db.ping().expect("ping");
    drop(first);

    users(db.as_mut());
    refresh_rotation(db.as_mut());
    commit_chat_order(db.as_mut());
    mentions(db.as_mut());
    history_paging(db.as_mut());
    notifications(db.as_mut());
    text_round_trips(db.as_mut());
    commit_is_all_or_nothing(db.as_mut());
    room_creation(db.as_mut());
    room_members(db.as_mut());
    chat_in_private_rooms(db.as_mut());
    direct_rooms(db.as_mut());
    read_marks_and_room_list(db.as_mut());
    sequences_are_linked(db.as_mut());
}

/// The id before each of `ids` in a sequence that starts after `first_prev`.
fn chain(first_prev: i64, ids: &[i64]) -> Vec<i64> {
    std::iter::once(first_prev)
        .chain(ids.iter().copied())
        .take(ids.len())
        .collect()
}

/// Every stored row knows the row before it in its room or for its recipient, and the heads say
/// where each sequence stands (what a node compares with the store to fill gaps).
fn sequences_are_linked(db: &mut dyn Backend) {
    user(db, "s_gina");
    user(db, "s_hal");
    assert_eq!(db.room_heads(&["s-1", "s-2"]).expect("heads"), vec![], "no rows yet");
    assert_eq!(db.notification_heads(&["s_gina"]).expect("heads"), vec![]);

    let first = db
        .commit_chat(&[
            msg("s-1", "s_x", "a @s_gina", NOW, &["s_gina"]),
            msg("s-2", "s_x", "b", NOW, &[]),
            msg("s-1", "s_x", "c @s_gina @s_hal", NOW, &["s_gina", "s_hal", "s_ghost"]),
        ])
        .expect("commit");
    let ids: Vec<i64> = first.messages.iter().map(|m| m.id).collect();
    assert_eq!(
        first.message_prev_ids,
        vec![0, 0, ids[0]],
        "a room's first message follows 0"
    );
    let notes: Vec<i64> = first.notifications.iter().map(|n| n.id).collect();
    assert_eq!(notes.len(), 3);
    assert_eq!(
        first.notification_prev_ids,
        vec![0, notes[0], 0],
        "gina, gina, hal: per recipient"
    );

    let direct_note = db
        .create_notification(&direct("s_gina", "direct", NOW))
        .expect("create")
        .expect("gina exists");
    assert_eq!(direct_note.prev_id, notes[1], "after gina's mentions");

    let second = db
        .commit_chat(&[
            msg("s-2", "s_x", "d", NOW, &[]),
            msg("s-1", "s_x", "e @s_gina", NOW, &["s_gina"]),
        ])
        .expect("commit");
    let more: Vec<i64> = second.messages.iter().map(|m| m.id).collect();
    assert_eq!(second.message_prev_ids, vec![ids[1], ids[2]]);
    assert_eq!(second.notification_prev_ids, vec![direct_note.row.id]);

    // The stored order is the linked order, and the heads are the last ids.
    let s1 = history(db, "s-1", 100, None, None);
    assert_eq!(s1, vec![ids[0], ids[2], more[1]]);
    let mut heads = db.room_heads(&["s-2", "s-1", "s-none"]).expect("heads");
    heads.sort();
    assert_eq!(heads, vec![("s-1".into(), more[1]), ("s-2".into(), more[0])]);
    let mut user_heads = db.notification_heads(&["s_hal", "s_gina", "s_ghost"]).expect("heads");
    user_heads.sort();
    assert_eq!(
        user_heads,
        vec![
            ("s_gina".into(), second.notifications[0].id),
            ("s_hal".into(), notes[2])
        ]
    );
    let gina: Vec<i64> = db
        .notifications_after("s_gina", 0, 100)
        .expect("after")
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(
        gina,
        vec![notes[0], notes[1], direct_note.row.id, second.notifications[0].id]
    );

    // Where a node that starts listening begins: the last row from before a time.
    assert_eq!(db.room_start("s-1", NOW).expect("start"), 0, "nothing sent before NOW");
    assert_eq!(db.room_start("s-1", NOW + 1).expect("start"), more[1]);
    assert_eq!(db.room_start("s-none", NOW + 1).expect("start"), 0);
    let later = db
        .commit_chat(&[msg("s-1", "s_x", "later", NOW + 10, &["s_gina"])])
        .expect("commit");
    assert_eq!(db.room_start("s-1", NOW + 10).expect("start"), more[1]);
    assert_eq!(db.room_start("s-1", NOW + 11).expect("start"), later.messages[0].id);
    assert_eq!(
        db.notification_start("s_gina", NOW + 10).expect("start"),
        second.notifications[0].id
    );
    assert_eq!(
        db.notification_start("s_gina", NOW + 11).expect("start"),
        later.notifications[0].id
    );
    assert_eq!(db.notification_start("s_gina", NOW).expect("start"), 0);

    // Many names at once (chunked lookups).
    let names: Vec<String> = (0..1203).map(|i| format!("s-many-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let batch: Vec<NewChatMessage> = refs.iter().map(|r| msg(r, "s_x", "m", NOW, &[])).collect();
    let committed = db.commit_chat(&batch).expect("commit to many rooms");
    assert!(committed.message_prev_ids.iter().all(|p| *p == 0));
    assert_eq!(db.room_heads(&refs).expect("heads").len(), 1203);
}

/// Several connections commit to the same rooms at once (some rooms new to all of them): within
/// each room, ids ascend in commit order, so the links every commit reported form exactly the
/// room's stored sequence, with no gap and no fork.
pub fn concurrent_commits_keep_every_room_chained(open: &(dyn Fn() -> Box<dyn Backend> + Sync)) {
    let mut db = open();
    db.migrate().expect("migrate");
    let rooms = ["cc-a", "cc-b", "cc-c"];
    let links: Vec<(String, i64, i64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                scope.spawn(move || {
                    let mut db = open();
                    let mut links = Vec::new();
                    for round in 0..25 {
                        let batch: Vec<NewChatMessage> = (0..6)
                            .map(|i| {
                                msg(
                                    rooms[(w + round + i) % 3],
                                    "cc",
                                    &format!("w{w} r{round} i{i}"),
                                    NOW,
                                    &[],
                                )
                            })
                            .collect();
                        let c = db.commit_chat(&batch).expect("concurrent commit");
                        for (m, prev) in c.messages.iter().zip(&c.message_prev_ids) {
                            links.push((m.room_id.clone(), m.id, *prev));
                        }
                    }
                    links
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    for room in rooms {
        let stored = history(db.as_mut(), room, 500, None, None);
        let mut reported: Vec<(i64, i64)> = links
            .iter()
            .filter(|(r, _, _)| r == room)
            .map(|(_, id, prev)| (*id, *prev))
            .collect();
        reported.sort();
        let ids: Vec<i64> = reported.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, stored, "{room}: every committed message is stored");
        let prevs: Vec<i64> = reported.iter().map(|(_, prev)| *prev).collect();
        assert_eq!(
            prevs,
            chain(0, &stored),
            "{room}: each links to the one stored before it"
        );
        assert_eq!(
            db.room_heads(&[room]).expect("heads"),
            vec![(room.to_owned(), *stored.last().unwrap_or(&0))]
        );
    }
}

fn user(db: &mut dyn Backend, name: &str) -> User {
    db.create_user(name, &format!("$argon2id$hash-of-{name}"), NOW)
        .unwrap_or_else(|e| panic!("create_user {name}: {e}"))
}

fn msg(room: &str, sender: &str, text: &str, at: i64, mentions: &[&str]) -> NewChatMessage {
    NewChatMessage {
        room_id: room.into(),
        sender: sender.into(),
        message: text.into(),
        sent_at_ms: at,
        mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn history(db: &mut dyn Backend, room: &str, limit: u32, before: Option<i64>, after: Option<i64>) -> Vec<i64> {
    db.chat_history(room, HistoryQuery { limit, before, after })
        .expect("chat_history")
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn users(db: &mut dyn Backend) {
    let alice = user(db, "u_alice");
    assert_eq!(alice.username, "u_alice");
    assert!(alice.id > 0);
    assert!(matches!(db.create_user("u_alice", "x", NOW), Err(StoreError::Conflict)));
    // Usernames compare exactly on every backend (MySQL's default collation would fold case).
    let upper = user(db, "U_ALICE");
    assert_ne!(upper.id, alice.id);

    let creds = db.user_credentials("u_alice").expect("creds").expect("alice exists");
    assert_eq!((creds.id, creds.username.as_str()), (alice.id, "u_alice"));
    assert_eq!(creds.password_hash, "$argon2id$hash-of-u_alice");
    assert!(db.user_credentials("nobody").expect("creds").is_none());
    assert_eq!(db.user_by_id(alice.id).expect("by id"), Some(alice.clone()));
    assert_eq!(db.user_by_id(i64::MAX).expect("by id"), None);
    assert!(db.user_exists("u_alice").expect("exists"));
    assert!(!db.user_exists("u_alice ").expect("exists"));
    assert!(!db.user_exists("nobody").expect("exists"));
}

fn token(user_id: i64, hash: &str, family: &str, expires_at_ms: i64) -> NewRefreshToken {
    NewRefreshToken {
        user_id,
        token_hash: hash.into(),
        family: family.into(),
        expires_at_ms,
    }
}

fn refresh_rotation(db: &mut dyn Backend) {
    let bob = user(db, "r_bob");
    let other = user(db, "r_other");
    db.insert_refresh_token(&token(bob.id, "h1", "fam-1", NOW + HOUR_MS))
        .expect("insert");
    assert!(matches!(
        db.insert_refresh_token(&token(bob.id, "h1", "fam-1", NOW + HOUR_MS)),
        Err(StoreError::Conflict)
    ));

    assert_eq!(
        db.spend_refresh_token("h1", NOW).expect("spend"),
        SpendOutcome::Spent {
            user_id: bob.id,
            family: "fam-1".into()
        }
    );
    db.insert_refresh_token(&token(bob.id, "h2", "fam-1", NOW + HOUR_MS))
        .expect("insert");
    // Presenting the spent token again is reuse; the caller then revokes the family.
    assert_eq!(
        db.spend_refresh_token("h1", NOW + 1).expect("spend"),
        SpendOutcome::Reused { family: "fam-1".into() }
    );
    db.revoke_family("fam-1", NOW + 2).expect("revoke");
    assert_eq!(
        db.spend_refresh_token("h2", NOW + 3).expect("spend"),
        SpendOutcome::Reused { family: "fam-1".into() }
    );

    db.insert_refresh_token(&token(bob.id, "h3", "fam-2", NOW + 10))
        .expect("insert");
    assert_eq!(
        db.spend_refresh_token("h3", NOW + 10).expect("spend"),
        SpendOutcome::Expired
    );
    // Expired tokens are left as they are: still expired, not turned into reuse.
    assert_eq!(
        db.spend_refresh_token("h3", NOW + 11).expect("spend"),
        SpendOutcome::Expired
    );
    assert_eq!(
        db.spend_refresh_token("never-issued", NOW).expect("spend"),
        SpendOutcome::Unknown
    );

    // A family revoke leaves other families alone.
    db.insert_refresh_token(&token(bob.id, "h4", "fam-3", NOW + HOUR_MS))
        .expect("insert");
    db.insert_refresh_token(&token(bob.id, "h5", "fam-4", NOW + HOUR_MS))
        .expect("insert");
    db.revoke_family("fam-3", NOW).expect("revoke");
    assert_eq!(
        db.spend_refresh_token("h5", NOW).expect("spend"),
        SpendOutcome::Spent {
            user_id: bob.id,
            family: "fam-4".into()
        }
    );

    assert_eq!(
        db.refresh_token_family("h4", bob.id).expect("family"),
        Some("fam-3".into())
    );
    assert_eq!(db.refresh_token_family("h4", other.id).expect("family"), None);
    assert_eq!(db.refresh_token_family("nope", bob.id).expect("family"), None);
}

fn commit_chat_order(db: &mut dyn Backend) {
    assert!(db.commit_chat(&[]).expect("empty batch").messages.is_empty());
    let batch: Vec<NewChatMessage> = (0..30)
        .map(|i| {
            msg(
                ["o-1", "o-2", "o-3"][i % 3],
                "o_sender",
                &format!("hello {i}"),
                NOW + i as i64,
                &[],
            )
        })
        .collect();
    let committed = db.commit_chat(&batch).expect("commit");
    assert_eq!(committed.messages.len(), 30);
    assert!(committed.notifications.is_empty());
    for (stored, given) in committed.messages.iter().zip(&batch) {
        assert_eq!(stored.room_id, given.room_id);
        assert_eq!(stored.message, given.message);
        assert_eq!(stored.sender, given.sender);
        assert_eq!(stored.sent_at_ms, given.sent_at_ms);
    }
    assert!(
        committed.messages.windows(2).all(|w| w[0].id < w[1].id),
        "ids ascend in input order"
    );

    // What the store returns is what a reader later sees, id for id.
    for room in ["o-1", "o-2", "o-3"] {
        let stored = db
            .chat_history(
                room,
                HistoryQuery {
                    limit: 100,
                    before: None,
                    after: None,
                },
            )
            .expect("history");
        let committed_here: Vec<&ChatMessage> = committed.messages.iter().filter(|m| m.room_id == room).collect();
        assert_eq!(stored.len(), 10);
        assert_eq!(stored.iter().collect::<Vec<_>>(), committed_here);
    }

    // A later batch gets larger ids; a huge batch is split into several statements.
    let big: Vec<NewChatMessage> = (0..1203)
        .map(|i| msg("o-big", "o_sender", &format!("b{i}"), NOW, &[]))
        .collect();
    let big_committed = db.commit_chat(&big).expect("big commit");
    assert_eq!(big_committed.messages.len(), 1203);
    assert!(big_committed.messages[0].id > committed.messages[29].id);
    assert!(big_committed.messages.windows(2).all(|w| w[0].id < w[1].id));
    let last = db
        .chat_history(
            "o-big",
            HistoryQuery {
                limit: 1,
                before: None,
                after: None,
            },
        )
        .expect("history");
    assert_eq!(last, vec![big_committed.messages[1202].clone()]);
    assert_eq!(last[0].message, "b1202");
}

fn mentions(db: &mut dyn Backend) {
    let carol = user(db, "m_carol");
    let dave = user(db, "m_dave");
    let batch = vec![
        msg(
            "m-room",
            "m_sender",
            "hi @m_carol and @ghost",
            NOW,
            &["m_carol", "ghost"],
        ),
        msg("m-other", "m_sender", "no mentions", NOW + 1, &[]),
        msg(
            "m-other",
            "m_sender",
            "@m_dave @m_carol",
            NOW + 2,
            &["m_dave", "m_carol"],
        ),
        // The caller already removed the sender from `mentions`; nothing to notify.
        msg("m-room", "m_carol", "talking to @m_carol myself", NOW + 3, &[]),
    ];
    let committed = db.commit_chat(&batch).expect("commit");
    let n = &committed.notifications;
    assert_eq!(n.len(), 3, "{n:?}");
    assert!(n.windows(2).all(|w| w[0].id < w[1].id), "ordered by id");
    let got: Vec<(&str, &str, i64)> = n
        .iter()
        .map(|n| (n.recipient.as_str(), n.message.as_str(), n.created_at_ms))
        .collect();
    assert_eq!(
        got,
        vec![
            ("m_carol", "hi @m_carol and @ghost", NOW),
            ("m_dave", "@m_dave @m_carol", NOW + 2),
            ("m_carol", "@m_dave @m_carol", NOW + 2),
        ]
    );
    for x in n {
        assert_eq!(x.kind, "mention");
        assert_eq!(x.sender, "m_sender");
        assert!(!x.read);
    }
    assert_eq!(n[0].room_id.as_deref(), Some("m-room"));
    assert_eq!(n[1].room_id.as_deref(), Some("m-other"));
    assert!(db
        .list_notifications(
            "ghost",
            NotificationQuery {
                unread_only: false,
                limit: 10,
                before: None
            }
        )
        .expect("list")
        .is_empty());

    // What commit_chat returned is exactly what was stored.
    let listed = db.notifications_after("m_carol", 0, 10).expect("after");
    let expected: Vec<Notification> = n.iter().filter(|x| x.recipient == "m_carol").cloned().collect();
    assert_eq!(listed, expected);
    assert_eq!(db.notifications_after("m_dave", 0, 10).expect("after").len(), 1);
    let _ = (carol, dave);
}

fn history_paging(db: &mut dyn Backend) {
    let batch: Vec<NewChatMessage> = (0..10)
        .map(|i| msg("h-room", "h_s", &format!("p{i}"), NOW + i, &[]))
        .collect();
    let ids: Vec<i64> = db
        .commit_chat(&batch)
        .expect("commit")
        .messages
        .iter()
        .map(|m| m.id)
        .collect();
    db.commit_chat(&[msg("h-noise", "h_s", "other room", NOW, &[])])
        .expect("noise");

    assert_eq!(
        history(db, "h-room", 3, None, None),
        ids[7..].to_vec(),
        "latest 3, ascending"
    );
    assert_eq!(history(db, "h-room", 50, None, None), ids);
    assert_eq!(
        history(db, "h-room", 3, Some(ids[7]), None),
        ids[4..7].to_vec(),
        "latest 3 before"
    );
    assert_eq!(
        history(db, "h-room", 3, None, Some(ids[2])),
        ids[3..6].to_vec(),
        "first 3 after"
    );
    assert_eq!(history(db, "h-room", 50, None, Some(ids[7])), ids[8..].to_vec());
    assert_eq!(
        history(db, "h-room", 50, Some(ids[6]), Some(ids[2])),
        ids[3..6].to_vec(),
        "between"
    );
    assert_eq!(history(db, "h-room", 2, Some(ids[9]), Some(ids[2])), ids[3..5].to_vec());
    assert!(history(db, "h-room", 50, None, Some(ids[9])).is_empty());
    assert!(history(db, "h-room", 50, Some(ids[0]), None).is_empty());
    assert!(history(db, "h-room", 0, None, None).is_empty());
    assert!(history(db, "no-such-room", 50, None, None).is_empty());
}

fn direct(recipient: &str, text: &str, at: i64) -> NewNotification {
    NewNotification {
        recipient: recipient.into(),
        kind: "direct".into(),
        sender: "n_sender".into(),
        room_id: None,
        message: text.into(),
        created_at_ms: at,
    }
}

fn notifications(db: &mut dyn Backend) {
    user(db, "n_erin");
    user(db, "n_frank");
    assert!(db
        .create_notification(&direct("n_ghost", "x", NOW))
        .expect("create")
        .is_none());
    let mut ids = Vec::new();
    for i in 0..5 {
        let n = db
            .create_notification(&direct("n_erin", &format!("d{i}"), NOW + i))
            .expect("create")
            .expect("erin exists")
            .row;
        assert_eq!((n.kind.as_str(), n.room_id.as_deref(), n.read), ("direct", None, false));
        assert_eq!(n.created_at_ms, NOW + i);
        ids.push(n.id);
    }
    db.create_notification(&direct("n_frank", "for frank", NOW))
        .expect("create")
        .expect("frank exists");
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let all = |db: &mut dyn Backend, unread_only, limit, before| -> Vec<i64> {
        db.list_notifications(
            "n_erin",
            NotificationQuery {
                unread_only,
                limit,
                before,
            },
        )
        .expect("list")
        .into_iter()
        .map(|n| n.id)
        .collect()
    };
    assert_eq!(
        all(db, false, 10, None),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(all(db, false, 2, None), vec![ids[4], ids[3]]);
    assert_eq!(all(db, false, 2, Some(ids[3])), vec![ids[2], ids[1]]);

    assert!(
        !db.mark_notification_read(ids[1], "n_frank", NOW).expect("mark"),
        "not frank's"
    );
    assert!(!db.mark_notification_read(i64::MAX, "n_erin", NOW).expect("mark"));
    assert!(db.mark_notification_read(ids[1], "n_erin", NOW).expect("mark"));
    assert!(
        db.mark_notification_read(ids[1], "n_erin", NOW + 5).expect("mark"),
        "marking twice is fine"
    );
    assert!(db.mark_notification_read(ids[3], "n_erin", NOW).expect("mark"));
    assert_eq!(all(db, true, 10, None), vec![ids[4], ids[2], ids[0]]);
    assert_eq!(all(db, true, 10, Some(ids[4])), vec![ids[2], ids[0]]);

    let after = db.notifications_after("n_erin", ids[1], 2).expect("after");
    assert_eq!(after.iter().map(|n| n.id).collect::<Vec<_>>(), vec![ids[2], ids[3]]);
    assert_eq!(after.iter().map(|n| n.read).collect::<Vec<_>>(), vec![false, true]);
    assert_eq!(after[0].message, "d2");
    assert!(db.notifications_after("n_erin", ids[4], 10).expect("after").is_empty());
    assert_eq!(db.notifications_after("n_frank", 0, 10).expect("after").len(), 1);
}

fn text_round_trips(db: &mut dyn Backend) {
    user(db, "t_target");
    let korean = "로그인 성공 — 안녕하세요 👋🎉 🇰🇷 e\u{301}";
    let injection = "'); DROP TABLE chat_messages; -- \\' \" `x` %_ \0 end";
    let long: String = "😀".repeat(2000);
    assert_eq!(long.chars().count(), 2000);
    assert_eq!(long.len(), 8000);

    let batch = vec![
        msg("t-room", "t_sender", korean, NOW, &["t_target"]),
        msg("t-room", "t_sender", injection, NOW, &[]),
        msg("t-room", "t_sender", &long, NOW, &["t_target"]),
        msg("t-room'; --", "t_sender", "odd room id", NOW, &[]),
    ];
    let committed = db.commit_chat(&batch).expect("commit");
    let stored = db
        .chat_history(
            "t-room",
            HistoryQuery {
                limit: 10,
                before: None,
                after: None,
            },
        )
        .expect("history");
    let texts: Vec<&str> = stored.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, vec![korean, injection, long.as_str()]);
    assert_eq!(
        db.chat_history(
            "t-room'; --",
            HistoryQuery {
                limit: 10,
                before: None,
                after: None
            }
        )
        .expect("history")
        .len(),
        1
    );
    assert_eq!(committed.notifications.len(), 2);

    let listed = db.notifications_after("t_target", 0, 10).expect("after");
    assert_eq!(
        listed.iter().map(|n| n.message.as_str()).collect::<Vec<_>>(),
        vec![korean, long.as_str()]
    );

    let sneaky = "x' OR '1'='1";
    assert!(!db.user_exists(sneaky).expect("exists"));
    assert!(db.user_credentials(sneaky).expect("creds").is_none());
    let d = db
        .create_notification(&direct("t_target", injection, NOW))
        .expect("create")
        .expect("exists")
        .row;
    assert_eq!(
        db.notifications_after("t_target", d.id - 1, 1).expect("after")[0].message,
        injection
    );
    assert!(db
        .create_notification(&direct(sneaky, "x", NOW))
        .expect("create")
        .is_none());
    // Mentioning a name that only matches through injection must not notify anyone.
    let c = db
        .commit_chat(&[msg("t-room", "t_sender", "hi", NOW, &[sneaky, "t_target' --"])])
        .expect("commit");
    assert!(c.notifications.is_empty());

    let again = db
        .list_notifications(
            "t_target",
            NotificationQuery {
                unread_only: false,
                limit: 10,
                before: None,
            },
        )
        .expect("list");
    assert!(again.iter().any(|n| n.message == korean));
}

fn commit_is_all_or_nothing(db: &mut dyn Backend) {
    let before = history(db, "a-room", 100, None, None);
    // A room id over the 64-character column fails on MySQL after the first row went in.
    let huge_room = "r".repeat(300);
    let batch = vec![
        msg("a-room", "a_s", "first", NOW, &[]),
        msg(&huge_room, "a_s", "too big", NOW, &[]),
    ];
    match db.commit_chat(&batch) {
        Ok(c) => {
            // SQLite has no column length limit (its own test forces a failure with a trigger).
            assert_eq!(c.messages.len(), 2);
        }
        Err(e) => {
            assert!(!matches!(e, StoreError::Conflict), "{e}");
            assert_eq!(history(db, "a-room", 100, None, None), before, "rolled back");
        }
    }
}

fn new_room(id: &str, private: bool, owner: &str) -> NewRoom {
    NewRoom {
        room_id: id.into(),
        name: Some(format!("name of {id}")),
        private,
        owner: Some(owner.into()),
        created_at_ms: NOW,
        members: vec![owner.into()],
    }
}

/// Creates a room, counting the announcements made before its commit.
fn create(db: &mut dyn Backend, room: &NewRoom, announced: &mut u32) -> Result<RoomDetail, StoreError> {
    db.create_room(room, &mut || *announced += 1)
}

fn access(db: &mut dyn Backend, room: &str, user: &str) -> RoomAccess {
    let snapshot = db.room_access(room, user, AccessRead::Snapshot).expect("access");
    let serialized = db.room_access(room, user, AccessRead::Serialized).expect("access");
    assert_eq!(
        snapshot, serialized,
        "{room} for {user}: both reads agree when nothing changes"
    );
    snapshot
}

fn room_creation(db: &mut dyn Backend) {
    user(db, "rc_owner");
    user(db, "rc_other");
    let mut announced = 0;
    let private = new_room("rc-private", true, "rc_owner");
    let created = create(db, &private, &mut announced).expect("create");
    assert_eq!(announced, 1, "announced once, before the commit");
    assert_eq!(created.members, ["rc_owner"]);
    assert_eq!(
        created.room,
        Room {
            room_id: "rc-private".into(),
            name: Some("name of rc-private".into()),
            private: true,
            owner: Some("rc_owner".into()),
            created_at_ms: NOW,
        }
    );
    assert_eq!(
        db.room_detail("rc-private", "rc_owner").expect("detail"),
        Some(created.clone())
    );
    assert_eq!(
        db.room_detail("rc-private", "rc_other").expect("detail"),
        None,
        "hidden"
    );

    // A second creation of the id is a conflict, and announces nothing.
    let again = new_room("rc-private", false, "rc_other");
    assert!(matches!(create(db, &again, &mut announced), Err(StoreError::Conflict)));
    assert_eq!(announced, 1);
    assert_eq!(db.room_detail("rc-private", "rc_owner").expect("detail"), Some(created));

    // An open room that already has messages is never hidden after the fact.
    db.commit_chat(&[msg("rc-busy", "rc_other", "open talk", NOW, &[])])
        .expect("commit");
    let busy = new_room("rc-busy", true, "rc_owner");
    assert!(matches!(create(db, &busy, &mut announced), Err(StoreError::Conflict)));
    assert_eq!(announced, 1);
    assert_eq!(access(db, "rc-busy", "rc_other"), RoomAccess::Open);
    assert_eq!(
        db.room_detail("rc-busy", "rc_owner").expect("detail"),
        None,
        "still open"
    );

    // An open room nobody wrote to can be created.
    let public = new_room("rc-public", false, "rc_owner");
    create(db, &public, &mut announced).expect("create public");
    assert_eq!(announced, 2);

    assert_eq!(access(db, "rc-private", "rc_owner"), RoomAccess::Member);
    assert_eq!(access(db, "rc-private", "rc_other"), RoomAccess::Outsider);
    assert_eq!(access(db, "rc-public", "rc_other"), RoomAccess::Public);
    assert_eq!(access(db, "rc-never-created", "rc_other"), RoomAccess::Open);
    assert_eq!(
        access(db, "dm-000000000000000000000000", "rc_other"),
        RoomAccess::Outsider,
        "a direct-message id is never open"
    );
    assert!(RoomAccess::Open.allows() && RoomAccess::Public.allows() && RoomAccess::Member.allows());
    assert!(!RoomAccess::Outsider.allows());
}

fn room_members(db: &mut dyn Backend) {
    for name in ["rm_owner", "rm_bob", "rm_carol", "rm_dave"] {
        user(db, name);
    }
    let mut announced = 0;
    create(db, &new_room("rm-room", true, "rm_owner"), &mut announced).expect("create");
    let invite = |db: &mut dyn Backend, by: &str, who: &str, max: usize| {
        db.invite_member("rm-room", by, who, NOW + 1, max).expect("invite")
    };
    assert_eq!(
        invite(db, "rm_bob", "rm_carol", 10),
        InviteOutcome::RoomNotFound,
        "bob cannot see it"
    );
    match invite(db, "rm_owner", "rm_bob", 10) {
        InviteOutcome::Added(d) => assert_eq!(d.members, ["rm_owner", "rm_bob"]),
        other => panic!("expected Added, got {other:?}"),
    }
    assert!(matches!(
        invite(db, "rm_owner", "rm_bob", 10),
        InviteOutcome::AlreadyMember(_)
    ));
    assert_eq!(invite(db, "rm_bob", "rm_carol", 10), InviteOutcome::NotOwner);
    assert_eq!(invite(db, "rm_owner", "rm_ghost", 10), InviteOutcome::UserNotFound);
    assert_eq!(invite(db, "rm_owner", "rm_carol", 2), InviteOutcome::Full, "at most 2");
    assert!(matches!(invite(db, "rm_owner", "rm_carol", 3), InviteOutcome::Added(_)));
    assert_eq!(
        db.invite_member("rm-nowhere", "rm_owner", "rm_bob", NOW, 10)
            .expect("invite"),
        InviteOutcome::RoomNotFound
    );
    assert_eq!(access(db, "rm-room", "rm_carol"), RoomAccess::Member);

    let remove = |db: &mut dyn Backend, by: &str, who: &str, announced: &mut u32| {
        db.remove_member("rm-room", by, who, &mut || *announced += 1)
            .expect("remove")
    };
    let a = &mut announced;
    assert_eq!(
        remove(db, "rm_dave", "rm_bob", a),
        RemoveOutcome::RoomNotFound,
        "dave cannot see it"
    );
    assert_eq!(remove(db, "rm_bob", "rm_carol", a), RemoveOutcome::NotAllowed);
    assert_eq!(remove(db, "rm_owner", "rm_dave", a), RemoveOutcome::NotMember);
    assert_eq!(remove(db, "rm_owner", "rm_carol", a), RemoveOutcome::Removed);
    assert_eq!(remove(db, "rm_bob", "rm_bob", a), RemoveOutcome::Removed, "leaving");
    assert_eq!(
        remove(db, "rm_bob", "rm_bob", a),
        RemoveOutcome::RoomNotFound,
        "gone: cannot see it"
    );
    assert_eq!(*a, 1 + 2, "one creation, two removals");
    assert_eq!(access(db, "rm-room", "rm_carol"), RoomAccess::Outsider);
    assert_eq!(access(db, "rm-room", "rm_bob"), RoomAccess::Outsider);

    // An owner who leaves hands the room to the member who joined first after them.
    assert!(matches!(invite(db, "rm_owner", "rm_dave", 10), InviteOutcome::Added(_)));
    assert!(matches!(
        invite(db, "rm_owner", "rm_carol", 10),
        InviteOutcome::Added(_)
    ));
    assert_eq!(remove(db, "rm_owner", "rm_owner", a), RemoveOutcome::Removed);
    let detail = db
        .room_detail("rm-room", "rm_dave")
        .expect("detail")
        .expect("dave sees it");
    assert_eq!(detail.members.len(), 2);
    let heir = detail.room.owner.clone().expect("an heir");
    assert!(detail.members.contains(&heir));
    // The last member leaving leaves a room without owner, still private.
    for m in detail.members {
        assert_eq!(remove(db, &m, &m, a), RemoveOutcome::Removed);
    }
    assert_eq!(access(db, "rm-room", "rm_owner"), RoomAccess::Outsider);
}

fn chat_in_private_rooms(db: &mut dyn Backend) {
    for name in ["cp_owner", "cp_member", "cp_outsider"] {
        user(db, name);
    }
    let mut announced = 0;
    create(db, &new_room("cp-room", true, "cp_owner"), &mut announced).expect("create");
    db.invite_member("cp-room", "cp_owner", "cp_member", NOW, 10)
        .expect("invite");
    let batch = vec![
        msg(
            "cp-room",
            "cp_member",
            "hi @cp_owner @cp_outsider",
            NOW,
            &["cp_owner", "cp_outsider"],
        ),
        msg("cp-room", "cp_outsider", "let me in", NOW, &["cp_owner"]),
        msg("cp-open", "cp_outsider", "hi @cp_member", NOW, &["cp_member"]),
        msg("dm-111111111111111111111111", "cp_outsider", "not a dm yet", NOW, &[]),
    ];
    let committed = db.commit_chat(&batch).expect("commit");
    assert_eq!(committed.refused, [1, 3]);
    let stored: Vec<&str> = committed.messages.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(stored, ["hi @cp_owner @cp_outsider", "hi @cp_member"]);
    let told: Vec<(&str, &str)> = committed
        .notifications
        .iter()
        .map(|n| (n.recipient.as_str(), n.room_id.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        told,
        [("cp_owner", "cp-room"), ("cp_member", "cp-open")],
        "no mention for an outsider"
    );
    assert!(db.notifications_after("cp_outsider", 0, 10).expect("after").is_empty());
    assert_eq!(history(db, "cp-room", 10, None, None), [committed.messages[0].id]);

    // A unit (a STOMP transaction's group) with one refused SEND is refused whole, whatever its
    // other SENDs; the unit after it commits.
    let grouped = db
        .commit_chat_units(
            &[
                msg("cp-room", "cp_member", "group 1", NOW, &[]),
                msg("cp-room", "cp_outsider", "group 2", NOW, &[]),
                msg("cp-open", "cp_member", "alone", NOW, &[]),
            ],
            &[2, 1],
        )
        .expect("commit");
    assert_eq!(grouped.refused, [0, 1]);
    let stored: Vec<&str> = grouped.messages.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(stored, ["alone"]);
    assert_eq!(history(db, "cp-room", 10, None, None), [committed.messages[0].id]);

    // The refused SEND to a DM id left that id an open room's row without messages (the batch
    // locked it); opening the DM claims it.
    let dm = "dm-111111111111111111111111";
    assert_eq!(db.room_heads(&[dm]).expect("heads"), vec![(dm.to_owned(), 0)]);
    let mut announced = 0;
    assert!(matches!(
        open_direct(db, dm, "cp_outsider", "cp_member", &mut announced),
        DirectOutcome::Created(_)
    ));
    assert_eq!(access(db, dm, "cp_outsider"), RoomAccess::Member);

    // A batch of outsiders only stores nothing.
    let refused = db
        .commit_chat(&[msg("cp-room", "cp_outsider", "again", NOW, &[])])
        .expect("commit");
    assert_eq!((refused.messages.len(), refused.refused.clone()), (0, vec![0]));

    // Once removed, a member's messages are refused too.
    db.remove_member("cp-room", "cp_owner", "cp_member", &mut || {})
        .expect("remove");
    let after = db
        .commit_chat(&[msg("cp-room", "cp_member", "still here?", NOW, &[])])
        .expect("commit");
    assert_eq!(after.refused, [0]);
    assert_eq!(history(db, "cp-room", 10, None, None).len(), 1);
}

fn open_direct(db: &mut dyn Backend, id: &str, caller: &str, other: &str, announced: &mut u32) -> DirectOutcome {
    let room = NewRoom {
        room_id: id.into(),
        name: None,
        private: true,
        owner: None,
        created_at_ms: NOW,
        members: vec![caller.into(), other.into()],
    };
    db.open_direct_room(&room, &mut || *announced += 1)
        .expect("open direct")
}

fn direct_rooms(db: &mut dyn Backend) {
    user(db, "dr_alice");
    user(db, "dr_bob");
    user(db, "dr_carol");
    let id = "dm-222222222222222222222222";
    let mut announced = 0;
    assert_eq!(
        open_direct(db, id, "dr_alice", "dr_ghost", &mut announced),
        DirectOutcome::UserNotFound
    );
    let created = match open_direct(db, id, "dr_alice", "dr_bob", &mut announced) {
        DirectOutcome::Created(d) => d,
        other => panic!("expected Created, got {other:?}"),
    };
    assert_eq!(announced, 1);
    assert_eq!(created.members, ["dr_alice", "dr_bob"]);
    assert_eq!(
        (
            created.room.private,
            created.room.owner.clone(),
            created.room.name.clone()
        ),
        (true, None, None)
    );
    match open_direct(db, id, "dr_bob", "dr_alice", &mut announced) {
        DirectOutcome::Existing(d) => assert_eq!(d, created),
        other => panic!("expected Existing, got {other:?}"),
    }
    assert_eq!(announced, 1, "created once");
    assert_eq!(access(db, id, "dr_carol"), RoomAccess::Outsider);
    // Nobody owns a direct room: nobody may invite into it.
    assert_eq!(
        db.invite_member(id, "dr_alice", "dr_carol", NOW, 10).expect("invite"),
        InviteOutcome::NotOwner
    );
    // Leaving, then opening it again, puts the caller back.
    assert_eq!(
        db.remove_member(id, "dr_bob", "dr_bob", &mut || {}).expect("leave"),
        RemoveOutcome::Removed
    );
    assert_eq!(access(db, id, "dr_bob"), RoomAccess::Outsider);
    match open_direct(db, id, "dr_bob", "dr_alice", &mut announced) {
        DirectOutcome::Existing(d) => assert_eq!(d.members.len(), 2),
        other => panic!("expected Existing, got {other:?}"),
    }
    assert_eq!(access(db, id, "dr_bob"), RoomAccess::Member);
}

fn read_marks_and_room_list(db: &mut dyn Backend) {
    for name in ["rl_owner", "rl_bob", "rl_stranger"] {
        user(db, name);
    }
    let mut announced = 0;
    // Ids chosen to sort after every other room of this suite ("rl-" > "rc-", "rm-", …; "dm-" < "rl-").
    for (id, private) in [("rl-a-private", true), ("rl-b-public", false), ("rl-c-empty", false)] {
        create(db, &new_room(id, private, "rl_owner"), &mut announced).expect("create");
    }
    db.invite_member("rl-a-private", "rl_owner", "rl_bob", NOW, 10)
        .expect("invite");
    let ids: Vec<i64> = db
        .commit_chat(&[
            msg("rl-a-private", "rl_owner", "p1", NOW, &[]),
            msg("rl-a-private", "rl_owner", "p2", NOW, &[]),
            msg("rl-a-private", "rl_bob", "p3", NOW, &[]),
            msg("rl-b-public", "rl_owner", "q1", NOW, &[]),
        ])
        .expect("commit")
        .messages
        .iter()
        .map(|m| m.id)
        .collect();

    let mark = |db: &mut dyn Backend, room: &str, who: &str, id: i64| db.mark_room_read(room, who, id).expect("mark");
    assert_eq!(
        mark(db, "rl-a-private", "rl_bob", ids[0]),
        Some(ReadMark {
            last_read_id: ids[0],
            unread: 2
        })
    );
    assert_eq!(
        mark(db, "rl-a-private", "rl_bob", 0),
        Some(ReadMark {
            last_read_id: ids[0],
            unread: 2
        }),
        "never moves back"
    );
    assert_eq!(
        mark(db, "rl-a-private", "rl_bob", i64::MAX),
        Some(ReadMark {
            last_read_id: ids[2],
            unread: 0
        }),
        "never past the newest message"
    );
    assert_eq!(mark(db, "rl-a-private", "rl_stranger", 1), None, "hidden");
    assert_eq!(mark(db, "rl-never-created", "rl_bob", 1), None);
    assert_eq!(
        mark(db, "rl-b-public", "rl_stranger", 0),
        Some(ReadMark {
            last_read_id: 0,
            unread: 1
        }),
        "anyone may mark a public room"
    );

    let list = |db: &mut dyn Backend, who: &str, limit: u32, before: Option<&str>| {
        db.list_rooms(
            who,
            &RoomQuery {
                limit,
                before: before.map(str::to_owned),
            },
        )
        .expect("list")
    };
    let names = |rooms: &[RoomSummary]| -> Vec<String> { rooms.iter().map(|r| r.room.room_id.clone()).collect() };

    let bob = list(db, "rl_bob", 3, None);
    assert_eq!(
        names(&bob),
        ["rl-c-empty", "rl-b-public", "rl-a-private"],
        "by id, descending"
    );
    assert_eq!(
        (bob[0].member_count, bob[0].unread, bob[0].last_message.clone()),
        (1, 0, None)
    );
    assert_eq!(bob[1].last_message.as_ref().map(|m| m.message.as_str()), Some("q1"));
    assert_eq!(bob[1].unread, 1, "no read mark: everything is unread");
    assert_eq!(bob[2].member_count, 2);
    assert_eq!(bob[2].last_message.as_ref().map(|m| m.id), Some(ids[2]));
    assert_eq!(bob[2].unread, 0);

    let stranger = list(db, "rl_stranger", 3, None);
    assert!(
        !names(&stranger).contains(&"rl-a-private".to_owned()),
        "a private room is invisible"
    );
    assert_eq!(&names(&stranger)[..2], ["rl-c-empty", "rl-b-public"]);
    assert_eq!(stranger[1].unread, 1);

    let owner = list(db, "rl_owner", 2, None);
    assert_eq!(names(&owner), ["rl-c-empty", "rl-b-public"]);
    let next = list(db, "rl_owner", 2, Some("rl-b-public"));
    assert_eq!(names(&next)[0], "rl-a-private");
    assert_eq!(next[0].unread, 3);
    assert!(next.iter().all(|r| r.room.room_id.as_str() < "rl-b-public"));
    assert!(list(db, "rl_owner", 5, Some("a")).is_empty());
}

/// Several connections open the same direct-message room at once, from both sides: exactly one
/// creates it, the others find it with both members, none fails. `conns` are connections to one
/// migrated store.
pub fn racing_direct_rooms(mut conns: Vec<Box<dyn Backend>>) {
    use std::sync::{Arc, Barrier};
    let mut db = conns.pop().expect("a connection");
    user(db.as_mut(), "race_a");
    user(db.as_mut(), "race_b");
    for round in 0..5 {
        let id = format!("dm-{round:024}");
        let barrier = Arc::new(Barrier::new(conns.len()));
        let threads: Vec<_> = conns
            .drain(..)
            .enumerate()
            .map(|(i, mut conn)| {
                let (barrier, id) = (Arc::clone(&barrier), id.clone());
                std::thread::spawn(move || {
                    let (caller, other) = if i % 2 == 0 {
                        ("race_a", "race_b")
                    } else {
                        ("race_b", "race_a")
                    };
                    let room = NewRoom {
                        room_id: id,
                        name: None,
                        private: true,
                        owner: None,
                        created_at_ms: NOW,
                        members: vec![caller.into(), other.into()],
                    };
                    barrier.wait();
                    let outcome = conn.open_direct_room(&room, &mut || {});
                    (outcome, conn)
                })
            })
            .collect();
        let mut created = 0;
        for t in threads {
            let (outcome, conn) = t.join().expect("thread");
            match outcome {
                Ok(DirectOutcome::Created(d)) => {
                    created += 1;
                    assert_eq!(d.members.len(), 2);
                }
                Ok(DirectOutcome::Existing(d)) => {
                    let mut members = d.members.clone();
                    members.sort();
                    assert_eq!(members, ["race_a", "race_b"], "round {round}");
                }
                other => panic!("round {round}: {other:?}"),
            }
            conns.push(conn);
        }
        assert_eq!(created, 1, "round {round}: created once");
    }
}

/// Several connections invite different users into one room at once, with room for two more:
/// exactly two get in (the room's row is held for update while the members are counted).
pub fn racing_invitations(mut conns: Vec<Box<dyn Backend>>) {
    use std::sync::{Arc, Barrier};
    let mut db = conns.pop().expect("a connection");
    user(db.as_mut(), "ri_owner");
    for i in 0..conns.len() {
        user(db.as_mut(), &format!("ri_guest{i}"));
    }
    db.create_room(&new_room("ri-room", true, "ri_owner"), &mut || {})
        .expect("create");
    let barrier = Arc::new(Barrier::new(conns.len()));
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                conn.invite_member("ri-room", "ri_owner", &format!("ri_guest{i}"), NOW, 3)
            })
        })
        .collect();
    let mut added = 0;
    for t in threads {
        match t.join().expect("thread").expect("invite") {
            InviteOutcome::Added(_) => added += 1,
            InviteOutcome::Full => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, 2, "max_members 3: the owner and two guests");
    let detail = db.room_detail("ri-room", "ri_owner").expect("detail").expect("room");
    assert_eq!(detail.members.len(), 3);
}

/// A multi-message group (a committed STOMP transaction) is all or nothing: the backend's test has
/// made any message whose text is `poison` fail to insert (a trigger), so that the group below
/// fails at its 650th message, after whole statements of it went in. Nothing of it may remain —
/// no message in any of its rooms, no mention — and the same group without the poison commits
/// whole, in order.
pub fn group_is_atomic(db: &mut dyn Backend, poison: &str) {
    user(db, "g_target");
    let rooms = ["g-1", "g-2", "g-3"];
    let group = |last: &str| -> Vec<NewChatMessage> {
        (0..700)
            .map(|i| {
                let text = if i == 649 {
                    last.to_owned()
                } else {
                    format!("g{i} @g_target")
                };
                msg(rooms[i % 3], "g_sender", &text, NOW + i as i64, &["g_target"])
            })
            .collect()
    };
    let notes_before = db
        .list_notifications(
            "g_target",
            NotificationQuery {
                unread_only: false,
                limit: 500,
                before: None,
            },
        )
        .expect("list")
        .len();
    assert!(db.commit_chat(&group(poison)).is_err(), "the poisoned group fails");
    for room in rooms {
        assert!(history(db, room, 500, None, None).is_empty(), "{room}: nothing stored");
    }
    let notes_after = db
        .list_notifications(
            "g_target",
            NotificationQuery {
                unread_only: false,
                limit: 500,
                before: None,
            },
        )
        .expect("list")
        .len();
    assert_eq!(notes_after, notes_before, "no mention of the failed group");

    let committed = db.commit_chat(&group("the antidote")).expect("the clean group commits");
    assert_eq!(committed.messages.len(), 700);
    assert!(
        committed.messages.windows(2).all(|w| w[0].id < w[1].id),
        "in the order sent"
    );
    assert_eq!(committed.notifications.len(), 700);
    let stored: usize = rooms.iter().map(|r| history(db, r, 500, None, None).len()).sum();
    assert_eq!(stored, 700);
}

/// Prints how long one `commit_chat` of 500 messages (a tenth mentioning a user) takes.
pub fn time_commit(db: &mut dyn Backend, label: &str) {
    let _ = db.create_user("bench_target", "x", NOW);
    let text = "a reasonably ordinary chat line of about eighty characters, with a bit of 한국어 ✓";
    let batch: Vec<NewChatMessage> = (0..500)
        .map(|i| {
            let mentions: &[&str] = if i % 10 == 0 {
                &["bench_target", "bench_ghost"]
            } else {
                &[]
            };
            msg(&format!("bench-{}", i % 8), "bench_sender", text, NOW + i, mentions)
        })
        .collect();
    let mut times = Vec::new();
    for _ in 0..11 {
        let start = std::time::Instant::now();
        let c = db.commit_chat(&batch).expect("commit");
        times.push(start.elapsed());
        assert_eq!((c.messages.len(), c.notifications.len()), (500, 50));
    }
    times.sort();
    println!(
        "{label}: commit_chat of 500 messages + 50 mentions: min {:?}, median {:?}, max {:?}",
        times[0], times[5], times[10]
    );
}
