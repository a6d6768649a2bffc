//! Server-sent events of a streamed Chat Completions answer, handled one event at a time: the
//! splitter cuts the upstream's bytes at event boundaries (a blank line), and each event's JSON
//! gets the model actually used and, on the final usage event, the cost. Only an unfinished event
//! is ever buffered, never the answer.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// Longest single event accepted, bytes; a longer one is a malformed stream.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Cuts a byte stream into events.
///
/// Each byte is scanned for a boundary a bounded number of times (at most four), however the
/// upstream cuts its writes: a scan that finds none resumes where it stopped, less the three
/// bytes a boundary split by the chunk's end may begin with. Rescanning the whole unfinished event
/// on every chunk made one 4 MB event in 64-byte writes cost 19 s of a core.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: BytesMut,
    /// `buf[..scanned]` holds no boundary that starts there.
    scanned: usize,
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
        match find_boundary(&self.buf, self.scanned) {
            Some((end, sep)) => {
                let event = self.buf.split_to(end).freeze();
                let _ = self.buf.split_to(sep);
                self.scanned = 0;
                Ok(Some(event))
            }
            None if self.buf.len() > MAX_EVENT_BYTES => Err(format!(
                "a stream event longer than {MAX_EVENT_BYTES} bytes"
            )),
            None => {
                // A boundary is at most four bytes: one cut by the buffer's end begins in its
                // last three.
                self.scanned = self.buf.len().saturating_sub(3);
                Ok(None)
            }
        }
    }

    /// What is left once the stream has ended (an event without its final blank line).
    pub fn rest(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        let rest = self.buf.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// Position and length of the first blank line (`\n\n`, `\r\n\r\n` or `\r\r`) starting at
/// or after `from`.
fn find_boundary(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
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

    /// Every way of cutting a stream into chunks gives the events one whole scan gives.
    #[test]
    fn resumed_scans_find_what_a_whole_scan_finds() {
        let stream: &[u8] =
            b"data: 1\r\n\r\ndata: 2\r\r\n\ndata: 3\n\r\r\n\r\n\r\ndata: 4\r\n\r\rx\n\n\r";
        let whole = {
            let mut s = Splitter::default();
            s.push(stream);
            let mut e: Vec<Bytes> = std::iter::from_fn(|| s.next_event().unwrap()).collect();
            e.extend(s.rest());
            e
        };
        assert_eq!(whole.len(), 7, "{whole:?}");
        for size in 1..=5 {
            for offset in 0..size {
                let mut s = Splitter::default();
                let mut got = Vec::new();
                let (head, tail) = stream.split_at(offset);
                for chunk in std::iter::once(head).chain(tail.chunks(size)) {
                    s.push(chunk);
                    got.extend(std::iter::from_fn(|| s.next_event().unwrap()));
                }
                got.extend(s.rest());
                assert_eq!(got, whole, "chunks of {size} after {offset}");
            }
        }
    }

    /// An event just under the limit, in 16-byte writes: linear, so well under a second (the
    /// whole rescan of each chunk took minutes).
    #[test]
    fn a_long_event_in_small_chunks_is_scanned_once() {
        let started = std::time::Instant::now();
        let mut s = Splitter::default();
        s.push(b"data: \"");
        let chunk = [b'a'; 16];
        for _ in 0..(MAX_EVENT_BYTES - 64) / 16 {
            s.push(&chunk);
            assert_eq!(s.next_event().unwrap(), None);
        }
        s.push(b"\"\n\n");
        assert!(s.next_event().unwrap().is_some());
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn multi_line_data_and_round_trip() {
        let Payload::Json(o) = parse_event(b"event: x\ndata: {\"a\":\ndata: 1}").unwrap() else {
            panic!("json")
        };
        assert_eq!(&encode_event(&o)[..], b"data: {\"a\":1}\n\n");
    }
}
