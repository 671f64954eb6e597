//! The lexer shared by OVN's match and action languages (ovn-sb(5) "Logical_Flow
//! TABLE"; OVN's lib/lex.c): identifiers, quoted strings, integers in decimal,
//! hexadecimal, IPv4, IPv6 and Ethernet syntax with optional masks or prefix lengths,
//! `$address_set`, `@port_group`, `^template`, operators, and `//` / `/* */` comments.
//!
//! Tokens print back in a form the lexer reads again ([`Token`]'s `Display`), which is
//! what makes formatted actions equal to OVN's.

use std::fmt;
use std::net::Ipv4Addr;

use crate::value::{self, Format};

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    End,
    Id(String),
    Str(String),
    /// An integer constant, e.g. `12345`, `0x1f`, `10.0.0.1`, `::1`, `00:11:22:33:44:55`.
    Int(Constant),
    /// A masked integer, e.g. `10.0.0.0/8`, `0x10/0xf0`.
    MaskedInt(Constant),
    /// `$name` (without the `$`).
    Macro(String),
    /// `@name` (without the `@`).
    PortGroup(String),
    /// `^name`.
    Template(String),
    Error(String),
    LParen,
    RParen,
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LogNot,
    LogAnd,
    LogOr,
    Ellipsis,
    Comma,
    Semicolon,
    Equals,
    Exchange,
    Decrement,
    Colon,
    Hyphen,
}

/// An integer constant as lexed: its value, its mask (masked tokens only; bits of the
/// value outside the mask are zero) and the syntax it was written in, which is how it
/// prints back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Constant {
    pub value: u128,
    pub mask: Option<u128>,
    pub format: Format,
}

impl Constant {
    pub fn new(value: u128, format: Format) -> Constant {
        Constant {
            value,
            mask: None,
            format,
        }
    }

    /// The format it prints in: its own, unless the value (or mask) does not fit it.
    fn effective_format(&self) -> Format {
        let width = self.format.width();
        let fits = |v: u128| width >= 128 || v >> width == 0;
        if fits(self.value) && self.mask.is_none_or(fits) {
            self.format
        } else {
            Format::Hexadecimal
        }
    }
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = self.effective_format();
        value::write(f, self.value, format)?;
        if let Some(mask) = self.mask {
            f.write_str("/")?;
            if format == Format::Ipv4 && value::is_cidr(mask, 32) {
                write!(f, "{}", value::cidr_bits(mask, 32))
            } else if self.format == Format::Ipv6 && value::is_cidr(mask, 128) {
                write!(f, "{}", value::cidr_bits(mask, 128))
            } else {
                value::write(f, mask, format)
            }
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::End => f.write_str("$"),
            Token::Id(s) => f.write_str(s),
            Token::Error(s) => write!(f, "error({})", JsonStr(s)),
            Token::Str(s) => write!(f, "{}", JsonStr(s)),
            Token::Int(c) | Token::MaskedInt(c) => write!(f, "{c}"),
            Token::Macro(s) => write!(f, "${s}"),
            Token::PortGroup(s) => write!(f, "@{s}"),
            Token::Template(s) => write!(f, "^{s}"),
            Token::LParen => f.write_str("("),
            Token::RParen => f.write_str(")"),
            Token::LCurly => f.write_str("{"),
            Token::RCurly => f.write_str("}"),
            Token::LSquare => f.write_str("["),
            Token::RSquare => f.write_str("]"),
            Token::Eq => f.write_str("=="),
            Token::Ne => f.write_str("!="),
            Token::Lt => f.write_str("<"),
            Token::Le => f.write_str("<="),
            Token::Gt => f.write_str(">"),
            Token::Ge => f.write_str(">="),
            Token::LogNot => f.write_str("!"),
            Token::LogAnd => f.write_str("&&"),
            Token::LogOr => f.write_str("||"),
            Token::Ellipsis => f.write_str(".."),
            Token::Comma => f.write_str(","),
            Token::Semicolon => f.write_str(";"),
            Token::Equals => f.write_str("="),
            Token::Exchange => f.write_str("<->"),
            Token::Decrement => f.write_str("--"),
            Token::Colon => f.write_str(":"),
            Token::Hyphen => f.write_str("-"),
        }
    }
}

/// A string written as a JSON string literal (OVS's `json_string_escape`).
pub struct JsonStr<'a>(pub &'a str);

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\u{8}' => f.write_str("\\b")?,
                '\u{c}' => f.write_str("\\f")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

fn is_id1(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'.'
}

fn is_idn(c: u8) -> bool {
    is_id1(c) || c.is_ascii_digit()
}

/// Parses one token from the start of `input` (after white space and comments).
/// Returns the token, the offset where it starts and the offset after it.
pub fn parse_token(input: &str, mut p: usize) -> (Token, usize, usize) {
    let b = input.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    loop {
        let start = p;
        let c = at(p);
        let (token, end) = match c {
            0 => (Token::End, p),
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                p += 1;
                continue;
            }
            b'/' => {
                p += 1;
                if at(p) == b'/' {
                    while at(p) != 0 && at(p) != b'\n' {
                        p += 1;
                    }
                    continue;
                } else if at(p) == b'*' {
                    p += 1;
                    loop {
                        if at(p) == b'*' && at(p + 1) == b'/' {
                            p += 2;
                            break;
                        } else if at(p) == 0 || at(p) == b'\n' {
                            return (Token::Error("`/*' without matching `*/'.".into()), start, p);
                        }
                        p += 1;
                    }
                    continue;
                } else {
                    (
                        Token::Error("`/' is only valid as part of `//' or `/*'.".into()),
                        p,
                    )
                }
            }
            b'(' => (Token::LParen, p + 1),
            b')' => (Token::RParen, p + 1),
            b'{' => (Token::LCurly, p + 1),
            b'}' => (Token::RCurly, p + 1),
            b'[' => (Token::LSquare, p + 1),
            b']' => (Token::RSquare, p + 1),
            b'=' if at(p + 1) == b'=' => (Token::Eq, p + 2),
            b'=' => (Token::Equals, p + 1),
            b'!' if at(p + 1) == b'=' => (Token::Ne, p + 2),
            b'!' => (Token::LogNot, p + 1),
            b'&' if at(p + 1) == b'&' => (Token::LogAnd, p + 2),
            b'&' => (
                Token::Error("`&' is only valid as part of `&&'.".into()),
                p + 1,
            ),
            b'|' if at(p + 1) == b'|' => (Token::LogOr, p + 2),
            b'|' => (
                Token::Error("`|' is only valid as part of `||'.".into()),
                p + 1,
            ),
            b'<' if at(p + 1) == b'=' => (Token::Le, p + 2),
            b'<' if at(p + 1) == b'-' && at(p + 2) == b'>' => (Token::Exchange, p + 3),
            b'<' => (Token::Lt, p + 1),
            b'>' if at(p + 1) == b'=' => (Token::Ge, p + 2),
            b'>' => (Token::Gt, p + 1),
            b'.' if at(p + 1) == b'.' => (Token::Ellipsis, p + 2),
            b'.' => (
                Token::Error("`.' is only valid as part of `..' or a number.".into()),
                p + 1,
            ),
            b',' => (Token::Comma, p + 1),
            b';' => (Token::Semicolon, p + 1),
            b'-' if at(p + 1) == b'-' => (Token::Decrement, p + 2),
            b'-' => (Token::Hyphen, p + 1),
            b'$' | b'@' | b'^' => {
                if !is_id1(at(p + 1)) {
                    let what = c as char;
                    (
                        Token::Error(format!("`{what}' must be followed by a valid identifier.")),
                        p + 1,
                    )
                } else {
                    let end = scan_id(b, p + 1);
                    let s = input[p + 1..end].to_owned();
                    let t = match c {
                        b'$' => Token::Macro(s),
                        b'@' => Token::PortGroup(s),
                        _ => Token::Template(s),
                    };
                    (t, end)
                }
            }
            b':' if at(p + 1) != b':' => (Token::Colon, p + 1),
            b':' | b'0'..=b'9' => parse_integer(input, p),
            b'"' => parse_string(input, p),
            // An Ethernet or IPv6 address may start with a letter; identifiers never
            // have a colon after their leading hex digits.
            b'a'..=b'f' | b'A'..=b'F'
                if at(b[p..].iter().take_while(|c| c.is_ascii_hexdigit()).count() + p) == b':' =>
            {
                parse_integer(input, p)
            }
            c if is_id1(c) => {
                let end = scan_id(b, p + 1);
                (Token::Id(input[p..end].to_owned()), end)
            }
            c if c.is_ascii_graphic() || c == b' ' => (
                Token::Error(format!("Invalid character `{}' in input.", c as char)),
                p + 1,
            ),
            c => (
                Token::Error(format!("Invalid byte 0x{c:x} in input.")),
                p + 1,
            ),
        };
        return (token, start, end);
    }
}

fn scan_id(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && is_idn(b[p]) {
        p += 1;
    }
    p
}

fn parse_string(input: &str, p: usize) -> (Token, usize) {
    let b = input.as_bytes();
    let start = p + 1;
    let mut q = start;
    loop {
        match b.get(q) {
            None => return (Token::Error("Input ends inside quoted string.".into()), q),
            Some(b'"') => {
                return match json_unescape(&input[start..q]) {
                    Ok(s) => (Token::Str(s), q + 1),
                    Err(e) => (Token::Error(e), q + 1),
                };
            }
            Some(b'\\') => q += if q + 1 < b.len() { 2 } else { 1 },
            Some(_) => q += 1,
        }
    }
}

fn json_unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('/') => out.push('/'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code =
                    u32::from_str_radix(&hex, 16).map_err(|_| "malformed \\u escape".to_owned())?;
                out.push(char::from_u32(code).ok_or("invalid \\u escape")?);
            }
            _ => return Err("bad escape in string".into()),
        }
    }
    Ok(out)
}

/// Lexes an integer-like token at `p`: decimal, `0x` hexadecimal, IPv4, IPv6 or
/// Ethernet, then an optional `/mask`.
fn parse_integer(input: &str, p: usize) -> (Token, usize) {
    let (tok, end) = parse_integer_bare(input, p);
    let Token::Int(c) = tok else {
        return (tok, end);
    };
    if input.as_bytes().get(end) != Some(&b'/') {
        return (Token::Int(c), end);
    }
    let (mtok, mend) = parse_integer_bare(input, end + 1);
    let Token::Int(m) = mtok else {
        return (mtok, mend);
    };
    let prefix = m.value;
    let (mut value, format, mask) = (c.value, c.format, m.value);
    let mask = if c.format == m.format {
        mask
    } else if c.format == Format::Ipv4 && m.format == Format::Decimal && prefix <= 32 {
        value::prefix_mask(prefix as u32, 32)
    } else if c.format == Format::Ipv6 && m.format == Format::Decimal && prefix <= 128 {
        value::prefix_mask(prefix as u32, 128)
    } else if c.format == Format::Decimal && m.format == Format::Hexadecimal && c.value == 0 {
        return (
            Token::MaskedInt(Constant {
                value: 0,
                mask: Some(mask),
                format: Format::Hexadecimal,
            }),
            mend,
        );
    } else {
        return (
            Token::Error("Value and mask have incompatible formats.".into()),
            mend,
        );
    };
    value &= mask;
    (
        Token::MaskedInt(Constant {
            value,
            mask: Some(mask),
            format,
        }),
        mend,
    )
}

fn parse_integer_bare(input: &str, p: usize) -> (Token, usize) {
    let b = input.as_bytes();
    let mut end = p;
    let mut saw_dot = false;
    while end < b.len() {
        let c = b[end];
        if c.is_ascii_alphanumeric()
            || (c == b':' && !saw_dot)
            || (c == b'.' && b.get(end + 1) != Some(&b'.'))
        {
            if c == b'.' {
                saw_dot = true;
            }
            end += 1;
        } else {
            break;
        }
    }
    let s = &input[p..end];
    let err = |m: &str| (Token::Error(m.to_owned()), end);
    if s.is_empty() {
        return err("Integer constant expected.");
    }
    if s.len() == 17
        && let Some(mac) = value::parse_mac(s)
    {
        return (
            Token::Int(Constant::new(mac as u128, Format::Ethernet)),
            end,
        );
    }
    if s.bytes().all(|c| c.is_ascii_digit()) {
        if s.len() > 1 && s.starts_with('0') {
            return err("Decimal constants must not have leading zeros.");
        }
        return match s.parse::<u64>() {
            Ok(v) => (Token::Int(Constant::new(v as u128, Format::Decimal)), end),
            Err(_) => err("Decimal constants must be less than 2**64."),
        };
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() {
            let x = &s[1..2];
            return err(&format!("Hex digits expected following 0{x}."));
        }
        let digits = hex.trim_start_matches('0');
        if digits.len() > 32 {
            return if digits.bytes().all(|c| c.is_ascii_hexdigit()) {
                // OVN accepts up to 1024 bits; no field is wider than 128.
                err("Hexadecimal constant requires more than 128 bits.")
            } else {
                err("Invalid syntax in hexadecimal constant.")
            };
        }
        return match u128::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16) {
            Ok(v) => (Token::Int(Constant::new(v, Format::Hexadecimal)), end),
            Err(_) => err("Invalid syntax in hexadecimal constant."),
        };
    }
    if s.len() < 46 {
        if let Some(v4) = value::parse_ipv4(s) {
            return (Token::Int(Constant::new(v4 as u128, Format::Ipv4)), end);
        }
        if let Ok(v6) = s.parse::<std::net::Ipv6Addr>() {
            return (Token::Int(Constant::new(u128::from(v6), Format::Ipv6)), end);
        }
    }
    err("Invalid numeric constant.")
}

/// A lexer over one input string with one token of lookahead.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    input: &'a str,
    /// Offset after the current token.
    next: usize,
    /// Offset where the current token starts.
    start: usize,
    pub token: Token,
    error: Option<String>,
}

impl<'a> Lexer<'a> {
    /// A lexer positioned on the first token of `input`.
    pub fn new(input: &'a str) -> Lexer<'a> {
        let mut lexer = Lexer {
            input,
            next: 0,
            start: 0,
            token: Token::End,
            error: None,
        };
        lexer.get();
        lexer
    }

    /// Advances to the next token.
    pub fn get(&mut self) -> &Token {
        let (token, start, next) = parse_token(self.input, self.next);
        self.token = token;
        self.start = start;
        self.next = next;
        if let Token::Error(msg) = &self.token
            && self.error.is_none()
        {
            self.error = Some(msg.clone());
        }
        &self.token
    }

    /// The token after the current one, without consuming anything.
    pub fn lookahead(&self) -> Token {
        parse_token(self.input, self.next).0
    }

    /// If the current token is `t`, consumes it.
    pub fn matches(&mut self, t: &Token) -> bool {
        if &self.token == t {
            self.get();
            true
        } else {
            false
        }
    }

    /// Consumes `t` or records a syntax error.
    pub fn force_match(&mut self, t: &Token) -> bool {
        if self.matches(t) {
            true
        } else {
            self.syntax_error(Some(&format!("expecting `{t}'")));
            false
        }
    }

    /// If the current token is the identifier `id`, consumes it.
    pub fn match_id(&mut self, id: &str) -> bool {
        if matches!(&self.token, Token::Id(s) if s == id) {
            self.get();
            true
        } else {
            false
        }
    }

    /// If the current token is the string `s`, consumes it.
    pub fn match_string(&mut self, s: &str) -> bool {
        if matches!(&self.token, Token::Str(x) if x == s) {
            self.get();
            true
        } else {
            false
        }
    }

    /// Whether the current token is a decimal integer that fits in an `i32`.
    pub fn is_int(&self) -> bool {
        matches!(&self.token, Token::Int(c) if c.format == Format::Decimal && c.value <= i32::MAX as u128)
    }

    /// Consumes a decimal integer.
    pub fn get_int(&mut self) -> Option<i32> {
        if let Token::Int(c) = &self.token
            && self.is_int()
        {
            let v = c.value as i32;
            self.get();
            Some(v)
        } else {
            None
        }
    }

    /// Consumes a decimal integer or records a syntax error.
    pub fn force_int(&mut self) -> Option<i32> {
        let v = self.get_int();
        if v.is_none() {
            self.syntax_error(Some("expecting small integer"));
        }
        v
    }

    /// Records a syntax error unless the input is exhausted.
    pub fn force_end(&mut self) -> bool {
        if self.token == Token::End {
            true
        } else {
            self.syntax_error(Some("expecting end of input"));
            false
        }
    }

    /// Records `msg` as the error, unless an earlier one is recorded.
    pub fn error(&mut self, msg: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(msg.into());
        }
    }

    /// Records a "Syntax error at `TOKEN'" error, as OVN words it.
    pub fn syntax_error(&mut self, msg: Option<&str>) {
        if self.error.is_some() {
            return;
        }
        let at = match &self.token {
            Token::End => "end of input".to_owned(),
            Token::Error(e) => {
                self.error = Some(e.clone());
                return;
            }
            _ => format!("`{}'", &self.input[self.start..self.next]),
        };
        self.error = Some(match msg {
            Some(m) => format!("Syntax error at {at} {m}."),
            None => format!("Syntax error at {at}."),
        });
    }

    pub fn has_error(&self) -> bool {
        self.error.is_some()
    }

    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// The text of the current token.
    pub fn token_text(&self) -> &'a str {
        &self.input[self.start..self.next]
    }
}

/// Replaces `^name` template references in `s` with their values (ovn-sb(5)
/// Chassis_Template_Var). Unknown names are left for the parser to report.
pub fn expand_templates(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains('^') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut p = 0;
    loop {
        let (tok, start, end) = parse_token(s, p);
        match tok {
            Token::End => {
                out.push_str(&s[p..]);
                return out;
            }
            Token::Template(name) => match vars(&name) {
                Some(v) => {
                    out.push_str(&s[p..start]);
                    out.push_str(&v);
                }
                None => out.push_str(&s[p..end]),
            },
            Token::Error(_) => {
                out.push_str(&s[p..]);
                return out;
            }
            _ => out.push_str(&s[p..end]),
        }
        p = end;
    }
}

impl fmt::Display for Lexer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.token)
    }
}

/// IPv4 address formatting helper for other modules.
pub fn ipv4(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Vec<Token> {
        let mut out = Vec::new();
        let mut p = 0;
        loop {
            let (t, _, end) = parse_token(s, p);
            if t == Token::End {
                return out;
            }
            out.push(t);
            p = end;
        }
    }

    fn round_trip(s: &str) -> String {
        tokens(s)
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn integers_print_as_written() {
        assert_eq!(round_trip("0 123 0x1f 0x0001"), "0 123 0x1f 0x1");
        assert_eq!(round_trip("10.0.0.1 ::1 fe80::1"), "10.0.0.1 ::1 fe80::1");
        assert_eq!(round_trip("00:11:22:aa:BB:cc"), "00:11:22:aa:bb:cc");
        assert_eq!(round_trip("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(round_trip("10.0.0.0/255.0.255.0"), "10.0.0.0/255.0.255.0");
        assert_eq!(round_trip("fe80::/10"), "fe80::/10");
        assert_eq!(round_trip("0/0x1234"), "0/0x1234");
        assert_eq!(round_trip("0x10/0xf0"), "0x10/0xf0");
        assert_eq!(round_trip("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
    }

    #[test]
    fn punctuation_and_comments() {
        assert_eq!(
            round_trip("a<->b; x--; c[0..15] != 3 /* c */ && !d || e // end"),
            "a <-> b ; x -- ; c [ 0 .. 15 ] != 3 && ! d || e"
        );
        assert_eq!(
            round_trip("$as @pg ^tv \"q\\\"s\""),
            "$as @pg ^tv \"q\\\"s\""
        );
        assert_eq!(round_trip("1.2.3.4:80"), "1.2.3.4 : 80");
    }

    #[test]
    fn errors() {
        assert!(matches!(tokens("012")[0], Token::Error(_)));
        assert!(matches!(tokens("0x")[0], Token::Error(_)));
        assert!(matches!(tokens("1.2.3.4/::1")[0], Token::Error(_)));
        assert!(matches!(tokens("\"abc")[0], Token::Error(_)));
        assert!(matches!(tokens("&")[0], Token::Error(_)));
        assert!(matches!(tokens("/* x")[0], Token::Error(_)));
    }

    #[test]
    fn templates_expand() {
        let vars = |n: &str| (n == "vip").then(|| "10.0.0.1".to_owned());
        assert_eq!(
            expand_templates("ip4.dst == ^vip", &vars),
            "ip4.dst == 10.0.0.1"
        );
        assert_eq!(expand_templates("ip4.dst == ^x", &vars), "ip4.dst == ^x");
    }
}
