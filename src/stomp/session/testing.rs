//! What the session's unit tests share: a host, a configuration with small bounds, frame builders.

use super::*;

/// A host whose tokens all belong to alice and which accepts every SEND body except `bad`,
/// handing back the body as text.
pub struct Alice;

impl Host for Alice {
    type Send = String;

    fn authenticate(&mut self, _token: &str) -> Result<Principal, &'static str> {
        Ok(Principal {
            username: "alice".into(),
            user_id: 1,
            expires_at_secs: i64::MAX,
        })
    }

    fn accept_send(&mut self, _principal: &Principal, body: &[u8]) -> Result<String, AppError> {
        if body == b"bad" {
            return Err(AppError {
                code: "INVALID_REQUEST",
                message: "bad body".into(),
            });
        }
        Ok(String::from_utf8_lossy(body).into_owned())
    }
}

pub type TestOut = Vec<Action<String>>;

/// Small bounds, so that every one is easy to cross: 2 transactions of 3 SENDs, 4 in flight.
pub fn cfg() -> SessionConfig {
    SessionConfig {
        max_subscriptions: 10,
        heartbeat_ms: 0,
        server: "herald/test".into(),
        max_transactions: 2,
        max_transaction_sends: 3,
        max_inflight_sends: 4,
    }
}

/// A CONNECTed session.
pub fn connected() -> Session<String> {
    let mut s = Session::new();
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("Authorization", "Bearer t");
    s.on_frame(connect, &cfg(), &mut Alice, &mut Vec::new());
    assert!(s.principal().is_some());
    s
}

/// Feeds one frame; returns what the session asked for.
pub fn feed(s: &mut Session<String>, frame: Frame) -> TestOut {
    let mut out = Vec::new();
    s.on_frame(frame, &cfg(), &mut Alice, &mut out);
    out
}

/// Feeds one frame as [`feed`] does, and lets a room SUBSCRIBE in at once (the store's check
/// says yes): what the session asked for, without the check.
pub fn feed_admitted(s: &mut Session<String>, frame: Frame) -> TestOut {
    let mut out = feed(s, frame);
    let checks: Vec<String> = out
        .iter()
        .filter_map(|a| match a {
            Action::CheckRoom { room, .. } => Some(room.clone()),
            _ => None,
        })
        .collect();
    out.retain(|a| !matches!(a, Action::CheckRoom { .. }));
    for room in checks {
        s.room_checked(&room, Some(true), &cfg(), &mut Alice, &mut out);
    }
    out
}

/// A frame with the given headers.
pub fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
    headers
        .iter()
        .fold(Frame::new(command), |f, (name, value)| f.with_header(*name, *value))
}

/// `SEND` to `/app/chat.send` with `body` and extra headers.
pub fn send(body: &str, headers: &[(&str, &str)]) -> Frame {
    frame(Command::Send, headers)
        .with_header("destination", SEND_DESTINATION)
        .with_body(body.as_bytes().to_vec())
}

/// The frames among the actions.
pub fn frames(out: &TestOut) -> Vec<&Frame> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// The `receipt-id`s of the RECEIPT frames among the actions, in order.
pub fn receipts(out: &TestOut) -> Vec<&str> {
    frames(out)
        .into_iter()
        .filter(|f| f.command == Command::Receipt)
        .filter_map(|f| f.header("receipt-id"))
        .collect()
}

/// The JSON bodies of the `/user/queue/errors` MESSAGEs among the actions.
pub fn app_errors(out: &TestOut) -> Vec<serde_json::Value> {
    frames(out)
        .into_iter()
        .filter(|f| f.command == Command::Message && f.header("destination") == Some(ERRORS_QUEUE))
        .map(|f| serde_json::from_slice(&f.body).expect("JSON error"))
        .collect()
}

/// Asserts the actions end the session with `ERROR message:<message>` and a close.
#[track_caller]
pub fn assert_fails(s: &Session<String>, out: &TestOut, message: &str) {
    let errors: Vec<&Frame> = frames(out)
        .into_iter()
        .filter(|f| f.command == Command::Error)
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR in {out:?}");
    assert_eq!(errors[0].header("message"), Some(message), "{:?}", errors[0]);
    assert!(matches!(out.last(), Some(Action::Close)), "then close: {out:?}");
    assert!(s.is_closed());
}

/// Whether the actions hand anything over for commit.
pub fn publishes(out: &TestOut) -> bool {
    out.iter()
        .any(|a| matches!(a, Action::Publish { .. } | Action::CommitGroup { .. }))
}
