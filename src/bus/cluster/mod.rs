//! Scale-out over Redis pub/sub (SPEC §6): what one node commits is published per room and per
//! recipient, and what other nodes publish on the channels this node listens to comes in and goes
//! through the same sequencers as local commits.
//!
//! Two blocking threads own one Redis connection each (the `redis` crate; never a reactor):
//!
//! - `herald-redis-pub` takes committed batches from a bounded queue and PUBLISHes them in one
//!   pipeline per wake-up (one round trip per batch at most). When Redis is unreachable or the
//!   queue is full, a batch is not published — it is committed, and the other nodes read it from
//!   the store (gap fill, poll);
//! - `herald-redis-sub` is the node's subscriber: it SUBSCRIBEs and UNSUBSCRIBEs as the node's
//!   interest changes (pipelined: one command for all the channels of a change burst), decodes
//!   what arrives and hands it to the bus.
//!
//! A withdrawal of room access is published the same way, on the channel of its topic (the
//! revoked user's, the restricted room's), but its caller — a store transaction about to commit
//! — waits until Redis has answered the PUBLISH ([`Publisher::publish_confirmed`]): once Redis
//! has taken it, every PUBLISH of a message committed after the change comes later, and Redis
//! pushes what one subscriber connection receives in the order it executed the PUBLISHes.
//!
//! Either thread reconnects with backoff. While the subscriber is down, `/health` says
//! `"cluster":"DEGRADED"` and the sync thread polls the store; when it is back, it resubscribes
//! every channel and the sync thread closes the gap from the store.

mod link;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::sync::ClusterSide;
use super::{Bus, ChatEvent, Committed, InterestChange, MembershipEvent, NotificationEvent, Topic};
use crate::config::ClusterConfig;
use crate::metrics::Metrics;
use wire::Outgoing;

/// What the Redis link can do right now.
#[derive(Debug, Default)]
pub struct LinkState {
    receiving: AtomicBool,
    publishing: AtomicBool,
}

impl LinkState {
    /// Whether the subscriber is connected and subscribed (else the node polls the store).
    pub fn receiving(&self) -> bool {
        self.receiving.load(Ordering::Acquire)
    }

    /// Whether both connections work: `"cluster":"UP"` in `/health`.
    pub fn up(&self) -> bool {
        self.receiving() && self.publishing.load(Ordering::Acquire)
    }

    fn set_receiving(&self, up: bool, metrics: &Metrics) {
        self.receiving.store(up, Ordering::Release);
        self.export(metrics);
    }

    fn set_publishing(&self, up: bool, metrics: &Metrics) {
        self.publishing.store(up, Ordering::Release);
        self.export(metrics);
    }

    fn export(&self, metrics: &Metrics) {
        metrics.cluster_redis_up.store(i64::from(self.up()), Ordering::Relaxed);
    }
}

/// What the subscriber thread tells the sync thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// (Re)connected and subscribed to every channel: close any gap from the store.
    Up,
    /// These topics were just subscribed: read what was committed before the subscription took.
    Subscribed(Vec<Topic>),
}

/// What one publish queues: its PUBLISHes and, for a caller that waits, where to say whether
/// Redis answered them.
pub(super) struct Queued {
    pub outgoing: Vec<Outgoing>,
    pub confirm: Option<Sender<bool>>,
}

/// The sending half of the publish queue, on the bus.
pub struct Publisher {
    node: Arc<str>,
    queue: Sender<Queued>,
    state: Arc<LinkState>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// Whether the link publishes and receives.
    pub fn link_up(&self) -> bool {
        self.state.up()
    }

    /// Queues one PUBLISH per room and per recipient of a committed batch (and one per
    /// withdrawal of room access); never waits. A batch that cannot be queued (Redis down, queue
    /// full) is counted and left to the store.
    pub fn publish(&self, committed: &Committed) {
        self.queue_publishes(committed, None);
    }

    /// Queues the PUBLISHes of `committed` like [`Publisher::publish`]; the receiver says, once,
    /// whether Redis answered them (false at once when they could not be queued).
    pub fn publish_confirmed(&self, committed: &Committed) -> Receiver<bool> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.queue_publishes(committed, Some(tx));
        rx
    }

    fn queue_publishes(&self, committed: &Committed, confirm: Option<Sender<bool>>) {
        if committed.is_empty() {
            return;
        }
        let mut rooms: BTreeMap<&str, Vec<&ChatEvent>> = BTreeMap::new();
        for e in &committed.chat {
            rooms.entry(&e.room).or_default().push(e);
        }
        let mut users: BTreeMap<&str, Vec<&NotificationEvent>> = BTreeMap::new();
        for n in &committed.notifications {
            users.entry(&n.recipient).or_default().push(n);
        }
        let count = (rooms.len() + users.len() + committed.membership.len()) as u64;
        let refuse = |confirm: Option<Sender<bool>>| {
            self.metrics
                .cluster_publish_failures
                .fetch_add(count, Ordering::Relaxed);
            if let Some(confirm) = confirm {
                let _ = confirm.try_send(false);
            }
        };
        if !self.state.publishing.load(Ordering::Acquire) {
            refuse(confirm);
            return;
        }
        let mut outgoing = Vec::with_capacity(rooms.len() + users.len() + committed.membership.len());
        outgoing.extend(
            rooms
                .iter()
                .map(|(room, events)| wire::encode_chat(&self.node, room, events)),
        );
        outgoing.extend(
            users
                .iter()
                .map(|(user, events)| wire::encode_notifications(&self.node, user, events)),
        );
        outgoing.extend(
            committed
                .membership
                .iter()
                .map(|event: &MembershipEvent| wire::encode_membership(&self.node, event)),
        );
        if let Err(e) = self.queue.try_send(Queued { outgoing, confirm }) {
            refuse(e.into_inner().confirm);
        }
    }
}

/// The Redis link of one node, before and after its threads start.
pub struct Cluster {
    url: String,
    node: Arc<str>,
    state: Arc<LinkState>,
    metrics: Arc<Metrics>,
    queue: (Sender<Queued>, Receiver<Queued>),
    interest: (Sender<InterestChange>, Receiver<InterestChange>),
    notices: (Sender<Notice>, Receiver<Notice>),
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// The link for `config.redis_url` (not connected yet).
    pub fn new(config: &ClusterConfig, metrics: Arc<Metrics>) -> Cluster {
        Cluster {
            url: config.redis_url.clone(),
            node: node_id().into(),
            state: Arc::new(LinkState::default()),
            metrics,
            queue: crossbeam_channel::bounded(config.publish_queue.max(1)),
            interest: crossbeam_channel::unbounded(),
            notices: crossbeam_channel::unbounded(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        }
    }

    /// This node's id in the envelopes it publishes.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The state `/health` reports.
    pub fn state(&self) -> Arc<LinkState> {
        Arc::clone(&self.state)
    }

    /// The outlet for the bus.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            node: Arc::clone(&self.node),
            queue: self.queue.0.clone(),
            state: Arc::clone(&self.state),
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// What the sync thread needs of the link.
    pub fn sync_side(&self) -> ClusterSide {
        ClusterSide {
            state: Arc::clone(&self.state),
            notices: self.notices.1.clone(),
            interest: self.interest.0.clone(),
        }
    }

    /// Starts the publisher and subscriber threads.
    pub fn start(&mut self, bus: &Arc<Bus>) -> Result<(), String> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| format!("cluster.redis_url {}: {e}", crate::store::redact(&self.url)))?;
        let publisher = link::PublisherLoop {
            client: client.clone(),
            url: crate::store::redact(&self.url),
            queue: self.queue.1.clone(),
            state: Arc::clone(&self.state),
            metrics: Arc::clone(&self.metrics),
            stop: Arc::clone(&self.stop),
        };
        let subscriber = link::SubscriberLoop {
            client,
            url: crate::store::redact(&self.url),
            node: Arc::clone(&self.node),
            bus: Arc::clone(bus),
            changes: self.interest.1.clone(),
            notices: self.notices.0.clone(),
            state: Arc::clone(&self.state),
            metrics: Arc::clone(&self.metrics),
            stop: Arc::clone(&self.stop),
        };
        for (name, body) in [
            (
                "herald-redis-pub",
                Box::new(move || publisher.run()) as Box<dyn FnOnce() + Send>,
            ),
            ("herald-redis-sub", Box::new(move || subscriber.run())),
        ] {
            let handle = std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|e| format!("spawning {name}: {e}"))?;
            self.threads.push(handle);
        }
        log::info!(
            "cluster: node {} publishing and subscribing on redis {}",
            self.node,
            crate::store::redact(&self.url)
        );
        Ok(())
    }

    /// Stops the threads (the publisher first sends what is queued), bounded by `deadline`.
    pub fn shutdown(&mut self, deadline: Instant) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// A random id for this process, so that it can skip its own publishes.
fn node_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: the pid and the time still tell processes apart.
        let t = crate::clock::now_ms() as u64;
        bytes = (t ^ (u64::from(std::process::id()) << 40)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(rooms: &[&str]) -> Committed {
        Committed {
            chat: rooms
                .iter()
                .enumerate()
                .map(|(i, room)| ChatEvent {
                    room: (*room).into(),
                    id: i as i64 + 1,
                    prev: i as i64,
                    body: "{}".into(),
                })
                .collect(),
            notifications: vec![NotificationEvent {
                recipient: "bob".into(),
                id: 9,
                prev: 0,
                body: "{}".into(),
            }],
            membership: Vec::new(),
        }
    }

    #[test]
    fn a_batch_is_one_publish_per_room_and_recipient_and_the_queue_is_bounded() {
        let config = ClusterConfig {
            redis_url: "redis://127.0.0.1:1".into(),
            publish_queue: 1,
            ..ClusterConfig::default()
        };
        let metrics = Arc::new(Metrics::default());
        let cluster = Cluster::new(&config, Arc::clone(&metrics));
        let publisher = cluster.publisher();
        let failures = || metrics.cluster_publish_failures.load(Ordering::Relaxed);

        // Not connected yet: nothing is queued, the batch is left to the store.
        publisher.publish(&committed(&["a"]));
        assert_eq!(failures(), 2);
        assert!(cluster.queue.1.is_empty());

        cluster.state.set_publishing(true, &metrics);
        publisher.publish(&committed(&["a", "b", "a"]));
        let queued = cluster.queue.1.try_recv().expect("one batch queued");
        assert!(queued.confirm.is_none());
        let channels: Vec<&str> = queued.outgoing.iter().map(|o| o.channel.as_str()).collect();
        assert_eq!(channels, ["herald:room:a", "herald:room:b", "herald:user:bob"]);

        // Over `publish_queue` batches waiting: dropped and counted, never waited for.
        publisher.publish(&committed(&["c"]));
        publisher.publish(&committed(&["d"]));
        assert_eq!(cluster.queue.1.len(), 1);
        assert_eq!(failures(), 4);
        assert!(!cluster.state().up(), "publishing alone is not UP");
        cluster.state.set_receiving(true, &metrics);
        assert!(cluster.state().up() && publisher.link_up());
        assert_eq!(metrics.cluster_redis_up.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_withdrawal_goes_on_its_topics_channel_and_its_caller_hears_back() {
        let config = ClusterConfig {
            redis_url: "redis://127.0.0.1:1".into(),
            publish_queue: 1,
            ..ClusterConfig::default()
        };
        let metrics = Arc::new(Metrics::default());
        let cluster = Cluster::new(&config, Arc::clone(&metrics));
        let publisher = cluster.publisher();
        let revoked = Committed::membership(MembershipEvent::Revoked {
            room: "r".into(),
            user: "bob".into(),
        });
        // Not publishing: refused at once, the caller is not left waiting.
        assert_eq!(publisher.publish_confirmed(&revoked).try_recv(), Ok(false));
        cluster.state.set_publishing(true, &metrics);
        let answer = publisher.publish_confirmed(&revoked);
        let queued = cluster.queue.1.try_recv().expect("queued");
        let channels: Vec<&str> = queued.outgoing.iter().map(|o| o.channel.as_str()).collect();
        assert_eq!(channels, ["herald:user:bob"]);
        queued.confirm.expect("waited for").send(true).expect("send");
        assert_eq!(answer.try_recv(), Ok(true));
        let restricted = Committed::membership(MembershipEvent::Restricted {
            room: "secret".into(),
            members: vec!["alice".into()].into(),
        });
        publisher.publish(&restricted);
        let queued = cluster.queue.1.try_recv().expect("queued");
        assert_eq!(queued.outgoing[0].channel, "herald:room:secret");
        // A full queue refuses at once too.
        publisher.publish(&restricted);
        assert_eq!(publisher.publish_confirmed(&revoked).try_recv(), Ok(false));
    }
}
