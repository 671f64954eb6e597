//! Logical flow match expressions (`ovnest_logical::expr::parse`, OVN's `expr_parse`)
//! with OVN's symbol table: an expression or an error text, never a panic or a runaway
//! (nesting and set sizes are bounded by the parser).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ovnest_logical::{expr, symtab::SymbolTable};

fuzz_target!(|data: &[u8]| {
    static SYMTAB: OnceLock<SymbolTable> = OnceLock::new();
    let symtab = SYMTAB.get_or_init(SymbolTable::ovn);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(e) = expr::parse(text, symtab, &expr::NoSets, 1) {
        let _ = format!("{e:?}");
    }
});
