//! The transcript and the checks: every step of the run prints what happened, every
//! expectation is checked, and the first failed check ends the run with a non-zero status.

use std::cell::Cell;
use std::fmt;

/// A failed step: what was being done and what went wrong.
#[derive(Debug)]
pub struct Failure {
    what: String,
    why: String,
}

impl Failure {
    /// A failure of `what` because of `why`.
    pub fn new(what: impl Into<String>, why: impl fmt::Display) -> Self {
        Failure {
            what: what.into(),
            why: why.to_string(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// The result of every step.
pub type Outcome<T = ()> = Result<T, Failure>;

/// Names the step of a fallible call: `step("seal the device", key.seal(..))?`.
pub fn step<T, E: fmt::Display>(what: &str, result: Result<T, E>) -> Outcome<T> {
    result.map_err(|e| Failure::new(what, e))
}

/// Checks a condition, printing it when it holds.
pub fn check(what: &str, holds: bool) -> Outcome {
    if holds {
        println!("      ok: {what}");
        Ok(())
    } else {
        Err(Failure::new("check failed", what))
    }
}

/// Checks that two values are equal, printing the value when they are.
pub fn check_eq<T: PartialEq + fmt::Debug>(what: &str, got: T, want: T) -> Outcome {
    if got == want {
        println!("      ok: {what} = {got:?}");
        Ok(())
    } else {
        Err(Failure::new(
            "check failed",
            format!("{what}: got {got:?}, expected {want:?}"),
        ))
    }
}

/// A numbered section of the transcript.
pub fn section(title: &str) {
    println!();
    println!("== {title}");
}

/// A note between the lines of a section.
pub fn note(line: &str) {
    println!("  -- {line}");
}

/// A line of the transcript, said by `who`.
pub fn say(who: &str, line: impl fmt::Display) {
    println!("  {who:<13} {line}");
}

/// The app's clock: seconds since the Unix epoch, starting at a fixed time and moved on by
/// the run, so that the run is reproducible except for its randomness.
pub struct Clock(Cell<u64>);

impl Clock {
    /// A clock at `start`.
    pub fn new(start: u64) -> Self {
        Clock(Cell::new(start))
    }

    /// The time now.
    pub fn now(&self) -> u64 {
        self.0.get()
    }

    /// Moves the clock on by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.0.set(self.0.get() + seconds);
    }
}

/// Lowercase hex of the first `n` bytes, for short key fingerprints in the transcript.
pub fn short_hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}
