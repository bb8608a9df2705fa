//! The notification use cases: a direct notification is stored, then published to every stream
//! and `/user/queue/notifications` subscription of its recipient; a stream that reconnects with
//! `Last-Event-ID` reads what it missed, page by page. (Mention notifications are created in the
//! chat transaction, see `chat::writer`.)

use std::sync::atomic::Ordering;

use crate::bus::{Bus, Committed, ConnRef, NotificationEvent, ReactorMsg};
use crate::clock::now_ms;
use crate::store::model::{NewNotification, Notification};
use crate::store::pool::{Busy, StorePool, Worker};
use crate::store::StoreError;

/// The `type` of a notification created by `POST /notifications`.
pub const DIRECT: &str = "direct";

/// Stores a direct notification from `sender` and publishes it once committed. `Ok(None)` when
/// the recipient does not exist.
pub fn send_direct(
    worker: &mut Worker,
    bus: &Bus,
    sender: String,
    recipient: String,
    message: String,
) -> Result<Option<Notification>, StoreError> {
    let new = NewNotification {
        recipient,
        kind: DIRECT.into(),
        sender,
        room_id: None,
        message,
        created_at_ms: now_ms(),
    };
    let Some(stored) = worker.with(|db| db.create_notification(&new))? else {
        return Ok(None);
    };
    worker.metrics().notifications_created.fetch_add(1, Ordering::Relaxed);
    bus.publish(Committed::notification(&stored));
    Ok(Some(stored.row))
}

/// The events of consecutive notifications read after `after` (each follows the one before it).
pub fn linked_events(after: i64, page: &[Notification]) -> Vec<NotificationEvent> {
    let mut prev = after;
    page.iter()
        .map(|n| NotificationEvent::of(n, std::mem::replace(&mut prev, n.id)))
        .collect()
}

/// Queues the read of the next replay page of `user`'s notifications after `after` (at most
/// `limit`); the page goes back to the stream's reactor as [`ReactorMsg::SseReplay`].
pub fn read_replay_page(
    pool: &StorePool,
    bus: &std::sync::Arc<Bus>,
    stream: ConnRef,
    user: &str,
    after: i64,
    limit: u32,
) -> Result<(), Busy> {
    let (bus, user) = (std::sync::Arc::clone(bus), user.to_owned());
    pool.submit(Box::new(move |worker: &mut Worker| {
        let replay = worker
            .with(|db| db.notifications_after(&user, after, limit))
            .ok()
            .map(|page| linked_events(after, &page));
        bus.send(
            stream.reactor,
            ReactorMsg::SseReplay {
                token: stream.token,
                replay,
            },
        );
    }))
}
