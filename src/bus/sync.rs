//! The sync thread: the store side of the node's delivery order. It follows the node's interest
//! (a topic gained is watched, and its baseline read; a topic lost is dropped), runs the
//! sequencers' clocks, and answers their reads: baselines, gap fills, and — while Redis is
//! unreachable, or every `cluster.audit_interval_ms` while it is up — a poll of every watched
//! topic's head, so that what was committed elsewhere is read from the store.
//!
//! It owns one store connection (a pool thread) and never touches a socket; reactors never wait
//! on it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use super::cluster::{LinkState, Notice};
use super::sequencer::Request;
use super::{Bus, ChatEvent, InterestChange, Topic};
use crate::clock::now_ms;
use crate::config::ClusterConfig;
use crate::notify::linked_events;
use crate::store::model::HistoryQuery;
use crate::store::pool::{StorePool, Worker};

/// Rows read per fill: a full page asks for the next one.
pub const FILL_PAGE: u32 = 500;

/// How far before a topic was watched its delivery starts (see `Sync::baseline`).
pub const BASELINE_MARGIN: Duration = Duration::from_secs(1);

/// The longest the thread sleeps with nothing due (shutdown wakes it at once).
const IDLE: Duration = Duration::from_secs(1);

/// The same in a cluster, where the thread also notices that Redis stopped delivering (and falls
/// back to polling the store) by looking.
const CLUSTER_IDLE: Duration = Duration::from_millis(100);

/// What the sync thread shares with the Redis link, when there is one.
pub struct ClusterSide {
    /// Whether the link can receive (else: poll).
    pub state: Arc<LinkState>,
    /// What the subscriber thread tells (connected, subscribed).
    pub notices: Receiver<Notice>,
    /// Where the node's interest changes go on to (the subscriber thread).
    pub interest: Sender<InterestChange>,
}

/// Starts the sync thread on the store pool.
pub fn start(bus: &Arc<Bus>, pool: &StorePool, config: &ClusterConfig, cluster: Option<ClusterSide>) {
    let Some(changes) = bus.interest().watch() else {
        log::error!("the interest registry already has a watcher: the sync thread is not started");
        return;
    };
    let bus = Arc::clone(bus);
    let config = config.clone();
    pool.spawn("herald-bus-sync".into(), move |worker| {
        Sync {
            bus,
            worker,
            config,
            cluster,
            changes,
        }
        .run()
    });
}

struct Sync {
    bus: Arc<Bus>,
    worker: Worker,
    config: ClusterConfig,
    cluster: Option<ClusterSide>,
    changes: Receiver<InterestChange>,
}

impl Sync {
    fn run(mut self) {
        let wakes = self.bus.sync_wakes();
        let never = crossbeam_channel::never();
        let mut next_poll = Instant::now() + self.config.poll_interval();
        let mut was_up = false;
        loop {
            if self.worker.stopping() {
                return;
            }
            let now = Instant::now();
            let mut until = now + if self.cluster.is_some() { CLUSTER_IDLE } else { IDLE };
            if let Some(due) = self.bus.next_due() {
                until = until.min(due);
            }
            if self.cluster.is_some() {
                until = until.min(next_poll);
            }
            let notices = self.cluster.as_ref().map_or(&never, |c| &c.notices);
            let timeout = until.saturating_duration_since(now);
            let mut recheck: Vec<Topic> = Vec::new();
            let mut check_all = false;
            select! {
                recv(self.changes) -> change => {
                    if let Ok(change) = change {
                        self.on_change(change);
                    }
                }
                recv(notices) -> notice => match notice {
                    Ok(Notice::Up) => check_all = true,
                    Ok(Notice::Subscribed(topics)) => recheck.extend(topics),
                    Err(_) => {}
                },
                recv(wakes) -> _ => {}
                recv(self.worker.stop_signal()) -> _ => {}
                default(timeout) => {}
            }
            while let Ok(change) = self.changes.try_recv() {
                self.on_change(change);
            }
            if let Some(c) = &self.cluster {
                while let Ok(notice) = c.notices.try_recv() {
                    match notice {
                        Notice::Up => check_all = true,
                        Notice::Subscribed(topics) => recheck.extend(topics),
                    }
                }
            }
            self.bus.tick();
            self.serve_requests();
            if let Some(c) = &self.cluster {
                let up = c.state.receiving();
                let now = Instant::now();
                if up != was_up {
                    was_up = up;
                    next_poll = now;
                }
                if now >= next_poll {
                    check_all = true;
                    next_poll = now
                        + if up {
                            self.config.audit_interval().unwrap_or(Duration::from_secs(3600))
                        } else {
                            self.config.poll_interval()
                        };
                    if up && self.config.audit_interval().is_none() {
                        check_all = false;
                    }
                }
            }
            if check_all {
                self.poll_all();
            } else if !recheck.is_empty() {
                self.poll_topics(&recheck);
            }
            self.serve_requests();
        }
    }

    fn on_change(&mut self, change: InterestChange) {
        match &change {
            InterestChange::Gained(topic) => self.bus.watch(topic),
            InterestChange::Lost(topic) => self.bus.unwatch(topic),
        }
        if let Some(c) = &self.cluster {
            let _ = c.interest.send(change);
        }
    }

    /// Answers every read the sequencers asked for, until they ask for no more.
    fn serve_requests(&mut self) {
        for _ in 0..64 {
            let requests = self.bus.take_requests();
            if requests.is_empty() {
                return;
            }
            for request in requests.rooms {
                match request {
                    Request::Baseline { topic, watched } => self.baseline(Topic::Room(topic), watched),
                    Request::Fill { topic, after } => self.fill_room(&topic, after),
                }
            }
            for request in requests.users {
                match request {
                    Request::Baseline { topic, watched } => self.baseline(Topic::User(topic), watched),
                    Request::Fill { topic, after } => self.fill_user(&topic, after),
                }
            }
        }
    }

    /// Where a topic watched at `watched` (when its first local listener arrived) starts: its
    /// last row from before then. A SEND accepted since then is stamped later, so it lies after
    /// the start whether its commit comes before this read or after it; on a single node every
    /// commit's event reaches the sequencer after the watch and is held until this answer.
    /// In a cluster, what another node published before Redis confirmed this node's subscription
    /// never arrives: the start moves [`BASELINE_MARGIN`] earlier, and the check that follows the
    /// subscription reads what lies beyond it — at worst a message from just before the watch is
    /// delivered too, never one after it missed. On a single node the same check follows the
    /// baseline at once: a row stamped in the millisecond before the watch lies after the start,
    /// but its event was handed out before the watch and never comes; without the check, the
    /// next event would wait `gap_timeout` for the fill.
    fn baseline(&mut self, topic: Topic, watched: Instant) {
        let since_watched = i64::try_from(watched.elapsed().as_millis()).unwrap_or(i64::MAX);
        let margin = if self.cluster.is_some() {
            i64::try_from(BASELINE_MARGIN.as_millis()).unwrap_or(0)
        } else {
            0
        };
        // One millisecond more: a SEND accepted in the millisecond of the watch is after it.
        let before_ms = now_ms()
            .saturating_sub(since_watched)
            .saturating_sub(margin)
            .saturating_sub(1);
        let start = self.worker.with(|db| match &topic {
            Topic::Room(room) => db.room_start(room, before_ms),
            Topic::User(user) => db.notification_start(user, before_ms),
        });
        let started = start.is_ok();
        self.bus.baseline(&topic, start.ok());
        if started && self.cluster.is_none() {
            self.poll_topics(std::slice::from_ref(&topic));
        }
    }

    fn fill_room(&mut self, room: &str, after: i64) {
        let asked_at = Instant::now();
        let query = HistoryQuery {
            limit: FILL_PAGE,
            before: None,
            after: Some(after),
        };
        let read = self.worker.with(|db| db.chat_history(room, query));
        self.bus.metrics().cluster_gap_fills.fetch_add(1, Relaxed);
        let rows = read.ok().map(|page| {
            let complete = page.len() < FILL_PAGE as usize;
            let mut prev = after;
            let events: Vec<ChatEvent> = page
                .iter()
                .map(|m| ChatEvent::of(m, std::mem::replace(&mut prev, m.id)))
                .collect();
            (events, complete)
        });
        if let Some((events, _)) = &rows {
            if !events.is_empty() {
                log::debug!(
                    "room {room}: {} message(s) after {after} read from the store",
                    events.len()
                );
            }
        }
        self.bus.filled_room(room, rows, asked_at);
    }

    fn fill_user(&mut self, user: &str, after: i64) {
        let asked_at = Instant::now();
        let read = self.worker.with(|db| db.notifications_after(user, after, FILL_PAGE));
        self.bus.metrics().cluster_gap_fills.fetch_add(1, Relaxed);
        let rows = read.ok().map(|page| {
            let complete = page.len() < FILL_PAGE as usize;
            (linked_events(after, &page), complete)
        });
        self.bus.filled_user(user, rows, asked_at);
    }

    /// Compares every watched topic with the store's heads.
    fn poll_all(&mut self) {
        let positions = self.bus.positions();
        self.bus.metrics().cluster_polls.fetch_add(1, Relaxed);
        let rooms: Vec<&str> = positions.rooms.iter().map(|(r, _)| &**r).collect();
        let users: Vec<&str> = positions.users.iter().map(|(u, _)| &**u).collect();
        self.poll(&rooms, &users);
    }

    /// Compares some topics (just subscribed on Redis) with the store's heads.
    fn poll_topics(&mut self, topics: &[Topic]) {
        let rooms: Vec<&str> = topics
            .iter()
            .filter_map(|t| match t {
                Topic::Room(r) => Some(&**r),
                Topic::User(_) => None,
            })
            .collect();
        let users: Vec<&str> = topics
            .iter()
            .filter_map(|t| match t {
                Topic::User(u) => Some(&**u),
                Topic::Room(_) => None,
            })
            .collect();
        self.poll(&rooms, &users);
    }

    fn poll(&mut self, rooms: &[&str], users: &[&str]) {
        if rooms.is_empty() && users.is_empty() {
            return;
        }
        let heads = self.worker.with(|db| {
            let rooms = if rooms.is_empty() {
                Vec::new()
            } else {
                db.room_heads(rooms)?
            };
            let users = if users.is_empty() {
                Vec::new()
            } else {
                db.notification_heads(users)?
            };
            Ok((rooms, users))
        });
        match heads {
            Ok((rooms, users)) => self.bus.check(&rooms, &users),
            Err(e) => log::debug!("poll of the store failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{inboxes, Bus, Committed, Outlet, ReactorMsg};
    use crate::config::DatabaseConfig;
    use crate::metrics::Metrics;
    use crate::store::model::NewChatMessage;
    use crate::store::StoreUrl;

    fn message(room: &str, i: usize) -> NewChatMessage {
        NewChatMessage {
            room_id: room.into(),
            sender: "s".into(),
            message: format!("m{i}"),
            sent_at_ms: 1,
            mentions: vec![],
        }
    }

    /// A store pool of one worker on a fresh SQLite file, up.
    fn sqlite_pool(name: &str) -> (std::path::PathBuf, StoreUrl, StorePool) {
        let path = std::env::temp_dir().join(format!("{name}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let url = StoreUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
        let db_config = DatabaseConfig {
            url: url.redacted(),
            workers: 1,
            ..DatabaseConfig::default()
        };
        let pool = StorePool::start(url.clone(), &db_config, None, Arc::new(Metrics::default()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !pool.is_up() {
            assert!(Instant::now() < deadline, "the store never came up");
            std::thread::sleep(Duration::from_millis(20));
        }
        (path, url, pool)
    }

    /// A bus with one reactor inbox and no cluster (the poll keeps the waker's registry alive).
    fn local_bus() -> (Arc<Bus>, Vec<crossbeam_channel::Receiver<ReactorMsg>>, mio::Poll) {
        local_bus_with(&ClusterConfig::default())
    }

    /// Stops a pool of [`sqlite_pool`] and removes its database files.
    fn stop_pool(pool: StorePool, path: &std::path::Path) {
        pool.shutdown(Instant::now() + Duration::from_secs(5));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// The ids of the chat events a reactor's inbox receives, until `count` came or `within` passed.
    fn chat_ids(inbox: &crossbeam_channel::Receiver<ReactorMsg>, count: usize, within: Duration) -> Vec<i64> {
        let mut got = Vec::new();
        let deadline = Instant::now() + within;
        while got.len() < count && Instant::now() < deadline {
            for msg in inbox.try_iter() {
                if let ReactorMsg::Chat(events) = msg {
                    got.extend(events.iter().map(|e| e.id));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        got
    }

    /// A single-node bus of one reactor whose sequencers follow `cluster` (its gap timeout).
    fn local_bus_with(cluster: &ClusterConfig) -> (Arc<Bus>, Vec<crossbeam_channel::Receiver<ReactorMsg>>, mio::Poll) {
        let poll = mio::Poll::new().expect("poll");
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker");
        let (handles, receivers) = inboxes(vec![waker]);
        let bus = Bus::configured(handles, Outlet::Local, cluster, Arc::new(Metrics::default()));
        (Arc::new(bus), receivers, poll)
    }

    /// A row stamped in the millisecond before the watch lies after the start, and its event went
    /// out before anyone here listened: the check right after the baseline reads it, so the next
    /// event is delivered at once instead of after `gap_timeout` (a minute here).
    #[test]
    fn a_row_from_just_before_the_watch_does_not_hold_the_next_event() {
        let (path, url, pool) = sqlite_pool("herald-sync-edge");
        let config = ClusterConfig {
            gap_timeout_ms: 60_000,
            ..ClusterConfig::default()
        };
        let (bus, receivers, _poll) = local_bus_with(&config);
        let mut store = url.open().expect("open");
        // Committed and handed out before the room is watched, stamped a moment in the future so
        // that it lies after the watch's start whatever the clock does meanwhile.
        let mut edge = message("edge", 0);
        edge.sent_at_ms = crate::clock::now_ms() + 60_000;
        let edge = store.commit_chat(&[edge]).expect("commit");
        let topic = Topic::Room("edge".into());
        bus.interest().join(0, topic.clone());
        start(&bus, &pool, &config, None);
        bus.watch(&topic);
        // The next SEND, accepted after the watch (whether its commit comes before the baseline
        // read or after it).
        let mut next = message("edge", 1);
        next.sent_at_ms = crate::clock::now_ms() + 60_000;
        let next = store.commit_chat(&[next]).expect("commit");
        bus.publish(Committed::of(&next));

        let want = vec![edge.messages[0].id, next.messages[0].id];
        let got = chat_ids(&receivers[0], want.len(), Duration::from_secs(10));
        assert_eq!(got, want, "both, in order, long before the gap timeout");
        stop_pool(pool, &path);
    }

    /// What another node committed reaches this node only through the store: an event that
    /// reveals the gap makes the sync thread read it, page after page, and the room is delivered
    /// whole and in order.
    #[test]
    fn a_gap_of_several_pages_is_read_from_the_store_in_order() {
        let (path, url, pool) = sqlite_pool("herald-sync");
        let (bus, receivers, _poll) = local_bus();
        start(&bus, &pool, &ClusterConfig::default(), None);
        bus.interest().join(0, Topic::Room("r".into()));
        // Wait for the baseline (the room is empty: 0) before the other node commits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bus
            .positions()
            .rooms
            .iter()
            .any(|(room, at)| &**room == "r" && *at == 0)
        {
            assert!(Instant::now() < deadline, "no baseline");
            std::thread::sleep(Duration::from_millis(10));
        }

        // Another node commits more than two fill pages; this node hears of none of them.
        let mut other = url.open().expect("open");
        let batch: Vec<NewChatMessage> = (0..FILL_PAGE as usize * 2 + 3).map(|i| message("r", i)).collect();
        let mut stored: Vec<i64> = other
            .commit_chat(&batch)
            .expect("commit")
            .messages
            .iter()
            .map(|m| m.id)
            .collect();
        // Then one message it does hear of, whose prev reveals the gap.
        let last = other.commit_chat(&[message("r", 9999)]).expect("commit");
        stored.push(last.messages[0].id);
        bus.publish(Committed::of(&last));

        let got = chat_ids(&receivers[0], stored.len(), Duration::from_secs(20));
        assert_eq!(got, stored, "every message once, in order, over several pages");
        assert!(
            bus.metrics().cluster_gap_fills.load(Relaxed) >= 3,
            "three pages at least"
        );
        stop_pool(pool, &path);
    }

    /// A SEND accepted after a room's first local listener arrived is delivered, even when its
    /// commit is already in the store when the room's baseline is read and its event comes
    /// after that read (the sync thread noticed the new listener late).
    #[test]
    fn a_send_after_the_first_listener_is_delivered_whenever_the_baseline_is_read() {
        let (path, url, pool) = sqlite_pool("herald-sync-late");
        let (bus, receivers, _poll) = local_bus();
        let mut store = url.open().expect("open");
        let earlier = store.commit_chat(&[message("late", 0)]).expect("commit");

        // The first listener arrives; a SEND is accepted after it and committed.
        let topic = Topic::Room("late".into());
        bus.interest().join(0, topic.clone());
        std::thread::sleep(Duration::from_millis(5));
        let mut send = message("late", 1);
        send.sent_at_ms = crate::clock::now_ms();
        let committed = store.commit_chat(&[send]).expect("commit");
        let id = committed.messages[0].id;

        // Only now is the room watched and its baseline read; the event comes after that.
        start(&bus, &pool, &ClusterConfig::default(), None);
        bus.watch(&topic);
        let deadline = Instant::now() + Duration::from_secs(10);
        let start = loop {
            if let Some((_, at)) = bus.positions().rooms.iter().find(|(room, _)| &**room == "late") {
                break *at;
            }
            assert!(Instant::now() < deadline, "no baseline");
            std::thread::sleep(Duration::from_millis(10));
        };
        // The start is the last message before the listener; the check that follows the baseline
        // may already have moved on to the SEND, which is committed. Either way `earlier` is
        // never delivered (see the last assertion).
        assert!(
            start >= earlier.messages[0].id,
            "the start is not before the listener's time"
        );
        bus.publish(Committed::of(&committed));

        let got = chat_ids(&receivers[0], 1, Duration::from_secs(5));
        assert_eq!(got, vec![id], "the SEND made after the listener arrived is delivered");
        stop_pool(pool, &path);
    }
}
