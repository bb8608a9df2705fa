//! The hub carries work results and fan-out between threads: every reactor has an inbox (an
//! unbounded crossbeam channel) and a `mio::Waker`; workers and other reactors post messages
//! and wake it at most once per drain.
//!
//! Chat fan-out is interest-based: a reactor sets its bit for a room when its first local
//! subscriber arrives and clears it when the last one leaves, so a committed batch is posted
//! only to the reactors that hold subscribers of its rooms, once each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::{Receiver, Sender};

use crate::http::response::Response;

/// A connection on one reactor: its slab token (slot and generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub reactor: usize,
    pub token: usize,
}

/// A committed chat message, serialized once for every subscriber.
#[derive(Debug)]
pub struct ChatEvent {
    pub room: Box<str>,
    pub id: i64,
    /// The JSON body `{"id","roomId","sender","message","sentAt"}`.
    pub body: Box<str>,
}

/// A stored notification, serialized once.
#[derive(Debug)]
pub struct NotificationEvent {
    pub recipient: Box<str>,
    pub id: i64,
    /// The JSON `{"id","type","recipient","sender","roomId","message","createdAt","read"}`.
    pub body: Box<str>,
}

/// What a STOMP SEND came to, told to the reactor that holds the sender.
#[derive(Debug)]
pub enum ChatOutcome {
    /// Committed: send the RECEIPT if one was asked for.
    Committed,
    /// Not stored: a JSON error for `/user/queue/errors`.
    Failed { code: &'static str, message: &'static str },
}

/// The fate of one SEND, for the session that sent it.
#[derive(Debug)]
pub struct ChatAck {
    pub token: usize,
    pub receipt: Option<Box<str>>,
    pub outcome: ChatOutcome,
}

/// Everything a reactor can be told.
pub enum ReactorMsg {
    /// The answer to an HTTP request that ran on a worker.
    Reply { token: usize, response: Response },
    /// Committed chat messages, in commit order.
    Chat(Arc<[ChatEvent]>),
    /// Stored notifications for users who may be connected here.
    Notifications(Arc<[NotificationEvent]>),
    /// The fate of SENDs from sessions on this reactor.
    ChatAcks(Vec<ChatAck>),
    /// The notifications an SSE stream must replay before going live (`None`: the store failed).
    SseReplay {
        token: usize,
        replay: Option<Vec<NotificationEvent>>,
    },
}

/// One reactor's inbox.
pub struct ReactorHandle {
    tx: Sender<ReactorMsg>,
    waker: mio::Waker,
    wake_pending: AtomicBool,
}

impl ReactorHandle {
    /// A handle and the receiving end the reactor drains.
    pub fn new(waker: mio::Waker) -> (ReactorHandle, Receiver<ReactorMsg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handle = ReactorHandle {
            tx,
            waker,
            wake_pending: AtomicBool::new(false),
        };
        (handle, rx)
    }
}

/// All reactors' inboxes plus the room interest map.
pub struct Hub {
    reactors: Vec<ReactorHandle>,
    /// Room → bitmask of reactors holding at least one subscriber of it.
    rooms: Mutex<HashMap<Box<str>, u64>>,
}

impl Hub {
    /// At most 64 reactors (one bit each in the interest mask).
    pub const MAX_REACTORS: usize = 64;

    pub fn new(reactors: Vec<ReactorHandle>) -> Hub {
        Hub {
            reactors,
            rooms: Mutex::new(HashMap::new()),
        }
    }

    pub fn reactor_count(&self) -> usize {
        self.reactors.len()
    }

    /// Posts a message and wakes the reactor unless a wake is already pending.
    pub fn send(&self, reactor: usize, msg: ReactorMsg) {
        let Some(handle) = self.reactors.get(reactor) else {
            return;
        };
        if handle.tx.send(msg).is_err() {
            return; // the reactor has exited during shutdown
        }
        if !handle.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = handle.waker.wake() {
                log::error!("waking reactor {reactor} failed: {e}");
            }
        }
    }

    /// Wakes every reactor with nothing to drain (so that it notices the shutdown flag at once).
    pub fn wake_all(&self) {
        for (reactor, handle) in self.reactors.iter().enumerate() {
            if let Err(e) = handle.waker.wake() {
                log::error!("waking reactor {reactor} failed: {e}");
            }
        }
    }

    /// Called by a reactor before it drains its inbox, so that a post racing the drain wakes it again.
    pub fn clear_wake(&self, reactor: usize) {
        if let Some(handle) = self.reactors.get(reactor) {
            handle.wake_pending.store(false, Ordering::Release);
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

    /// Marks `reactor` as holding (or no longer holding) subscribers of `room`.
    pub fn set_room_interest(&self, reactor: usize, room: &str, interested: bool) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        let bit = 1u64 << reactor;
        if interested {
            *rooms.entry(room.into()).or_insert(0) |= bit;
        } else if let Some(mask) = rooms.get_mut(room) {
            *mask &= !bit;
            if *mask == 0 {
                rooms.remove(room);
            }
        }
    }

    /// Posts a committed batch to each reactor interested in any of its rooms, once each.
    pub fn publish_chat(&self, events: Vec<ChatEvent>) {
        if events.is_empty() {
            return;
        }
        let mask = {
            let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
            events
                .iter()
                .fold(0u64, |mask, e| mask | rooms.get(&e.room).copied().unwrap_or(0))
        };
        if mask == 0 {
            return;
        }
        let events: Arc<[ChatEvent]> = events.into();
        for reactor in 0..self.reactors.len() {
            if mask & (1 << reactor) != 0 {
                self.send(reactor, ReactorMsg::Chat(Arc::clone(&events)));
            }
        }
    }

    /// Posts notifications to every reactor (each looks up its own streams of the recipients).
    pub fn publish_notifications(&self, events: Vec<NotificationEvent>) {
        if events.is_empty() {
            return;
        }
        let events: Arc<[NotificationEvent]> = events.into();
        for reactor in 0..self.reactors.len() {
            self.send(reactor, ReactorMsg::Notifications(Arc::clone(&events)));
        }
    }
}
