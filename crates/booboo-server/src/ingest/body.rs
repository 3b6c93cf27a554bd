//! Reads a request body within a size limit, decompressing as the
//! `Content-Encoding` says (gzip, deflate in either wrapping, brotli). The
//! limit holds for the bytes on the wire and for the decompressed bytes, so a
//! small compressed bomb stops at the limit, never at the end of memory.
//!
//! Reading and decompressing are two steps so that a handler can
//! authenticate in between; [`RawBody::first_line`] decompresses just enough
//! to read a key that travels inside the body (a Sentry envelope's `dsn`).

use super::rejection::Rejection;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

/// A body as it came off the wire, not yet decompressed.
pub struct RawBody {
    encoding: Encoding,
    bytes: Bytes,
}

/// Reads the body and decompresses it, `limit` bytes at most either way.
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Rejection> {
    read_raw(headers, body, limit).await?.decode(limit)
}

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, Rejection> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        "br" => Ok(Encoding::Brotli),
        _ => Err(Rejection::UnsupportedEncoding(encoding)),
    }
}

/// Reads the body off the wire (chunked or not) without decompressing it,
/// refusing it once it passes `limit` bytes.
pub async fn read_raw(headers: &HeaderMap, body: Body, limit: usize) -> Result<RawBody, Rejection> {
    let encoding = encoding_of(headers)?;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Rejection::TooLarge { limit, compressed: false });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            Rejection::TooLarge { limit, compressed: false }
        } else {
            Rejection::UnreadableBody(e.to_string())
        }
    })?;
    Ok(RawBody { encoding, bytes })
}

impl RawBody {
    /// The whole body decompressed, `limit` bytes at most.
    pub fn decode(self, limit: usize) -> Result<Vec<u8>, Rejection> {
        if self.encoding == Encoding::Identity {
            return Ok(self.bytes.to_vec());
        }
        let mut out = Vec::new();
        self.decoder()
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| Rejection::UnreadableBody(format!("the compressed body is corrupt: {e}")))?;
        if out.len() > limit {
            return Err(Rejection::TooLarge { limit, compressed: true });
        }
        Ok(out)
    }

    /// The first line of the decompressed body, without its newline; at most
    /// `max + 1` bytes are decompressed when no newline comes sooner.
    pub fn first_line(&self, max: usize) -> Result<Vec<u8>, Rejection> {
        let mut decoder = self.decoder();
        let mut line = Vec::new();
        let mut chunk = [0u8; 8192];
        while line.len() <= max {
            let n = decoder
                .read(&mut chunk)
                .map_err(|e| Rejection::UnreadableBody(format!("the compressed body is corrupt: {e}")))?;
            if n == 0 {
                break;
            }
            if let Some(end) = chunk[..n].iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&chunk[..end]);
                return Ok(line);
            }
            line.extend_from_slice(&chunk[..n]);
        }
        Ok(line)
    }

    fn decoder(&self) -> Box<dyn Read + '_> {
        let raw = &self.bytes[..];
        match self.encoding {
            Encoding::Identity => Box::new(raw),
            Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(raw)),
            // Clients disagree on whether deflate means zlib-wrapped or raw;
            // a zlib header is two bytes whose value is a multiple of 31.
            Encoding::Deflate => {
                if raw.len() > 1 && raw[0] & 0x0f == 8 && u16::from_be_bytes([raw[0], raw[1]]).is_multiple_of(31) {
                    Box::new(flate2::read::ZlibDecoder::new(raw))
                } else {
                    Box::new(flate2::read::DeflateDecoder::new(raw))
                }
            }
            Encoding::Brotli => Box::new(brotli_decompressor::Decompressor::new(raw, 4096)),
        }
    }
}
