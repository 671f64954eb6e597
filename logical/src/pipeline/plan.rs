//! The plan of a quiet walk (one that records no trace) through one pipeline of one
//! datapath: per packet class and table entered, the table where the walk stops and
//! what it finds there. It is what [`quiet`](super::classes::Outcomes::quiet) and
//! [`exact`](super::classes::Outcomes::exact) say, table by table, laid out per class
//! so that a walk reads a few adjacent cache lines instead of every table's outcomes
//! (a routed walk crosses five pipelines and, table by table, did not fit in a core's
//! first-level data cache).
//!
//! Built from the tables, so it says nothing they do not: `pipeline_classes` checks
//! whole walks with it against walks that look every stage up in the classifier.

use std::sync::Arc;

use crate::actions::Action;
use crate::flow::Flow;

use super::{OMIT, Table, Term, classes};

/// What a step finds at its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Past the pipeline's last table: no flow (an implicit drop).
    End,
    /// The flow `acts[at]`.
    Found,
    /// The first of the `n` checks from `at` that the frame passes.
    List,
    /// The table's classifier decides.
    Lookup,
}

/// What a step found: a flow of the plan, or a rule the table's classifier returned.
pub(super) enum Hit<'a> {
    Act(&'a Act),
    Rule(u32),
}

/// Where a walk entering a table stops, and what it finds there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    pub(super) table: u8,
    kind: Kind,
    n: u8,
    at: u32,
}

/// One conjunction of a list: its flow (`acts[act]`) and its `n` terms, the first
/// here (word `w`, mask `m`, value `v`; a conjunction without terms has `m == v == 0`)
/// and the rest at `terms[first..first + n - 1]`: most have one term, and then the
/// check reads nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Check {
    m: u64,
    v: u64,
    act: u32,
    first: u16,
    w: u8,
    n: u8,
}

impl Check {
    /// Its terms (for [`Plan::describe`]).
    fn terms<'a>(&self, rest: &'a [Term]) -> impl Iterator<Item = Term> + 'a {
        let head = (self.n > 0).then_some((self.w, self.m, self.v));
        let first = usize::from(self.first);
        let tail = &rest[first..first + usize::from(self.n.saturating_sub(1))];
        head.into_iter().chain(tail.iter().copied())
    }
}

/// A flow a step or check finds: its rule id (with the omit bit) and its actions, so a
/// walk reaches them without the table's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Act {
    pub(super) id: u32,
    /// Its only action is `next;` to the following table: a walk that records
    /// nothing goes on there, as past an omitted flow.
    pub(super) pass: bool,
    pub(super) actions: Arc<[Action]>,
}

/// One pipeline's plan: steps by class, then table entered (the last column is the
/// end of the pipeline), and the lists' checks and terms and the flows found, each in
/// one allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Plan {
    width: usize,
    steps: Box<[Step]>,
    checks: Box<[Check]>,
    terms: Box<[Term]>,
    acts: Box<[Act]>,
}

impl Plan {
    /// The plan of `tables`, whose trivial stages `skip` says (a quiet walk passes over
    /// those too). Built table by table from the last, each table's flows and lists
    /// laid out once however many classes share them: the first walk through each
    /// pipeline an update touched builds its plan again (one ACL in a port group
    /// touches every switch the group spans).
    pub(super) fn new(tables: &[Arc<Table>], skip: &[u8]) -> Plan {
        let n = tables.len();
        let width = n + 1;
        let mut steps = vec![
            Step {
                table: n as u8,
                kind: Kind::End,
                n: 0,
                at: 0,
            };
            classes::N * width
        ];
        let (mut checks, mut terms) = (Vec::new(), Vec::new());
        let mut acts: Vec<Act> = Vec::new();
        // This table's flows in `acts` (rule id, index), and its lists laid out (span in
        // its entries, first check, number of checks): a few each.
        let mut table_acts: Vec<(u32, u32)> = Vec::new();
        let mut placed: Vec<((u16, u16), u32, u8)> = Vec::new();
        for i in (0..n).rev() {
            let t = &tables[i];
            let c = &t.classes;
            table_acts.clear();
            placed.clear();
            let mut act = |id: u32| -> u32 {
                if let Some(&(_, a)) = table_acts.iter().find(|(x, _)| *x == id) {
                    return a;
                }
                let flow = &t.slot(id & !OMIT).flow;
                acts.push(Act {
                    id,
                    pass: id & OMIT != 0 || flow.next_only(),
                    actions: flow.actions.clone(),
                });
                let a = acts.len() as u32 - 1;
                table_acts.push((id, a));
                a
            };
            for class in 0..classes::N {
                let at_row = class * width + i;
                let passed = c.quiet[class];
                if skip[i] != i as u8 || (passed != classes::LOOKUP && passed & OMIT != 0) {
                    steps[at_row] = steps[at_row + 1];
                    continue;
                }
                let (kind, at, len) = if t.n_flows() == 0 {
                    // No flow: a drop (a table never built says LOOKUP, one whose flows
                    // were all taken out an empty list).
                    (Kind::List, 0, 0)
                } else if passed != classes::LOOKUP {
                    (Kind::Found, act(passed), 0)
                } else {
                    match c.exact[class] {
                        classes::LIST => {
                            let span = c.span(class);
                            let entries = c.entries(class);
                            let room = terms.len() + entries.len() * classes::MAX_TERMS
                                <= usize::from(u16::MAX);
                            match placed.iter().find(|(s, _, _)| *s == span) {
                                Some(&(_, at, len)) => (Kind::List, at, len),
                                // Out of room for terms (never in OVN's tables): the
                                // classifier decides.
                                None if !room => (Kind::Lookup, 0, 0),
                                None => {
                                    let at = checks.len() as u32;
                                    for e in entries {
                                        let (head, rest) = match e.terms() {
                                            [] => ((0, 0, 0), &[][..]),
                                            [head, rest @ ..] => (*head, rest),
                                        };
                                        checks.push(Check {
                                            m: head.1,
                                            v: head.2,
                                            act: act(e.id),
                                            first: terms.len() as u16,
                                            w: head.0,
                                            n: e.terms().len() as u8,
                                        });
                                        terms.extend_from_slice(rest);
                                    }
                                    let len = entries.len() as u8;
                                    placed.push((span, at, len));
                                    (Kind::List, at, len)
                                }
                            }
                        }
                        classes::LOOKUP => (Kind::Lookup, 0, 0),
                        id => (Kind::Found, act(id), 0),
                    }
                };
                steps[at_row] = Step {
                    table: i as u8,
                    kind,
                    n: len,
                    at,
                };
            }
        }
        Plan {
            width,
            steps: steps.into(),
            checks: checks.into(),
            terms: terms.into(),
            acts: acts.into(),
        }
    }

    /// Where a walk of `class` entering `table` stops.
    #[inline(always)]
    pub(super) fn step(&self, class: usize, table: u8) -> Step {
        let t = usize::from(table);
        if t < self.width {
            self.steps[class * self.width + t]
        } else {
            Step {
                table,
                kind: Kind::End,
                n: 0,
                at: 0,
            }
        }
    }

    /// What `step` gives `flow`: the flow found, or the table's rule (with the omit
    /// bit) when the class does not decide and `lookup` asks the classifier.
    #[inline(always)]
    pub(super) fn found(
        &self,
        step: Step,
        flow: &Flow,
        lookup: impl FnOnce() -> Option<u32>,
    ) -> Option<Hit<'_>> {
        match step.kind {
            Kind::End => None,
            Kind::Found => Some(Hit::Act(&self.acts[step.at as usize])),
            Kind::Lookup => lookup().map(Hit::Rule),
            Kind::List => {
                let at = step.at as usize;
                self.checks[at..at + usize::from(step.n)]
                    .iter()
                    .find(|c| {
                        flow.w[usize::from(c.w)] & c.m == c.v
                            && (c.n <= 1 || {
                                let first = usize::from(c.first);
                                self.terms[first..first + usize::from(c.n - 1)]
                                    .iter()
                                    .all(|&(w, m, v)| flow.w[usize::from(w)] & m == v)
                            })
                    })
                    .map(|c| Hit::Act(&self.acts[c.act as usize]))
            }
        }
    }

    /// The plan as text, one line per class; `name` names a table's rule (rule ids
    /// depend on the table's history of edits, its flows do not).
    pub(super) fn describe(&self, name: impl Fn(u8, u32) -> String) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let rows: Vec<&[Step]> = self.steps.chunks(self.width.max(1)).collect();
        for (class, row) in rows.iter().enumerate() {
            if let Some(same) = rows[..class].iter().position(|r| r == row) {
                let _ = writeln!(s, "  class {class}: as class {same}");
                continue;
            }
            let _ = write!(s, "  class {class}:");
            for step in *row {
                let t = step.table;
                let _ = match step.kind {
                    Kind::End => write!(s, " {t}:end"),
                    Kind::Found => write!(s, " {t}:{}", name(t, self.acts[step.at as usize].id)),
                    Kind::Lookup => write!(s, " {t}:lookup"),
                    Kind::List => {
                        let at = step.at as usize;
                        let list: Vec<_> = self.checks[at..at + usize::from(step.n)]
                            .iter()
                            .map(|c| {
                                let id = self.acts[c.act as usize].id;
                                let terms: Vec<Term> = c.terms(&self.terms).collect();
                                (name(t, id), terms)
                            })
                            .collect();
                        write!(s, " {t}:{list:?}")
                    }
                };
            }
            s.push('\n');
        }
        s
    }
}
