//! JSON-RPC 1.0 messages as OVSDB uses them (RFC 7047 §4).
//!
//! A request has `method`, `params` and a non-null `id`; a notification is a request whose
//! `id` is null (§4.1.6 `update`, §4.1.8 `echo` is a request); a response has the `id` of
//! its request and either `result` or a non-null `error`. ovsdb-server answers an unknown
//! method with the bare string `"unknown method"` as its error (see
//! `shared/reference/ovn-23.03/ovsdb-wire/rpc-basic.json`) and other failures with an
//! object `{"error": ..., "details": ...}` (§3.1 `<error>`).

use std::fmt;

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: Value,
        result: Result<Value, RpcError>,
    },
}

/// An error a server returned (RFC 7047 §3.1 `<error>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub error: String,
    pub details: Option<String>,
}

impl RpcError {
    /// What ovsdb-server says for a method it does not implement (how a client learns that
    /// `monitor_cond_since` or `monitor_cond` is not available).
    pub fn is_unknown_method(&self) -> bool {
        self.error == "unknown method"
    }

    pub fn from_json(v: &Value) -> RpcError {
        match v {
            Value::String(s) => RpcError {
                error: s.clone(),
                details: None,
            },
            Value::Object(o) => RpcError {
                error: o
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unspecified error")
                    .to_owned(),
                details: o.get("details").and_then(Value::as_str).map(str::to_owned),
            },
            other => RpcError {
                error: other.to_string(),
                details: None,
            },
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.details {
            Some(d) => write!(f, "{} ({d})", self.error),
            None => f.write_str(&self.error),
        }
    }
}

impl std::error::Error for RpcError {}

/// A JSON value that is not a JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON-RPC message: {0}")]
pub struct MessageError(pub &'static str);

impl Message {
    pub fn from_json(value: Value) -> Result<Message, MessageError> {
        let Value::Object(mut o) = value else {
            return Err(MessageError("not an object"));
        };
        let id = o.remove("id").unwrap_or(Value::Null);
        if let Some(method) = o.remove("method") {
            let Value::String(method) = method else {
                return Err(MessageError("method is not a string"));
            };
            let params = o.remove("params").unwrap_or(Value::Array(Vec::new()));
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { id, method, params }
            });
        }
        if id.is_null() {
            return Err(MessageError("neither a request nor a response"));
        }
        let result = match o.remove("error") {
            Some(e) if !e.is_null() => Err(RpcError::from_json(&e)),
            _ => Ok(o.remove("result").unwrap_or(Value::Null)),
        };
        Ok(Message::Response { id, result })
    }

    pub fn to_json(&self) -> Value {
        match self {
            Message::Request { id, method, params } => {
                json!({"id": id, "method": method, "params": params})
            }
            Message::Notification { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
            Message::Response { id, result } => {
                let mut o = Map::new();
                o.insert("id".into(), id.clone());
                match result {
                    Ok(r) => {
                        o.insert("result".into(), r.clone());
                        o.insert("error".into(), Value::Null);
                    }
                    Err(e) => {
                        o.insert("result".into(), Value::Null);
                        let mut err = Map::new();
                        err.insert("error".into(), Value::String(e.error.clone()));
                        if let Some(d) = &e.details {
                            err.insert("details".into(), Value::String(d.clone()));
                        }
                        o.insert("error".into(), Value::Object(err));
                    }
                }
                Value::Object(o)
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a Value cannot fail (keys are strings; no custom Serialize impls).
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: Value) -> Message {
        Message::from_json(v).unwrap()
    }

    #[test]
    fn classifies_real_messages() {
        assert!(matches!(
            m(json!({"id": "echo", "method": "echo", "params": []})),
            Message::Request { method, .. } if method == "echo"
        ));
        assert!(matches!(
            m(json!({"id": null, "method": "update3", "params": []})),
            Message::Notification { method, .. } if method == "update3"
        ));
        assert_eq!(
            m(json!({"id": 0, "result": ["OVN_Southbound"], "error": null})),
            Message::Response {
                id: json!(0),
                result: Ok(json!(["OVN_Southbound"]))
            }
        );
        let Message::Response { result: Err(e), .. } =
            m(json!({"id": 5, "error": "unknown method"}))
        else {
            panic!()
        };
        assert!(e.is_unknown_method());
        let Message::Response { result: Err(e), .. } = m(
            json!({"id": 6, "error": {"syntax": "x", "details": "monitor_cond_since request specifies unknown database Nope", "error": "unknown database"}}),
        ) else {
            panic!()
        };
        assert_eq!(e.error, "unknown database");
        assert!(e.to_string().contains("Nope"));
    }

    #[test]
    fn rejects_non_messages() {
        for v in [
            json!([1]),
            json!({}),
            json!({"id": null}),
            json!({"method": 5}),
            json!("x"),
        ] {
            assert!(Message::from_json(v).is_err());
        }
    }

    #[test]
    fn echo_reply_shape() {
        let reply = Message::Response {
            id: json!("echo"),
            result: Ok(json!([])),
        };
        assert_eq!(
            reply.to_json(),
            json!({"result": [], "error": null, "id": "echo"})
        );
    }
}
