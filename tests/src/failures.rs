//! Reporting a run of the fixture table: every case that went wrong is collected with its
//! input and what differed, and the run fails once at the end listing them all, as
//! Katran's tests print input, expected and actual on a mismatch.

use crate::fixtures::{Case, frames::hex};

/// The failed cases of one run through the fixture table.
#[derive(Debug, Default)]
pub struct Failures(Vec<String>);

impl Failures {
    pub fn new() -> Failures {
        Failures::default()
    }

    /// Records `case` as failed, with its input in hex, when `problems` is not empty.
    pub fn check(&mut self, case: &Case, problems: &[String]) {
        if !problems.is_empty() {
            self.0.push(format!(
                "{}\n    input {}\n    {}",
                case.name,
                hex(&case.input),
                problems.join("\n    ")
            ));
        }
    }

    /// Panics listing every failed case, if there is one.
    pub fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} fixture case(s) failed:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}
