//! The stateful side of STOMP decoding: a WebSocket message may carry several frames, or part of
//! one whose rest comes in the next message. [`Decoder`] owns that partial input between
//! messages and hands out whole frames; it is sans-io (bytes in, frames out).
//!
//! Frames are decoded straight from the message when nothing is pending; only the unfinished tail
//! of a message is copied, so an idle session holds no parse buffer at all.

use super::frame::{self, Decoded, Frame, FrameError, Limits};

/// Whether the caller wants more frames from the current input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep decoding.
    Continue,
    /// Stop (the session closed): what is left of the input is dropped.
    Stop,
    /// Hand out nothing more for now (the session wants no more input until its SENDs commit):
    /// what is left is kept, and [`Decoder::resume`] hands it out later.
    Pause,
}

/// Partial STOMP input carried from one WebSocket message to the next.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Vec<u8>,
    /// `pending` may hold whole frames held back by [`Flow::Pause`].
    paused: bool,
}

impl Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Bytes of an unfinished frame (or of frames held back by a pause) held since the last input.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Whether frames held back by [`Flow::Pause`] wait for [`Decoder::resume`]: resume before
    /// feeding new input, so that frames keep their order.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Hands out the frames held back by a pause, as [`Decoder::feed`] does with no new input.
    pub fn resume(&mut self, limits: &Limits, on_frame: impl FnMut(Frame) -> Flow) -> Result<(), FrameError> {
        self.feed(&[], limits, on_frame)
    }

    /// Decodes every whole frame of what was pending plus `input`, in order, handing each to
    /// `on_frame` (heart-beats are consumed silently). The unfinished tail is kept for the next
    /// call. After an error, or when `on_frame` says [`Flow::Stop`], everything pending is
    /// dropped: the position in the stream is lost and the session ends. When `on_frame` says
    /// [`Flow::Pause`], the rest is kept for [`Decoder::resume`].
    pub fn feed(
        &mut self,
        input: &[u8],
        limits: &Limits,
        mut on_frame: impl FnMut(Frame) -> Flow,
    ) -> Result<(), FrameError> {
        self.paused = false;
        let carried = !self.pending.is_empty();
        if carried {
            self.pending.extend_from_slice(input);
        }
        let result = {
            let buf: &[u8] = if carried { &self.pending } else { input };
            decode_all(buf, limits, &mut on_frame)
        };
        match result {
            Ok(Progress::Consumed(used)) => {
                if carried {
                    self.pending.drain(..used);
                    if self.pending.is_empty() {
                        // Give the memory back: most sessions go idle right after.
                        self.pending = Vec::new();
                    }
                } else if used < input.len() {
                    self.pending.extend_from_slice(&input[used..]);
                }
                Ok(())
            }
            Ok(Progress::Paused(used)) => {
                if carried {
                    self.pending.drain(..used);
                } else {
                    self.pending.extend_from_slice(&input[used..]);
                }
                self.paused = true;
                Ok(())
            }
            Ok(Progress::Stopped) => {
                self.pending = Vec::new();
                Ok(())
            }
            Err(e) => {
                self.pending = Vec::new();
                Err(e)
            }
        }
    }
}

enum Progress {
    /// Every whole frame was handed out; this many bytes were used.
    Consumed(usize),
    /// The caller paused after the frame that ends at this many bytes.
    Paused(usize),
    Stopped,
}

fn decode_all(buf: &[u8], limits: &Limits, on_frame: &mut impl FnMut(Frame) -> Flow) -> Result<Progress, FrameError> {
    let mut used = 0;
    while let Some((decoded, n)) = frame::decode(&buf[used..], limits)? {
        used += n;
        if let Decoded::Frame(f) = decoded {
            match on_frame(f) {
                Flow::Continue => {}
                Flow::Stop => return Ok(Progress::Stopped),
                Flow::Pause => return Ok(Progress::Paused(used)),
            }
        }
    }
    Ok(Progress::Consumed(used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::frame::Command;

    fn frames_of(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut out = Vec::new();
        decoder.feed(input, &Limits::default(), |f| {
            out.push(f);
            Flow::Continue
        })?;
        Ok(out)
    }

    const TWO: &[u8] = b"SEND\ndestination:/a\n\nhello\0\nSUBSCRIBE\nid:1\ndestination:/b\n\n\0";

    #[test]
    fn split_at_every_offset_gives_the_same_frames() {
        let whole = frames_of(&mut Decoder::new(), TWO).expect("decodes");
        assert_eq!(whole.len(), 2);
        for cut in 0..=TWO.len() {
            let mut d = Decoder::new();
            let mut got = frames_of(&mut d, &TWO[..cut]).expect("first part");
            got.extend(frames_of(&mut d, &TWO[cut..]).expect("second part"));
            assert_eq!(got, whole, "cut at {cut}");
            assert_eq!(d.pending_bytes(), 0, "nothing left after the whole input (cut {cut})");
        }
    }

    #[test]
    fn byte_by_byte_and_many_frames_in_one_input() {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in TWO {
            got.extend(frames_of(&mut d, std::slice::from_ref(b)).expect("byte"));
        }
        assert_eq!(got.len(), 2);
        let many: Vec<u8> = TWO.iter().copied().cycle().take(TWO.len() * 50).collect();
        assert_eq!(frames_of(&mut Decoder::new(), &many).expect("many").len(), 100);
    }

    #[test]
    fn a_partial_frame_is_held_and_released() {
        let mut d = Decoder::new();
        assert!(frames_of(&mut d, b"SEND\ndest").expect("partial").is_empty());
        assert_eq!(d.pending_bytes(), 9);
        let got = frames_of(&mut d, b"ination:/a\n\n\0").expect("rest");
        assert_eq!(got[0].command, Command::Send);
        assert_eq!(got[0].header("destination"), Some("/a"));
        assert_eq!(d.pending_bytes(), 0);
    }

    #[test]
    fn an_error_or_a_stop_drops_what_is_pending() {
        let mut d = Decoder::new();
        assert!(frames_of(&mut d, b"SEND\n").expect("partial").is_empty());
        assert_eq!(frames_of(&mut d, b"bad header\n\n\0"), Err(FrameError::MalformedHeader));
        assert_eq!(d.pending_bytes(), 0);

        let mut seen = 0;
        d.feed(TWO, &Limits::default(), |_| {
            seen += 1;
            Flow::Stop
        })
        .expect("stop is not an error");
        assert_eq!(seen, 1, "nothing is handed out after Stop");
        assert_eq!(d.pending_bytes(), 0);
    }

    #[test]
    fn the_frame_limit_holds_across_inputs() {
        let limits = Limits {
            max_frame_bytes: 64,
            max_headers: 8,
        };
        let mut d = Decoder::new();
        let head = b"SEND\ndestination:/a\n\n";
        d.feed(head, &limits, |_| Flow::Continue).expect("head");
        let body = vec![b'x'; 100];
        let result = d.feed(&body, &limits, |_| Flow::Continue);
        assert_eq!(result, Err(FrameError::FrameTooLarge));
    }

    #[test]
    fn a_pause_keeps_the_rest_in_order_until_resumed() {
        let many: Vec<u8> = TWO.iter().copied().cycle().take(TWO.len() * 3).collect();
        let whole = frames_of(&mut Decoder::new(), &many).expect("decodes");
        assert_eq!(whole.len(), 6);
        for carried_tail in [false, true] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let (first, rest) = if carried_tail {
                many.split_at(7)
            } else {
                many.split_at(many.len())
            };
            if carried_tail {
                d.feed(first, &Limits::default(), |f| {
                    got.push(f);
                    Flow::Continue
                })
                .expect("partial");
            }
            let input = if carried_tail { rest } else { first };
            // Pause after every frame: one frame per call, nothing lost, nothing reordered.
            d.feed(input, &Limits::default(), |f| {
                got.push(f);
                Flow::Pause
            })
            .expect("paused");
            while d.is_paused() {
                d.resume(&Limits::default(), |f| {
                    got.push(f);
                    Flow::Pause
                })
                .expect("resumed");
            }
            assert_eq!(got, whole, "carried tail: {carried_tail}");
            assert_eq!(d.pending_bytes(), 0);
        }
        // Resuming with only an unfinished tail pending hands out nothing and keeps it.
        let mut d = Decoder::new();
        assert!(frames_of(&mut d, b"SEND\n").expect("partial").is_empty());
        d.resume(&Limits::default(), |_| panic!("no whole frame"))
            .expect("nothing");
        assert_eq!(d.pending_bytes(), 5);
        assert!(!d.is_paused());
    }
}
