//! The bus carries work between threads and the reactors: every reactor's inbox, the registry
//! of which reactor listens to which room and user, the per-topic delivery order, and the one
//! entry point through which every committed event is published.
//!
//! Publishing goes through [`Bus::publish`] only — the chat writer after a group commit, the
//! notification use case after a direct notification. What a published event becomes is decided
//! here: it passes through the node's sequencer of its room or recipient (`sequencer`, fed also
//! by other nodes and by the store: `sync`) and reaches the reactors in the store's order; with
//! an [`Outlet::Cluster`] it is also published to the other nodes over Redis (`cluster`).

pub mod cluster;
mod delivery;
mod event;
mod inbox;
mod interest;
pub mod sequencer;
pub mod sync;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

pub use event::{ChatEvent, Committed, MembershipEvent, NotificationEvent};
pub use inbox::{ConnRef, ReactorHandle, ReactorMsg};
pub use interest::{Interest, InterestChange, Topic};

use crate::chat::ChatAck;
use crate::config::ClusterConfig;
use crate::http::response::Response;
use crate::metrics::Metrics;
use sequencer::Sequencer;

/// How long [`Bus::announce`] waits for Redis to take a withdrawal (a little over the link's
/// command timeout).
pub const WITHDRAWAL_PUBLISH_WAIT: Duration = Duration::from_secs(3);

/// Where published events go besides this node's reactors.
pub enum Outlet {
    /// Nowhere: a single node.
    Local,
    /// Also to the other nodes, over Redis.
    Cluster(cluster::Publisher),
}

/// Acknowledgements waiting for the delivery of the messages they acknowledge.
struct WaitingAcks {
    /// `(room, id)` of each message of the batch.
    messages: Vec<(Box<str>, i64)>,
    /// The acks, per origin reactor.
    acks: Vec<(usize, Vec<ChatAck>)>,
}

/// The delivery order of this node: one sequencer per kind of topic, and the acks that wait.
struct Order {
    rooms: Sequencer<ChatEvent>,
    users: Sequencer<NotificationEvent>,
    acks: Vec<WaitingAcks>,
}

/// All reactors' inboxes, the interest registry, the delivery order and the outlet.
pub struct Bus {
    reactors: Vec<ReactorHandle>,
    interest: Interest,
    outlet: Outlet,
    order: Mutex<Order>,
    metrics: Arc<Metrics>,
    /// Wakes the sync thread when the sequencers ask for store reads.
    sync_wake: (Sender<()>, Receiver<()>),
}

impl Bus {
    /// At most 64 reactors (one bit each in the interest masks).
    pub const MAX_REACTORS: usize = 64;

    /// A bus over the given reactor inboxes (at most [`Bus::MAX_REACTORS`]) with the default
    /// `[cluster]` ordering settings and counters of its own.
    pub fn new(reactors: Vec<ReactorHandle>, outlet: Outlet) -> Bus {
        Bus::configured(
            reactors,
            outlet,
            &ClusterConfig::default(),
            Arc::new(Metrics::default()),
        )
    }

    /// A bus whose sequencers hold `cluster.max_held_events` per topic and wait
    /// `cluster.gap_timeout_ms` for a missing event.
    pub fn configured(
        reactors: Vec<ReactorHandle>,
        outlet: Outlet,
        cluster: &ClusterConfig,
        metrics: Arc<Metrics>,
    ) -> Bus {
        let gap = Duration::from_millis(cluster.gap_timeout_ms.max(1));
        Bus {
            reactors,
            interest: Interest::default(),
            outlet,
            order: Mutex::new(Order {
                rooms: Sequencer::new(cluster.max_held_events, gap),
                users: Sequencer::new(cluster.max_held_events, gap),
                acks: Vec::new(),
            }),
            metrics,
            sync_wake: crossbeam_channel::bounded(1),
        }
    }

    /// How many reactors the bus serves.
    pub fn reactor_count(&self) -> usize {
        self.reactors.len()
    }

    /// Which reactors listen to what.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// The process's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Posts a message to one reactor.
    pub fn send(&self, reactor: usize, msg: ReactorMsg) {
        if let Some(handle) = self.reactors.get(reactor) {
            handle.post(reactor, msg);
        }
    }

    /// Replies to one connection.
    pub fn reply(&self, conn: ConnRef, response: Response) {
        self.send(
            conn.reactor,
            ReactorMsg::Reply {
                token: conn.token,
                response,
            },
        );
    }

    /// Wakes every reactor with nothing to drain (so that it notices the shutdown flag at once).
    pub fn wake_all(&self) {
        for (reactor, handle) in self.reactors.iter().enumerate() {
            handle.wake(reactor);
        }
    }

    /// Called by a reactor before it drains its inbox.
    pub fn clear_wake(&self, reactor: usize) {
        if let Some(handle) = self.reactors.get(reactor) {
            handle.clear_wake();
        }
    }

    /// Publishes what one transaction committed. Callers publish only after the commit
    /// succeeded, and in commit order — except a [`MembershipEvent`], which is published just
    /// before its transaction commits, while it still holds the room (see there why).
    pub fn publish(&self, committed: Committed) {
        self.publish_then_ack(committed, Vec::new());
    }

    /// Announces a withdrawal of room access from inside the store transaction that makes it,
    /// while that transaction still holds the room (see [`MembershipEvent`]): to this node's
    /// reactors at once, through the order lock but past the sequencers, and with Redis to the
    /// other nodes — waiting, at most [`WITHDRAWAL_PUBLISH_WAIT`], until Redis has answered the
    /// PUBLISH, so that no message committed after the change can be published before it. Runs
    /// on a worker thread, never on a reactor.
    pub fn announce(&self, event: MembershipEvent) {
        let committed = Committed::membership(event);
        let answer = match &self.outlet {
            Outlet::Cluster(publisher) => Some(publisher.publish_confirmed(&committed)),
            Outlet::Local => None,
        };
        self.order_local(committed, Vec::new());
        if let Some(answer) = answer {
            if answer.recv_timeout(WITHDRAWAL_PUBLISH_WAIT) != Ok(true) {
                log::warn!(
                    "cluster: a withdrawal of room access could not be published to redis; sessions on other \
                     nodes keep their subscriptions until they subscribe again"
                );
            }
        }
    }

    /// Publishes a committed chat batch, then posts each origin reactor its acks once every
    /// message of the batch has been delivered on this node (at once, unless the sequencer holds
    /// one of them), so a subscribed sender sees its MESSAGE before its RECEIPT.
    pub fn publish_then_ack(&self, committed: Committed, acks: Vec<(usize, Vec<ChatAck>)>) {
        if let Outlet::Cluster(publisher) = &self.outlet {
            publisher.publish(&committed);
        }
        self.order_local(committed, acks);
    }

    /// Hands committed events to this node's reactors that listen to them: each chat batch once to
    /// each reactor holding subscribers of any of its rooms, then each notification to the
    /// reactors holding its recipient's streams and sessions, then each membership change to the
    /// reactors holding the user it revokes (their sessions) or the room it restricts. No
    /// ordering: callers hand them in their order.
    pub fn deliver(&self, committed: Committed) {
        let Committed {
            chat,
            notifications,
            membership,
        } = committed;
        if !chat.is_empty() {
            let rooms: Vec<Topic> = chat.iter().map(|e| Topic::Room(e.room.clone())).collect();
            let mask = self.interest.reactors(&rooms);
            self.post_masked(mask, chat, ReactorMsg::Chat);
        }
        if !notifications.is_empty() {
            let users: Vec<Topic> = notifications.iter().map(|n| Topic::User(n.recipient.clone())).collect();
            let mask = self.interest.reactors(&users);
            self.post_masked(mask, notifications, ReactorMsg::Notifications);
        }
        if !membership.is_empty() {
            let topics: Vec<Topic> = membership.iter().map(MembershipEvent::topic).collect();
            let mask = self.interest.reactors(&topics);
            self.post_masked(mask, membership, ReactorMsg::Membership);
        }
    }

    fn post_masked<T>(&self, mask: u64, events: Vec<T>, wrap: fn(Arc<[T]>) -> ReactorMsg) {
        if mask == 0 {
            return;
        }
        let events: Arc<[T]> = events.into();
        for reactor in 0..self.reactors.len() {
            if mask & (1 << reactor) != 0 {
                self.send(reactor, wrap(Arc::clone(&events)));
            }
        }
    }

    fn lock_order(&self) -> MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// With Redis configured, whether the link works (`None`: a single node).
    pub fn cluster_up(&self) -> Option<bool> {
        match &self.outlet {
            Outlet::Local => None,
            Outlet::Cluster(publisher) => Some(publisher.link_up()),
        }
    }

    /// The receiving end the sync thread waits on.
    pub(crate) fn sync_wakes(&self) -> Receiver<()> {
        self.sync_wake.1.clone()
    }
}

/// Makes the inboxes of `count` reactors from their wakers; the receivers go to the reactors.
pub fn inboxes(wakers: Vec<mio::Waker>) -> (Vec<ReactorHandle>, Vec<Receiver<ReactorMsg>>) {
    wakers.into_iter().map(ReactorHandle::new).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        bus: Bus,
        inboxes: Vec<Receiver<ReactorMsg>>,
        _polls: Vec<mio::Poll>,
    }

    fn fixture(reactors: usize) -> Fixture {
        let polls: Vec<mio::Poll> = (0..reactors).map(|_| mio::Poll::new().expect("poll")).collect();
        let wakers = polls
            .iter()
            .map(|p| mio::Waker::new(p.registry(), mio::Token(0)).expect("waker"))
            .collect();
        let (handles, inboxes) = inboxes(wakers);
        Fixture {
            bus: Bus::new(handles, Outlet::Local),
            inboxes,
            _polls: polls,
        }
    }

    fn chat(room: &str, id: i64) -> ChatEvent {
        ChatEvent {
            room: room.into(),
            id,
            prev: 0,
            body: "{}".into(),
        }
    }

    fn note(user: &str, id: i64) -> NotificationEvent {
        NotificationEvent {
            recipient: user.into(),
            id,
            prev: 0,
            body: "{}".into(),
        }
    }

    fn drained(rx: &Receiver<ReactorMsg>) -> Vec<String> {
        rx.try_iter()
            .map(|m| match m {
                ReactorMsg::Chat(events) => format!("chat {:?}", events.iter().map(|e| e.id).collect::<Vec<_>>()),
                ReactorMsg::Notifications(events) => {
                    format!("notes {:?}", events.iter().map(|e| e.id).collect::<Vec<_>>())
                }
                ReactorMsg::Membership(events) => {
                    format!("membership {:?}", events.iter().map(|e| e.room()).collect::<Vec<_>>())
                }
                ReactorMsg::ChatAcks(acks) => format!("acks {:?}", acks.iter().map(|a| a.token).collect::<Vec<_>>()),
                _ => "other".into(),
            })
            .collect()
    }

    fn linked(room: &str, id: i64, prev: i64) -> ChatEvent {
        ChatEvent { prev, ..chat(room, id) }
    }

    fn ack(token: usize) -> (usize, Vec<ChatAck>) {
        (
            1,
            vec![ChatAck {
                token,
                answer: crate::chat::ChatAnswer::Send {
                    receipt: Some("r".into()),
                    outcome: Ok(()),
                },
            }],
        )
    }

    #[test]
    fn delivered_events_reach_only_interested_reactors_once_in_order() {
        let f = fixture(3);
        f.bus.interest().join(0, Topic::Room("a".into()));
        f.bus.interest().join(2, Topic::Room("b".into()));
        f.bus.interest().join(2, Topic::User("bob".into()));
        f.bus.deliver(Committed {
            chat: vec![chat("a", 1), chat("b", 2), chat("nobody", 3)],
            notifications: vec![note("bob", 7), note("carol", 8)],
            membership: Vec::new(),
        });
        // A reactor gets the whole batch once (it skips rooms it does not hold), chat first.
        assert_eq!(drained(&f.inboxes[0]), vec!["chat [1, 2, 3]"]);
        assert!(drained(&f.inboxes[1]).is_empty());
        assert_eq!(drained(&f.inboxes[2]), vec!["chat [1, 2, 3]", "notes [7, 8]"]);
        // Nothing listened to: nothing posted.
        f.bus.deliver(Committed {
            chat: vec![chat("zzz", 4)],
            notifications: vec![],
            membership: Vec::new(),
        });
        assert!(f.inboxes.iter().all(|rx| rx.is_empty()));
    }

    #[test]
    fn membership_changes_reach_the_revoked_user_and_the_restricted_room() {
        let f = fixture(3);
        f.bus.interest().join(0, Topic::User("bob".into()));
        f.bus.interest().join(1, Topic::Room("secret".into()));
        f.bus.publish(Committed::membership(MembershipEvent::Revoked {
            room: "r".into(),
            user: "bob".into(),
        }));
        assert_eq!(drained(&f.inboxes[0]), vec!["membership [\"r\"]"]);
        assert!(drained(&f.inboxes[1]).is_empty() && drained(&f.inboxes[2]).is_empty());
        let restricted = MembershipEvent::Restricted {
            room: "secret".into(),
            members: vec!["alice".into()].into(),
        };
        assert!(restricted.withdraws("bob") && !restricted.withdraws("alice"));
        f.bus.publish(Committed::membership(restricted));
        assert_eq!(drained(&f.inboxes[1]), vec!["membership [\"secret\"]"]);
        assert!(drained(&f.inboxes[0]).is_empty() && drained(&f.inboxes[2]).is_empty());
    }

    #[test]
    fn a_withdrawal_passes_the_sequencer_and_what_it_held_comes_after() {
        let f = fixture(1);
        f.bus.interest().join(0, Topic::Room("a".into()));
        f.bus.interest().join(0, Topic::User("bob".into()));
        let publish = |events: Vec<ChatEvent>| {
            f.bus.publish(Committed {
                chat: events,
                ..Committed::default()
            })
        };
        publish(vec![linked("a", 5, 4)]);
        f.bus.baseline(&Topic::Room("a".into()), Some(4));
        assert_eq!(drained(&f.inboxes[0]), vec!["chat [5]"]);
        // 7 waits for 6 (a slower node); the removal, published before its commit, is not held
        // behind them: it has no place in the room's sequence.
        publish(vec![linked("a", 7, 6)]);
        f.bus.publish(Committed::membership(MembershipEvent::Revoked {
            room: "a".into(),
            user: "bob".into(),
        }));
        assert_eq!(drained(&f.inboxes[0]), vec!["membership [\"a\"]"]);
        f.bus.remote_membership(vec![MembershipEvent::Restricted {
            room: "a".into(),
            members: vec!["alice".into()].into(),
        }]);
        assert_eq!(drained(&f.inboxes[0]), vec!["membership [\"a\"]"], "from another node");
        f.bus.remote_chat(vec![linked("a", 6, 5)]);
        assert_eq!(drained(&f.inboxes[0]), vec!["chat [6, 7]"]);
    }

    #[test]
    fn an_event_held_in_a_gap_wakes_the_sync_thread() {
        let f = fixture(1);
        f.bus.interest().join(0, Topic::Room("a".into()));
        f.bus.remote_chat(vec![linked("a", 5, 4)]);
        f.bus.baseline(&Topic::Room("a".into()), Some(4));
        assert_eq!(drained(&f.inboxes[0]), vec!["chat [5]"]);
        let _ = f.bus.take_requests();
        let wakes = f.bus.sync_wakes();
        while wakes.try_recv().is_ok() {}
        // 7 after 5: a gap whose fill falls due in gap_timeout, maybe before the sync thread's
        // next wake-up, so the sync thread is told to look at the clocks again.
        f.bus.remote_chat(vec![linked("a", 7, 6)]);
        assert_eq!(f.bus.held_events(), 1);
        assert!(f.bus.take_requests().rooms.is_empty(), "no read is asked for yet");
        assert!(wakes.try_recv().is_ok(), "the sync thread is woken");
        assert!(f.bus.next_due().is_some(), "the gap has a due time");
    }

    #[test]
    fn published_events_follow_the_store_order_and_acks_wait_for_their_messages() {
        let f = fixture(2);
        f.bus.interest().join(0, Topic::Room("a".into()));
        let publish = |events: Vec<ChatEvent>, acks| {
            f.bus.publish_then_ack(
                Committed {
                    chat: events,
                    ..Committed::default()
                },
                acks,
            )
        };
        // A room just joined waits for its baseline; so does the sender's RECEIPT.
        publish(vec![linked("a", 5, 4), linked("nobody", 6, 0)], vec![ack(1)]);
        assert!(f.inboxes.iter().all(|rx| rx.is_empty()));
        let requests = f.bus.take_requests();
        assert!(matches!(&requests.rooms[..], [sequencer::Request::Baseline { topic, .. }] if &**topic == "a"));
        f.bus.baseline(&Topic::Room("a".into()), Some(4));
        assert_eq!(drained(&f.inboxes[0]), vec!["chat [5]"]);
        assert_eq!(drained(&f.inboxes[1]), vec!["acks [1]"]);
        // 7 comes before 6 (another shard or node was slower): held with its RECEIPT.
        publish(vec![linked("a", 7, 6)], vec![ack(2)]);
        assert!(f.inboxes.iter().all(|rx| rx.is_empty()));
        assert_eq!(f.bus.held_events(), 1);
        f.bus.remote_chat(vec![linked("a", 6, 5)]);
        assert_eq!(drained(&f.inboxes[0]), vec!["chat [6, 7]"]);
        assert_eq!(drained(&f.inboxes[1]), vec!["acks [2]"], "after its MESSAGE");
        // Duplicates (this node's own publish coming back, a fill) are dropped.
        f.bus.remote_chat(vec![linked("a", 7, 6)]);
        assert!(f.inboxes.iter().all(|rx| rx.is_empty()));
        assert_eq!(
            f.bus
                .metrics()
                .sequencer_duplicates
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // A room nobody here listens to is not ordered; its acks go at once.
        publish(vec![linked("zzz", 9, 8)], vec![ack(3)]);
        assert_eq!(drained(&f.inboxes[1]), vec!["acks [3]"]);
        assert!(drained(&f.inboxes[0]).is_empty());
    }
}
