//! OVSDB JSON-RPC framing: bytes from a server, split into reads at places the input
//! chooses, through the stream decoder (`FrameDecoder`) and into messages
//! (`Message::from_json`). A message or a clean error, no panic, no growth beyond the
//! decoder's limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovnest_ovsdb::{FrameDecoder, Message};

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let (cuts, bytes) = data.split_at(data.len().min(4));
    let mut decoder = FrameDecoder::new(LIMIT);
    let mut rest = bytes;
    let mut cut = cuts.iter().map(|c| usize::from(*c) + 1).cycle();
    while !rest.is_empty() {
        let n = cut.next().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        decoder.push(chunk);
        rest = tail;
        loop {
            match decoder.next_value() {
                Ok(Some(value)) => {
                    if let Ok(message) = Message::from_json(value) {
                        let _ = message.to_bytes();
                    }
                }
                Ok(None) => break,
                // A framing error ends the connection in the client.
                Err(_) => return,
            }
        }
    }
});
