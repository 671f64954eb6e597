//! Framing: splitting the byte stream into JSON-RPC messages.
//!
//! RFC 7047 §4 sends JSON values back to back with no delimiter (ovsdb-server writes no
//! newline), so a read may end inside a value or hold several. The decoder scans bytes as
//! they arrive, tracking string/escape state and bracket depth, and hands each complete
//! top-level value to serde_json. Scanning resumes where it stopped, so a value split over
//! many reads costs O(n), and a value larger than `max_message` is refused before it is
//! buffered whole: the caller logs, counts and reconnects.

use serde_json::Value;

/// 64 MiB: a full Southbound snapshot of a large deployment fits with a wide margin.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("message exceeds the {max}-byte limit")]
    TooLarge { max: usize },
    #[error("byte {byte:#04x} where a JSON-RPC message should start")]
    NotAMessage { byte: u8 },
    #[error("malformed JSON: {0}")]
    Json(String),
}

/// The largest buffer [`FrameDecoder`] keeps once it holds nothing unconsumed.
const RETAINED_BUFFER: usize = 1 << 20;

/// Incremental splitter and parser of concatenated JSON values.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    start: usize,
    /// Next byte to scan.
    scan: usize,
    /// Start of the value being scanned, once its first byte was seen.
    value_start: Option<usize>,
    depth: u32,
    in_string: bool,
    escape: bool,
    max: usize,
    /// The error that broke framing; every later call returns it again.
    failed: Option<CodecError>,
}

impl FrameDecoder {
    pub fn new(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            scan: 0,
            value_start: None,
            depth: 0,
            in_string: false,
            escape: false,
            max: max_message.max(2),
            failed: None,
        }
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            if let Some(v) = self.value_start.as_mut() {
                *v -= self.start;
            }
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// True when bytes of an unfinished value are buffered: an EOF now cuts a message.
    pub fn has_partial(&self) -> bool {
        self.buf
            .get(self.start..)
            .is_some_and(|rest| rest.iter().any(|b| !b.is_ascii_whitespace()))
    }

    /// The next complete value, `Ok(None)` when more bytes are needed. After an error the
    /// stream is unusable (its framing is lost): drop the connection.
    pub fn next_value(&mut self) -> Result<Option<Value>, CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let frame = self
            .next_frame()
            .inspect_err(|e| self.failed = Some(e.clone()))?;
        match frame {
            None => Ok(None),
            Some((from, to)) => {
                let value = serde_json::from_slice(&self.buf[from..to]).map_err(|e| {
                    let e = CodecError::Json(e.to_string());
                    self.failed = Some(e.clone());
                    e
                })?;
                self.release();
                Ok(Some(value))
            }
        }
    }

    /// Once every buffered byte is consumed, lets go of a buffer a large message grew
    /// (a full snapshot's reply is tens of MB; the updates after it are small).
    fn release(&mut self) {
        if self.start == self.buf.len() && self.buf.capacity() > RETAINED_BUFFER {
            self.buf = Vec::new();
            self.start = 0;
            self.scan = 0;
        }
    }

    fn next_frame(&mut self) -> Result<Option<(usize, usize)>, CodecError> {
        let buf = &self.buf;
        let mut i = self.scan;
        while i < buf.len() {
            let b = buf[i];
            match self.value_start {
                None => {
                    if b.is_ascii_whitespace() {
                        self.start = i + 1;
                    } else if b == b'{' || b == b'[' {
                        self.value_start = Some(i);
                        self.depth = 1;
                    } else {
                        return Err(CodecError::NotAMessage { byte: b });
                    }
                }
                Some(from) => {
                    if self.in_string {
                        if self.escape {
                            self.escape = false;
                        } else if b == b'\\' {
                            self.escape = true;
                        } else if b == b'"' {
                            self.in_string = false;
                        }
                    } else {
                        match b {
                            b'"' => self.in_string = true,
                            b'{' | b'[' => self.depth += 1,
                            b'}' | b']' => {
                                self.depth -= 1;
                                if self.depth == 0 {
                                    if i + 1 - from > self.max {
                                        return Err(CodecError::TooLarge { max: self.max });
                                    }
                                    self.value_start = None;
                                    self.start = i + 1;
                                    self.scan = i + 1;
                                    return Ok(Some((from, i + 1)));
                                }
                            }
                            _ => {}
                        }
                    }
                    if i + 1 - from > self.max {
                        return Err(CodecError::TooLarge { max: self.max });
                    }
                }
            }
            i += 1;
        }
        self.scan = i;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn drain(d: &mut FrameDecoder) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = d.next_value().unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn several_values_in_one_read() {
        let mut d = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
        d.push(br#"{"id":0,"result":["a"],"error":null}{"id":null,"method":"update2","params":["x",{}]} [1]"#);
        assert_eq!(drain(&mut d).len(), 3);
        assert!(!d.has_partial());
    }

    #[test]
    fn a_large_message_buffer_is_released_once_consumed() {
        let big = json!({"id": 1, "result": ["x".repeat(4 * RETAINED_BUFFER)], "error": null});
        let mut bytes = serde_json::to_vec(&big).unwrap();
        let small = br#"{"id":2,"result":[],"error":null}"#;
        bytes.extend_from_slice(&small[..10]);
        let mut d = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
        d.push(&bytes);
        // Part of the next message is still buffered: kept.
        assert_eq!(d.next_value().unwrap(), Some(big.clone()));
        assert_eq!(d.next_value().unwrap(), None);
        assert!(d.buf.capacity() > RETAINED_BUFFER);
        d.push(&small[10..]);
        assert_eq!(d.next_value().unwrap().unwrap()["id"], 2);
        assert!(d.buf.capacity() <= RETAINED_BUFFER, "{}", d.buf.capacity());
        assert!(!d.has_partial());
        // And the decoder goes on.
        d.push(small);
        assert_eq!(drain(&mut d).len(), 1);
    }

    #[test]
    fn value_split_byte_by_byte_with_tricky_strings() {
        let msg = json!({"id": 7, "result": ["}{", "\"]", "\\", "ü", {"a": [[]]}], "error": null});
        let bytes = serde_json::to_vec(&msg).unwrap();
        let mut d = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
        let mut got = Vec::new();
        for (n, b) in bytes.iter().enumerate() {
            d.push(std::slice::from_ref(b));
            got.extend(drain(&mut d));
            if n + 1 < bytes.len() {
                assert!(got.is_empty() && d.has_partial());
            }
        }
        assert_eq!(got, vec![msg]);
    }

    #[test]
    fn every_fixture_splits_and_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/ovsdb-wire");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            // ovsdb-client-monitor-cond-since.json is ovsdb-client's printout, not wire data.
            if !(name.ends_with(".json") || name.ends_with(".jsonl"))
                || name.starts_with("ovsdb-client-")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Each fixture is one pretty-printed reply or one {"msg": ...} record per line;
            // re-encode the messages compactly and concatenate them as the server would.
            let msgs: Vec<Value> = match serde_json::from_str::<Value>(&text) {
                Ok(v) => vec![v],
                Err(_) => text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()["msg"].clone())
                    .collect(),
            };
            let stream: Vec<u8> = msgs
                .iter()
                .flat_map(|m| serde_json::to_vec(m).unwrap())
                .collect();
            for chunk in [1, 7, 4096] {
                let mut d = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
                let mut got = Vec::new();
                for piece in stream.chunks(chunk) {
                    d.push(piece);
                    got.extend(drain(&mut d));
                }
                assert_eq!(got, msgs, "{name} in chunks of {chunk}");
            }
            n += 1;
        }
        assert!(n >= 15, "only {n} fixtures found");
    }

    #[test]
    fn too_large_is_refused_before_it_is_buffered() {
        let mut d = FrameDecoder::new(1000);
        d.push(b"{\"a\":\"");
        let mut refused = false;
        for _ in 0..100 {
            d.push(&[b'x'; 100]);
            match d.next_value() {
                Ok(None) => {}
                Err(CodecError::TooLarge { max: 1000 }) => {
                    refused = true;
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(refused);
        assert!(d.buf.len() < 1200);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
        d.push(b"hello");
        assert!(matches!(
            d.next_value(),
            Err(CodecError::NotAMessage { byte: b'h' })
        ));
        let mut d = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
        d.push(b"{nope}");
        assert!(matches!(d.next_value(), Err(CodecError::Json(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), split in 1usize..64) {
            let mut d = FrameDecoder::new(256);
            for piece in data.chunks(split) {
                d.push(piece);
                while let Ok(Some(_)) = d.next_value() {}
            }
            let _ = d.has_partial();
        }

        #[test]
        fn arbitrary_json_round_trips_through_any_split(v in crate::proptest_json(), split in 1usize..32) {
            let bytes = serde_json::to_vec(&serde_json::json!({"id": 1, "result": v})).unwrap();
            let mut d = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
            let mut got = Vec::new();
            for piece in bytes.chunks(split) {
                d.push(piece);
                while let Some(v) = d.next_value().unwrap() { got.push(v); }
            }
            prop_assert_eq!(got.len(), 1);
        }
    }
}
