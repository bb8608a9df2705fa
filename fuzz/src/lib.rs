//! Helpers shared by Herald's fuzz targets.

/// Splits a fuzz input into the pieces a peer's reads (or WebSocket messages) would deliver.
///
/// The input starts with a plan: one byte whose low three bits give the number of size bytes
/// (1 to 8), then that many size bytes, used in turn as the length of each piece. A size of 0
/// yields an empty piece (an empty read must be harmless too). Everything after the plan is the
/// stream. Letting the fuzzer choose the cut points finds splits that a fixed chunk size misses.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    sizes: &'a [u8],
    next_size: usize,
    stream: &'a [u8],
    pos: usize,
}

impl<'a> Chunks<'a> {
    /// Reads the plan from the front of `data`; `None` when `data` is too short to hold one.
    pub fn new(data: &'a [u8]) -> Option<Chunks<'a>> {
        let (&count, rest) = data.split_first()?;
        let count = usize::from(count % 8) + 1;
        if rest.len() < count {
            return None;
        }
        let (sizes, stream) = rest.split_at(count);
        Some(Chunks {
            sizes,
            next_size: 0,
            stream,
            pos: 0,
        })
    }

    /// The whole stream, as one read would deliver it.
    pub fn stream(&self) -> &'a [u8] {
        self.stream
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.stream.len() {
            return None;
        }
        // A plan of zeros alone would never make progress: then the rest comes in one piece.
        let size = if self.sizes.iter().all(|&s| s == 0) {
            self.stream.len() - self.pos
        } else {
            usize::from(self.sizes[self.next_size % self.sizes.len()])
        };
        self.next_size += 1;
        let end = (self.pos + size).min(self.stream.len());
        let piece = &self.stream[self.pos..end];
        self.pos = end;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_stream_in_order() {
        // Two size bytes (count 1 -> 2): 3, then 0, then 3, ...
        let data = [1, 3, 0, b'a', b'b', b'c', b'd', b'e', b'f', b'g'];
        let pieces: Vec<&[u8]> = Chunks::new(&data).expect("plan").collect();
        assert_eq!(pieces, vec![&b"abc"[..], b"", b"def", b"", b"g"]);
        let zeros = [0, 0, b'x', b'y'];
        let pieces: Vec<&[u8]> = Chunks::new(&zeros).expect("plan").collect();
        assert_eq!(pieces, vec![&b"xy"[..]]);
        assert!(Chunks::new(&[3, 1]).is_none());
    }
}
