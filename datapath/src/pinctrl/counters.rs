//! pinctrl's counters: packets by controller action and outcome.

use std::fmt::Write as _;

/// `ovnest_pinctrl_packets_total{action, outcome}`: one count per controller action
/// handled, by what came of it (`offer`, `ack`, `sent`, `queued`, or a drop reason).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    by: Vec<((&'static str, &'static str), u64)>,
}

impl Counters {
    pub const NAME: &'static str = "ovnest_pinctrl_packets_total";

    pub(crate) fn add(&mut self, action: &'static str, outcome: &'static str) {
        match self.by.iter_mut().find(|(k, _)| *k == (action, outcome)) {
            Some((_, n)) => *n += 1,
            None => self.by.push(((action, outcome), 1)),
        }
    }

    /// The count for one action and outcome.
    pub fn get(&self, action: &str, outcome: &str) -> u64 {
        self.by
            .iter()
            .find(|((a, o), _)| *a == action && *o == outcome)
            .map_or(0, |(_, n)| *n)
    }

    /// Every (action, outcome, count), sorted.
    pub fn iter(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut v: Vec<_> = self.by.iter().map(|((a, o), n)| (*a, *o, *n)).collect();
        v.sort();
        v
    }

    /// Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let mut s = format!(
            "# HELP {n} Controller actions handled by pinctrl, by outcome.\n# TYPE {n} counter\n",
            n = Self::NAME
        );
        for (a, o, n) in self.iter() {
            let _ = writeln!(s, "{}{{action=\"{a}\",outcome=\"{o}\"}} {n}", Self::NAME);
        }
        s
    }
}
