//! Fan-out between reactors: one lock hands out message ids and queues each message to every reactor in id order,
//! so every subscriber of a room sees ascending ids on whichever reactor it is.
//!
//! A message is encoded once here; a reactor only splices each subscriber's `subscription` id between the shared
//! head and tail of the MESSAGE frame.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

/// Prefix of room topics, as in Herald: `/topic/chat.{roomId}`.
pub const ROOM_PREFIX: &str = "/topic/chat.";

/// Who asked for a RECEIPT for a published message.
pub struct Receipt {
    /// The reactor holding the sender's connection.
    pub reactor: usize,
    /// The sender's token on that reactor.
    pub token: usize,
    /// The `receipt` header value.
    pub id: Box<str>,
}

/// One chat message, encoded once for every subscriber.
pub struct Event {
    /// The room id.
    pub room: Box<str>,
    /// `MESSAGE\ndestination:/topic/chat.<room>\ncontent-type:application/json\nsubscription:`
    pub head: Box<[u8]>,
    /// `\nmessage-id:<id>\ncontent-length:<n>\n\n<body>\0`
    pub tail: Box<[u8]>,
    /// The RECEIPT to send once the message is queued to the room's subscribers on the sender's reactor.
    pub receipt: Option<Receipt>,
}

impl Event {
    /// The MESSAGE of `id` with Herald's headers, in Herald's order, and Herald's JSON body shape.
    pub fn new(id: u64, room: &str, sender: &str, message: &str, sent_at_ms: i64, receipt: Option<Receipt>) -> Self {
        let mut head = Vec::with_capacity(80 + room.len());
        head.extend_from_slice(b"MESSAGE\ndestination:");
        head.extend_from_slice(ROOM_PREFIX.as_bytes());
        head.extend_from_slice(room.as_bytes());
        head.extend_from_slice(b"\ncontent-type:application/json\nsubscription:");
        let mut body = Vec::with_capacity(96 + room.len() + sender.len() + message.len());
        // room and sender are validated to [A-Za-z0-9_.-], so only the message needs JSON escaping.
        let _ = write!(
            body,
            "{{\"id\":{id},\"roomId\":\"{room}\",\"sender\":\"{sender}\",\"message\":"
        );
        let _ = serde_json::to_writer(&mut body, message);
        body.extend_from_slice(b",\"sentAt\":\"");
        push_iso8601_millis(&mut body, sent_at_ms);
        body.extend_from_slice(b"\"}");
        let mut tail = Vec::with_capacity(48 + body.len());
        let _ = write!(tail, "\nmessage-id:{id}\ncontent-length:{}\n\n", body.len());
        tail.extend_from_slice(&body);
        tail.push(0);
        Event {
            room: room.into(),
            head: head.into_boxed_slice(),
            tail: tail.into_boxed_slice(),
            receipt,
        }
    }
}

/// One reactor's end of the hub.
struct Inbox {
    tx: Sender<Arc<Event>>,
    waker: Waker,
    wake_pending: AtomicBool,
}

/// The fan-out hub shared by every reactor.
pub struct Hub {
    next_id: Mutex<u64>,
    inboxes: Vec<Inbox>,
}

impl Hub {
    /// A hub over one `(waker, channel)` pair per reactor; returns the receivers in reactor order.
    pub fn new(wakers: Vec<Waker>) -> (Hub, Vec<Receiver<Arc<Event>>>) {
        let mut receivers = Vec::with_capacity(wakers.len());
        let inboxes = wakers
            .into_iter()
            .map(|waker| {
                // Unbounded: a bounded send under the id lock could deadlock two reactors publishing to each other.
                let (tx, rx) = crossbeam_channel::unbounded();
                receivers.push(rx);
                Inbox {
                    tx,
                    waker,
                    wake_pending: AtomicBool::new(false),
                }
            })
            .collect();
        (
            Hub {
                next_id: Mutex::new(0),
                inboxes,
            },
            receivers,
        )
    }

    /// Gives the message the next id and queues it to every reactor, under one lock so that each reactor sees ids
    /// in ascending order.
    pub fn publish(&self, room: &str, sender: &str, message: &str, receipt: Option<Receipt>) {
        let mut next_id = self.next_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *next_id += 1;
        let event = Arc::new(Event::new(*next_id, room, sender, message, now_ms(), receipt));
        for inbox in &self.inboxes {
            // A reactor's receiver lives as long as the process; a failed send can only happen during exit.
            let _ = inbox.tx.send(Arc::clone(&event));
            if !inbox.wake_pending.swap(true, Ordering::AcqRel) {
                let _ = inbox.waker.wake();
            }
        }
    }

    /// Called by reactor `id` before it drains its channel: the next publish wakes it again.
    pub fn clear_wake(&self, id: usize) {
        if let Some(inbox) = self.inboxes.get(id) {
            inbox.wake_pending.store(false, Ordering::Release);
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Appends `2025-08-14T14:55:00.000Z` for a Unix time in milliseconds (proleptic Gregorian calendar, UTC).
pub fn push_iso8601_millis(out: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let _ = write!(out, "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z");
}

/// Year, month, day of the day `days` after 1970-01-01, counting in 400-year cycles of 146,097 days that start on
/// 1 March so that the leap day falls at the end of each year of the cycle.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let cycle = shifted.div_euclid(146_097);
    let day_of_cycle = shifted.rem_euclid(146_097);
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year = day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_cycle + cycle * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(ms: i64) -> String {
        let mut out = Vec::new();
        push_iso8601_millis(&mut out, ms);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_dates_like_herald() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_755_183_300_000), "2025-08-14T14:55:00.000Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn message_frame_matches_herald_byte_for_byte() {
        let e = Event::new(1, "room-1", "alice", "hi \"x\"", 1_755_183_300_000, None);
        let mut frame = e.head.to_vec();
        frame.extend_from_slice(b"sub-0");
        frame.extend_from_slice(&e.tail);
        let body =
            r#"{"id":1,"roomId":"room-1","sender":"alice","message":"hi \"x\"","sentAt":"2025-08-14T14:55:00.000Z"}"#;
        let expected = format!(
            "MESSAGE\ndestination:/topic/chat.room-1\ncontent-type:application/json\nsubscription:sub-0\n\
             message-id:1\ncontent-length:{}\n\n{body}\0",
            body.len()
        );
        assert_eq!(String::from_utf8(frame).unwrap(), expected);
    }
}
