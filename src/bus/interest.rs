//! Who listens where: for each room and each user, the set of reactors on this node holding at
//! least one subscriber (a bitmask, one bit per reactor). A committed event is posted only to
//! those reactors, once each.
//!
//! The node's own interest changes — the first local subscriber of a topic arrives, or the last
//! one leaves — are also *events*: a component that must follow them (the cluster link
//! subscribing to the topic's channel elsewhere) takes them from [`Interest::watch`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

/// What can be listened to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A chat room's messages.
    Room(Box<str>),
    /// A user's notifications.
    User(Box<str>),
}

/// A change of this node's interest in a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterestChange {
    /// The first local listener of the topic arrived.
    Gained(Topic),
    /// The last local listener of the topic left.
    Lost(Topic),
}

/// The interest registry shared by the reactors of one node.
#[derive(Default)]
pub struct Interest {
    /// Each topic's reactors, and when its first local listener arrived.
    masks: Mutex<HashMap<Topic, (u64, Instant)>>,
    watcher: OnceLock<Sender<InterestChange>>,
}

impl Interest {
    /// Marks `reactor` as holding a listener of `topic` (idempotent per reactor).
    pub fn join(&self, reactor: usize, topic: Topic) {
        let bit = 1u64 << reactor;
        let mut masks = self.masks.lock().unwrap_or_else(PoisonError::into_inner);
        let (mask, _) = masks.entry(topic.clone()).or_insert((0, Instant::now()));
        let was_empty = *mask == 0;
        *mask |= bit;
        if was_empty {
            self.tell(InterestChange::Gained(topic));
        }
    }

    /// Marks `reactor` as no longer holding any listener of `topic`.
    pub fn leave(&self, reactor: usize, topic: &Topic) {
        let bit = 1u64 << reactor;
        let mut masks = self.masks.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((mask, _)) = masks.get_mut(topic) else {
            return;
        };
        *mask &= !bit;
        if *mask == 0 {
            masks.remove(topic);
            self.tell(InterestChange::Lost(topic.clone()));
        }
    }

    /// The reactors interested in any of `topics`.
    pub fn reactors<'a>(&self, topics: impl IntoIterator<Item = &'a Topic>) -> u64 {
        let masks = self.masks.lock().unwrap_or_else(PoisonError::into_inner);
        topics
            .into_iter()
            .fold(0, |acc, t| acc | masks.get(t).map_or(0, |(mask, _)| *mask))
    }

    /// When the first local listener of `topic` arrived (it has one now), so that the topic's
    /// delivery starts from then, not from when another thread noticed.
    pub fn since(&self, topic: &Topic) -> Option<Instant> {
        let masks = self.masks.lock().unwrap_or_else(PoisonError::into_inner);
        masks.get(topic).map(|(_, since)| *since)
    }

    /// Every topic this node listens to now (to subscribe afresh after a reconnect).
    pub fn topics(&self) -> Vec<Topic> {
        let masks = self.masks.lock().unwrap_or_else(PoisonError::into_inner);
        masks.keys().cloned().collect()
    }

    /// The stream of interest changes; there is one watcher, and only changes after this call are
    /// sent (read [`Interest::topics`] after it to learn the state). `None` when already watched.
    pub fn watch(&self) -> Option<Receiver<InterestChange>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        // Set under the lock, so that no change falls between `topics()` and the first event.
        let _masks = self.masks.lock().unwrap_or_else(PoisonError::into_inner);
        self.watcher.set(tx).ok().map(|()| rx)
    }

    fn tell(&self, change: InterestChange) {
        if let Some(tx) = self.watcher.get() {
            let _ = tx.send(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> Topic {
        Topic::Room(name.into())
    }

    #[test]
    fn masks_follow_joins_and_leaves_per_reactor() {
        let interest = Interest::default();
        interest.join(0, room("a"));
        interest.join(3, room("a"));
        interest.join(1, Topic::User("bob".into()));
        assert_eq!(interest.reactors([&room("a")]), 0b1001);
        assert_eq!(interest.reactors([&room("a"), &Topic::User("bob".into())]), 0b1011);
        interest.leave(0, &room("a"));
        assert_eq!(interest.reactors([&room("a")]), 0b1000);
        interest.leave(3, &room("a"));
        assert_eq!(interest.reactors([&room("a")]), 0);
        assert_eq!(interest.topics(), vec![Topic::User("bob".into())]);
        // Leaving what was never joined is harmless.
        interest.leave(5, &room("zzz"));
    }

    #[test]
    fn node_level_changes_are_events_only_at_first_join_and_last_leave() {
        let interest = Interest::default();
        interest.join(0, room("before-watch"));
        let rx = interest.watch().expect("first watcher");
        assert!(interest.watch().is_none(), "one watcher only");
        interest.join(0, room("a"));
        interest.join(1, room("a"));
        interest.join(1, room("a"));
        interest.leave(0, &room("a"));
        interest.leave(1, &room("a"));
        interest.leave(0, &room("before-watch"));
        let events: Vec<InterestChange> = rx.try_iter().collect();
        assert_eq!(
            events,
            vec![
                InterestChange::Gained(room("a")),
                InterestChange::Lost(room("a")),
                InterestChange::Lost(room("before-watch")),
            ]
        );
    }
}
