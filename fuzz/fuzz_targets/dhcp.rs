//! DHCP requests as pinctrl reads them (`pinctrl::dhcp::parse`, a UDP payload from a
//! port): a request or a counted refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovnest_datapath::pinctrl::dhcp;

fuzz_target!(|data: &[u8]| {
    match dhcp::parse(data) {
        Ok(request) => {
            let _ = format!("{request:?}");
        }
        Err(no) => {
            let _ = no.reason();
        }
    }
});
