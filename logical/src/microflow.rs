//! Microflows: a packet described in the match language, as ovn-trace takes it
//! (`inport == "dmz-c51" && eth.src == ... && icmp4.type == 8`). Every field the
//! expression constrains gets its value, every other field is zero.

use crate::expr::{self, Annotator, Expr, Match, Sets};
use crate::flow::Flow;
use crate::symtab::{SymbolKind, symtab};

/// Parses `s` into a flow for datapath lookups done by `lookup_port` (OVN's
/// `expr_parse_microflow`).
pub fn parse(
    s: &str,
    sets: &Sets,
    lookup_port: &dyn Fn(&str) -> Option<u32>,
) -> Result<Flow, String> {
    let e = expr::parse(s, symtab(), sets, 0)?;
    let m = Annotator::default().annotate(symtab(), &e)?;
    // A port that does not resolve leaves its register unconstrained, as OVN's
    // `constrain_match` does.
    let m = resolve_ports_loosely(m, lookup_port)
        .simplify()
        .resolve_conditions(&|_| true);
    let conjs = expr::to_conjs(&m, 2).map_err(|_| format!("Constraints are ambiguous: {s}."))?;
    match conjs.len() {
        0 => Err("Constraints are contradictory.".into()),
        1 => Ok(Flow {
            w: conjs[0].value,
            ..Flow::default()
        }),
        _ => Err(format!("Constraints are ambiguous: {s}.")),
    }
}

fn resolve_ports_loosely(m: Match, lookup: &dyn Fn(&str) -> Option<u32>) -> Match {
    match m {
        Match::Port { ref name, .. } if lookup(name).is_none() => Match::Bool(true),
        Match::Port { .. } => m.resolve_ports(lookup),
        Match::And(v) => Match::And(
            v.into_iter()
                .map(|s| resolve_ports_loosely(s, lookup))
                .collect(),
        ),
        Match::Or(v) => Match::Or(
            v.into_iter()
                .map(|s| resolve_ports_loosely(s, lookup))
                .collect(),
        ),
        m => m,
    }
}

/// The one `inport == "NAME"` the expression names (OVN's `expr_find_inport`).
pub fn find_inport(s: &str, sets: &Sets) -> Result<String, String> {
    let e = expr::parse(s, symtab(), sets, 0)?;
    let mut found: Vec<String> = Vec::new();
    collect_inports(&e, &mut found);
    found.sort();
    found.dedup();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("flow match expression does not match on inport".into()),
        _ => Err("flow match expression matches on multiple inports".into()),
    }
}

fn collect_inports(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::StrCmp {
            sym,
            relop: expr::Relop::Eq,
            name,
        } => {
            let s = symtab().get(*sym);
            if s.name == "inport" && matches!(s.kind, SymbolKind::String(_)) {
                out.push(name.clone());
            }
        }
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| collect_inports(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Field;

    #[test]
    fn fields_and_prerequisites() {
        let sets = Sets::default();
        let f = parse(
            "inport == \"p\" && eth.src == 02:00:00:00:00:01 && icmp4.type == 8 && ip.ttl == 64",
            &sets,
            &|n| (n == "p").then_some(4),
        )
        .unwrap();
        assert_eq!(f.reg(14), 4);
        assert_eq!(f.dl_type(), 0x800);
        assert_eq!(f.nw_proto(), 1);
        assert_eq!(f.tp_src(), 8);
        assert_eq!(f.get(Field::IpTtl), 64);
        assert!(
            parse("ip4 && ip6", &sets, &|_| None)
                .unwrap_err()
                .contains("contradictory")
        );
        assert!(
            parse("tcp.src == 80", &sets, &|_| None)
                .unwrap_err()
                .contains("ambiguous")
        );
        assert_eq!(find_inport("inport == \"a\" && ip4", &sets).unwrap(), "a");
        assert!(find_inport("ip4", &sets).is_err());
    }
}
