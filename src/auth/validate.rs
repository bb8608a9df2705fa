//! Request field validation (SPEC §3) and `@mention` extraction.
//!
//! Every check is hand-written over bytes or chars: no regex, no allocation on the accept path,
//! and no panic on any input. Errors are Korean human messages that name the field; the caller
//! wraps them in a 400 `INVALID_REQUEST`.

use crate::text::Text;

/// Shortest allowed username, in characters.
pub const USERNAME_MIN: usize = 3;
/// Longest allowed username, in characters.
pub const USERNAME_MAX: usize = 32;
/// Shortest allowed password, in characters (Unicode scalar values).
pub const PASSWORD_MIN: usize = 8;
/// Longest allowed password, in characters (Unicode scalar values).
pub const PASSWORD_MAX: usize = 128;
/// Longest allowed room id, in characters.
pub const ROOM_ID_MAX: usize = 64;
/// Most distinct users one chat message may mention; further mentions are ignored.
pub const MAX_MENTIONS: usize = 20;

const USERNAME_ERROR: &str = Text::UsernameRule.ko();
const PASSWORD_ERROR: &str = Text::PasswordRule.ko();
const ROOM_ID_ERROR: &str = Text::RoomIdRule.ko();
const MESSAGE_EMPTY_ERROR: &str = Text::MessageBlank.ko();
const MESSAGE_TOO_LONG_ERROR: &str = Text::MessageTooLong.ko();

/// True for the bytes of the username alphabet `[A-Za-z0-9_.-]`.
fn is_username_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// True for the bytes of the room-id alphabet `[A-Za-z0-9_-]`.
fn is_room_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// Checks a username against `[A-Za-z0-9_.-]{3,32}`.
pub fn username(s: &str) -> Result<(), &'static str> {
    // The alphabet is ASCII, so byte length equals character length once every byte passes.
    let ok = (USERNAME_MIN..=USERNAME_MAX).contains(&s.len()) && s.bytes().all(is_username_byte);
    if ok {
        Ok(())
    } else {
        Err(USERNAME_ERROR)
    }
}

/// Checks that a password is 8–128 characters long (Unicode scalar values, any content).
pub fn password(s: &str) -> Result<(), &'static str> {
    // `take` bounds the count so a megabyte-long password costs no more than a 129-char one.
    let chars = s.chars().take(PASSWORD_MAX + 1).count();
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&chars) {
        Ok(())
    } else {
        Err(PASSWORD_ERROR)
    }
}

/// Checks a room id against `[A-Za-z0-9_-]{1,64}`.
pub fn room_id(s: &str) -> Result<(), &'static str> {
    let ok = (1..=ROOM_ID_MAX).contains(&s.len()) && s.bytes().all(is_room_id_byte);
    if ok {
        Ok(())
    } else {
        Err(ROOM_ID_ERROR)
    }
}

/// Checks a chat message: 1..=`max_chars` characters, untrimmed, and not empty or whitespace-only.
pub fn chat_message(s: &str, max_chars: usize) -> Result<(), &'static str> {
    if s.chars().all(char::is_whitespace) {
        // Also covers the empty string.
        return Err(MESSAGE_EMPTY_ERROR);
    }
    if s.chars().take(max_chars.saturating_add(1)).count() > max_chars {
        return Err(MESSAGE_TOO_LONG_ERROR);
    }
    Ok(())
}

/// The distinct `@username` mentions of `text` in order of first appearance, minus `sender`, at most 20.
///
/// A mention is an `@` at the start of the text or after a character outside the username
/// alphabet (so `mail@example.com` is not one), followed by the longest run of username
/// characters with trailing `.` removed (sentences end with one). Runs that are then shorter
/// than 3 or longer than 32 characters are not mentions; they are never truncated into one.
pub fn mentions(text: &str, sender: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() && found.len() < MAX_MENTIONS {
        // Non-ASCII characters are multi-byte sequences of bytes >= 0x80, none of which is `@` or
        // a username byte, so scanning bytes sees them as separators, as it should.
        let at_boundary = i == 0 || !is_username_byte(bytes[i - 1]);
        if bytes[i] != b'@' || !at_boundary {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && is_username_byte(bytes[end]) {
            end += 1;
        }
        let mut name_end = end;
        while name_end > start && bytes[name_end - 1] == b'.' {
            name_end -= 1;
        }
        // Both bounds sit on ASCII bytes (or the end), so this slice is on char boundaries.
        if let Some(name) = text.get(start..name_end) {
            let unseen = !found.iter().any(|f| f == name);
            if username(name).is_ok() && name != sender && unseen {
                found.push(name.to_owned());
            }
        }
        i = end.max(i + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_length_boundaries() {
        assert!(username("ab").is_err());
        assert!(username("abc").is_ok());
        assert!(username(&"a".repeat(32)).is_ok());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(username("").is_err());
    }

    #[test]
    fn username_alphabet() {
        assert!(username("A.b_c-9").is_ok());
        assert!(username("...").is_ok());
        for bad in ["ab c", "abc!", "한글이름", "abç", "abc\0", "ab@c", "a/bc", "abc\n"] {
            assert!(username(bad).is_err(), "{bad:?} accepted");
        }
        // Three chars but six bytes: must not pass on length alone.
        assert!(username("가나다").is_err());
    }

    #[test]
    fn username_error_names_field() {
        assert_eq!(
            username("x"),
            Err("username은(는) 3~32자의 영문, 숫자, _ . - 만 사용할 수 있습니다")
        );
    }

    #[test]
    fn password_boundaries_in_chars() {
        assert!(password(&"a".repeat(7)).is_err());
        assert!(password(&"a".repeat(8)).is_ok());
        assert!(password(&"a".repeat(128)).is_ok());
        assert!(password(&"a".repeat(129)).is_err());
        // Multibyte: 8 chars is 24 bytes, 128 chars is 384 bytes; counted as chars.
        assert!(password(&"비".repeat(7)).is_err());
        assert!(password(&"비".repeat(8)).is_ok());
        assert!(password(&"비".repeat(128)).is_ok());
        assert!(password(&"비".repeat(129)).is_err());
        assert!(password(&"😀".repeat(128)).is_ok());
        assert!(password("").is_err());
        assert!(password(&"a".repeat(1 << 20)).is_err());
        assert!(password("pass word").is_ok());
        assert!(password("short").unwrap_err().starts_with("password"));
    }

    #[test]
    fn room_id_boundaries() {
        assert!(room_id("").is_err());
        assert!(room_id("a").is_ok());
        assert!(room_id(&"r".repeat(64)).is_ok());
        assert!(room_id(&"r".repeat(65)).is_err());
        assert!(room_id("room-1").is_ok());
        assert!(room_id("Room_2-x").is_ok());
        for bad in ["room.1", "room 1", "room/1", "방", "room:1", "room\t"] {
            assert!(room_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(room_id("").unwrap_err().starts_with("roomId"));
    }

    #[test]
    fn chat_message_boundaries_with_multibyte() {
        assert!(chat_message("", 2000).is_err());
        assert!(chat_message("안", 2000).is_ok());
        assert!(chat_message("a", 2000).is_ok());
        assert!(chat_message(&"안".repeat(2000), 2000).is_ok());
        assert!(chat_message(&"안".repeat(2001), 2000).is_err());
        assert!(chat_message(&"😀".repeat(2000), 2000).is_ok());
        assert!(chat_message(&"😀".repeat(2001), 2000).is_err());
        assert!(chat_message(&"a".repeat(2000), 2000).is_ok());
        assert!(chat_message(&"a".repeat(2001), 2000).is_err());
        assert!(chat_message("", 2000).unwrap_err().starts_with("message"));
        assert!(chat_message(&"a".repeat(2001), 2000)
            .unwrap_err()
            .starts_with("message"));
    }

    #[test]
    fn chat_message_whitespace_only_rejected_but_not_trimmed() {
        for blank in [" ", "   ", "\n", "\t \r\n", "\u{3000}", "\u{a0}"] {
            assert!(chat_message(blank, 2000).is_err(), "{blank:?} accepted");
        }
        assert!(chat_message("  hi  ", 2000).is_ok());
        // Untrimmed: surrounding spaces count towards the limit.
        assert!(chat_message(" ab ", 3).is_err());
        assert!(chat_message(" ab", 3).is_ok());
        assert!(chat_message("x", 0).is_err());
        assert!(chat_message("x", usize::MAX).is_ok());
    }

    fn m(text: &str, sender: &str) -> Vec<String> {
        mentions(text, sender)
    }

    #[test]
    fn mentions_basic_and_order() {
        assert_eq!(m("@bob hi", "alice"), ["bob"]);
        assert_eq!(m("hi @bob and @carol!", "alice"), ["bob", "carol"]);
        assert_eq!(m("@carol @bob @carol @bob", "alice"), ["carol", "bob"]);
        assert!(m("no mentions here", "alice").is_empty());
        assert!(m("", "alice").is_empty());
    }

    #[test]
    fn mentions_exclude_sender() {
        assert_eq!(m("@alice @bob @alice", "alice"), ["bob"]);
        assert!(m("@alice", "alice").is_empty());
    }

    #[test]
    fn mentions_need_a_boundary_before_at() {
        assert!(m("mail me at bob@example.com", "alice").is_empty());
        assert!(m("bob@carol", "alice").is_empty());
        assert_eq!(m("(@bob)", "alice"), ["bob"]);
        assert_eq!(m("안녕@bob", "alice"), ["bob"]);
        assert_eq!(m("@@bob", "alice"), ["bob"]);
        assert_eq!(m("@bob@carol", "alice"), ["bob"]);
        assert_eq!(m("hey,@bob", "alice"), ["bob"]);
    }

    #[test]
    fn mentions_strip_trailing_dots_only() {
        assert_eq!(m("thanks @bob.", "alice"), ["bob"]);
        assert_eq!(m("thanks @bob...", "alice"), ["bob"]);
        assert_eq!(m("@alice.kim said hi", "x"), ["alice.kim"]);
        assert_eq!(m("@bob-1_x.y.", "x"), ["bob-1_x.y"]);
        assert_eq!(m("@bob's", "x"), ["bob"]);
        assert_eq!(m("@bob님 안녕", "x"), ["bob"]);
    }

    #[test]
    fn mentions_length_limits() {
        assert!(m("@ab", "x").is_empty());
        assert!(m("@ab.", "x").is_empty());
        assert_eq!(m("@abc", "x"), ["abc"]);
        let max = "u".repeat(32);
        assert_eq!(m(&format!("@{max}."), "x"), [max.as_str()]);
        // Too long: not truncated into a 32-char mention.
        assert!(m(&format!("@{max}u"), "x").is_empty());
        assert!(m("@", "x").is_empty());
        assert!(m("@ @. @!", "x").is_empty());
        assert!(m("@...", "x").is_empty());
    }

    #[test]
    fn mentions_capped_at_twenty() {
        let text: String = (0..30).map(|i| format!("@user{i:02} ")).collect();
        let got = m(&text, "x");
        assert_eq!(got.len(), MAX_MENTIONS);
        assert_eq!(got[0], "user00");
        assert_eq!(got[19], "user19");
        // The sender does not use up a slot.
        let got = m(&format!("@user00 {text}"), "user00");
        assert_eq!(got.len(), MAX_MENTIONS);
        assert_eq!(got[0], "user01");
    }

    #[test]
    fn mentions_never_panic_on_odd_input() {
        for text in ["@", "@@@@", "a@", "@\u{0}", "@😀@bob", "\u{FFFD}@bob", "@.bob"] {
            let _ = m(text, "x");
        }
        assert_eq!(m("@😀@bob", "x"), ["bob"]);
        assert_eq!(m("@.bob", "x"), [".bob"]);
    }
}
