//! What a commit stores and links: messages in order, mentions, notifications, history pages, text
//! as sent, all-or-nothing batches and groups, concurrent commits chained per room.

use super::*;

/// Every stored row knows the row before it in its room or for its recipient, and the heads say
/// where each sequence stands (what a node compares with the store to fill gaps).
pub(super) fn sequences_are_linked(db: &mut dyn Backend) {
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

pub(super) fn commit_chat_order(db: &mut dyn Backend) {
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

pub(super) fn mentions(db: &mut dyn Backend) {
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

pub(super) fn history_paging(db: &mut dyn Backend) {
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

pub(super) fn notifications(db: &mut dyn Backend) {
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

pub(super) fn text_round_trips(db: &mut dyn Backend) {
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

pub(super) fn commit_is_all_or_nothing(db: &mut dyn Backend) {
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
    let notes = |db: &mut dyn Backend| {
        let all = NotificationQuery {
            unread_only: false,
            limit: 500,
            before: None,
        };
        db.list_notifications("g_target", all).expect("list").len()
    };
    let notes_before = notes(db);
    assert!(db.commit_chat(&group(poison)).is_err(), "the poisoned group fails");
    for room in rooms {
        assert!(history(db, room, 500, None, None).is_empty(), "{room}: nothing stored");
    }
    let notes_after = notes(db);
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
