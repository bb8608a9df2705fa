//! Scale-out across nodes (SPEC §6) with real components: a `redis-server` of the test's own and
//! several Herald nodes on one fresh MariaDB database. Every subscriber's sequence is compared
//! with the room's stored sequence: same ids, same order, none twice, none missing.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, LosingProxy};
use common::http::Request;
use common::server::{Config, Server};
use common::sse::SseStream;
use common::stomp::{StompClient, StompEvent};
use common::tokens::login;
use common::{eventually, metric_value, unique_room};
use herald::stomp::frame::Command as StompCommand;
use serde_json::{json, Value};

/// Generous: two cores shared with other builds.
const SETTLE: Duration = Duration::from_secs(20);

fn config() -> Config {
    Config::new().set("cluster", "audit_interval_ms", 2000)
}

/// A subscriber on one node: a thread that records `(room, id)` of every MESSAGE.
struct Collector {
    label: String,
    rooms: Vec<String>,
    seen: Arc<Mutex<Vec<(String, i64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn start(label: &str, node: &Server, access: &str, rooms: &[String]) -> Collector {
        let mut client = StompClient::connect(node, access);
        for room in rooms {
            client.subscribe(&format!("s-{room}"), &format!("/topic/chat.{room}"));
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Acquire) {
                match client.next_event(Duration::from_millis(100)) {
                    Some(StompEvent::Frame(f)) if f.command == StompCommand::Message => {
                        let body: Value = serde_json::from_slice(&f.body).unwrap_or(Value::Null);
                        let room = body["roomId"].as_str().unwrap_or_default().to_owned();
                        let id = body["id"].as_i64().unwrap_or(-1);
                        s.lock().unwrap_or_else(PoisonError::into_inner).push((room, id));
                    }
                    Some(StompEvent::Closed) => return,
                    _ => {}
                }
            }
        });
        Collector {
            label: label.to_owned(),
            rooms: rooms.to_vec(),
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The ids received in `room`, in arrival order.
    fn ids(&self, room: &str) -> Vec<i64> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(r, _)| r == room)
            .map(|(_, id)| *id)
            .collect()
    }

    /// The ids received in `room` above `after`.
    fn ids_after(&self, room: &str, after: i64) -> Vec<i64> {
        self.ids(room).into_iter().filter(|id| *id > after).collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `count` receipted messages round-robin over `rooms` through `node`; returns how many
/// were receipted (all of them, unless the node dies: then the count so far).
fn publish(node: &Server, label: &str, access: &str, rooms: &[String], count: usize) -> usize {
    publish_paced(node, label, access, rooms, count, Duration::ZERO)
}

/// Like [`publish`], one SEND every `pace`.
fn publish_paced(node: &Server, label: &str, access: &str, rooms: &[String], count: usize, pace: Duration) -> usize {
    let mut client = StompClient::connect(node, access);
    for i in 0..count {
        let room = &rooms[i % rooms.len()];
        client.send_chat(room, &format!("{label} #{i}"), Some(&format!("{label}-{i}")));
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
    let mut receipted = 0;
    let deadline = Instant::now() + SETTLE;
    while receipted < count && Instant::now() < deadline {
        match client.next_event(Duration::from_millis(200)) {
            Some(StompEvent::Frame(f)) if f.command == StompCommand::Receipt => receipted += 1,
            Some(StompEvent::Frame(f)) if f.command == StompCommand::Error => return receipted,
            Some(StompEvent::Closed) => return receipted,
            _ => {}
        }
    }
    receipted
}

/// Publishes from every node at once, `per_node` messages each, all receipted.
fn publish_from_all(nodes: &[&Server], access: &str, rooms: &[String], per_node: usize, tag: &str) {
    std::thread::scope(|scope| {
        let threads: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| scope.spawn(move || publish(node, &format!("{tag}{i}"), access, rooms, per_node)))
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("publisher"), per_node, "every SEND receipted");
        }
    });
}

/// The stored ids of `room` above `after`, ascending, read through every node's history API
/// (which must agree).
fn stored(nodes: &[&Server], access: &str, room: &str, after: i64) -> Vec<i64> {
    let mut answers = nodes.iter().map(|node| {
        let r = node.get(&format!("/chat/history/{room}?after={after}&limit=500"), Some(access));
        assert_eq!(r.status, 200, "history: {}", r.text());
        r.json()
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_i64()).collect::<Vec<i64>>())
            .unwrap_or_default()
    });
    let first = answers.next().unwrap_or_default();
    for other in answers {
        assert_eq!(other, first, "every node's history agrees");
    }
    first
}

/// Sends warm-up messages to `room` through `node` until every collector has received the same
/// one; returns its id. Subscriptions are in place on every node from there on.
fn warm_up(node: &Server, access: &str, room: &str, collectors: &[&Collector]) -> i64 {
    let mut client = StompClient::connect(node, access);
    for attempt in 0..20 {
        let receipt = format!("warm-{attempt}");
        client.send_chat(room, "warm-up", Some(&receipt));
        client.expect_receipt(&receipt);
        let id = *stored(&[node], access, room, 0).last().expect("the warm-up is stored");
        if eventually(Duration::from_secs(2), || {
            collectors.iter().all(|c| c.ids(room).contains(&id))
        }) {
            return id;
        }
    }
    panic!("subscribers of {room} never all received a warm-up message");
}

/// Waits until each collector has every stored message of its rooms above `start`, then checks
/// that it received exactly those, in order.
fn assert_exact(nodes: &[&Server], access: &str, expectations: &[(&Collector, &str, i64)]) {
    let mut failures = Vec::new();
    for (collector, room, start) in expectations {
        let want = stored(nodes, access, room, *start);
        eventually(SETTLE, || collector.ids_after(room, *start).len() >= want.len());
        let got = collector.ids_after(room, *start);
        if got != want {
            failures.push(format!(
                "{} in {room}: got {} ids {got:?}\n   stored {} ids {want:?}",
                collector.label,
                got.len(),
                want.len()
            ));
        }
    }
    assert!(failures.is_empty(), "sequences differ:\n  {}", failures.join("\n  "));
}

fn health(node: &Server) -> (u16, Value) {
    match node.try_request(&Request::get("/health")) {
        Ok(r) => (r.status, r.json()),
        Err(_) => (0, Value::Null),
    }
}

fn cluster_says(node: &Server, state: &str) -> bool {
    let (status, body) = health(node);
    status == 200 && body["cluster"] == state
}

fn metric(node: &Server, name: &str) -> f64 {
    metric_value(&node.metrics(), name).unwrap_or(0.0)
}

/// 1 and 4: publishers and subscribers on all three nodes, several rooms: every subscriber's
/// sequence is the room's stored sequence; an SSE stream on node C gets a mention sent through A
/// and a direct notification created through B, once each, in order.
#[test]
fn every_subscriber_on_every_node_sees_each_room_in_the_stored_order() {
    let Some(cluster) = Cluster::start(3, &config()) else {
        return;
    };
    let nodes: Vec<&Server> = cluster.nodes.iter().collect();
    let alice = login(nodes[0], "alice", "alicepass").access;
    let rooms: Vec<String> = (0..3).map(|i| unique_room(&format!("c{i}"))).collect();
    let mut collectors = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        collectors.push(Collector::start(&format!("node{n}-all"), node, &alice, &rooms));
        collectors.push(Collector::start(&format!("node{n}-one"), node, &alice, &rooms[n..=n]));
    }
    let mut starts = BTreeMap::new();
    for room in &rooms {
        let subscribed: Vec<&Collector> = collectors.iter().filter(|c| c.rooms.contains(room)).collect();
        starts.insert(room.clone(), warm_up(nodes[0], &alice, room, &subscribed));
    }

    publish_from_all(&nodes, &alice, &rooms, 45, "p");

    let expectations: Vec<(&Collector, &str, i64)> = collectors
        .iter()
        .flat_map(|c| c.rooms.iter().map(move |r| (c, r.as_str())))
        .map(|(c, r)| (c, r, starts[r]))
        .collect();
    assert_exact(&nodes, &alice, &expectations);
    let total: usize = rooms
        .iter()
        .map(|r| stored(&nodes[..1], &alice, r, starts[r]).len())
        .sum();
    assert_eq!(total, 135, "every SEND stored once");
    for node in &nodes {
        assert!(cluster_says(node, "UP"), "/health: {:?}", health(node));
        assert!(metric(node, "herald_cluster_publishes_total") > 0.0);
        assert!(metric(node, "herald_cluster_events_received_total") > 0.0);
    }

    // 4: SSE on node C; a mention through A, a direct notification through B.
    let bob = login(nodes[2], "bob", "bobpass").access;
    let mut stream = SseStream::open_bearer(nodes[2], &bob, &[]);
    stream.expect_event("connected");
    let mut sender = StompClient::connect(nodes[0], &alice);
    sender.send_chat(&rooms[0], "hey @bob, from node A", Some("mention"));
    sender.expect_receipt("mention");
    let (mention_id, mention) = stream.expect_notification();
    assert_eq!(
        (mention["type"].as_str(), mention["roomId"].as_str()),
        (Some("mention"), Some(rooms[0].as_str())),
        "{mention}"
    );
    let r = nodes[1].post_json(
        "/notifications",
        Some(&alice),
        &json!({"recipient": "bob", "message": "direct, from node B"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let (direct_id, direct) = stream.expect_notification();
    assert_eq!(direct["type"], "direct", "{direct}");
    assert!(direct_id > mention_id);
    assert!(
        stream.notifications_for(Duration::from_millis(1500)).is_empty(),
        "each notification once"
    );
}

/// 2 and 5: Redis killed mid-run and restarted. Delivery goes on by polling the store (and /health
/// says DEGRADED), a node started meanwhile serves and polls, and once Redis is back every node is
/// UP and pushes again; every sequence is still exact.
#[test]
fn losing_redis_falls_back_to_polling_and_recovers() {
    let Some(mut cluster) = Cluster::start(3, &config()) else {
        return;
    };
    let alice = login(&cluster.nodes[0], "alice", "alicepass").access;
    let rooms: Vec<String> = (0..2).map(|i| unique_room(&format!("o{i}"))).collect();
    let collectors: Vec<Collector> = cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(n, node)| Collector::start(&format!("node{n}"), node, &alice, &rooms))
        .collect();
    let mut starts = BTreeMap::new();
    for room in &rooms {
        let all: Vec<&Collector> = collectors.iter().collect();
        starts.insert(room.clone(), warm_up(&cluster.nodes[0], &alice, room, &all));
    }
    let three: Vec<&Server> = cluster.nodes.iter().collect();
    publish_from_all(&three, &alice, &rooms, 10, "before");

    cluster.redis.kill();
    for (n, node) in cluster.nodes.iter().enumerate() {
        assert!(
            eventually(SETTLE, || cluster_says(node, "DEGRADED")),
            "node {n} /health after Redis died: {:?}",
            health(node)
        );
    }
    // 5: a node started while Redis is unreachable serves, and says so.
    cluster.add_node();
    let late = cluster.nodes.last().expect("the late node");
    assert!(cluster_says(late, "DEGRADED"), "{:?}", health(late));
    let late_collector = Collector::start("late-node", late, &alice, &rooms);
    let outage_start: BTreeMap<&String, i64> = rooms
        .iter()
        .map(|r| (r, *stored(&[late], &alice, r, 0).last().unwrap_or(&0)))
        .collect();

    let all_nodes: Vec<&Server> = cluster.nodes.iter().collect();
    // Sent through nodes 0 and 1 only: nodes 2 and 3 commit nothing that could reveal a gap, and
    // Redis is down, so only their polls of the store can bring these.
    publish_from_all(&all_nodes[..2], &alice, &rooms, 8, "during");
    for room in &rooms {
        let want = stored(&all_nodes[..1], &alice, room, outage_start[room]);
        assert_eq!(want.len(), 8);
        for c in [&collectors[2], &late_collector] {
            assert!(
                eventually(SETTLE, || want.iter().all(|id| c.ids(room).contains(id))),
                "{} did not get the outage's messages of {room} while Redis was down",
                c.label
            );
        }
    }
    publish_from_all(&all_nodes, &alice, &rooms, 4, "during-all");
    assert!(!cluster.redis.answers(), "Redis was still down during those checks");
    for (n, node) in all_nodes.iter().enumerate() {
        assert!(
            eventually(SETTLE, || metric(node, "herald_cluster_polls_total") > 0.0),
            "node {n} never polled the store:\n{}",
            node.metrics()
        );
    }

    cluster.redis.restart();
    for (n, node) in all_nodes.iter().enumerate() {
        assert!(
            eventually(SETTLE, || cluster_says(node, "UP")),
            "node {n} /health after Redis came back: {:?}",
            health(node)
        );
    }
    let pushed_before = metric(late, "herald_cluster_events_received_total");
    publish_from_all(&all_nodes[..3], &alice, &rooms, 10, "after");

    let mut expectations: Vec<(&Collector, &str, i64)> = collectors
        .iter()
        .flat_map(|c| rooms.iter().map(move |r| (c, r.as_str())))
        .map(|(c, r)| (c, r, starts[r]))
        .collect();
    for room in &rooms {
        expectations.push((&late_collector, room.as_str(), outage_start[room]));
    }
    assert_exact(&all_nodes, &alice, &expectations);
    assert!(
        metric(late, "herald_cluster_events_received_total") > pushed_before,
        "the late node receives pushes once Redis is up"
    );
}

/// 3: a node killed with SIGKILL mid-run: the other nodes' subscribers are unaffected.
#[test]
fn a_killed_node_leaves_the_others_exact() {
    let Some(cluster) = Cluster::start(3, &config()) else {
        return;
    };
    let nodes: Vec<&Server> = cluster.nodes.iter().collect();
    let alice = login(nodes[0], "alice", "alicepass").access;
    let rooms: Vec<String> = (0..2).map(|i| unique_room(&format!("k{i}"))).collect();
    let collectors: Vec<Collector> = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| Collector::start(&format!("node{n}"), node, &alice, &rooms))
        .collect();
    let mut starts = BTreeMap::new();
    for room in &rooms {
        let all: Vec<&Collector> = collectors.iter().collect();
        starts.insert(room.clone(), warm_up(nodes[0], &alice, room, &all));
    }
    // The victim publishes too; it dies half-way through.
    std::thread::scope(|scope| {
        let victim = scope.spawn(|| publish_paced(nodes[2], "victim", &alice, &rooms, 400, Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(300));
        let survivors = [
            scope.spawn(|| publish_paced(nodes[0], "a", &alice, &rooms, 40, Duration::from_millis(10))),
            scope.spawn(|| publish_paced(nodes[1], "b", &alice, &rooms, 40, Duration::from_millis(10))),
        ];
        std::thread::sleep(Duration::from_millis(200));
        nodes[2].kill();
        let sent_by_victim = victim.join().expect("victim publisher");
        assert!(sent_by_victim < 400, "the victim died before finishing");
        for s in survivors {
            assert_eq!(s.join().expect("publisher"), 40);
        }
    });
    let expectations: Vec<(&Collector, &str, i64)> = collectors[..2]
        .iter()
        .flat_map(|c| rooms.iter().map(move |r| (c, r.as_str())))
        .map(|(c, r)| (c, r, starts[r]))
        .collect();
    assert_exact(&nodes[..2], &alice, &expectations);
    for node in &nodes[..2] {
        assert!(cluster_says(node, "UP"), "{:?}", health(node));
    }
}

/// 6: a publish lost on its way (a proxy drops it): the next message of the room reveals the gap
/// and the receiving node reads the missing one from the store within the gap timeout; a lost
/// last message is found by the periodic check.
#[test]
fn a_lost_publish_is_filled_from_the_store() {
    let Some(mut cluster) = Cluster::start(1, &config()) else {
        return;
    };
    let proxy = LosingProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], cluster.redis.port)));
    cluster.add_node_with_redis(&proxy.url());
    let (receiver, sender_node) = (&cluster.nodes[0], &cluster.nodes[1]);
    assert!(eventually(SETTLE, || cluster_says(sender_node, "UP")));
    let alice = login(receiver, "alice", "alicepass").access;
    let room = unique_room("lost");
    let rooms = vec![room.clone()];
    let collector = Collector::start("receiver", receiver, &alice, &rooms);
    let start = warm_up(sender_node, &alice, &room, &[&collector]);
    let mut sender = StompClient::connect(sender_node, &alice);

    proxy.lose_next_publish_to(&format!("herald:room:{room}"));
    sender.send_chat(&room, "lost on its way", Some("m1"));
    sender.expect_receipt("m1");
    sender.send_chat(&room, "reveals the gap", Some("m2"));
    sender.expect_receipt("m2");
    let sent = Instant::now();
    let want = stored(&[receiver], &alice, &room, start);
    assert_eq!(want.len(), 2);
    assert!(
        eventually(SETTLE, || collector.ids_after(&room, start).len() >= 2),
        "the receiver never got both"
    );
    let waited = sent.elapsed();
    assert_eq!(proxy.lost(), 1, "the proxy lost exactly one PUBLISH");
    assert_eq!(collector.ids_after(&room, start), want, "in order, once each");
    // The gap timeout is 250 ms; the rest is a loaded machine's slack.
    assert!(waited < Duration::from_secs(3), "filled after {waited:?}");
    assert!(metric(receiver, "herald_cluster_gap_fills_total") >= 1.0);

    // The room's last message lost: nothing reveals the gap, the periodic check (2 s) does.
    proxy.lose_next_publish_to(&format!("herald:room:{room}"));
    sender.send_chat(&room, "lost, and last", Some("m3"));
    sender.expect_receipt("m3");
    let want = stored(&[receiver], &alice, &room, start);
    assert!(
        eventually(SETTLE, || collector.ids_after(&room, start) == want),
        "the last message was never filled: {:?} vs {want:?}",
        collector.ids_after(&room, start)
    );
    assert_eq!(proxy.lost(), 2);
}

/// SQLite is single-node: a Redis URL with it is a configuration error (exit status 2).
#[test]
fn sqlite_with_redis_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("herald-sqlite-redis-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env("HERALD_DATABASE_URL", format!("sqlite://{}/h.db", dir.display()))
        .env("HERALD_REDIS_URL", "redis://127.0.0.1:1")
        .env("HERALD_BIND", "127.0.0.1:0")
        .env("HERALD_DEV", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run herald");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SQLite is single-node"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next MESSAGE on `/user/queue/errors` within [`SETTLE`] (other frames are skipped).
#[track_caller]
fn next_app_error(c: &mut StompClient, what: &str) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(f) = c.next_frame_or_close(left) else {
            panic!("{what}: no error within {SETTLE:?}");
        };
        if f.command == StompCommand::Message && f.header("destination") == Some("/user/queue/errors") {
            return serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("{what}: error body not JSON ({e})"));
        }
    }
}

/// How many Redis connections subscribe to `channel`.
fn subscribers_of(cluster: &Cluster, channel: &str) -> i64 {
    let Ok(mut con) = redis::Client::open(cluster.redis.url()).and_then(|c| c.get_connection()) else {
        return 0;
    };
    redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query::<(String, i64)>(&mut con)
        .map(|(_, count)| count)
        .unwrap_or(0)
}

/// The room MESSAGEs `c` receives within `period`, as their texts.
fn room_messages_for(c: &mut StompClient, period: Duration) -> Vec<String> {
    let deadline = Instant::now() + period;
    let mut texts = Vec::new();
    loop {
        match c.next_event(deadline.saturating_duration_since(Instant::now())) {
            Some(StompEvent::Frame(f))
                if f.command == StompCommand::Message
                    && f.header("destination").is_some_and(|d| d.starts_with("/topic/")) =>
            {
                let body: Value = serde_json::from_slice(&f.body).unwrap_or(Value::Null);
                texts.push(body["message"].as_str().unwrap_or_default().to_owned());
            }
            Some(StompEvent::Closed) | None => return texts,
            Some(_) => {}
        }
    }
}

/// SPEC §8 across nodes: a member removed through node A loses its live subscription on node B at
/// once (FORBIDDEN on its `/user/queue/errors`, nothing of the room after it, whichever node the
/// later messages are sent through); an outsider on node B is refused the private room and never
/// gets its messages; and listeners of an open room on node B are stopped when it is created
/// private through node A.
#[test]
fn membership_changes_reach_every_node() {
    let Some(cluster) = Cluster::start(2, &config()) else {
        return;
    };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let alice = login(a, "alice", "alicepass").access;
    let bob = login(b, "bob", "bobpass").access;
    let outsider = login(b, "testuser", "testpass").access;
    let room = unique_room("members");
    let r = a.post_json(
        "/rooms",
        Some(&alice),
        &json!({"roomId": room, "name": "across nodes", "private": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a.post_json(
        &format!("/rooms/{room}/members"),
        Some(&alice),
        &json!({"username": "bob"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let topic = format!("/topic/chat.{room}");

    // On node B: bob (a member), alice (the owner, to see that delivery goes on), the outsider.
    let mut bob_b = StompClient::connect(b, &bob);
    bob_b.subscribe("e", "/user/queue/errors");
    bob_b.subscribe("r", &topic);
    let mut alice_b = StompClient::connect(b, &alice);
    alice_b.subscribe("r", &topic);
    let mut outsider_b = StompClient::connect(b, &outsider);
    outsider_b.send(
        &herald::stomp::frame::Frame::new(StompCommand::Subscribe)
            .with_header("id", "peek")
            .with_header("destination", topic.as_str()),
    );
    assert_eq!(
        outsider_b
            .expect_error_then_close("outsider SUBSCRIBE")
            .header("message"),
        Some("forbidden")
    );
    let mut outsider_send = StompClient::connect(b, &outsider);
    outsider_send.subscribe("e", "/user/queue/errors");
    outsider_send.send_chat(&room, "let me in", Some("o-1"));
    assert_eq!(next_app_error(&mut outsider_send, "outsider SEND")["code"], "FORBIDDEN");

    // A member's message through A reaches both members on B.
    let mut alice_a = StompClient::connect(a, &alice);
    alice_a.send_chat(&room, "before", Some("a-1"));
    alice_a.expect_receipt("a-1");
    let deadline = Instant::now() + SETTLE;
    for c in [&mut bob_b, &mut alice_b] {
        let mut got = Vec::new();
        while !got.contains(&"before".to_owned()) && Instant::now() < deadline {
            got.extend(room_messages_for(c, Duration::from_millis(200)));
        }
        assert_eq!(got, ["before"], "through node A, received on node B");
    }

    // Removed through A: bob's subscription on B ends at once, with FORBIDDEN and no ERROR.
    let r = a.request(&Request::new("DELETE", &format!("/rooms/{room}/members/bob")).bearer(&alice));
    assert_eq!(r.status, 200, "{}", r.text());
    let notice = next_app_error(&mut bob_b, "removal notice on node B");
    assert_eq!(
        (notice["code"].as_str(), notice["roomId"].as_str()),
        (Some("FORBIDDEN"), Some(room.as_str())),
        "{notice}"
    );
    // Later messages, sent through either node, reach alice on B but never bob.
    alice_a.send_chat(&room, "after, via A", Some("a-2"));
    alice_a.expect_receipt("a-2");
    let mut alice_via_b = StompClient::connect(b, &alice);
    alice_via_b.send_chat(&room, "after, via B", Some("b-1"));
    alice_via_b.expect_receipt("b-1");
    let mut got = Vec::new();
    let deadline = Instant::now() + SETTLE;
    while got.len() < 2 && Instant::now() < deadline {
        got.extend(room_messages_for(&mut alice_b, Duration::from_millis(200)));
    }
    got.sort();
    assert_eq!(got, ["after, via A", "after, via B"], "delivery goes on for members");
    assert!(
        room_messages_for(&mut bob_b, Duration::from_millis(1500)).is_empty(),
        "nothing of the room reaches bob after his removal"
    );
    assert!(
        !bob_b.closed_within(Duration::from_millis(100)),
        "no ERROR: the session goes on"
    );

    // An open room listened to on B becomes private through A: the outsider's subscription ends.
    let open = unique_room("soon-private");
    let mut listener = StompClient::connect(b, &outsider);
    listener.subscribe("e", "/user/queue/errors");
    listener.subscribe("r", &format!("/topic/chat.{open}"));
    // Node B's Redis subscription to the room follows its first local subscriber; a withdrawal
    // published before it took effect would not reach B (see docs/ARCHITECTURE.md, Rooms).
    let channel = format!("herald:room:{open}");
    assert!(
        eventually(SETTLE, || subscribers_of(&cluster, &channel) >= 1),
        "node B subscribes to {channel}"
    );
    let r = a.post_json(
        "/rooms",
        Some(&alice),
        &json!({"roomId": open, "name": "now private", "private": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let notice = next_app_error(&mut listener, "restriction notice on node B");
    assert_eq!(notice["roomId"], open.as_str(), "{notice}");
    alice_a.send_chat(&open, "members only", Some("a-3"));
    alice_a.expect_receipt("a-3");
    assert!(
        room_messages_for(&mut listener, Duration::from_millis(1500)).is_empty(),
        "a private room's messages never reach a non-member on another node"
    );
    assert!(metric(b, "herald_cluster_events_received_total") >= 4.0, "over Redis");
}
