//! The node's delivery order: every event — committed here, received from another node, read
//! from the store — goes through the sequencer of its room or recipient under one lock, and what
//! the sequencers release is posted to the reactors under that same lock, so two threads never
//! post one room's events out of order. Acknowledgements of local SENDs wait here for their
//! messages.
//!
//! A withdrawal of room access ([`MembershipEvent`]) has no id in any sequence: it is published
//! before its transaction commits, so no message committed after it can have been offered yet.
//! It passes straight through, posted under the same lock: whatever a sequencer holds or
//! releases later — messages committed after the change among them — reaches the reactors after
//! it, and a reactor inbox is FIFO.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::sequencer::{Offer, Request, Sequenced, Sequencer, Stats};
use super::{Bus, ChatEvent, Committed, MembershipEvent, NotificationEvent, Order, ReactorMsg, Topic, WaitingAcks};
use crate::chat::ChatAck;

/// What the sequencers asked the store for, by kind of topic.
#[derive(Debug, Default)]
pub struct Requests {
    pub rooms: Vec<Request>,
    pub users: Vec<Request>,
}

impl Requests {
    /// Whether nothing was asked.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty() && self.users.is_empty()
    }
}

/// Where the node stands on each watched topic (what a poll compares with the store).
#[derive(Debug, Default)]
pub struct Positions {
    pub rooms: Vec<(Box<str>, i64)>,
    pub users: Vec<(Box<str>, i64)>,
}

impl Bus {
    /// Orders events committed on this node, then queues `acks` behind their messages.
    pub(super) fn order_local(&self, committed: Committed, acks: Vec<(usize, Vec<ChatAck>)>) {
        let waits: Vec<(Box<str>, i64)> = if acks.is_empty() {
            Vec::new()
        } else {
            committed.chat.iter().map(|e| (e.room.clone(), e.id)).collect()
        };
        let mut order = self.lock_order();
        self.order_events(&mut order, committed);
        if !acks.is_empty() {
            order.acks.push(WaitingAcks { messages: waits, acks });
        }
        self.settle(&mut order);
    }

    /// Orders chat events another node published (one room's batch).
    pub fn remote_chat(&self, events: Vec<ChatEvent>) {
        let mut order = self.lock_order();
        self.order_events(
            &mut order,
            Committed {
                chat: events,
                ..Committed::default()
            },
        );
        self.settle(&mut order);
    }

    /// Orders notifications another node published (one recipient's batch).
    pub fn remote_notifications(&self, events: Vec<NotificationEvent>) {
        let mut order = self.lock_order();
        self.order_events(
            &mut order,
            Committed {
                notifications: events,
                ..Committed::default()
            },
        );
        self.settle(&mut order);
    }

    /// Withdrawals of room access another node published: straight through, under the lock.
    pub fn remote_membership(&self, events: Vec<MembershipEvent>) {
        let order = self.lock_order();
        self.deliver(Committed {
            membership: events,
            ..Committed::default()
        });
        drop(order);
    }

    fn order_events(&self, order: &mut Order, committed: Committed) {
        let now = Instant::now();
        let mut held = false;
        let mut chat = Vec::new();
        for event in committed.chat {
            let room = event.room.clone();
            if !order.rooms.is_watched(&room) {
                // The reactor joined a moment ago and the sync thread has not seen the change yet.
                let Some(since) = self.interest.since(&Topic::Room(room.clone())) else {
                    continue;
                };
                order.rooms.watch(&room, since);
            }
            match order.rooms.offer(&room, event.into(), now, &mut chat) {
                Offer::Unwatched => log::debug!("room {room}: event for an unwatched room dropped"),
                Offer::Held => held = true,
                Offer::Delivered | Offer::Duplicate => {}
            }
        }
        let mut notifications = Vec::new();
        for event in committed.notifications {
            let user = event.recipient.clone();
            if !order.users.is_watched(&user) {
                let Some(since) = self.interest.since(&Topic::User(user.clone())) else {
                    continue;
                };
                order.users.watch(&user, since);
            }
            if order.users.offer(&user, event.into(), now, &mut notifications) == Offer::Held {
                held = true;
            }
        }
        if held {
            // A held event may have opened a gap whose fill falls due before the sync thread's
            // next wake-up: let it look at the clocks again.
            let _ = self.sync_wake.0.try_send(());
        }
        // Withdrawals are not sequenced: see the module's note.
        self.deliver(Committed {
            chat,
            notifications,
            membership: committed.membership,
        });
    }

    /// Posts the acks whose messages have all been delivered (in the order they were queued),
    /// moves the sequencers' counters to the metrics, and wakes the sync thread if the
    /// sequencers asked for store reads.
    fn settle(&self, order: &mut Order) {
        let mut i = 0;
        while i < order.acks.len() {
            let done = order.acks[i]
                .messages
                .iter()
                .all(|(room, id)| order.rooms.delivered_through(room, *id));
            if done {
                for (reactor, acks) in order.acks.remove(i).acks {
                    self.send(reactor, ReactorMsg::ChatAcks(acks));
                }
            } else {
                i += 1;
            }
        }
        self.count(order.rooms.take_stats());
        self.count(order.users.take_stats());
        if order.rooms.has_requests() || order.users.has_requests() {
            let _ = self.sync_wake.0.try_send(());
        }
    }

    fn count(&self, stats: Stats) {
        if stats == Stats::default() {
            return;
        }
        let m = &self.metrics;
        m.sequencer_duplicates.fetch_add(stats.duplicates, Relaxed);
        m.sequencer_released_after_hold
            .fetch_add(stats.released_after_hold, Relaxed);
        m.sequencer_hold_micros.fetch_add(stats.held_micros, Relaxed);
        m.sequencer_gaps_skipped.fetch_add(stats.gaps_skipped, Relaxed);
        if stats.gaps_skipped > 0 {
            log::warn!(
                "gave up on {} gap(s) that the store could not fill: some events were delivered without the \
                 ones before them (clients recover them with history?after=); check the store's health",
                stats.gaps_skipped
            );
        }
    }

    /// Starts ordering a topic the node gained.
    pub(crate) fn watch(&self, topic: &Topic) {
        // From when its first listener arrived: a SEND accepted since then must be delivered,
        // even if its commit is read by the baseline before its event gets here.
        let now = self.interest.since(topic).unwrap_or_else(Instant::now);
        let mut order = self.lock_order();
        match topic {
            Topic::Room(room) => order.rooms.watch(room, now),
            Topic::User(user) => order.users.watch(user, now),
        }
        self.settle(&mut order);
    }

    /// Stops ordering a topic the node lost, unless a listener came back meanwhile.
    pub(crate) fn unwatch(&self, topic: &Topic) {
        let mut order = self.lock_order();
        if self.interest.reactors([topic]) != 0 {
            return;
        }
        match topic {
            Topic::Room(room) => order.rooms.unwatch(room),
            Topic::User(user) => order.users.unwatch(user),
        }
        self.settle(&mut order);
    }

    /// The store's last id of a topic, for its baseline (`None`: the read failed).
    pub(crate) fn baseline(&self, topic: &Topic, head: Option<i64>) {
        let now = Instant::now();
        let mut order = self.lock_order();
        let mut chat = Vec::new();
        let mut notifications = Vec::new();
        match (topic, head) {
            (Topic::Room(room), Some(head)) => order.rooms.baseline(room, head, now, &mut chat),
            (Topic::User(user), Some(head)) => order.users.baseline(user, head, now, &mut notifications),
            (Topic::Room(room), None) => order.rooms.baseline_failed(room, now),
            (Topic::User(user), None) => order.users.baseline_failed(user, now),
        }
        self.deliver(Committed {
            chat,
            notifications,
            ..Committed::default()
        });
        self.settle(&mut order);
    }

    /// The store's messages of `room` after the fill's `after` (`None`: the read failed).
    pub(crate) fn filled_room(&self, room: &str, rows: Option<(Vec<ChatEvent>, bool)>, asked_at: Instant) {
        let mut order = self.lock_order();
        let chat = fill(&mut order.rooms, room, rows, asked_at);
        self.deliver(Committed {
            chat,
            ..Committed::default()
        });
        self.settle(&mut order);
    }

    /// The store's notifications of `user` after the fill's `after` (`None`: the read failed).
    pub(crate) fn filled_user(&self, user: &str, rows: Option<(Vec<NotificationEvent>, bool)>, asked_at: Instant) {
        let mut order = self.lock_order();
        let notifications = fill(&mut order.users, user, rows, asked_at);
        self.deliver(Committed {
            notifications,
            ..Committed::default()
        });
        self.settle(&mut order);
    }

    /// The store's heads of watched topics (a poll): reads are asked for where it is ahead.
    pub(crate) fn check(&self, rooms: &[(String, i64)], users: &[(String, i64)]) {
        let now = Instant::now();
        let mut order = self.lock_order();
        for (room, head) in rooms {
            order.rooms.check(room, *head, now);
        }
        for (user, head) in users {
            order.users.check(user, *head, now);
        }
        self.settle(&mut order);
    }

    /// Runs the sequencers' clocks (fills due, retries, gaps given up on).
    pub(crate) fn tick(&self) {
        let now = Instant::now();
        let mut order = self.lock_order();
        let mut chat = Vec::new();
        let mut notifications = Vec::new();
        order.rooms.tick(now, &mut chat);
        order.users.tick(now, &mut notifications);
        self.deliver(Committed {
            chat,
            notifications,
            ..Committed::default()
        });
        self.settle(&mut order);
    }

    /// What the sequencers asked the store for since the last call.
    pub(crate) fn take_requests(&self) -> Requests {
        let mut order = self.lock_order();
        Requests {
            rooms: order.rooms.take_requests(),
            users: order.users.take_requests(),
        }
    }

    /// When the sequencers' clocks next have something to do.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let order = self.lock_order();
        match (order.rooms.next_due(), order.users.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Where the node stands on every watched topic.
    pub(crate) fn positions(&self) -> Positions {
        let order = self.lock_order();
        Positions {
            rooms: order.rooms.positions(),
            users: order.users.positions(),
        }
    }

    /// Events held by the sequencers now (for tests and metrics).
    pub fn held_events(&self) -> usize {
        let order = self.lock_order();
        order.rooms.held() + order.users.held()
    }
}

/// Hands a fill's rows (`None`: the read failed) to the topic's sequencer; returns what it releases.
fn fill<T>(sequencer: &mut Sequencer<T>, topic: &str, rows: Option<(Vec<T>, bool)>, asked_at: Instant) -> Vec<T>
where
    Sequenced<T>: From<T>,
{
    let now = Instant::now();
    let mut released = Vec::new();
    match rows {
        Some((rows, complete)) => {
            let rows = rows.into_iter().map(Sequenced::from).collect();
            sequencer.filled(topic, rows, complete, asked_at, now, &mut released);
        }
        None => sequencer.fill_failed(topic, now),
    }
    released
}

impl From<ChatEvent> for Sequenced<ChatEvent> {
    fn from(event: ChatEvent) -> Self {
        Sequenced {
            id: event.id,
            prev: event.prev,
            item: event,
        }
    }
}

impl From<NotificationEvent> for Sequenced<NotificationEvent> {
    fn from(event: NotificationEvent) -> Self {
        Sequenced {
            id: event.id,
            prev: event.prev,
            item: event,
        }
    }
}
