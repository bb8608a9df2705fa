//! A timer wheel: connections filed under the tick at which they next need a look, so that a
//! timer tick visits the connections that are due, not every connection the reactor holds.
//!
//! Each connection's state machine says when it may next have something to do (`next_check`),
//! and the connection is filed under that tick. Its slot remembers the tick it is filed under;
//! filing it earlier leaves the later entry behind, and an entry whose tick is not its slot's is
//! skipped when its tick comes (lazy removal: no search on reschedule or close).

use std::time::{Duration, Instant};

/// Ticks the wheel spans; a deadline further out is filed at the far end and looked at again then.
const SPOKES: u64 = 512;

pub(super) struct Wheel {
    spokes: Vec<Vec<usize>>,
    epoch: Instant,
    tick: Duration,
    /// The last tick whose connections were handed out.
    done: u64,
}

impl Wheel {
    pub(super) fn new(now: Instant, tick: Duration) -> Wheel {
        Wheel {
            spokes: (0..SPOKES).map(|_| Vec::new()).collect(),
            epoch: now,
            tick: tick.max(Duration::from_millis(1)),
            done: 0,
        }
    }

    /// The first tick at or after `at`.
    fn tick_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch).as_nanos();
        let tick = self.tick.as_nanos();
        u64::try_from(since.div_ceil(tick)).unwrap_or(u64::MAX)
    }

    /// Files `token` to be looked at by `at`, unless it is filed for that time or earlier
    /// already. `filed` is the tick the connection's slot says it is filed under (0: nowhere).
    pub(super) fn schedule(&mut self, token: usize, at: Instant, filed: &mut u64) {
        let tick = self.tick_at(at).clamp(self.done + 1, self.done + SPOKES - 1);
        if *filed > self.done && *filed <= tick {
            return;
        }
        *filed = tick;
        self.spokes[(tick % SPOKES) as usize].push(token);
    }

    /// The connections filed under the ticks up to `now` since the last call, each with the tick
    /// it was filed under (compare with its slot's before looking at it).
    pub(super) fn due(&mut self, now: Instant, out: &mut Vec<(usize, u64)>) {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        let upto = u64::try_from(since / self.tick.as_nanos()).unwrap_or(u64::MAX);
        // Everything is filed less than a turn ahead of `done`: after a long stall, one turn
        // covers every tick missed, each entry with the tick it was filed under.
        let last = upto.min(self.done + SPOKES - 1);
        for tick in self.done + 1..=last {
            let spoke = &mut self.spokes[(tick % SPOKES) as usize];
            out.extend(spoke.drain(..).map(|token| (token, tick)));
            if spoke.capacity() > 1024 {
                spoke.shrink_to(spoke.len().max(64));
            }
        }
        if upto > self.done {
            self.done = upto;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(250);

    #[test]
    fn hands_out_only_what_is_due_and_once() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0, TICK);
        let (mut a, mut b) = (0, 0);
        wheel.schedule(1, t0 + Duration::from_secs(1), &mut a);
        wheel.schedule(2, t0 + Duration::from_secs(10), &mut b);
        let mut due = Vec::new();
        wheel.due(t0 + Duration::from_millis(900), &mut due);
        assert!(due.is_empty());
        wheel.due(t0 + Duration::from_millis(1000), &mut due);
        assert_eq!(due, vec![(1, a)]);
        due.clear();
        wheel.due(t0 + Duration::from_secs(9), &mut due);
        assert!(due.is_empty());
        wheel.due(t0 + Duration::from_secs(11), &mut due);
        assert_eq!(due, vec![(2, b)]);
    }

    #[test]
    fn filing_earlier_leaves_a_stale_entry_filing_later_is_ignored() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0, TICK);
        let mut filed = 0;
        wheel.schedule(7, t0 + Duration::from_secs(5), &mut filed);
        let late = filed;
        wheel.schedule(7, t0 + Duration::from_secs(8), &mut filed);
        assert_eq!(filed, late, "a later time does not refile");
        wheel.schedule(7, t0 + Duration::from_secs(1), &mut filed);
        let early = filed;
        assert!(early < late);
        let mut due = Vec::new();
        wheel.due(t0 + Duration::from_secs(6), &mut due);
        let live: Vec<_> = due.iter().filter(|(_, tick)| *tick == filed).collect();
        assert_eq!(live, vec![&(7, early)], "the stale entry is told apart by its tick");
    }

    #[test]
    fn the_past_is_the_next_tick_and_the_far_future_the_far_end() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0, TICK);
        let mut due = Vec::new();
        wheel.due(t0 + Duration::from_secs(3), &mut due);
        let (mut past, mut far) = (0, 0);
        wheel.schedule(1, t0, &mut past);
        wheel.schedule(2, t0 + Duration::from_secs(3600), &mut far);
        assert_eq!(past, 13);
        assert_eq!(far, 12 + SPOKES - 1);
        wheel.due(t0 + Duration::from_millis(3250), &mut due);
        assert_eq!(due, vec![(1, 13)]);
        due.clear();
        wheel.due(t0 + Duration::from_secs(3600), &mut due);
        assert_eq!(due, vec![(2, far)], "looked at again at the far end, after a stall");
    }
}
