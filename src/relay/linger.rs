//! When to send the Close after local EOF (`--linger`): the pure rule, with no I/O.
//!
//! Many servers (Python `websockets`, Node `ws`) answer a Close at once and drop the replies they
//! have not sent yet. So after local EOF the Close is held while replies can still be on their
//! way:
//!
//! - **auto** (the default): the Close waits until the peer has been quiet for a while. "Quiet"
//!   means no data message arrived and the local side was not busy taking one. How long depends
//!   on what came back so far. Once at least as many messages came back as were sent, a short
//!   quiet time is enough ([`Auto::settled`]: one handshake round trip, at least 0.25 ms, at
//!   most 100 ms). While fewer came back, replies may still be on their way, so it waits for
//!   [`Auto::pending`] (1 s, or 10 handshake round trips if that is longer). Nothing is held
//!   when nobody would read the replies (`-u`, or a program that has exited).
//! - **a fixed duration** (`--linger 300ms`): quiet for that long, whatever came back;
//!   `--linger 0` closes at once.
//!
//! Either way the hold ends at `--close-timeout` after local EOF at the latest.

use std::time::Duration;

/// `--linger`: how long the Close is held after local EOF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linger {
    /// Hold while replies are still coming (see the module docs).
    Auto,
    /// Hold until the peer has been quiet this long (zero: close at once).
    Quiet(Duration),
}

impl std::str::FromStr for Linger {
    type Err = String;

    fn from_str(s: &str) -> Result<Linger, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Linger::Auto);
        }
        crate::units::parse_duration(s)
            .map(Linger::Quiet)
            .map_err(|_| format!("'{s}' is not 'auto' or a duration (e.g. 0, 300ms, 2.5)"))
    }
}

impl std::fmt::Display for Linger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Linger::Auto => f.write_str("auto"),
            Linger::Quiet(d) => f.write_str(&crate::error::fmt_duration(*d)),
        }
    }
}

/// The quiet times of the automatic rule, learnt from the handshake's round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auto {
    /// Quiet time once every message sent has had a reply.
    pub settled: Duration,
    /// Quiet time while replies are missing.
    pub pending: Duration,
}

impl Auto {
    const SETTLED_MIN: Duration = Duration::from_micros(250);
    const SETTLED_MAX: Duration = Duration::from_millis(100);
    const PENDING_MIN: Duration = Duration::from_secs(1);

    /// `rtt`: the handshake's round trip, when it was measured (client connections).
    pub fn new(rtt: Option<Duration>) -> Auto {
        let rtt = rtt.unwrap_or_default();
        Auto {
            settled: rtt.clamp(Self::SETTLED_MIN, Self::SETTLED_MAX),
            pending: (rtt * 10).max(Self::PENDING_MIN),
        }
    }
}

/// What the hold needs: how long the peer must have been quiet, given what was sent and what
/// came back. `None`: do not hold at all.
pub fn quiet_needed(
    linger: Linger,
    auto: Auto,
    sent: u64,
    received: u64,
    replies_wanted: bool,
) -> Option<Duration> {
    match linger {
        Linger::Quiet(d) if d.is_zero() => None,
        Linger::Quiet(d) => Some(d),
        Linger::Auto if !replies_wanted => None,
        Linger::Auto if sent == 0 => None,
        Linger::Auto if received >= sent => Some(auto.settled),
        Linger::Auto => Some(auto.pending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn parses_auto_and_durations() {
        assert_eq!("auto".parse(), Ok(Linger::Auto));
        assert_eq!("AUTO".parse(), Ok(Linger::Auto));
        assert_eq!("0".parse(), Ok(Linger::Quiet(Duration::ZERO)));
        assert_eq!("300ms".parse(), Ok(Linger::Quiet(300 * MS)));
        assert_eq!("2.5".parse(), Ok(Linger::Quiet(2500 * MS)));
        assert!("soon".parse::<Linger>().unwrap_err().contains("'soon'"));
        assert!("-1".parse::<Linger>().is_err());
    }

    #[test]
    fn auto_times_follow_the_round_trip_within_bounds() {
        let us = Duration::from_micros;
        let a = Auto::new(None);
        assert_eq!((a.settled, a.pending), (us(250), 1000 * MS));
        let a = Auto::new(Some(us(150)));
        assert_eq!((a.settled, a.pending), (us(250), 1000 * MS));
        let a = Auto::new(Some(20 * MS));
        assert_eq!((a.settled, a.pending), (20 * MS, 1000 * MS));
        let a = Auto::new(Some(300 * MS));
        assert_eq!((a.settled, a.pending), (100 * MS, 3000 * MS));
    }

    #[test]
    fn the_rule() {
        let a = Auto::new(Some(20 * MS));
        let q = |l, s, r, w| quiet_needed(l, a, s, r, w);
        let fixed = Linger::Quiet(300 * MS);
        let zero = Linger::Quiet(Duration::ZERO);
        let auto = Linger::Auto;
        // (linger, sent, received, replies wanted) -> quiet time
        let table = [
            (zero, 5, 0, true, None),
            (fixed, 5, 0, true, Some(300 * MS)),
            (fixed, 5, 9, false, Some(300 * MS)),
            (auto, 5, 0, false, None),
            (auto, 0, 0, true, None),
            (auto, 5, 4, true, Some(1000 * MS)),
            (auto, 5, 5, true, Some(20 * MS)),
            (auto, 5, 7, true, Some(20 * MS)),
        ];
        for (l, s, r, w, want) in table {
            assert_eq!(q(l, s, r, w), want, "{l} sent {s} received {r} wanted {w}");
        }
    }
}
