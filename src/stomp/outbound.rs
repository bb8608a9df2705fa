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
    let mut out = Vec::with_capacity(160 + 2 * subscription.len() + room.len() + body.len());
    out.extend_from_slice(b"MESSAGE\ndestination:");
    out.extend_from_slice(ROOM_PREFIX.as_bytes());
    out.extend_from_slice(room.as_bytes());
    out.extend_from_slice(b"\ncontent-type:application/json\nsubscription:");
    frame::escape_into(subscription, &mut out);
    let _ = write!(out, "\nmessage-id:{id}");
    if client_ack {
        out.extend_from_slice(b"\nack:");
        frame::escape_into(subscription, &mut out);
        let _ = write!(out, "/{id}");
    }
    let _ = write!(out, "\ncontent-length:{}\n\n", body.len());
    out.extend_from_slice(body.as_bytes());
    out.push(0);
    out
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
