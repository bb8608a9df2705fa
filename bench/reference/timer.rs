//! A hashed timer wheel: each connection is filed under the tick of its next deadline, so a tick costs time in
//! proportion to the connections due then, not to all connections.

/// Slots of the wheel; a deadline further than this many ticks ahead is filed at the horizon and re-filed then.
const SLOTS: u64 = 256;

/// Tokens filed by tick.
pub struct Wheel {
    slots: Vec<Vec<usize>>,
    current: u64,
}

impl Wheel {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            current: 0,
        }
    }

    /// Files `token` under `tick` (at least the next tick, at most the horizon) unless `filed`, the tick it is filed
    /// under already (0: none), comes no later. `filed` is updated; an entry whose tick no longer matches it is stale.
    pub fn schedule(&mut self, token: usize, filed: &mut u64, tick: u64) {
        let tick = tick.clamp(self.current + 1, self.current + SLOTS - 1);
        if *filed != 0 && *filed <= tick {
            return;
        }
        *filed = tick;
        self.slots[(tick % SLOTS) as usize].push(token);
    }

    /// Moves to `now_tick` and returns every `(token, tick)` filed on the way.
    pub fn advance(&mut self, now_tick: u64) -> Vec<(usize, u64)> {
        let mut due = Vec::new();
        while self.current < now_tick {
            self.current += 1;
            let tick = self.current;
            due.extend(self.slots[(tick % SLOTS) as usize].drain(..).map(|t| (t, tick)));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_the_earliest_filing_and_marks_later_ones_stale() {
        let mut w = Wheel::new();
        let (mut a, mut b) = (0, 0);
        w.schedule(1, &mut a, 5);
        w.schedule(1, &mut a, 9); // later than already filed: ignored
        w.schedule(2, &mut b, 9);
        w.schedule(2, &mut b, 3); // earlier: re-filed, the tick-9 entry becomes stale
        assert_eq!((a, b), (5, 3));
        assert_eq!(w.advance(4), vec![(2, 3)]);
        assert_eq!(w.advance(9), vec![(1, 5), (2, 9)]);
        let mut c = 0;
        w.schedule(3, &mut c, 100_000);
        assert_eq!(c, 9 + SLOTS - 1);
        w.schedule(4, &mut 0, 0);
        assert_eq!(w.advance(10), vec![(4, 10)]);
    }
}
