//! One reactor's inbox: an unbounded crossbeam channel and the reactor's `mio::Waker`, woken at
//! most once per drain however many messages are posted meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::event::{ChatEvent, MembershipEvent, NotificationEvent};
use crate::chat::ChatAck;
use crate::http::response::Response;

/// A connection on one reactor: its slab token (slot and generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub reactor: usize,
    pub token: usize,
}

/// Everything a reactor can be told.
pub enum ReactorMsg {
    /// The answer to an HTTP request that ran on a worker.
    Reply { token: usize, response: Response },
    /// Committed chat messages of rooms with subscribers here, in commit order.
    Chat(Arc<[ChatEvent]>),
    /// Stored notifications for users connected here.
    Notifications(Arc<[NotificationEvent]>),
    /// The fate of SENDs from sessions on this reactor.
    ChatAcks(Vec<ChatAck>),
    /// Who may no longer enter which room, for users or rooms with listeners here.
    Membership(Arc<[MembershipEvent]>),
    /// The store's answer to a session's SUBSCRIBE to a room (`None`: the store could not tell).
    RoomChecked {
        token: usize,
        room: Box<str>,
        allowed: Option<bool>,
    },
    /// A page of the notifications an SSE stream must replay before going live (`None`: the
    /// store failed).
    SseReplay {
        token: usize,
        replay: Option<Vec<NotificationEvent>>,
    },
}

/// The sending half of one reactor's inbox.
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

    /// Posts a message; wakes the reactor unless a wake is already pending. `reactor` names it in logs.
    pub(super) fn post(&self, reactor: usize, msg: ReactorMsg) {
        if self.tx.send(msg).is_err() {
            return; // the reactor has exited during shutdown
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake(reactor);
        }
    }

    /// Wakes the reactor even with nothing to drain.
    pub(super) fn wake(&self, reactor: usize) {
        if let Err(e) = self.waker.wake() {
            log::error!("waking reactor {reactor} failed: {e}");
        }
    }

    /// Called by the reactor before it drains, so that a post racing the drain wakes it again.
    pub(super) fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }
}
