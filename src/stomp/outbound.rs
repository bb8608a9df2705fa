//! The bytes the server writes: whole frames with their `content-length`, the fan-out `MESSAGE`
//! of a room (encoded once per subscription id, not per subscriber), and the heart-beat.

use std::io::Write as _;

use super::frame::{self, Frame};
use super::session::ROOM_PREFIX;

/// A heart-beat: one end-of-line between frames.
pub const HEARTBEAT: &[u8] = b"\n";

/// The wire form of a frame the server sends, with `content-length` added when it has a body.
pub fn wire(f: &Frame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64 + f.body.len());
    if !f.body.is_empty() && f.header("content-length").is_none() {
        let mut with_length = f.clone();
        with_length
            .headers
            .push(("content-length".into(), f.body.len().to_string()));
        frame::encode(&with_length, &mut bytes);
    } else {
        frame::encode(f, &mut bytes);
    }
    bytes
}

/// `MESSAGE` of room `room` for one subscription id: `destination`, `content-type`,
/// `subscription`, `message-id` (the message's id), with `client_ack` an `ack` header
/// (`<subscription>/<id>`, see `session::ack_id`), `content-length`, the JSON body, NUL.
pub fn room_message(room: &str, id: i64, body: &str, subscription: &str, client_ack: bool) -> Vec<u8> {
    let message = RoomMessage::new(room, id, body);
    let mut out = Vec::with_capacity(message.len_for(subscription, client_ack));
    message.write_for(subscription, client_ack, &mut out);
    out
}

/// A room `MESSAGE` encoded once per event, for any number of subscribers: everything but the
/// `subscription` (and `ack`) header is shared, and [`RoomMessage::write_for`] splices those in
/// while it appends one subscriber's copy to an output buffer, with no allocation of its own.
#[derive(Debug, Clone)]
pub struct RoomMessage {
    /// `MESSAGE`, `destination`, `content-type`, and `subscription:` awaiting its value.
    head: Vec<u8>,
    /// The message id, as decimal text.
    id: String,
    /// `content-length`, the blank line, the body and the NUL.
    tail: Vec<u8>,
}

impl RoomMessage {
    pub fn new(room: &str, id: i64, body: &str) -> RoomMessage {
        let mut head = Vec::with_capacity(64 + room.len());
        head.extend_from_slice(b"MESSAGE\ndestination:");
        head.extend_from_slice(ROOM_PREFIX.as_bytes());
        head.extend_from_slice(room.as_bytes());
        head.extend_from_slice(b"\ncontent-type:application/json\nsubscription:");
        let mut tail = Vec::with_capacity(24 + body.len());
        let _ = write!(tail, "\ncontent-length:{}\n\n", body.len());
        tail.extend_from_slice(body.as_bytes());
        tail.push(0);
        RoomMessage {
            head,
            id: id.to_string(),
            tail,
        }
    }

    /// The length of the frame for this subscription id and ack mode.
    pub fn len_for(&self, subscription: &str, client_ack: bool) -> usize {
        let sub = frame::escaped_len(subscription);
        let ack = if client_ack {
            b"\nack:".len() + sub + 1 + self.id.len()
        } else {
            0
        };
        self.head.len() + sub + b"\nmessage-id:".len() + self.id.len() + ack + self.tail.len()
    }

    /// Appends the frame for this subscription id and ack mode to `out`.
    pub fn write_for(&self, subscription: &str, client_ack: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        frame::escape_into(subscription, out);
        out.extend_from_slice(b"\nmessage-id:");
        out.extend_from_slice(self.id.as_bytes());
        if client_ack {
            out.extend_from_slice(b"\nack:");
            frame::escape_into(subscription, out);
            out.push(b'/');
            out.extend_from_slice(self.id.as_bytes());
        }
        out.extend_from_slice(&self.tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::frame::{decode, Command, Decoded, Limits};

    #[test]
    fn room_message_decodes_with_every_header() {
        let bytes = room_message("room-1", 7, r#"{"id":7}"#, "sub:0", false);
        let Ok(Some((Decoded::Frame(f), used))) = decode(&bytes, &Limits::default()) else {
            panic!("does not decode");
        };
        assert_eq!(used, bytes.len());
        assert_eq!(f.command, Command::Message);
        assert_eq!(f.header("destination"), Some("/topic/chat.room-1"));
        assert_eq!(f.header("subscription"), Some("sub:0"), "escaped and unescaped back");
        assert_eq!(f.header("message-id"), Some("7"));
        assert_eq!(f.header("content-type"), Some("application/json"));
        assert_eq!(f.header("content-length"), Some("8"));
        assert_eq!(f.body, br#"{"id":7}"#);
        assert_eq!(f.header("ack"), None, "auto mode: no ack header");
    }

    #[test]
    fn client_ack_room_message_carries_the_session_ack_id() {
        let bytes = room_message("room-1", 7, "{}", "s/1", true);
        let Ok(Some((Decoded::Frame(f), _))) = decode(&bytes, &Limits::default()) else {
            panic!("does not decode");
        };
        assert_eq!(
            f.header("ack"),
            Some(crate::stomp::session::ack_id("s/1", "7").as_str())
        );
        assert_eq!(f.header("ack"), Some("s/1/7"));
    }

    #[test]
    fn shared_encoding_gives_each_subscriber_its_own_exact_frame() {
        let message = RoomMessage::new("room-1", 42, r#"{"m":"a:b"}"#);
        for (sub, ack) in [("sub-0", false), ("s:1\\x", true), ("", false), ("\n\r", true)] {
            let mut out = b"before".to_vec();
            message.write_for(sub, ack, &mut out);
            assert_eq!(out.len() - 6, message.len_for(sub, ack), "{sub:?}");
            let Ok(Some((Decoded::Frame(f), used))) = decode(&out[6..], &Limits::default()) else {
                panic!("does not decode for {sub:?}");
            };
            assert_eq!(used, out.len() - 6);
            assert_eq!(f.header("subscription"), Some(sub));
            assert_eq!(f.header("message-id"), Some("42"));
            assert_eq!(f.header("destination"), Some("/topic/chat.room-1"));
            let expected_ack = format!("{sub}/42");
            assert_eq!(f.header("ack"), ack.then_some(expected_ack.as_str()));
            assert_eq!(f.body, br#"{"m":"a:b"}"#);
        }
    }

    #[test]
    fn wire_adds_content_length_once() {
        let f = Frame::new(Command::Receipt).with_header("receipt-id", "r");
        assert_eq!(wire(&f), b"RECEIPT\nreceipt-id:r\n\n\0");
        let f = Frame::new(Command::Error).with_body("x\0y");
        assert_eq!(wire(&f), b"ERROR\ncontent-length:3\n\nx\0y\0");
    }

    #[test]
    fn every_escape_survives_fan_out_and_server_frames() {
        use crate::stomp::session::error_frame;
        for (meant, wire) in [(":", "\\c"), ("\n", "\\n"), ("\r", "\\r"), ("\\", "\\\\")] {
            let sub = format!("s{meant}1");
            // Fan-out MESSAGE: subscription and ack are escaped, and decode back.
            let bytes = room_message("room-1", 9, "{}", &sub, true);
            let text = String::from_utf8(bytes.clone()).expect("utf-8");
            assert!(text.contains(&format!("\nsubscription:s{wire}1\n")), "{text:?}");
            assert!(text.contains(&format!("\nack:s{wire}1/9\n")), "{text:?}");
            let Ok(Some((Decoded::Frame(f), _))) = decode(&bytes, &Limits::default()) else {
                panic!("does not decode: {text:?}");
            };
            assert_eq!(f.header("subscription"), Some(sub.as_str()));
            assert_eq!(f.header("ack"), Some(format!("{sub}/9").as_str()));

            // ERROR: message and receipt-id.
            let error = wire_text(&error_frame(
                &format!("bad{meant}x"),
                "detail",
                Some(&format!("r{meant}")),
            ));
            assert!(error.contains(&format!("\nmessage:bad{wire}x\n")), "{error:?}");
            assert!(error.contains(&format!("\nreceipt-id:r{wire}\n")), "{error:?}");
            // RECEIPT.
            let receipt = Frame::new(Command::Receipt).with_header("receipt-id", format!("r{meant}"));
            assert_eq!(wire_text(&receipt), format!("RECEIPT\nreceipt-id:r{wire}\n\n\0"));
            // CONNECTED is exempt: a colon or backslash goes out as is (CR and LF are dropped).
            let connected = Frame::new(Command::Connected).with_header("user-name", format!("u{meant}"));
            let raw = if meant == ":" || meant == "\\" { meant } else { "" };
            assert_eq!(wire_text(&connected), format!("CONNECTED\nuser-name:u{raw}\n\n\0"));
        }
    }

    fn wire_text(f: &Frame) -> String {
        String::from_utf8(wire(f)).expect("utf-8")
    }
}
