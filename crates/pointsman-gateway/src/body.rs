//! Reading a request body within the configured limits: its size (413 past
//! `limits.max_body_bytes`, after draining a bounded amount so that the client reads the 413)
//! and its time (408 past `limits.body_read_timeout_ms`).

use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::config::LimitsConfig;
use crate::error::ApiError;

/// [`read_body_within`] the configured `limits` (`max_body_bytes`, `body_read_timeout_ms`).
///
/// # Errors
///
/// As [`read_body_within`].
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &LimitsConfig,
) -> Result<bytes::Bytes, ApiError> {
    read_body_within(
        headers,
        body,
        limits.max_body_bytes,
        Duration::from_millis(limits.body_read_timeout_ms),
    )
    .await
}

/// Reads a request body of at most `max` bytes, within `timeout`.
///
/// A body over the limit is still read (and discarded) up to `drain_limit(max)` bytes before
/// the 413 is sent: hyper closes the connection after answering, and a client still writing its
/// body then sees a broken pipe instead of the 413 (the gateway's tests saw it about one run in
/// twenty with a 2 MiB body). Past the drain limit the 413 is sent at once.
///
/// # Errors
///
/// 413 `request_too_large` past `max`; 400 `invalid_body` when the body cannot be read.
pub async fn read_body_within(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    tokio::time::timeout(timeout, read_body_untimed(headers, body, max))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "request_timeout",
                format!(
                    "the request body was not received within {} ms \
                     (limits.body_read_timeout_ms)",
                    timeout.as_millis()
                ),
            ))
        })
}

async fn read_body_untimed(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than {max} bytes"),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        if declared.is_some_and(|n| n <= drain_limit(max) as u64) {
            drain(body, drain_limit(max)).await;
        }
        return Err(too_large());
    }
    let mut body = body;
    let mut collected = Vec::new();
    loop {
        match body.frame().await {
            None => return Ok(bytes::Bytes::from(collected)),
            Some(Err(e)) => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("cannot read the request body: {e}"),
                ))
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if collected.len() + data.len() > max {
                    drain(
                        body,
                        drain_limit(max) - collected.len().min(drain_limit(max)),
                    )
                    .await;
                    return Err(too_large());
                }
                collected.extend_from_slice(&data);
            }
        }
    }
}

/// How much of an oversized body is read and discarded before the 413: four times the limit,
/// at least 8 MiB.
fn drain_limit(max: usize) -> usize {
    max.saturating_mul(4).max(8 << 20)
}

/// Reads and discards up to `cap` more bytes of `body`, for at most five seconds.
async fn drain(mut body: Body, cap: usize) {
    let work = async {
        let mut seen = 0usize;
        while seen <= cap {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: usize, size: usize) -> Body {
        let parts =
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; size])));
        Body::from_stream(futures_util::stream::iter(parts))
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_are_read_and_larger_ones_are_413() {
        let none = HeaderMap::new();
        let got = read_body_within(&none, chunked(4, 256), 1024, SECOND)
            .await
            .unwrap();
        assert_eq!(got.len(), 1024);
        let err = read_body_within(&none, chunked(5, 256), 1024, SECOND)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        // A declared length over the limit is refused whatever follows.
        let mut declared = HeaderMap::new();
        declared.insert(http::header::CONTENT_LENGTH, "2048".parse().unwrap());
        let err = read_body_within(&declared, chunked(8, 256), 1024, SECOND)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(drain_limit(1024), 8 << 20);
        assert_eq!(drain_limit(4 << 20), 16 << 20);
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_408() {
        // One chunk, then nothing: a client trickling its body, or gone quiet.
        let first =
            futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from("{\"model\""))]);
        let body = Body::from_stream(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ));
        let started = std::time::Instant::now();
        let err = read_body_within(&HeaderMap::new(), body, 1024, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::REQUEST_TIMEOUT);
        assert!(
            err.body().contains("limits.body_read_timeout_ms"),
            "{}",
            err.body()
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
