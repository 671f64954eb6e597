//! OVN's match expressions (ovn-sb(5) "match"; OVN's lib/expr.c): parsing with every
//! operator, sets, masks, CIDRs, ranges, bit slices, `$address_set`, `@port_group` and
//! `is_chassis_resident()`; annotation (predicates expanded, subfields resolved to the
//! OVS field they live in, prerequisites added); simplification to equality tests; and
//! conversion to a disjunction of masked matches that the classifier indexes.
//!
//! Parsing keeps OVN's rules and error texts: nominal fields only tested for equality
//! (taking `!` into account), `&&` and `||` parenthesized when mixed, `!= 0` required for
//! multi-bit fields, no relational operators on sets or masked constants.

use std::fmt;

use rustc_hash::FxHashMap;

use crate::flow::{Field, Flow, WORDS};
use crate::lex::{Constant, JsonStr, Lexer, Token};
use crate::symtab::{FieldRef, Level, SymId, SymbolKind, SymbolTable};
use crate::value::{self, Format};

/// A relational operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relop {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Relop {
    fn from_token(t: &Token) -> Option<Relop> {
        Some(match t {
            Token::Eq => Relop::Eq,
            Token::Ne => Relop::Ne,
            Token::Lt => Relop::Lt,
            Token::Le => Relop::Le,
            Token::Gt => Relop::Gt,
            Token::Ge => Relop::Ge,
            _ => return None,
        })
    }

    /// `a < b` becomes `b > a`.
    fn turn(self) -> Relop {
        match self {
            Relop::Lt => Relop::Gt,
            Relop::Le => Relop::Ge,
            Relop::Gt => Relop::Lt,
            Relop::Ge => Relop::Le,
            r => r,
        }
    }

    fn invert(self) -> Relop {
        match self {
            Relop::Eq => Relop::Ne,
            Relop::Ne => Relop::Eq,
            Relop::Lt => Relop::Ge,
            Relop::Le => Relop::Gt,
            Relop::Gt => Relop::Le,
            Relop::Ge => Relop::Lt,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Relop::Eq => "==",
            Relop::Ne => "!=",
            Relop::Lt => "<",
            Relop::Le => "<=",
            Relop::Gt => ">",
            Relop::Ge => ">=",
        }
    }

    fn test(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Relop::Eq => ord == Equal,
            Relop::Ne => ord != Equal,
            Relop::Lt => ord == Less,
            Relop::Le => ord != Greater,
            Relop::Gt => ord == Greater,
            Relop::Ge => ord != Less,
        }
    }
}

/// A constant in an expression or action: an integer as lexed, or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Const {
    Int(Constant),
    Str(String),
}

impl fmt::Display for Const {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Const::Int(c) => write!(f, "{c}"),
            Const::Str(s) => write!(f, "{}", JsonStr(s)),
        }
    }
}

/// A set of constants, e.g. `{1, 2, 3}`, `$as` or a single constant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConstSet {
    pub values: Vec<Const>,
    pub in_curlies: bool,
}

impl ConstSet {
    fn is_string(&self) -> Option<bool> {
        self.values.first().map(|c| matches!(c, Const::Str(_)))
    }
}

impl fmt::Display for ConstSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let curlies = self.in_curlies || self.values.len() != 1;
        if curlies {
            f.write_str("{")?;
        }
        for (i, c) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        if curlies {
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// A parsed match expression, before annotation. Integer comparisons hold value and
/// mask at the bit positions of the named symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Cmp {
        sym: SymId,
        relop: Relop,
        value: u128,
        mask: u128,
    },
    StrCmp {
        sym: SymId,
        relop: Relop,
        name: String,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Bool(bool),
    /// `is_chassis_resident("port")`, negated when `not`.
    Resident {
        not: bool,
        port: String,
    },
}

/// Named constant sets the parser resolves: SB Address_Set (`$name`) and Port_Group
/// (`@name`).
pub trait ConstSets {
    fn address_set(&self, name: &str) -> Option<&ConstSet>;
    fn port_group(&self, name: &str) -> Option<&ConstSet>;
}

/// No address sets or port groups.
pub struct NoSets;

impl ConstSets for NoSets {
    fn address_set(&self, _: &str) -> Option<&ConstSet> {
        None
    }
    fn port_group(&self, _: &str) -> Option<&ConstSet> {
        None
    }
}

/// Address sets and port groups by name.
#[derive(Debug, Clone, Default)]
pub struct Sets {
    pub address_sets: FxHashMap<String, ConstSet>,
    pub port_groups: FxHashMap<String, ConstSet>,
}

impl Sets {
    /// Adds an address set; entries that do not lex as one (masked) integer are
    /// ignored, as OVN's `expr_const_sets_add_integers` does.
    pub fn add_address_set<'a>(&mut self, name: &str, addrs: impl IntoIterator<Item = &'a str>) {
        let mut set = ConstSet {
            in_curlies: true,
            values: Vec::new(),
        };
        for a in addrs {
            let mut lexer = Lexer::new(a);
            let c = match &lexer.token {
                Token::Int(c) | Token::MaskedInt(c) => *c,
                _ => continue,
            };
            lexer.get();
            if lexer.token == Token::End && !lexer.has_error() {
                set.values.push(Const::Int(c));
            }
        }
        self.address_sets.insert(name.to_owned(), set);
    }

    pub fn add_port_group<'a>(&mut self, name: &str, ports: impl IntoIterator<Item = &'a str>) {
        let values = ports
            .into_iter()
            .map(|p| Const::Str(p.to_owned()))
            .collect();
        self.port_groups.insert(
            name.to_owned(),
            ConstSet {
                values,
                in_curlies: true,
            },
        );
    }
}

impl ConstSets for Sets {
    fn address_set(&self, name: &str) -> Option<&ConstSet> {
        self.address_sets.get(name)
    }
    fn port_group(&self, name: &str) -> Option<&ConstSet> {
        self.port_groups.get(name)
    }
}

const MAX_PAREN_DEPTH: u32 = 100;

struct Parser<'a, 'l, 's> {
    lexer: &'l mut Lexer<'a>,
    symtab: &'s SymbolTable,
    sets: &'s dyn ConstSets,
    /// The datapath's tunnel key: `@pg` names the SB port group `<key>_pg` first.
    dp_key: u32,
    not: bool,
    depth: u32,
}

/// Parses a match expression. Errors read as OVN's.
pub fn parse(
    s: &str,
    symtab: &SymbolTable,
    sets: &dyn ConstSets,
    dp_key: u32,
) -> Result<Expr, String> {
    let mut lexer = Lexer::new(s);
    let e = parse_lexer(&mut lexer, symtab, sets, dp_key);
    lexer.force_end();
    match lexer.take_error() {
        Some(err) => Err(err),
        None => e.ok_or_else(|| "syntax error".to_owned()),
    }
}

/// Parses an expression from a lexer that may hold more input after it.
pub fn parse_lexer(
    lexer: &mut Lexer<'_>,
    symtab: &SymbolTable,
    sets: &dyn ConstSets,
    dp_key: u32,
) -> Option<Expr> {
    if lexer.has_error() {
        return None;
    }
    let mut p = Parser {
        lexer,
        symtab,
        sets,
        dp_key,
        not: false,
        depth: 0,
    };
    p.parse_expr()
}

/// Parses a field reference (`reg0[3..5]`, `eth.src`).
pub fn parse_field(lexer: &mut Lexer<'_>, symtab: &SymbolTable) -> Option<FieldRef> {
    let mut p = Parser {
        lexer,
        symtab,
        sets: &NoSets,
        dp_key: 0,
        not: false,
        depth: 0,
    };
    p.parse_field()
}

/// Parses one constant (`expr_constant_parse`): used by actions' loads.
pub fn parse_constant(lexer: &mut Lexer<'_>) -> Option<Const> {
    let mut p = Parser {
        lexer,
        symtab: crate::symtab::symtab(),
        sets: &NoSets,
        dp_key: 0,
        not: false,
        depth: 0,
    };
    let mut set = ConstSet::default();
    if p.parse_constant(&mut set) {
        set.values.pop()
    } else {
        None
    }
}

/// Parses a constant set (`expr_constant_set_parse`): used by actions' options.
pub fn parse_constant_set(lexer: &mut Lexer<'_>) -> Option<ConstSet> {
    let mut p = Parser {
        lexer,
        symtab: crate::symtab::symtab(),
        sets: &NoSets,
        dp_key: 0,
        not: false,
        depth: 0,
    };
    p.parse_constant_set()
}

/// The minimum width of an integer constant (OVN's `expr_constant_width`).
pub fn constant_width(c: &Constant) -> u32 {
    if let Some(m) = c.mask {
        return 128 - m.leading_zeros();
    }
    match c.format {
        Format::Decimal | Format::Hexadecimal => 128 - c.value.leading_zeros(),
        Format::Ipv4 => 32,
        Format::Ipv6 => 128,
        Format::Ethernet => 48,
    }
}

impl Parser<'_, '_, '_> {
    fn parse_expr(&mut self) -> Option<Expr> {
        let e = self.parse_not()?;
        let op = self.lexer.token.clone();
        if op != Token::LogAnd && op != Token::LogOr {
            return Some(e);
        }
        let and = op == Token::LogAnd;
        self.lexer.get();
        let mut e = e;
        loop {
            let e2 = self.parse_not()?;
            e = if and { and2(e, e2) } else { or2(e, e2) };
            if !self.lexer.matches(&op) {
                break;
            }
        }
        if matches!(self.lexer.token, Token::LogAnd | Token::LogOr) {
            self.lexer
                .error("&& and || must be parenthesized when used together.");
            return None;
        }
        Some(e)
    }

    fn parse_not(&mut self) -> Option<Expr> {
        if self.lexer.matches(&Token::LogNot) {
            self.not = !self.not;
            let r = self.parse_primary();
            self.not = !self.not;
            let (e, atomic) = r?;
            if !atomic {
                self.lexer.error("Missing parentheses around operand of !.");
                return None;
            }
            Some(not(e))
        } else {
            self.parse_primary().map(|(e, _)| e)
        }
    }

    /// Returns the expression and whether it is "atomic" (may follow `!`).
    fn parse_primary(&mut self) -> Option<(Expr, bool)> {
        if self.lexer.matches(&Token::LParen) {
            if self.depth >= MAX_PAREN_DEPTH {
                self.lexer.error("Parentheses nested too deeply.");
                return None;
            }
            self.depth += 1;
            let e = self.parse_expr();
            self.depth -= 1;
            let e = e?;
            if !self.lexer.force_match(&Token::RParen) {
                return None;
            }
            return Some((e, true));
        }
        match self.lexer.token.clone() {
            Token::Template(_) => {
                self.lexer.error("Unexpanded template.");
                None
            }
            Token::Id(id) => {
                if self.lexer.lookahead() == Token::LParen {
                    if id == "is_chassis_resident" {
                        self.lexer.get();
                        self.lexer.get();
                        return self.parse_chassis_resident().map(|e| (e, true));
                    }
                    self.lexer.error("parsing function name");
                    return None;
                }
                let f = self.parse_field()?;
                let sym = self.symtab.get(f.sym);
                let Some(r) = Relop::from_token(&self.lexer.token) else {
                    if f.n_bits == 0 || self.lexer.token == Token::Equals {
                        self.lexer
                            .syntax_error(Some("expecting relational operator"));
                        return None;
                    } else if f.n_bits > 1 && !self.not {
                        self.lexer.error(
                            "Explicit `!= 0' is required for inequality test of multibit field against 0.",
                        );
                        return None;
                    }
                    let _ = sym;
                    let set = ConstSet {
                        values: vec![Const::Int(Constant::new(0, Format::Hexadecimal))],
                        in_curlies: false,
                    };
                    return self.make_cmp(f, Relop::Ne, set).map(|e| (e, true));
                };
                self.lexer.get();
                let set = self.parse_constant_set()?;
                self.make_cmp(f, r, set).map(|e| (e, false))
            }
            _ => {
                let c1 = self.parse_constant_set()?;
                if Relop::from_token(&self.lexer.token).is_none()
                    && c1.values.len() == 1
                    && !c1.in_curlies
                    && let Const::Int(c) = &c1.values[0]
                    && c.format == Format::Decimal
                    && c.mask.is_none()
                    && c.value <= 1
                {
                    return Some((Expr::Bool(c.value == 1), true));
                }
                let Some(r1) = Relop::from_token(&self.lexer.token) else {
                    self.lexer
                        .syntax_error(Some("expecting relational operator"));
                    return None;
                };
                self.lexer.get();
                let f = self.parse_field()?;
                let Some(r2) = Relop::from_token(&self.lexer.token) else {
                    return self.make_cmp(f, r1.turn(), c1).map(|e| (e, false));
                };
                self.lexer.get();
                let c2 = self.parse_constant_set()?;
                let lt = |r| matches!(r, Relop::Lt | Relop::Le);
                let gt = |r| matches!(r, Relop::Gt | Relop::Ge);
                if !((lt(r1) && lt(r2)) || (gt(r1) && gt(r2))) {
                    self.lexer.error("Range expressions must have the form `x < field < y' or `x > field > y', with each `<' optionally replaced by `<=' or `>' by `>=').");
                    return None;
                }
                let e1 = self.make_cmp(f, r1.turn(), c1);
                let e2 = self.make_cmp(f, r2, c2);
                Some((and2(e1?, e2?), false))
            }
        }
    }

    fn parse_chassis_resident(&mut self) -> Option<Expr> {
        let Token::Str(port) = self.lexer.token.clone() else {
            self.lexer.syntax_error(Some("expecting string"));
            return None;
        };
        self.lexer.get();
        if !self.lexer.force_match(&Token::RParen) {
            return None;
        }
        Some(Expr::Resident { not: false, port })
    }

    fn parse_field(&mut self) -> Option<FieldRef> {
        let Token::Id(name) = &self.lexer.token else {
            self.lexer.syntax_error(Some("expecting field name"));
            return None;
        };
        let Some(sym_id) = self.symtab.lookup(name) else {
            self.lexer.syntax_error(Some("expecting field name"));
            return None;
        };
        let sym = self.symtab.get(sym_id);
        self.lexer.get();
        if self.lexer.matches(&Token::LSquare) {
            if sym.width == 0 {
                self.lexer.error(format!(
                    "Cannot select subfield of string field {}.",
                    sym.name
                ));
                return None;
            }
            let low = self.lexer.force_int()?;
            let high = if self.lexer.matches(&Token::Ellipsis) {
                self.lexer.force_int()?
            } else {
                low
            };
            if !self.lexer.force_match(&Token::RSquare) {
                return None;
            }
            if low > high {
                self.lexer
                    .error(format!("Invalid bit range {low} to {high}."));
                return None;
            } else if high as u32 >= sym.width {
                self.lexer.error(format!(
                    "Cannot select bits {low} to {high} of {}-bit field {}.",
                    sym.width, sym.name
                ));
                return None;
            } else if sym.level == Level::Nominal && (low != 0 || high as u32 != sym.width - 1) {
                self.lexer.error(format!(
                    "Cannot select subfield of nominal field {}.",
                    sym.name
                ));
                return None;
            }
            Some(FieldRef {
                sym: sym_id,
                ofs: low as u32,
                n_bits: (high - low + 1) as u32,
            })
        } else {
            Some(FieldRef {
                sym: sym_id,
                ofs: 0,
                n_bits: sym.width,
            })
        }
    }

    fn parse_constant_set(&mut self) -> Option<ConstSet> {
        let mut set = ConstSet::default();
        if self.lexer.matches(&Token::LCurly) {
            set.in_curlies = true;
            loop {
                if !self.parse_constant(&mut set) {
                    return None;
                }
                self.lexer.matches(&Token::Comma);
                if self.lexer.matches(&Token::RCurly) {
                    break;
                }
            }
            Some(set)
        } else if self.parse_constant(&mut set) {
            Some(set)
        } else {
            None
        }
    }

    fn set_type(&mut self, set: &ConstSet, string: bool) -> bool {
        match set.is_string() {
            Some(s) if s != string => {
                self.lexer.syntax_error(Some(if s {
                    "expecting string"
                } else {
                    "expecting integer"
                }));
                false
            }
            _ => true,
        }
    }

    fn parse_constant(&mut self, set: &mut ConstSet) -> bool {
        match self.lexer.token.clone() {
            Token::Template(_) => {
                self.lexer.error("Unexpanded template.");
                false
            }
            Token::Str(s) => {
                if !self.set_type(set, true) {
                    return false;
                }
                set.values.push(Const::Str(s));
                self.lexer.get();
                true
            }
            Token::Int(c) | Token::MaskedInt(c) => {
                if !self.set_type(set, false) {
                    return false;
                }
                set.values.push(Const::Int(c));
                self.lexer.get();
                true
            }
            Token::Macro(name) => {
                let Some(as_) = self.sets.address_set(&name) else {
                    self.lexer.syntax_error(Some("expecting address set name"));
                    return false;
                };
                if !self.set_type(set, false) {
                    return false;
                }
                set.values.extend(as_.values.iter().cloned());
                self.lexer.get();
                true
            }
            Token::PortGroup(name) => {
                let sb_name = format!("{}_{}", self.dp_key, name);
                let pg = self
                    .sets
                    .port_group(&sb_name)
                    .or_else(|| self.sets.port_group(&name));
                let Some(pg) = pg else {
                    self.lexer.syntax_error(Some("expecting port group name"));
                    return false;
                };
                if !self.set_type(set, true) {
                    return false;
                }
                set.values.extend(pg.values.iter().cloned());
                self.lexer.get();
                true
            }
            _ => {
                self.lexer.syntax_error(Some("expecting constant"));
                false
            }
        }
    }

    fn make_cmp(&mut self, f: FieldRef, r: Relop, set: ConstSet) -> Option<Expr> {
        let sym = self.symtab.get(f.sym);
        // Type check.
        let want_string = sym.width == 0;
        if let Some(is_str) = set.is_string()
            && is_str != want_string
        {
            self.lexer.error(format!(
                "{} field {} is not compatible with {} constant.",
                if want_string { "String" } else { "Integer" },
                sym.name,
                if is_str { "string" } else { "integer" }
            ));
            return None;
        }
        if !want_string {
            for c in &set.values {
                if let Const::Int(c) = c {
                    let w = constant_width(c);
                    if w > sym.width {
                        self.lexer.error(format!(
                            "{w}-bit constant is not compatible with {}-bit field {}.",
                            sym.width, sym.name
                        ));
                        return None;
                    }
                }
            }
        }
        if r != Relop::Eq && r != Relop::Ne {
            if set.in_curlies {
                self.lexer
                    .error("Only == and != operators may be used with value sets.");
                return None;
            }
            if matches!(sym.level, Level::Nominal | Level::Boolean) {
                let level = if sym.level == Level::Nominal {
                    "nominal"
                } else {
                    "Boolean"
                };
                self.lexer.error(format!(
                    "Only == and != operators may be used with {level} field {}.",
                    sym.name
                ));
                return None;
            }
            if set.values.is_empty() {
                self.lexer.error("Only == and != operators may be used to compare a field against an empty value set.");
                return None;
            }
            if matches!(&set.values[0], Const::Int(c) if c.mask.is_some()) {
                self.lexer.error("Only == and != operators may be used with masked constants.  Consider using subfields instead (e.g. eth.src[0..15] > 0x1111 in place of eth.src > 00:00:00:00:11:11/00:00:00:00:ff:ff).");
                return None;
            }
        }
        if sym.level == Level::Nominal {
            if matches!(sym.kind, SymbolKind::Predicate(_)) {
                for c in &set.values {
                    if let Const::Int(c) = c {
                        let positive = (c.value & 1 != 0) ^ (r == Relop::Ne) ^ self.not;
                        if !positive {
                            let n = &sym.name;
                            self.lexer.error(format!("Nominal predicate {n} may only be tested positively, e.g. `{n}' or `{n} == 1' but not `!{n}' or `{n} == 0'."));
                            return None;
                        }
                    }
                }
            } else if r != (if self.not { Relop::Ne } else { Relop::Eq }) {
                self.lexer.error(format!("Nominal field {} may only be tested for equality (taking enclosing `!' operators into account).", sym.name));
                return None;
            }
        }
        if set.values.is_empty() {
            return Some(Expr::Bool(r == Relop::Ne));
        }
        let mut out: Option<Expr> = None;
        for c in set.values {
            let e = match c {
                Const::Str(name) => Expr::StrCmp {
                    sym: f.sym,
                    relop: r,
                    name,
                },
                Const::Int(c) => {
                    let field_mask = value::ones(f.n_bits);
                    let mask = c.mask.map_or(field_mask, |m| m & field_mask) << f.ofs;
                    let value = (c.value & field_mask) << f.ofs;
                    Expr::Cmp {
                        sym: f.sym,
                        relop: r,
                        value,
                        mask,
                    }
                }
            };
            out = Some(match out {
                None => e,
                Some(prev) if r == Relop::Eq => or2(prev, e),
                Some(prev) => and2(prev, e),
            });
        }
        out
    }
}

/// `a && b`, flattened.
pub fn and2(a: Expr, b: Expr) -> Expr {
    combine(a, b, true)
}

/// `a || b`, flattened.
pub fn or2(a: Expr, b: Expr) -> Expr {
    combine(a, b, false)
}

fn combine(a: Expr, b: Expr, and: bool) -> Expr {
    let split = |e: Expr| -> Vec<Expr> {
        match e {
            Expr::And(v) if and => v,
            Expr::Or(v) if !and => v,
            e => vec![e],
        }
    };
    let mut v = split(a);
    v.extend(split(b));
    if and { Expr::And(v) } else { Expr::Or(v) }
}

/// `!e` (De Morgan down to the comparisons).
pub fn not(e: Expr) -> Expr {
    match e {
        Expr::Cmp {
            sym,
            relop,
            value,
            mask,
        } => Expr::Cmp {
            sym,
            relop: relop.invert(),
            value,
            mask,
        },
        Expr::StrCmp { sym, relop, name } => Expr::StrCmp {
            sym,
            relop: relop.invert(),
            name,
        },
        Expr::And(v) => Expr::Or(v.into_iter().map(not).collect()),
        Expr::Or(v) => Expr::And(v.into_iter().map(not).collect()),
        Expr::Bool(b) => Expr::Bool(!b),
        Expr::Resident { not, port } => Expr::Resident { not: !not, port },
    }
}

/// The level of a predicate's expansion (OVN's `expr_parse_level`).
pub(crate) fn predicate_level(symtab: &SymbolTable, expansion: &str) -> Level {
    fn level(symtab: &SymbolTable, e: &Expr) -> Level {
        match e {
            Expr::Cmp { sym, .. } | Expr::StrCmp { sym, .. } => {
                if symtab.get(*sym).level == Level::Nominal {
                    Level::Nominal
                } else {
                    Level::Boolean
                }
            }
            Expr::And(v) | Expr::Or(v) => v
                .iter()
                .map(|s| level(symtab, s))
                .min()
                .unwrap_or(Level::Ordinal),
            Expr::Bool(_) | Expr::Resident { .. } => Level::Boolean,
        }
    }
    match parse(expansion, symtab, &NoSets, 0) {
        Ok(e) => level(symtab, &e),
        Err(_) => Level::Nominal,
    }
}

/// An annotated expression: every comparison is on an OVS field (or a logical port
/// name on the inport/outport register), predicates are expanded and prerequisites
/// added.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    Cmp {
        field: Field,
        relop: Relop,
        value: u128,
        mask: u128,
    },
    Port {
        field: Field,
        relop: Relop,
        name: String,
    },
    And(Vec<Match>),
    Or(Vec<Match>),
    Bool(bool),
    Resident {
        not: bool,
        port: String,
    },
}

/// Caches predicate and prerequisite expansions across many annotations.
#[derive(Default)]
pub struct Annotator {
    cache: FxHashMap<String, Result<Match, String>>,
}

impl Annotator {
    /// Annotates `e` (OVN's `expr_annotate`).
    pub fn annotate(&mut self, symtab: &SymbolTable, e: &Expr) -> Result<Match, String> {
        let mut nesting = Vec::new();
        self.annotate_(symtab, e, &mut nesting)
    }

    fn expansion(
        &mut self,
        symtab: &SymbolTable,
        s: &str,
        nesting: &mut Vec<SymId>,
    ) -> Result<Match, String> {
        if let Some(r) = self.cache.get(s) {
            return r.clone();
        }
        let r = match parse(s, symtab, &NoSets, 0) {
            Ok(e) => self.annotate_(symtab, &e, nesting),
            Err(e) => Err(e),
        }
        .map_err(|err| format!("Error parsing expression `{s}' encountered as prerequisite or predicate of initial expression: {err}"));
        self.cache.insert(s.to_owned(), r.clone());
        r
    }

    fn annotate_(
        &mut self,
        symtab: &SymbolTable,
        e: &Expr,
        nesting: &mut Vec<SymId>,
    ) -> Result<Match, String> {
        match e {
            Expr::Cmp {
                sym,
                relop,
                value,
                mask,
            } => {
                let s = symtab.get(*sym);
                if nesting.contains(sym) {
                    return Err(format!("Recursive expansion of symbol `{}'.", s.name));
                }
                nesting.push(*sym);
                let r = self.annotate_cmp(symtab, *sym, *relop, *value, *mask, nesting);
                nesting.pop();
                r
            }
            Expr::StrCmp { sym, relop, name } => {
                let SymbolKind::String(field) = symtab.get(*sym).kind else {
                    return Err("string comparison on a non-string field".into());
                };
                Ok(Match::Port {
                    field,
                    relop: *relop,
                    name: name.clone(),
                })
            }
            Expr::And(v) => Ok(Match::And(
                v.iter()
                    .map(|s| self.annotate_(symtab, s, nesting))
                    .collect::<Result<_, _>>()?,
            )),
            Expr::Or(v) => Ok(Match::Or(
                v.iter()
                    .map(|s| self.annotate_(symtab, s, nesting))
                    .collect::<Result<_, _>>()?,
            )),
            Expr::Bool(b) => Ok(Match::Bool(*b)),
            Expr::Resident { not, port } => Ok(Match::Resident {
                not: *not,
                port: port.clone(),
            }),
        }
    }

    fn annotate_cmp(
        &mut self,
        symtab: &SymbolTable,
        sym: SymId,
        relop: Relop,
        mut value: u128,
        mut mask: u128,
        nesting: &mut Vec<SymId>,
    ) -> Result<Match, String> {
        let s = symtab.get(sym);
        let prereqs = match &s.prereqs {
            Some(p) => Some(self.expansion(symtab, p, nesting)?),
            None => None,
        };
        let mut cur = sym;
        let m = loop {
            let cs = symtab.get(cur);
            match &cs.kind {
                SymbolKind::Subfield { parent, ofs } => {
                    value <<= ofs;
                    mask <<= ofs;
                    cur = *parent;
                }
                SymbolKind::Field(field) => {
                    break Match::Cmp {
                        field: *field,
                        relop,
                        value,
                        mask,
                    };
                }
                SymbolKind::Predicate(expansion) => {
                    let pred = self.expansion(symtab, expansion, nesting)?;
                    let positive = (value & 1 != 0) ^ (relop == Relop::Ne);
                    break if positive { pred } else { not_match(pred) };
                }
                SymbolKind::String(_) | SymbolKind::Ovn(_) => {
                    return Err(format!("{} cannot be used in a match.", cs.name));
                }
            }
        };
        Ok(match prereqs {
            Some(p) => and_match(m, p),
            None => m,
        })
    }
}

fn and_match(a: Match, b: Match) -> Match {
    let mut v = match a {
        Match::And(v) => v,
        a => vec![a],
    };
    match b {
        Match::And(w) => v.extend(w),
        b => v.push(b),
    }
    Match::And(v)
}

/// `!m` for annotated expressions.
pub fn not_match(m: Match) -> Match {
    match m {
        Match::Cmp {
            field,
            relop,
            value,
            mask,
        } => Match::Cmp {
            field,
            relop: relop.invert(),
            value,
            mask,
        },
        Match::Port { field, relop, name } => Match::Port {
            field,
            relop: relop.invert(),
            name,
        },
        Match::And(v) => Match::Or(v.into_iter().map(not_match).collect()),
        Match::Or(v) => Match::And(v.into_iter().map(not_match).collect()),
        Match::Bool(b) => Match::Bool(!b),
        Match::Resident { not, port } => Match::Resident { not: !not, port },
    }
}

impl Match {
    /// Combines `self && other`.
    pub fn and(self, other: Match) -> Match {
        and_match(self, other)
    }

    /// Resolves `is_chassis_resident()` (OVN's `expr_evaluate_condition`).
    pub fn resolve_conditions(self, resident: &dyn Fn(&str) -> bool) -> Match {
        match self {
            Match::Resident { not, port } => Match::Bool(resident(&port) ^ not),
            Match::And(v) => Match::And(
                v.into_iter()
                    .map(|m| m.resolve_conditions(resident))
                    .collect(),
            ),
            Match::Or(v) => Match::Or(
                v.into_iter()
                    .map(|m| m.resolve_conditions(resident))
                    .collect(),
            ),
            m => m,
        }
    }

    /// Resolves logical port names to tunnel keys (the port lookups of
    /// `expr_to_matches`): a name that does not resolve makes its comparison false,
    /// as in ovn-trace's `expr_evaluate`.
    pub fn resolve_ports(self, lookup_port: &dyn Fn(&str) -> Option<u32>) -> Match {
        match self {
            Match::Port { field, relop, name } => match lookup_port(&name) {
                Some(key) => Match::Cmp {
                    field,
                    relop,
                    value: u128::from(key),
                    mask: value::ones(field.width()),
                },
                None => Match::Bool(false),
            },
            Match::And(v) => Match::And(
                v.into_iter()
                    .map(|m| m.resolve_ports(lookup_port))
                    .collect(),
            ),
            Match::Or(v) => Match::Or(
                v.into_iter()
                    .map(|m| m.resolve_ports(lookup_port))
                    .collect(),
            ),
            m => m,
        }
    }

    /// Rewrites every comparison as equality tests (OVN's `expr_simplify`): `!=` and
    /// the relational operators become disjunctions of masked equalities.
    pub fn simplify(self) -> Match {
        match self {
            Match::Cmp {
                field,
                relop,
                value,
                mask,
            } => match relop {
                Relop::Eq if mask == 0 => Match::Bool(true),
                Relop::Eq => Match::Cmp {
                    field,
                    relop,
                    value,
                    mask,
                },
                Relop::Ne => simplify_ne(field, value, mask),
                _ => simplify_relational(field, relop, value, mask),
            },
            Match::And(v) => Match::And(v.into_iter().map(Match::simplify).collect()),
            Match::Or(v) => Match::Or(v.into_iter().map(Match::simplify).collect()),
            m => m,
        }
    }

    /// Evaluates against a microflow (OVN's `expr_evaluate`), for resolved matches.
    pub fn eval(&self, flow: &Flow) -> bool {
        match self {
            Match::Cmp {
                field,
                relop,
                value,
                mask,
            } => {
                let v = flow.get(*field) & mask;
                relop.test(v.cmp(value))
            }
            Match::Port { .. } => false,
            Match::And(v) => v.iter().all(|m| m.eval(flow)),
            Match::Or(v) => v.iter().any(|m| m.eval(flow)),
            Match::Bool(b) => *b,
            Match::Resident { not, .. } => !*not,
        }
    }
}

fn simplify_ne(field: Field, value: u128, mask: u128) -> Match {
    let w = field.width();
    let mut v = Vec::new();
    for i in 0..w {
        let bit = 1u128 << i;
        if mask & bit != 0 {
            v.push(Match::Cmp {
                field,
                relop: Relop::Eq,
                value: !value & bit,
                mask: bit,
            });
        }
    }
    match v.len() {
        0 => Match::Bool(false),
        1 => v.pop().unwrap_or(Match::Bool(false)),
        _ => Match::Or(v),
    }
}

fn simplify_relational(field: Field, relop: Relop, value: u128, mask: u128) -> Match {
    // The comparison is on the contiguous run of mask bits [start, end).
    let w = field.width();
    let m = mask & value::ones(w);
    if m == 0 {
        return Match::Bool(false);
    }
    let start = m.trailing_zeros();
    let end = 128 - m.leading_zeros();
    let lt = matches!(relop, Relop::Lt | Relop::Le);
    let eq = matches!(relop, Relop::Le | Relop::Ge);
    let bit = |z: u32| value & (1u128 << z) != 0;
    // "tcp.dst >= 0" is always true; "tcp.dst > 0" is "tcp.dst != 0".
    if (start..end).all(|z| bit(z) == lt) {
        return if eq {
            Match::Bool(true)
        } else {
            simplify_ne(field, value, mask)
        };
    }
    let mut v = Vec::new();
    if eq {
        v.push(Match::Cmp {
            field,
            relop: Relop::Eq,
            value,
            mask,
        });
    }
    for z in start..end {
        // For "<", each 1 bit of the value gives the prefix with that bit 0; for ">",
        // each 0 bit gives the prefix with that bit 1.
        if bit(z) == lt {
            let low = value::ones(z) & !value::ones(start);
            let e_mask = mask & !low;
            let e_value = (value ^ (1u128 << z)) & !low;
            v.push(Match::Cmp {
                field,
                relop: Relop::Eq,
                value: e_value,
                mask: e_mask,
            });
        }
    }
    match v.len() {
        0 => Match::Bool(false),
        1 => v.pop().unwrap_or(Match::Bool(false)),
        _ => Match::Or(v),
    }
}

/// A conjunction of masked equalities on flow words: what one classifier rule holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conj {
    pub mask: [u64; WORDS],
    pub value: [u64; WORDS],
}

impl Conj {
    pub const ANY: Conj = Conj {
        mask: [0; WORDS],
        value: [0; WORDS],
    };

    /// Adds one masked equality; false if it contradicts what is there.
    fn constrain(&mut self, field: Field, value: u128, mask: u128) -> bool {
        let l = field.loc();
        let storable = value::ones(u32::from(l.bits));
        // Bits of the field beyond its storage read as zero: a 1 there never matches.
        if value & mask & !storable != 0 {
            return false;
        }
        let (value, mask) = (value & storable, mask & storable);
        let parts: [(usize, u64, u64); 2] = if l.bits == 128 {
            [
                (l.word as usize, (value >> 64) as u64, (mask >> 64) as u64),
                (l.word as usize + 1, value as u64, mask as u64),
            ]
        } else {
            [
                (
                    l.word as usize,
                    (value as u64) << l.shift,
                    (mask as u64) << l.shift,
                ),
                (l.word as usize, 0, 0),
            ]
        };
        for &(w, v, m) in &parts {
            if (self.value[w] ^ v) & self.mask[w] & m != 0 {
                return false;
            }
        }
        for (w, v, m) in parts {
            self.mask[w] |= m;
            self.value[w] |= v;
        }
        true
    }

    fn merge_words(&mut self, m: &[u64; WORDS], v: &[u64; WORDS]) -> bool {
        for i in 0..WORDS {
            if (self.value[i] ^ v[i]) & self.mask[i] & m[i] != 0 {
                return false;
            }
        }
        for i in 0..WORDS {
            self.mask[i] |= m[i];
            self.value[i] |= v[i];
        }
        true
    }

    /// A hash over the constrained words only (most of a conjunction is wildcard).
    fn hash64(&self) -> u64 {
        let mut h = 0u64;
        for i in 0..WORDS {
            if self.mask[i] != 0 {
                h = (h.rotate_left(5) ^ (i as u64) ^ self.mask[i])
                    .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
                h = (h.rotate_left(5) ^ self.value[i]).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
            }
        }
        h
    }

    fn merge(&self, other: &Conj) -> Option<Conj> {
        let mut c = *self;
        c.merge_words(&other.mask, &other.value).then_some(c)
    }

    pub fn matches(&self, flow: &Flow) -> bool {
        (0..WORDS).all(|i| flow.w[i] & self.mask[i] == self.value[i])
    }
}

/// Why an expression could not become classifier rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToConjError {
    #[error("match expands to more than {0} flows")]
    TooMany(usize),
    #[error("match still holds an unresolved port name or condition")]
    Unresolved,
}

/// Converts a resolved, simplified match to a disjunction of conjunctions (at most
/// `limit`); an empty result never matches.
pub fn to_conjs(m: &Match, limit: usize) -> Result<Vec<Conj>, ToConjError> {
    let mut out = dnf(m, limit)?;
    dedup(&mut out);
    Ok(out)
}

fn dedup(v: &mut Vec<Conj>) {
    match v.len() {
        0 | 1 => {}
        2 => {
            if v[0] == v[1] {
                v.pop();
            }
        }
        _ => {
            // Indices into `v` in the table, not copies: a conjunction is 400 bytes.
            let mut seen: hashbrown::HashTable<u32> = hashbrown::HashTable::with_capacity(v.len());
            let mut kept = 0;
            for i in 0..v.len() {
                let h = v[i].hash64();
                if seen.find(h, |&j| v[j as usize] == v[i]).is_none() {
                    v.swap(kept, i);
                    seen.insert_unique(h, kept as u32, |&j| v[j as usize].hash64());
                    kept += 1;
                }
            }
            v.truncate(kept);
        }
    }
}

fn dnf(m: &Match, limit: usize) -> Result<Vec<Conj>, ToConjError> {
    match m {
        Match::Bool(true) => Ok(vec![Conj::ANY]),
        Match::Bool(false) => Ok(vec![]),
        Match::Cmp {
            field,
            relop: Relop::Eq,
            value,
            mask,
        } => {
            let mut c = Conj::ANY;
            Ok(if c.constrain(*field, *value, *mask) {
                vec![c]
            } else {
                vec![]
            })
        }
        Match::Cmp { .. } | Match::Port { .. } | Match::Resident { .. } => {
            Err(ToConjError::Unresolved)
        }
        Match::Or(v) => {
            let mut out = Vec::new();
            for s in v {
                out.extend(dnf(s, limit)?);
                if out.len() > limit {
                    return Err(ToConjError::TooMany(limit));
                }
            }
            Ok(out)
        }
        Match::And(v) => {
            let mut acc = vec![Conj::ANY];
            // Plain equalities first: they narrow every conjunction in place.
            for s in v {
                if let Match::Cmp {
                    field,
                    relop: Relop::Eq,
                    value,
                    mask,
                } = s
                {
                    acc.retain_mut(|c| c.constrain(*field, *value, *mask));
                }
            }
            for s in v {
                if matches!(
                    s,
                    Match::Cmp {
                        relop: Relop::Eq,
                        ..
                    }
                ) {
                    continue;
                }
                if acc.is_empty() {
                    return Ok(acc);
                }
                let sub = dnf(s, limit)?;
                let mut next = Vec::with_capacity(acc.len() * sub.len().max(1));
                for a in &acc {
                    for b in &sub {
                        if let Some(c) = a.merge(b) {
                            next.push(c);
                            if next.len() > limit {
                                return Err(ToConjError::TooMany(limit));
                            }
                        }
                    }
                }
                dedup(&mut next);
                acc = next;
            }
            Ok(acc)
        }
    }
}

impl fmt::Display for Relop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::ETH_TYPE_IP;

    fn t() -> SymbolTable {
        SymbolTable::ovn()
    }

    fn compile(s: &str) -> Vec<Conj> {
        let t = t();
        let e = parse(s, &t, &NoSets, 1).unwrap();
        let m = Annotator::default().annotate(&t, &e).unwrap();
        let m = m
            .resolve_conditions(&|_| true)
            .resolve_ports(&|n| (n == "p1").then_some(1))
            .simplify();
        to_conjs(&m, 10_000).unwrap()
    }

    fn err(s: &str) -> String {
        parse(s, &t(), &NoSets, 1).unwrap_err()
    }

    #[test]
    fn prerequisites_are_added() {
        let c = compile("ip4.src == 10.0.0.1");
        assert_eq!(c.len(), 1);
        let mut f = Flow::default();
        f.set(Field::Ipv4Src, 0x0a00_0001);
        assert!(!c[0].matches(&f), "eth.type must be required");
        f.set(Field::EthType, u128::from(ETH_TYPE_IP));
        assert!(c[0].matches(&f));
    }

    #[test]
    fn ip_expands_to_two() {
        assert_eq!(compile("ip").len(), 2);
        assert_eq!(compile("ip4 && ip").len(), 1);
        assert_eq!(compile("ip4 && ip6").len(), 0);
    }

    #[test]
    fn sets_ranges_and_ne() {
        assert_eq!(compile("tcp.dst == {80, 443}").len(), 4); // × ip4/ip6
        assert_eq!(compile("ip4 && tcp.dst != 80").len(), 16);
        // 1 <= x <= 5 over 16 bits: x=1, 2..3, 4..5 (three prefixes).
        let c = compile("ip4 && 1 <= tcp.dst <= 5");
        let mut f = Flow::default();
        f.set(Field::EthType, 0x800);
        f.set(Field::IpProto, 6);
        for port in 0..10u16 {
            f.set(Field::TcpDst, u128::from(port));
            let hit = c.iter().any(|c| c.matches(&f));
            assert_eq!(hit, (1..=5).contains(&port), "port {port}");
        }
    }

    #[test]
    fn ports_and_conditions() {
        assert_eq!(compile("inport == \"p1\"").len(), 1);
        assert_eq!(compile("inport == \"nope\"").len(), 0);
        assert_eq!(compile("is_chassis_resident(\"p1\")").len(), 1);
        assert_eq!(compile("!is_chassis_resident(\"p1\")").len(), 0);
    }

    #[test]
    fn ovn_parse_errors() {
        assert!(err("ip4 && ip6 || arp").contains("parenthesized"));
        assert!(err("eth.type != 0x800").contains("Nominal field"));
        assert!(err("!ip4").contains("Nominal predicate"));
        assert!(err("tcp.dst").contains("Explicit `!= 0'"));
        assert!(err("ip.proto < 5").contains("nominal field"));
        assert!(err("reg0 == 0x1ffffffff").contains("33-bit constant"));
        assert!(err("tcp.dst > {1, 2}").contains("value sets"));
        assert!(err("inport == 5").contains("not compatible"));
        assert!(err("eth.type[1]").contains("nominal field"));
        assert!(err("foo == 1").contains("expecting field name"));
        assert!(err("reg0[5..40] == 1").contains("Cannot select bits"));
    }

    #[test]
    fn booleans_and_bits() {
        assert_eq!(compile("1").len(), 1);
        assert_eq!(compile("0").len(), 0);
        assert_eq!(compile("reg0[3]").len(), 1);
        assert_eq!(compile("!reg0[3]").len(), 1);
        assert_eq!(compile("ct.est && !ct.new").len(), 1);
        assert_eq!(compile("eth.mcast").len(), 1);
        assert_eq!(compile("ip6.mcast_flood").len(), 7);
    }

    #[test]
    fn port_groups_and_address_sets() {
        let t = t();
        let mut sets = Sets::default();
        sets.add_address_set("as1", ["10.0.0.1", "10.0.0.0/24", "bogus"]);
        sets.add_port_group("1_pg1", ["p1", "p2"]);
        let e = parse("ip4.src == $as1 && inport == @pg1", &t, &sets, 1).unwrap();
        let m = Annotator::default()
            .annotate(&t, &e)
            .unwrap()
            .resolve_conditions(&|_| true)
            .resolve_ports(&|n| match n {
                "p1" => Some(1),
                "p2" => Some(2),
                _ => None,
            })
            .simplify();
        assert_eq!(to_conjs(&m, 100).unwrap().len(), 4);
        assert!(parse("ip4.src == $nope", &t, &sets, 1).is_err());
    }
}
