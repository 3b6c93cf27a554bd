//! Reads a request body within a size limit, decompressing as the
//! `Content-Encoding` says. The limit holds for the bytes on the wire and for
//! the decompressed bytes, so a small compressed bomb stops at the limit.

use super::rejection::Rejection;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use std::io::Read;

pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Rejection> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(encoding.as_str(), "" | "identity" | "gzip" | "x-gzip" | "deflate") {
        return Err(Rejection::UnsupportedEncoding(encoding));
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Rejection::TooLarge { limit, compressed: false });
    }
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            Rejection::TooLarge { limit, compressed: false }
        } else {
            Rejection::UnreadableBody(e.to_string())
        }
    })?;
    match encoding.as_str() {
        "gzip" | "x-gzip" => inflate(flate2::read::GzDecoder::new(&raw[..]), limit),
        "deflate" => {
            // Clients disagree on whether deflate means zlib-wrapped or raw.
            if raw.first().is_some_and(|b| b & 0x0f == 8)
                && raw.len() > 1
                && u16::from_be_bytes([raw[0], raw[1]]) % 31 == 0
            {
                inflate(flate2::read::ZlibDecoder::new(&raw[..]), limit)
            } else {
                inflate(flate2::read::DeflateDecoder::new(&raw[..]), limit)
            }
        }
        _ => Ok(raw.to_vec()),
    }
}

fn inflate(decoder: impl Read, limit: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Rejection::UnreadableBody(format!("the compressed body is corrupt: {e}")))?;
    if out.len() > limit {
        return Err(Rejection::TooLarge { limit, compressed: true });
    }
    Ok(out)
}
