//! A bounded-memory sliding-window rate limiter keyed by string (client IP, username, …).
//!
//! Each key keeps two fixed-window counters, the current and the previous one; the number of
//! events "in the last `window`" is estimated as `previous × (unexpired share of the previous
//! window) + current`. This smooths the 2× burst a plain fixed window allows at its boundary,
//! at a constant 40-odd bytes per key whatever `max_events` is. Rejected events are not counted,
//! so a client that keeps hammering is not locked out for longer than the limit says.
//!
//! Memory is capped at `max_keys` entries. When a new key arrives at the cap, one sweep drops
//! every idle key (nothing in the last two windows, so forgetting it changes no answer); if that
//! frees less than an eighth of the cap, the least recently seen keys go too. Evicting in
//! batches keeps the sweep amortised O(1) per new key even under a flood of distinct keys; the
//! price is that a flood can make the limiter forget a quiet key's count.
//!
//! Time is passed in (`now`), so tests run without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per-key state: two adjacent fixed windows.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Start of the current fixed window.
    start: Instant,
    /// Events accepted in the window before `start`.
    previous: u32,
    /// Events accepted since `start`.
    current: u32,
    /// Last time this key was checked, for least-recently-seen eviction.
    last_seen: Instant,
}

/// Sliding-window limiter: at most `max_events` per `window` per key, over at most `max_keys` keys.
#[derive(Debug)]
pub struct RateLimiter {
    max_events: u32,
    window: Duration,
    max_keys: usize,
    keys: HashMap<String, Window>,
}

impl RateLimiter {
    /// Creates a limiter; a zero `window` is treated as 1 ns and a zero `max_keys` as 1.
    pub fn new(max_events: u32, window: Duration, max_keys: usize) -> RateLimiter {
        RateLimiter {
            max_events,
            window: window.max(Duration::from_nanos(1)),
            max_keys: max_keys.max(1),
            keys: HashMap::new(),
        }
    }

    /// Records one event for `key` at `now`; Err(retry_after) when over the limit (retry_after ≥ 1 s, rounded up to whole seconds).
    pub fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        let (max_events, window) = (self.max_events, self.window);
        if let Some(state) = self.keys.get_mut(key) {
            return admit(state, max_events, window, now);
        }
        if self.keys.len() >= self.max_keys {
            self.evict(now);
        }
        let mut state = Window {
            start: now,
            previous: 0,
            current: 0,
            last_seen: now,
        };
        let verdict = admit(&mut state, max_events, window, now);
        self.keys.insert(key.to_owned(), state);
        verdict
    }

    /// Number of keys currently tracked (never more than `max_keys`).
    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    /// Frees room for at least one new key; see the module docs for the policy.
    fn evict(&mut self, now: Instant) {
        let idle_after = self.window.saturating_mul(2);
        self.keys
            .retain(|_, w| now.saturating_duration_since(w.last_seen) < idle_after);
        let target = self.max_keys - (self.max_keys / 8).max(1);
        if self.keys.len() <= target {
            return;
        }
        let excess = self.keys.len() - target;
        let mut by_age: Vec<(Instant, &String)> = self.keys.iter().map(|(k, w)| (w.last_seen, k)).collect();
        by_age.select_nth_unstable_by_key(excess - 1, |(seen, _)| *seen);
        let doomed: Vec<String> = by_age[..excess].iter().map(|(_, k)| (*k).clone()).collect();
        for key in doomed {
            self.keys.remove(&key);
        }
        debug_assert!(self.keys.len() < self.max_keys);
    }
}

/// Rolls `state` forward to `now`, then accepts and counts one event or returns the wait.
fn admit(state: &mut Window, max_events: u32, window: Duration, now: Instant) -> Result<(), Duration> {
    state.last_seen = state.last_seen.max(now);
    let elapsed = now.saturating_duration_since(state.start);
    if elapsed >= window.saturating_mul(2) {
        *state = Window {
            start: now,
            previous: 0,
            current: 0,
            last_seen: now,
        };
    } else if elapsed >= window {
        state.previous = state.current;
        state.current = 0;
        // start + window <= now here, so the addition cannot overflow.
        state.start = state.start.checked_add(window).unwrap_or(now);
    }

    let w = window.as_nanos();
    let into = now.saturating_duration_since(state.start).as_nanos().min(w);
    let previous = u128::from(state.previous);
    let current = u128::from(state.current);
    let max = u128::from(max_events);
    // Scaled by `w` to stay in integers: estimate·w = previous·(w − into) + current·w.
    let estimate_scaled = previous * (w - into) + current * w;
    if estimate_scaled + w <= max * w {
        state.current = state.current.saturating_add(1);
        return Ok(());
    }

    let wait_nanos = if max == 0 {
        // Nothing is ever allowed: tell the client to come back in a window.
        w
    } else if current < max {
        // Wait in this window until enough of `previous` has slid out:
        // previous·(w − into − t) + (current + 1)·w <= max·w.
        // previous > 0 here, otherwise the event would have been accepted.
        let slack = (max - current - 1) * w;
        let needed_into = w.saturating_sub(slack / previous.max(1));
        needed_into.saturating_sub(into)
    } else {
        // This window is full: it becomes `previous` (weight 1) at its end, and enough of it
        // must slide out for one more event: max·(w − t′) + w <= max·w ⇔ t′ >= w / max.
        (w - into) + w.div_ceil(max)
    };
    Err(round_up_to_seconds(wait_nanos))
}

/// Rounds a wait in nanoseconds up to whole seconds, at least 1 s, for `Retry-After`.
fn round_up_to_seconds(nanos: u128) -> Duration {
    let secs = nanos.div_ceil(1_000_000_000).max(1);
    Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn under_the_limit_is_allowed() {
        let mut rl = RateLimiter::new(5, MIN, 100);
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(rl.check("ip", t0 + Duration::from_millis(i)), Ok(()));
        }
    }

    #[test]
    fn over_the_limit_is_rejected_with_retry_after() {
        let mut rl = RateLimiter::new(5, MIN, 100);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(rl.check("ip", t0).is_ok());
        }
        let retry = rl.check("ip", t0).unwrap_err();
        // Full window at its very start: wait for it to end plus 60/5 = 12 s of sliding.
        assert_eq!(retry, Duration::from_secs(72));
        // Rejections are not counted.
        assert_eq!(rl.check("ip", t0).unwrap_err(), retry);
    }

    #[test]
    fn keys_are_independent() {
        let mut rl = RateLimiter::new(1, MIN, 100);
        let t0 = Instant::now();
        assert!(rl.check("a", t0).is_ok());
        assert!(rl.check("a", t0).is_err());
        assert!(rl.check("b", t0).is_ok());
    }

    #[test]
    fn window_resets_after_two_idle_windows() {
        let mut rl = RateLimiter::new(3, MIN, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rl.check("ip", t0).is_ok());
        }
        assert!(rl.check("ip", t0 + Duration::from_secs(59)).is_err());
        let later = t0 + 2 * MIN;
        for _ in 0..3 {
            assert!(rl.check("ip", later).is_ok());
        }
        assert!(rl.check("ip", later).is_err());
    }

    #[test]
    fn sliding_window_smooths_the_boundary_burst() {
        let mut rl = RateLimiter::new(10, MIN, 100);
        let t0 = Instant::now();
        // The key's first event anchors its windows at t0.
        assert!(rl.check("ip", t0).is_ok());
        for _ in 0..9 {
            assert!(rl.check("ip", t0 + Duration::from_secs(50)).is_ok());
        }
        // A fixed window would allow 10 more right after t0 + 60 s; the sliding estimate
        // still counts nearly all of the previous window.
        let just_after = t0 + Duration::from_secs(61);
        assert!(rl.check("ip", just_after).is_err());
        // Halfway through the next window half of the previous one has slid out.
        let halfway = t0 + Duration::from_secs(90);
        let accepted = (0..10).filter(|_| rl.check("ip", halfway).is_ok()).count();
        assert_eq!(accepted, 5);
    }

    #[test]
    fn waiting_retry_after_is_enough() {
        for max in [1u32, 2, 3, 7, 10] {
            let mut rl = RateLimiter::new(max, MIN, 100);
            let t0 = Instant::now();
            let mut now = t0;
            let mut rejections = 0;
            // Hammer for several windows, always waiting exactly what we are told.
            while now < t0 + 10 * MIN {
                match rl.check("ip", now) {
                    Ok(()) => now += Duration::from_millis(700),
                    Err(retry) => {
                        rejections += 1;
                        assert!(retry >= Duration::from_secs(1));
                        assert_eq!(retry.subsec_nanos(), 0);
                        assert!(retry <= 2 * MIN, "retry {retry:?} for max {max}");
                        now += retry;
                        assert!(rl.check("ip", now).is_ok(), "max {max}: retry too short");
                    }
                }
            }
            assert!(rejections > 0);
        }
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let mut rl = RateLimiter::new(1, Duration::from_millis(10), 100);
        let t0 = Instant::now();
        assert!(rl.check("ip", t0).is_ok());
        assert_eq!(rl.check("ip", t0), Err(Duration::from_secs(1)));
    }

    #[test]
    fn zero_max_events_always_rejects() {
        let mut rl = RateLimiter::new(0, MIN, 100);
        assert_eq!(rl.check("ip", Instant::now()), Err(MIN));
    }

    #[test]
    fn degenerate_parameters_do_not_panic() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(3, Duration::ZERO, 0);
        for i in 0..10 {
            let _ = rl.check(&format!("k{i}"), t0);
        }
        assert_eq!(rl.tracked_keys(), 1);
        let mut rl = RateLimiter::new(u32::MAX, Duration::MAX, 4);
        for i in 0..10 {
            assert!(rl.check(&format!("k{}", i % 5), t0).is_ok());
        }
        // `now` going backwards is tolerated.
        let mut rl = RateLimiter::new(1, MIN, 4);
        assert!(rl.check("k", t0 + MIN).is_ok());
        assert!(rl.check("k", t0).is_err());
    }

    #[test]
    fn key_count_is_bounded() {
        let mut rl = RateLimiter::new(5, MIN, 1000);
        let t0 = Instant::now();
        for i in 0..50_000u64 {
            let now = t0 + Duration::from_millis(i);
            assert!(rl.check(&format!("ip-{i}"), now).is_ok());
            assert!(rl.tracked_keys() <= 1000);
        }
    }

    #[test]
    fn eviction_prefers_idle_then_least_recently_seen() {
        let mut rl = RateLimiter::new(1, MIN, 8);
        let t0 = Instant::now();
        // "hot" is used up and kept fresh; the others are older.
        for i in 0..7 {
            assert!(rl.check(&format!("cold-{i}"), t0).is_ok());
        }
        assert!(rl.check("hot", t0 + Duration::from_secs(1)).is_ok());
        assert!(rl.check("hot", t0 + Duration::from_secs(2)).is_err());
        // A new key at the cap evicts the least recently seen, not "hot".
        assert!(rl.check("new", t0 + Duration::from_secs(3)).is_ok());
        assert!(rl.tracked_keys() <= 8);
        assert!(rl.check("hot", t0 + Duration::from_secs(4)).is_err());
        // After two idle windows everything cold is swept in one go.
        let later = t0 + 3 * MIN;
        assert!(rl.check("a", later).is_ok());
        assert!(rl.check("b", later).is_ok());
        assert!(rl.tracked_keys() <= 8);
    }
}
