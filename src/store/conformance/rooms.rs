//! Rooms, members, access, direct rooms, read marks and the room list, and their races.

use super::*;

pub(super) fn new_room(id: &str, private: bool, owner: &str) -> NewRoom {
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
pub(super) fn create(db: &mut dyn Backend, room: &NewRoom, announced: &mut u32) -> Result<RoomDetail, StoreError> {
    db.create_room(room, &mut || *announced += 1)
}

pub(super) fn access(db: &mut dyn Backend, room: &str, user: &str) -> RoomAccess {
    let snapshot = db.room_access(room, user, AccessRead::Snapshot).expect("access");
    let serialized = db.room_access(room, user, AccessRead::Serialized).expect("access");
    assert_eq!(
        snapshot, serialized,
        "{room} for {user}: both reads agree when nothing changes"
    );
    snapshot
}

pub(super) fn room_creation(db: &mut dyn Backend) {
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

pub(super) fn room_members(db: &mut dyn Backend) {
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

pub(super) fn chat_in_private_rooms(db: &mut dyn Backend) {
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

pub(super) fn open_direct(
    db: &mut dyn Backend,
    id: &str,
    caller: &str,
    other: &str,
    announced: &mut u32,
) -> DirectOutcome {
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

pub(super) fn direct_rooms(db: &mut dyn Backend) {
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

pub(super) fn read_marks_and_room_list(db: &mut dyn Backend) {
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
