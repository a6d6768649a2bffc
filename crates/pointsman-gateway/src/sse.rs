//! Server-sent events of a streamed Chat Completions answer, handled one event at a time: the
//! splitter cuts the upstream's bytes at event boundaries (a blank line), and each event's JSON
//! gets the model actually used and, on the final usage event, the cost. Only an unfinished event
//! is ever buffered, never the answer.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// Longest single event accepted, bytes; a longer one is a malformed stream.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Cuts a byte stream into events.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: BytesMut,
}

impl Splitter {
    /// Appends bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event (its text without the blank line that ends it).
    ///
    /// # Errors
    ///
    /// An event longer than [`MAX_EVENT_BYTES`].
    pub fn next_event(&mut self) -> Result<Option<Bytes>, String> {
        match find_boundary(&self.buf) {
            Some((end, sep)) => {
                let event = self.buf.split_to(end).freeze();
                let _ = self.buf.split_to(sep);
                Ok(Some(event))
            }
            None if self.buf.len() > MAX_EVENT_BYTES => Err(format!(
                "a stream event longer than {MAX_EVENT_BYTES} bytes"
            )),
            None => Ok(None),
        }
    }

    /// What is left once the stream has ended (an event without its final blank line).
    pub fn rest(&mut self) -> Option<Bytes> {
        let rest = self.buf.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// Position and length of the first blank line (`\n\n`, `\r\n\r\n` or `\r\r`).
fn find_boundary(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        match (buf[i], buf[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some((i, 2)),
            (b'\r', b'\n') if buf[i + 2..].starts_with(b"\r\n") => return Some((i, 4)),
            _ => i += 1,
        }
    }
    None
}

/// What an event holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `data: [DONE]`.
    Done,
    /// A JSON object in the event's data.
    Json(serde_json::Map<String, Value>),
    /// Comments or fields without data (passed on as they are).
    Other,
}

/// Reads an event's data lines (joined by newlines, as the SSE specification says).
///
/// # Errors
///
/// Data that is neither `[DONE]` nor a JSON object.
pub fn parse_event(event: &[u8]) -> Result<Payload, String> {
    let text = std::str::from_utf8(event).map_err(|_| "a stream event is not UTF-8".to_string())?;
    let mut data: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_string()),
            }
        }
    }
    let Some(data) = data else {
        return Ok(Payload::Other);
    };
    if data.trim() == "[DONE]" {
        return Ok(Payload::Done);
    }
    match serde_json::from_str(&data) {
        Ok(Value::Object(o)) => Ok(Payload::Json(o)),
        Ok(_) => Err("a stream event's data is not a JSON object".into()),
        Err(e) => Err(format!("a stream event's data is not JSON: {e}")),
    }
}

/// An event carrying `object` as its data.
pub fn encode_event(object: &serde_json::Map<String, Value>) -> Bytes {
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(&mut out, object).expect("a JSON map always serialises");
    out.extend_from_slice(b"\n\n");
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_chunks_and_separators() {
        let mut s = Splitter::default();
        s.push(b"data: {\"a\":1}\n");
        assert_eq!(s.next_event().unwrap(), None);
        s.push(b"\ndata: {\"b\":2}\r\n\r\n: comment\n\ndata: [DONE]\n\nda");
        let e: Vec<Bytes> = std::iter::from_fn(|| s.next_event().unwrap()).collect();
        assert_eq!(e.len(), 4);
        assert!(matches!(parse_event(&e[0]).unwrap(), Payload::Json(o) if o["a"] == 1));
        assert!(matches!(parse_event(&e[1]).unwrap(), Payload::Json(o) if o["b"] == 2));
        assert_eq!(parse_event(&e[2]).unwrap(), Payload::Other);
        assert_eq!(parse_event(&e[3]).unwrap(), Payload::Done);
        assert_eq!(s.rest().as_deref(), Some(&b"da"[..]));
        assert!(parse_event(b"data: {oops").is_err());
        assert!(parse_event(b"data: [1]").is_err());
    }

    #[test]
    fn multi_line_data_and_round_trip() {
        let Payload::Json(o) = parse_event(b"event: x\ndata: {\"a\":\ndata: 1}").unwrap() else {
            panic!("json")
        };
        assert_eq!(&encode_event(&o)[..], b"data: {\"a\":1}\n\n");
    }
}
