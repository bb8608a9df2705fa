//! Who listens on this reactor, and delivery to them: the room index (subscribers of each room
//! with their subscription ids), the user index (STOMP sessions and SSE streams of each user),
//! and fan-out of committed messages and notifications into their outbound buffers. The node's
//! interest registry on the bus follows the first and last local listener of each topic.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::conn::Conn;
use super::ws::{queue_text, Queued};
use super::Reactor;
use crate::bus::{ChatEvent, Interest, MembershipEvent, NotificationEvent, Topic};
use crate::stomp::outbound;

/// A subscriber of a room on this reactor.
struct RoomSub {
    token: usize,
    subscription: Rc<str>,
    /// Listed while its SUBSCRIBE waits for the room check: it gets no messages yet, but a
    /// withdrawal of the room reaches it.
    pending: bool,
    /// A `client`/`client-individual` subscription: MESSAGEs carry `ack`, and are recorded.
    client_ack: bool,
}

/// How a subscription is listed under its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// Its SUBSCRIBE waits for the room check.
    Pending,
    /// Receiving; `client_ack` as [`RoomSub::client_ack`].
    Live { client_ack: bool },
}

/// The room and user indexes of one reactor.
#[derive(Default)]
pub(super) struct Listeners {
    /// Room → local subscribers.
    rooms: HashMap<Box<str>, Vec<RoomSub>>,
    /// Username → tokens of STOMP sessions and SSE streams of that user.
    users: HashMap<Box<str>, Vec<usize>>,
}

impl Listeners {
    /// Lists a subscription under a room: `pending` while its check runs, live otherwise. A
    /// pending entry of the same subscription becomes live.
    pub(super) fn join_room(
        &mut self,
        interest: &Interest,
        reactor: usize,
        token: usize,
        room: &str,
        subscription: &str,
        listing: Listing,
    ) {
        let (pending, client_ack) = match listing {
            Listing::Pending => (true, false),
            Listing::Live { client_ack } => (false, client_ack),
        };
        let subs = self.rooms.entry(room.into()).or_default();
        if subs.is_empty() {
            interest.join(reactor, Topic::Room(room.into()));
        }
        let listed = subs
            .iter_mut()
            .find(|s| s.token == token && &*s.subscription == subscription);
        match listed {
            Some(sub) => {
                sub.pending = pending;
                sub.client_ack = client_ack;
            }
            None => subs.push(RoomSub {
                token,
                subscription: subscription.into(),
                pending,
                client_ack,
            }),
        }
    }

    /// The connections listed under a room (live or pending), each once.
    fn room_tokens(&self, room: &str) -> Vec<usize> {
        let mut tokens: Vec<usize> = self
            .rooms
            .get(room)
            .map(|subs| subs.iter().map(|s| s.token).collect())
            .unwrap_or_default();
        tokens.sort_unstable();
        tokens.dedup();
        tokens
    }

    pub(super) fn leave_room(
        &mut self,
        interest: &Interest,
        reactor: usize,
        token: usize,
        room: &str,
        subscription: &str,
    ) {
        let Some(subs) = self.rooms.get_mut(room) else {
            return;
        };
        if let Some(pos) = subs
            .iter()
            .position(|s| s.token == token && &*s.subscription == subscription)
        {
            subs.swap_remove(pos);
        }
        if subs.is_empty() {
            self.rooms.remove(room);
            interest.leave(reactor, &Topic::Room(room.into()));
        }
    }

    pub(super) fn index_user(&mut self, interest: &Interest, reactor: usize, user: &str, token: usize) {
        let tokens = self.users.entry(user.into()).or_default();
        if tokens.is_empty() {
            interest.join(reactor, Topic::User(user.into()));
        }
        tokens.push(token);
    }

    pub(super) fn unindex_user(&mut self, interest: &Interest, reactor: usize, user: &str, token: usize) {
        let Some(tokens) = self.users.get_mut(user) else {
            return;
        };
        tokens.retain(|t| *t != token);
        if tokens.is_empty() {
            self.users.remove(user);
            interest.leave(reactor, &Topic::User(user.into()));
        }
    }
}

impl Reactor {
    pub(super) fn join_room(&mut self, token: usize, room: &str, subscription: &str, client_ack: bool) {
        let interest = self.shared.bus.interest();
        self.listeners.join_room(
            interest,
            self.id,
            token,
            room,
            subscription,
            Listing::Live { client_ack },
        );
    }

    /// Lists a SUBSCRIBE waiting for its room check under the room (joining the room's topic on
    /// the bus), so that a withdrawal announced while the check runs reaches the session.
    pub(super) fn hold_room(&mut self, token: usize, room: &str, subscription: &str) {
        let interest = self.shared.bus.interest();
        self.listeners
            .join_room(interest, self.id, token, room, subscription, Listing::Pending);
    }

    pub(super) fn leave_room(&mut self, token: usize, room: &str, subscription: &str) {
        let interest = self.shared.bus.interest();
        self.listeners.leave_room(interest, self.id, token, room, subscription);
    }

    pub(super) fn index_user(&mut self, user: &str, token: usize) {
        let interest = self.shared.bus.interest();
        self.listeners.index_user(interest, self.id, user, token);
    }

    pub(super) fn unindex_user(&mut self, user: &str, token: usize) {
        let interest = self.shared.bus.interest();
        self.listeners.unindex_user(interest, self.id, user, token);
    }

    /// Appends committed messages to every local subscriber of their rooms. Each message is
    /// encoded once; each subscriber's copy — its `subscription` (and `ack`) header spliced in —
    /// is written straight into its output buffer behind a WebSocket frame header. A client-ack
    /// subscription's MESSAGE carries `ack` and is recorded by its session, so that its ACK is
    /// accepted.
    pub(super) fn deliver_chat(&mut self, events: &[ChatEvent]) {
        let mut slow = Vec::new();
        let mut delivered = 0u64;
        let cap = self.shared.config.chat.outbound_buffer_bytes;
        let now = Instant::now();
        for event in events {
            let Some(subs) = self.listeners.rooms.get(&event.room) else {
                continue;
            };
            let message = outbound::RoomMessage::new(&event.room, event.id, &event.body);
            for sub in subs {
                let (slot_key, generation) = super::slot_of(sub.token);
                let Some(slot) = self.slots.get_mut(slot_key).filter(|s| s.generation == generation) else {
                    continue;
                };
                let Conn::Ws(c) = &mut slot.conn else {
                    continue;
                };
                if c.closing || sub.pending {
                    continue;
                }
                let length = message.len_for(&sub.subscription, sub.client_ack);
                let queued = queue_text(c, cap, length, |out| {
                    message.write_for(&sub.subscription, sub.client_ack, out)
                });
                match queued {
                    Queued::Ok => {
                        if sub.client_ack {
                            c.session.delivered(&sub.subscription, event.id);
                        }
                        c.liveness.wrote(now);
                        c.receiving = true;
                        delivered += 1;
                        if !slot.dirty {
                            slot.dirty = true;
                            self.dirty.push(sub.token);
                        }
                    }
                    Queued::Full | Queued::Closed => slow.push(sub.token),
                }
            }
        }
        let metrics = &self.shared.metrics;
        metrics.fanout_deliveries.fetch_add(delivered, Ordering::Relaxed);
        metrics.stomp_frames_out.fetch_add(delivered, Ordering::Relaxed);
        for token in slow {
            self.slow_consumer(token);
        }
    }

    /// Applies withdrawals of room access to the sessions here they concern: each session of a
    /// revoked user, each session listening (or waiting to listen) to a restricted room whose
    /// user is not among its members.
    pub(super) fn membership_changed(&mut self, events: &[MembershipEvent]) {
        for event in events {
            let tokens = match event {
                MembershipEvent::Revoked { user, .. } => self.listeners.users.get(user).cloned().unwrap_or_default(),
                MembershipEvent::Restricted { room, .. } => self.listeners.room_tokens(room),
            };
            for token in tokens {
                self.withdraw_room(token, event);
            }
        }
    }

    /// Delivers notifications to the user's STOMP subscriptions and SSE streams on this reactor.
    pub(super) fn deliver_notifications(&mut self, events: &[NotificationEvent]) {
        for event in events {
            let Some(tokens) = self.listeners.users.get(&event.recipient).cloned() else {
                continue;
            };
            for token in tokens {
                match self.slot_mut(token).map(|s| &mut s.conn) {
                    Some(Conn::Ws(c)) => {
                        let Some(frame) = c.session.notification(&event.body) else {
                            continue;
                        };
                        self.ws_send(token, &frame);
                        self.shared
                            .metrics
                            .notifications_delivered
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Conn::Sse(_)) => self.sse_notify(token, event.id, &event.body),
                    _ => {}
                }
            }
        }
    }
}
