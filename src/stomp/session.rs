//! One STOMP 1.2 session as a sans-io state machine: frames in, [`Action`]s out. The reactor owns
//! the socket, the timers and the room index; this module owns the protocol rules (SPEC §4) and
//! builds every frame the session sends. What a SEND body means is the application's business,
//! asked through [`Host`]; the session speaks only its own types.
//!
//! Transactions (`BEGIN`/`COMMIT`/`ABORT`) live in `session/transactions.rs`, ack modes and `ACK`/`NACK` in
//! `session/acks.rs`, and the SENDs in flight with their answers and DISCONNECT in `session/flow.rs`: at
//! `max_inflight_sends` the session [wants no more input](Session::wants_read) until they settle.

mod acks;
mod flow;
#[cfg(test)]
mod testing;
mod transactions;

pub use acks::{ack_id, AckMode, ACK_WINDOW};
pub use transactions::{HeldSend, TransactionError};

mod access;

use super::frame::{Command, Frame};
use crate::auth::validate;
use acks::AckLedger;
use transactions::Transactions;

/// Where clients send chat messages.
pub const SEND_DESTINATION: &str = "/app/chat.send";
/// Prefix of room topics: `/topic/chat.{roomId}`.
pub const ROOM_PREFIX: &str = "/topic/chat.";
/// Application errors for this user.
pub const ERRORS_QUEUE: &str = "/user/queue/errors";
/// Notifications for this user.
pub const NOTIFICATIONS_QUEUE: &str = "/user/queue/notifications";

/// Per-server session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub max_subscriptions: usize,
    /// What the server offers both ways (`heart-beat:<ms>,<ms>` in CONNECTED); 0 disables.
    pub heartbeat_ms: u64,
    pub server: String,
    /// Transactions open at once (`chat.max_open_transactions`); one more BEGIN is an ERROR.
    pub max_transactions: usize,
    /// SENDs held by one transaction (`chat.max_transaction_sends`); one more is an ERROR.
    pub max_transaction_sends: usize,
    /// SENDs waiting for their commit before the session wants no more input
    /// (`chat.max_inflight_sends`).
    pub max_inflight_sends: usize,
}

impl Default for SessionConfig {
    /// The configuration defaults (see `config::ChatConfig`).
    fn default() -> Self {
        SessionConfig {
            max_subscriptions: 100,
            heartbeat_ms: 10_000,
            server: format!("herald/{}", env!("CARGO_PKG_VERSION")),
            max_transactions: 16,
            max_transaction_sends: 1000,
            max_inflight_sends: 256,
        }
    }
}

/// The authenticated user of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub user_id: i64,
    /// When the access token expires (Unix seconds): the session ends then.
    pub expires_at_secs: i64,
}

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Room(String),
    Errors,
    Notifications,
}

/// A live subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub destination: Destination,
    pub ack: AckMode,
    /// What a client-mode subscription was sent (none in `auto` mode: most subscriptions).
    ledger: Option<Box<AckLedger>>,
}

/// An application-level refusal of a SEND, told on `/user/queue/errors` (the session stays open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// The stable code (`INVALID_REQUEST`, `SERVICE_UNAVAILABLE`, …).
    pub code: &'static str,
    /// The human message.
    pub message: String,
}

/// What the session asks of the application.
pub trait Host {
    /// A SEND body the application accepted, ready to publish.
    type Send;
    /// The user of a bearer token, or why it is refused (the ERROR's `message`).
    fn authenticate(&mut self, token: &str) -> Result<Principal, &'static str>;
    /// Checks a SEND body to `/app/chat.send` from `principal`.
    fn accept_send(&mut self, principal: &Principal, body: &[u8]) -> Result<Self::Send, AppError>;
}

/// What the reactor does after a frame.
#[derive(Debug)]
pub enum Action<S> {
    /// Write this frame to the client.
    Send(Frame),
    /// CONNECT succeeded: the session belongs to this user from now on.
    Authenticated { username: String },
    /// Ask the store whether the user may enter this room, and list the subscription under the
    /// room as pending meanwhile (so that a withdrawal reaches it); answer with
    /// [`Session::room_checked`].
    CheckRoom { room: String, subscription: String },
    /// The session now listens to this room (add it to the room index). With `client_ack`, its
    /// MESSAGEs carry an `ack` header and are recorded with [`Session::delivered`].
    JoinRoom {
        room: String,
        subscription: String,
        client_ack: bool,
    },
    /// The session stopped listening to this room.
    LeaveRoom { room: String, subscription: String },
    /// Persist and broadcast; acknowledge with a RECEIPT (if any) after commit. Answer with
    /// [`Session::send_settled`] or [`Session::sends_committed`].
    Publish { send: S, receipt: Option<String> },
    /// A transaction's SENDs, in the order sent: persist them in one store transaction, then
    /// broadcast; answer with [`Session::group_settled`] (the SENDs' receipts, then COMMIT's).
    CommitGroup {
        sends: Vec<HeldSend<S>>,
        receipt: Option<String>,
    },
    /// Flush what is queued, then close the connection.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Connected(Principal),
    /// DISCONNECT came while SENDs were waiting for their commit: their answers go out first,
    /// then the DISCONNECT's RECEIPT, then the close. No more frames are read.
    Draining {
        principal: Principal,
        receipt: Option<String>,
    },
    Closed,
}

/// The protocol state of one connection; `S` is what the host makes of an accepted SEND.
#[derive(Debug)]
pub struct Session<S> {
    state: State,
    subscriptions: Vec<Subscription>,
    /// A room SUBSCRIBE waiting for its check, and the frames held behind it (`access.rs`).
    gate: access::RoomGate,
    /// Interval at which the server must send something (0: never), negotiated at CONNECT.
    pub send_heartbeat_ms: u64,
    /// Interval at which the client promised to send something (0: not checked).
    pub expect_heartbeat_ms: u64,
    next_message_id: u64,
    transactions: Transactions<S>,
    /// SENDs handed to the host (Publish, CommitGroup) and not settled yet.
    sends_in_flight: usize,
}

type Out<S> = Vec<Action<S>>;

impl<S> Default for Session<S> {
    fn default() -> Self {
        Session::new()
    }
}

impl<S> Session<S> {
    pub fn new() -> Session<S> {
        Session {
            state: State::AwaitingConnect,
            subscriptions: Vec::new(),
            gate: access::RoomGate::default(),
            send_heartbeat_ms: 0,
            expect_heartbeat_ms: 0,
            next_message_id: 0,
            transactions: Transactions::default(),
            sends_in_flight: 0,
        }
    }

    /// The user, once CONNECTed.
    pub fn principal(&self) -> Option<&Principal> {
        match &self.state {
            State::Connected(p) | State::Draining { principal: p, .. } => Some(p),
            _ => None,
        }
    }

    /// Open transactions.
    pub fn open_transactions(&self) -> usize {
        self.transactions.len()
    }

    /// SENDs held by the open transactions.
    pub fn held_sends(&self) -> usize {
        self.transactions.held()
    }

    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// Whether the session has ended (ERROR sent or DISCONNECT received): feed it nothing more.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn subscription_to(&self, destination: &Destination) -> Option<&str> {
        self.subscriptions
            .iter()
            .find(|s| &s.destination == destination)
            .map(|s| s.id.as_str())
    }

    /// A fresh `message-id` for a MESSAGE this session sends outside fan-out.
    fn next_message_id(&mut self) -> String {
        self.next_message_id += 1;
        format!("q-{}", self.next_message_id)
    }

    /// The MESSAGE carrying a notification (JSON `body`) to `/user/queue/notifications`, or
    /// `None` when the session has not subscribed to it.
    pub fn notification(&mut self, body: &str) -> Option<Frame> {
        self.queue_message(&Destination::Notifications, body.as_bytes().to_vec())
    }

    /// A MESSAGE on the session's subscription to a `/user/queue/…` destination (with an `ack`
    /// header in a client ack mode), or `None` when it has not subscribed.
    fn queue_message(&mut self, destination: &Destination, body: Vec<u8>) -> Option<Frame> {
        let subscription = self.subscription_to(destination)?.to_owned();
        let message_id = self.next_message_id();
        let ack = self.stamp_delivery(&subscription, &message_id);
        let mut frame = Frame::new(Command::Message)
            .with_header("destination", queue_name(destination))
            .with_header("subscription", subscription)
            .with_header("message-id", message_id);
        if let Some(ack) = ack {
            frame = frame.with_header("ack", ack);
        }
        Some(frame.with_header("content-type", "application/json").with_body(body))
    }

    /// Handles one frame.
    pub fn on_frame<H: Host<Send = S>>(&mut self, frame: Frame, cfg: &SessionConfig, host: &mut H, out: &mut Out<S>) {
        if matches!(self.state, State::Closed | State::Draining { .. }) {
            return;
        }
        if self.is_waiting() {
            return self.hold_frame(frame);
        }
        let receipt = frame.header("receipt").map(str::to_owned);
        match (&self.state, frame.command) {
            (State::AwaitingConnect, Command::Connect | Command::Stomp) => self.connect(&frame, cfg, host, out),
            (State::AwaitingConnect, _) => self.fail("not connected", "send CONNECT first", receipt, out),
            (State::Connected(_), Command::Connect | Command::Stomp) => {
                self.fail("already connected", "CONNECT was already received", receipt, out)
            }
            (State::Connected(_), Command::Subscribe) => self.subscribe(&frame, cfg, receipt, out),
            (State::Connected(_), Command::Unsubscribe) => self.unsubscribe(&frame, receipt, out),
            (State::Connected(_), Command::Send) => self.send(frame, cfg, host, receipt, out),
            (State::Connected(_), Command::Disconnect) => self.disconnect(receipt, out),
            (State::Connected(_), Command::Ack | Command::Nack) => self.acknowledge(&frame, receipt, out),
            (State::Connected(_), Command::Begin) => self.begin(&frame, cfg, receipt, out),
            (State::Connected(_), Command::Commit) => self.commit(&frame, receipt, out),
            (State::Connected(_), Command::Abort) => self.abort(&frame, receipt, out),
            (State::Connected(_), _) => {
                self.fail("unexpected frame", "clients may not send this command", receipt, out)
            }
            (State::Closed | State::Draining { .. }, _) => {}
        }
    }

    /// Ends the session with an ERROR (protocol violation, expiry, slow consumer, shutdown).
    pub fn fail(&mut self, message: &str, detail: &str, receipt: Option<String>, out: &mut Out<S>) {
        out.push(Action::Send(error_frame(message, detail, receipt.as_deref())));
        self.transactions.abort_all();
        self.leave_all(out);
        self.state = State::Closed;
        out.push(Action::Close);
    }

    /// Forgets every room (the connection is going away).
    pub fn leave_all(&mut self, out: &mut Out<S>) {
        self.drop_pending(out);
        for s in self.subscriptions.drain(..) {
            if let Destination::Room(room) = s.destination {
                out.push(Action::LeaveRoom {
                    room,
                    subscription: s.id,
                });
            }
        }
    }

    fn connect<H: Host<Send = S>>(&mut self, frame: &Frame, cfg: &SessionConfig, host: &mut H, out: &mut Out<S>) {
        let receipt = frame.header("receipt").map(str::to_owned);
        let Some(version) = negotiate_version(frame.header("accept-version")) else {
            return self.fail(
                "unsupported protocol version",
                "supported versions are 1.2, 1.1 and 1.0",
                receipt,
                out,
            );
        };
        let authorization = frame
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str());
        let Some(authorization) = authorization else {
            return self.fail(
                "missing token",
                "CONNECT needs Authorization: Bearer <accessToken>",
                receipt,
                out,
            );
        };
        // STOMP clients also send the bare token.
        let token = crate::auth::jwt::bearer_token(authorization).unwrap_or(authorization.trim());
        let principal = match host.authenticate(token) {
            Ok(p) => p,
            Err(why) => {
                return self.fail(
                    why,
                    "log in again and reconnect with a fresh access token",
                    receipt,
                    out,
                )
            }
        };
        let (client_tx, client_rx) = match parse_heartbeat(frame.header("heart-beat")) {
            Some(hb) => hb,
            None => {
                return self.fail(
                    "invalid heart-beat header",
                    "expected heart-beat:<cx>,<cy>",
                    receipt,
                    out,
                )
            }
        };
        let server = cfg.heartbeat_ms;
        self.send_heartbeat_ms = if server == 0 || client_rx == 0 {
            0
        } else {
            server.max(client_rx)
        };
        self.expect_heartbeat_ms = if server == 0 || client_tx == 0 {
            0
        } else {
            server.max(client_tx)
        };
        let connected = Frame::new(Command::Connected)
            .with_header("version", version)
            .with_header("heart-beat", format!("{server},{server}"))
            .with_header("server", cfg.server.clone())
            .with_header("user-name", principal.username.clone());
        out.push(Action::Authenticated {
            username: principal.username.clone(),
        });
        self.state = State::Connected(principal);
        out.push(Action::Send(connected));
    }

    fn subscribe(&mut self, frame: &Frame, cfg: &SessionConfig, receipt: Option<String>, out: &mut Out<S>) {
        let Some(id) = frame.header("id").filter(|id| !id.is_empty()) else {
            return self.fail("missing id header", "SUBSCRIBE needs an id", receipt, out);
        };
        let Some(destination) = frame.header("destination") else {
            return self.fail(
                "missing destination header",
                "SUBSCRIBE needs a destination",
                receipt,
                out,
            );
        };
        let destination = match parse_destination(destination) {
            Ok(d) => d,
            Err(why) => return self.fail(why, destination, receipt, out),
        };
        let Some(ack) = AckMode::parse(frame.header("ack")) else {
            return self.fail(
                "invalid ack mode",
                "ack must be auto, client or client-individual",
                receipt,
                out,
            );
        };
        if self.subscriptions.iter().any(|s| s.id == id) {
            return self.fail("duplicate subscription id", id, receipt, out);
        }
        if self.subscriptions.len() >= cfg.max_subscriptions {
            return self.fail(
                "too many subscriptions",
                &format!("at most {} subscriptions per connection", cfg.max_subscriptions),
                receipt,
                out,
            );
        }
        if let Destination::Room(room) = destination {
            // Takes effect once the store says the user may enter the room (`access.rs`).
            return self.check_room(id, room, ack, receipt, out);
        }
        // Most sessions hold one or two subscriptions: grow by one, not by four.
        self.subscriptions.reserve_exact(1);
        self.subscriptions.push(Subscription {
            id: id.to_owned(),
            destination,
            ack,
            ledger: None,
        });
        if let Some(r) = receipt {
            out.push(Action::Send(receipt_frame(&r)));
        }
    }

    fn unsubscribe(&mut self, frame: &Frame, receipt: Option<String>, out: &mut Out<S>) {
        let Some(id) = frame.header("id") else {
            return self.fail("missing id header", "UNSUBSCRIBE needs an id", receipt, out);
        };
        if let Some(pos) = self.subscriptions.iter().position(|s| s.id == id) {
            let s = self.subscriptions.remove(pos);
            if let Destination::Room(room) = s.destination {
                out.push(Action::LeaveRoom {
                    room,
                    subscription: s.id,
                });
            }
        }
        if let Some(r) = receipt {
            out.push(Action::Send(receipt_frame(&r)));
        }
    }

    fn send<H: Host<Send = S>>(
        &mut self,
        frame: Frame,
        cfg: &SessionConfig,
        host: &mut H,
        receipt: Option<String>,
        out: &mut Out<S>,
    ) {
        match frame.header("destination") {
            Some(SEND_DESTINATION) => {}
            Some(other) => {
                let detail = format!("SEND is only accepted to {SEND_DESTINATION}, not {other}");
                return self.fail("invalid destination", &detail, receipt, out);
            }
            None => return self.fail("missing destination header", "SEND needs a destination", receipt, out),
        }
        // A SEND in a transaction is validated now but held until COMMIT.
        let transaction = frame.header("transaction").map(str::to_owned);
        if let Some(id) = &transaction {
            if !self.transactions.is_open(id) {
                let detail = format!("SEND names transaction {id}, which is not open");
                return self.fail(TransactionError::Unknown.message(), &detail, receipt, out);
            }
        }
        let State::Connected(principal) = &self.state else {
            return;
        };
        match host.accept_send(principal, &frame.body) {
            Ok(send) => match transaction {
                None => {
                    self.sends_in_flight += 1;
                    out.push(Action::Publish { send, receipt });
                }
                Some(id) => self.hold(&id, HeldSend { send, receipt }, cfg, out),
            },
            Err(e) => self.app_error(e.code, &e.message, receipt.as_deref(), out),
        }
    }

    /// A JSON error on `/user/queue/errors` (dropped when the client has not subscribed to it).
    pub fn app_error(&mut self, code: &str, message: &str, receipt: Option<&str>, out: &mut Out<S>) {
        let body = serde_json::json!({ "code": code, "message": message, "receipt-id": receipt });
        if let Some(frame) = self.queue_message(&Destination::Errors, body.to_string().into_bytes()) {
            out.push(Action::Send(frame));
        }
    }
}

/// The name of a `/user/queue/…` destination (a room is not one: it falls back to the errors queue).
fn queue_name(destination: &Destination) -> &'static str {
    match destination {
        Destination::Notifications => NOTIFICATIONS_QUEUE,
        Destination::Errors | Destination::Room(_) => ERRORS_QUEUE,
    }
}

/// `RECEIPT receipt-id:<r>`.
fn receipt_frame(receipt: &str) -> Frame {
    Frame::new(Command::Receipt).with_header("receipt-id", receipt)
}

/// An ERROR frame with a `message` header and a plain-text body.
pub fn error_frame(message: &str, detail: &str, receipt: Option<&str>) -> Frame {
    let mut f = Frame::new(Command::Error).with_header("message", message);
    if let Some(r) = receipt {
        f = f.with_header("receipt-id", r);
    }
    f.with_header("content-type", "text/plain")
        .with_body(detail.as_bytes().to_vec())
}

/// The highest version both sides speak; STOMP 1.0 clients send no `accept-version`.
fn negotiate_version(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept else {
        return Some("1.0");
    };
    let offered: Vec<&str> = accept.split(',').map(str::trim).collect();
    ["1.2", "1.1", "1.0"].into_iter().find(|v| offered.contains(v))
}

/// `heart-beat:cx,cy` (absent means 0,0).
fn parse_heartbeat(value: Option<&str>) -> Option<(u64, u64)> {
    let Some(value) = value else {
        return Some((0, 0));
    };
    let (tx, rx) = value.split_once(',')?;
    Some((tx.trim().parse().ok()?, rx.trim().parse().ok()?))
}

/// Which destinations a client may subscribe to.
pub fn parse_destination(destination: &str) -> Result<Destination, &'static str> {
    match destination {
        ERRORS_QUEUE => Ok(Destination::Errors),
        NOTIFICATIONS_QUEUE => Ok(Destination::Notifications),
        d => match d.strip_prefix(ROOM_PREFIX) {
            Some(room) if validate::room_id(room).is_ok() => Ok(Destination::Room(room.to_owned())),
            Some(_) => Err("invalid room id"),
            None => Err("unknown destination"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg() -> SessionConfig {
        SessionConfig {
            max_subscriptions: 2,
            heartbeat_ms: 10_000,
            server: "herald/test".into(),
            ..SessionConfig::default()
        }
    }

    /// A host whose tokens all belong to alice (or are all refused), and which accepts every SEND
    /// body except `bad`, handing back (sender, body).
    pub(super) struct TestHost {
        refuse: Option<&'static str>,
    }

    impl Host for TestHost {
        type Send = (String, Vec<u8>);

        fn authenticate(&mut self, _token: &str) -> Result<Principal, &'static str> {
            match self.refuse {
                Some(why) => Err(why),
                None => Ok(Principal {
                    username: "alice".into(),
                    user_id: 1,
                    expires_at_secs: i64::MAX,
                }),
            }
        }

        fn accept_send(&mut self, principal: &Principal, body: &[u8]) -> Result<Self::Send, AppError> {
            if body == b"bad" {
                return Err(AppError {
                    code: "INVALID_REQUEST",
                    message: "bad body".into(),
                });
            }
            Ok((principal.username.clone(), body.to_vec()))
        }
    }

    pub(super) fn alice() -> TestHost {
        TestHost { refuse: None }
    }

    pub(super) type Out = Vec<Action<(String, Vec<u8>)>>;

    pub(super) type TestSession = Session<(String, Vec<u8>)>;

    pub(super) fn connected() -> TestSession {
        let mut s = TestSession::new();
        let mut out: Out = Vec::new();
        let connect = Frame::new(Command::Connect)
            .with_header("accept-version", "1.1,1.2")
            .with_header("Authorization", "Bearer t")
            .with_header("heart-beat", "0,20000");
        s.on_frame(connect, &cfg(), &mut alice(), &mut out);
        s
    }

    pub(super) fn sent(out: &Out) -> Vec<&Frame> {
        out.iter()
            .filter_map(|a| match a {
                Action::Send(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn connect_negotiates_version_and_heartbeats() {
        let mut s = TestSession::new();
        let mut out: Out = Vec::new();
        let connect = Frame::new(Command::Stomp)
            .with_header("accept-version", "1.1,1.2")
            .with_header("authorization", "Bearer t")
            .with_header("heart-beat", "5000,20000");
        s.on_frame(connect, &cfg(), &mut alice(), &mut out);
        let f = sent(&out)[0];
        assert_eq!(f.command, Command::Connected);
        assert_eq!(f.header("version"), Some("1.2"));
        assert_eq!(f.header("user-name"), Some("alice"));
        assert_eq!(f.header("heart-beat"), Some("10000,10000"));
        assert_eq!(s.send_heartbeat_ms, 20_000);
        assert_eq!(s.expect_heartbeat_ms, 10_000);
    }

    #[test]
    fn connect_without_token_fails_and_closes() {
        let mut s = TestSession::new();
        let mut out: Out = Vec::new();
        s.on_frame(Frame::new(Command::Connect), &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].command, Command::Error);
        assert_eq!(sent(&out)[0].header("message"), Some("missing token"));
        assert!(matches!(out.last(), Some(Action::Close)));
    }

    #[test]
    fn rejected_token_fails_with_reason() {
        let mut s = TestSession::new();
        let mut out: Out = Vec::new();
        let connect = Frame::new(Command::Connect).with_header("Authorization", "Bearer x");
        s.on_frame(
            connect,
            &cfg(),
            &mut TestHost {
                refuse: Some("token expired"),
            },
            &mut out,
        );
        assert_eq!(sent(&out)[0].header("message"), Some("token expired"));
        assert!(matches!(out.last(), Some(Action::Close)));
    }

    #[test]
    fn frames_before_connect_and_second_connect_are_errors() {
        let mut s = TestSession::new();
        let mut out: Out = Vec::new();
        s.on_frame(Frame::new(Command::Send), &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].header("message"), Some("not connected"));
        let mut s = connected();
        let mut out: Out = Vec::new();
        let again = Frame::new(Command::Connect).with_header("Authorization", "Bearer t");
        s.on_frame(again, &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].header("message"), Some("already connected"));
    }

    #[test]
    fn subscribe_rooms_bounds_and_destinations() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        let sub = |id: &str, d: &str| {
            Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", d)
                .with_header("receipt", format!("r-{id}"))
        };
        s.on_frame(sub("0", "/topic/chat.room-1"), &cfg(), &mut alice(), &mut out);
        assert!(matches!(&out[0], Action::CheckRoom { room, .. } if room == "room-1"));
        assert!(sent(&out).is_empty(), "no RECEIPT before the check");
        s.room_checked("room-1", Some(true), &cfg(), &mut alice(), &mut out);
        assert!(matches!(&out[1], Action::JoinRoom { room, .. } if room == "room-1"));
        assert_eq!(sent(&out)[0].header("receipt-id"), Some("r-0"));
        s.on_frame(sub("1", ERRORS_QUEUE), &cfg(), &mut alice(), &mut out);
        out.clear();
        s.on_frame(sub("2", NOTIFICATIONS_QUEUE), &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].header("message"), Some("too many subscriptions"));
        // The closing session leaves its room.
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::LeaveRoom { room, .. } if room == "room-1")));

        let mut s = connected();
        let mut out: Out = Vec::new();
        s.on_frame(sub("0", "/topic/other"), &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].header("message"), Some("unknown destination"));
    }

    #[test]
    fn send_publishes_as_the_authenticated_user_and_reports_refusals() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        let errors = Frame::new(Command::Subscribe)
            .with_header("id", "e")
            .with_header("destination", ERRORS_QUEUE);
        s.on_frame(errors, &cfg(), &mut alice(), &mut out);
        let send = |body: &str| {
            Frame::new(Command::Send)
                .with_header("destination", SEND_DESTINATION)
                .with_header("receipt", "r1")
                .with_body(body.as_bytes().to_vec())
        };
        s.on_frame(send(r#"{"roomId":"room-1"}"#), &cfg(), &mut alice(), &mut out);
        match &out[0] {
            Action::Publish { send, receipt } => {
                assert_eq!(send.0, "alice");
                assert_eq!(send.1, br#"{"roomId":"room-1"}"#);
                assert_eq!(receipt.as_deref(), Some("r1"));
            }
            other => panic!("expected Publish, got {other:?}"),
        }
        out.clear();
        s.on_frame(send("bad"), &cfg(), &mut alice(), &mut out);
        let f = sent(&out)[0];
        assert_eq!(f.command, Command::Message);
        assert_eq!(f.header("destination"), Some(ERRORS_QUEUE));
        let v: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
        assert_eq!(v["code"], "INVALID_REQUEST");
        assert_eq!(v["message"], "bad body");
        assert_eq!(v["receipt-id"], "r1");
        assert_eq!(out.len(), 1, "the session stays open");
        out.clear();
        let wrong = Frame::new(Command::Send).with_header("destination", "/topic/chat.room-1");
        s.on_frame(wrong, &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].command, Command::Error);
        assert!(matches!(out.last(), Some(Action::Close)));
    }

    #[test]
    fn settled_sends_get_a_receipt_or_an_error() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        s.send_settled(Some("r1"), Ok(()), &mut out);
        assert_eq!(sent(&out)[0].command, Command::Receipt);
        assert_eq!(sent(&out)[0].header("receipt-id"), Some("r1"));
        out.clear();
        s.send_settled(None, Ok(()), &mut out);
        assert!(out.is_empty(), "no receipt asked, nothing to say");
        let errors = Frame::new(Command::Subscribe)
            .with_header("id", "e")
            .with_header("destination", ERRORS_QUEUE);
        s.on_frame(errors, &cfg(), &mut alice(), &mut out);
        let failure = AppError {
            code: "SERVICE_UNAVAILABLE",
            message: "later".into(),
        };
        s.send_settled(Some("r2"), Err(failure), &mut out);
        let f = sent(&out)[0];
        assert_eq!(f.header("destination"), Some(ERRORS_QUEUE));
        let v: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
        assert_eq!(
            (v["code"].as_str(), v["receipt-id"].as_str()),
            (Some("SERVICE_UNAVAILABLE"), Some("r2"))
        );
    }

    #[test]
    fn notifications_need_their_subscription() {
        let mut s = connected();
        assert!(s.notification("{}").is_none());
        let mut out: Out = Vec::new();
        let sub = Frame::new(Command::Subscribe)
            .with_header("id", "n")
            .with_header("destination", NOTIFICATIONS_QUEUE);
        s.on_frame(sub, &cfg(), &mut alice(), &mut out);
        let f = s.notification(r#"{"id":1}"#).expect("subscribed");
        assert_eq!(f.header("subscription"), Some("n"));
        assert_eq!(f.header("destination"), Some(NOTIFICATIONS_QUEUE));
        assert_eq!(f.body, br#"{"id":1}"#);
        assert_ne!(
            f.header("message-id"),
            s.notification("{}").unwrap().header("message-id")
        );
    }

    #[test]
    fn disconnect_receipts_then_closes() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        s.on_frame(
            Frame::new(Command::Disconnect).with_header("receipt", "bye"),
            &cfg(),
            &mut alice(),
            &mut out,
        );
        assert_eq!(sent(&out)[0].header("receipt-id"), Some("bye"));
        assert!(matches!(out.last(), Some(Action::Close)));
    }
}
