//! The bodies of the gateway's fuzz targets (`fuzz/fuzz_targets/`: `gateway_request`,
//! `decision_log`, `gateway_config`), here so that `cargo test`
//! replays the regression corpus (`fuzz/regressions/<target>/`) through exactly the code the
//! fuzzer runs. Each function panics only when an invariant breaks.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Fuzz target `gateway_request`: `data` is request headers (`name: value` lines), a NUL byte,
/// then a request body. Parsing must not panic; a parsed request must yield a valid upstream
/// body; a refusal must be a 400 in OpenAI's error shape.
pub fn request(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    match crate::request::parse_chat_request(body, &headers) {
        Ok(req) => {
            for turns in 1..=3 {
                let _ = req.routing_text(turns);
            }
            let _ = req.prompt_text();
            let forwarded: serde_json::Value =
                serde_json::from_slice(&req.upstream_body("m")).expect("the upstream body is JSON");
            assert_eq!(forwarded["model"], "m");
            assert!(forwarded.get(crate::request::EXTENSION_KEY).is_none());
            if req.stream {
                assert_eq!(forwarded["stream_options"]["include_usage"], true);
            }
        }
        Err(e) => {
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
            let v: serde_json::Value = serde_json::from_str(&e.body()).expect("error JSON");
            assert!(v["error"]["message"].is_string());
        }
    }
    // The same bytes as an upstream's event stream, cut at arbitrary points.
    let mut splitter = crate::sse::Splitter::default();
    for chunk in body.chunks(7) {
        splitter.push(chunk);
        while let Ok(Some(event)) = splitter.next_event() {
            if let Ok(crate::sse::Payload::Json(o)) = crate::sse::parse_event(&event) {
                let again = crate::sse::encode_event(&o);
                assert!(matches!(
                    crate::sse::parse_event(&again[..again.len() - 2]),
                    Ok(crate::sse::Payload::Json(p)) if p == o
                ));
            }
        }
    }
}

/// Fuzz target `decision_log`: reading arbitrary bytes as a decision log must not panic, and
/// every event read must write back to a line that reads as the same event.
pub fn decision_log(data: &[u8]) {
    for event in crate::log::read(data).flatten() {
        let line = serde_json::to_vec(&event).expect("events serialise");
        let again: Vec<_> = crate::log::read(&line[..]).collect();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].as_ref().ok(), Some(&event));
    }
}

/// Fuzz target `gateway_config`: `data` as a configuration file. Reading it must not panic;
/// a configuration that validates must start: its semaphores (calls per upstream, embeddings at
/// once) can be made and its header limit is bounded (values that passed validation had panicked
/// at start or aborted on the first connection).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = crate::config::Config::from_toml(text) else {
        return;
    };
    for u in &config.upstreams {
        let permits = tokio::sync::Semaphore::new(u.max_concurrency);
        assert_eq!(permits.available_permits(), u.max_concurrency);
    }
    let embeds = config.routing.max_concurrent_embeds;
    assert_eq!(
        tokio::sync::Semaphore::new(embeds).available_permits(),
        embeds
    );
    assert!(config.limits.max_headers <= crate::config::MAX_HEADERS);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Replays `fuzz/regressions/<target>/` (every file: seeds and past findings).
    fn replay(target: &str, f: fn(&[u8])) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            f(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "no regression inputs in {}", dir.display());
    }

    #[test]
    fn request_regressions() {
        replay("gateway_request", super::request);
    }

    #[test]
    fn decision_log_regressions() {
        replay("decision_log", super::decision_log);
    }

    #[test]
    fn config_regressions() {
        replay("gateway_config", super::config);
        // The seeds reach both sides: the valid one reads, the crafted ones are refused.
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/gateway_config");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(crate::config::Config::from_toml(&read("valid.toml")).is_ok());
        for bad in ["max_concurrency.toml", "max_headers.toml", "price.toml"] {
            assert!(
                crate::config::Config::from_toml(&read(bad)).is_err(),
                "{bad}"
            );
        }
    }
}
