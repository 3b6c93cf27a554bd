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
use http_body_util::BodyExt;
use std::io::Read;
use std::time::Duration;

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

/// How much of an oversized body is still read (and thrown away) before the
/// 413 goes out. A client that is still sending when the server answers and
/// closes sees a broken pipe instead of the reason; reading a bounded amount
/// more lets ordinary clients (which send the whole body, then read) see the
/// 413 and its `detail`. Beyond this, the connection is simply closed.
const DRAIN_BYTES: usize = 32 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads the body off the wire (chunked or not) without decompressing it,
/// refusing it once it passes `limit` bytes.
pub async fn read_raw(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<RawBody, Rejection> {
    let encoding = encoding_of(headers)?;
    let too_large = Rejection::TooLarge { limit, compressed: false };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|n| *n > limit as u64) {
        if declared <= DRAIN_BYTES as u64 {
            drain(body).await;
        }
        return Err(too_large);
    }
    let mut bytes = Vec::with_capacity(declared.map_or(8192, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Rejection::UnreadableBody(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                drain(body).await;
                return Err(too_large);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(RawBody { encoding, bytes: Bytes::from(bytes) })
}

/// Reads and discards up to [`DRAIN_BYTES`] more of a body, for a while.
async fn drain(mut body: Body) {
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
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
