//! Exponential backoff with ±25 % jitter, shared by the corp actors (fetch and write retries) and
//! the media scheduler (retries of a corp's media jobs). A plain value: no timers, no actor.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with ±25 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Self { initial, max: max.max(initial), current: initial }
    }

    /// The next delay (jittered), doubling the base.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        jitter(base)
    }

    /// The cap, jittered (the slow retry of a failing corp).
    pub fn max_with_jitter(&self) -> Duration {
        jitter(self.max)
    }

    /// Back to `initial` after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.75..=1.25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        let bases = [100u64, 200, 400, 800, 800, 800];
        for (d, base) in delays.iter().zip(bases) {
            let ms = d.as_millis() as u64;
            assert!(ms >= base * 3 / 4 && ms <= base * 5 / 4 + 1, "{ms} vs {base}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(126));
    }
}
