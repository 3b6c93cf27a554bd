//! Reads a request body within a size limit, decompressing as the
//! `Content-Encoding` says (gzip, deflate in either wrapping, brotli). The
//! limit holds for the bytes on the wire and for the decompressed bytes, so a
//! small compressed bomb stops at the limit, never at the end of memory.
//!
//! Reading and decompressing are two steps so that a handler can
//! authenticate in between; [`BodyReader::first_line`] reads and decompresses
//! just enough to find a key that travels inside the body (a Sentry
//! envelope's `dsn`), so an unknown key is refused before the rest is read.
//! Every byte kept counts against the memory budget (`memory_budget.rs`).

use super::rejection::Rejection;
use crate::config::Config;
use crate::connections::BodyCut;
use crate::memory_budget::{MemoryBudget, Reservation};
use axum::body::Body;
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;
use std::io::Read;
use std::sync::Arc;
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
    bytes: Vec<u8>,
    reservation: Arc<Reservation>,
}

/// The request's share of the memory budget, from the connection layer; a
/// request that came without one (the router called directly, in tests) gets
/// a budget of its own of the configured size.
pub fn reservation_of(extension: Option<Arc<Reservation>>, config: &Config) -> Arc<Reservation> {
    extension.unwrap_or_else(|| Reservation::new(MemoryBudget::new(config.max_inflight_bytes)))
}

/// Reads the body and decompresses it, `limit` bytes at most either way,
/// refusing it before reading if its declared length does not fit the budget.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    reservation: Arc<Reservation>,
) -> Result<Vec<u8>, Rejection> {
    let mut reader = BodyReader::open(headers, body, limit, reservation)?;
    reader.reserve_declared().await?;
    reader.finish().await?.decode(limit)
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

/// Compressed bytes read at most while looking for the first line: a
/// compressed first line of `max` bytes never needs more than this.
fn first_line_raw_cap(max: usize) -> usize {
    max * 2 + 8192
}

/// Reads a body off the wire (chunked or not) a frame at a time, without
/// decompressing it, refusing it once it passes `limit` bytes. Each frame is
/// charged to the request's share of the memory budget as it arrives (by the
/// connection layer), so reading can stop after the first line.
pub struct BodyReader {
    encoding: Encoding,
    body: Body,
    limit: usize,
    declared: Option<u64>,
    bytes: Vec<u8>,
    ended: bool,
    reservation: Arc<Reservation>,
}

impl BodyReader {
    /// Checks the encoding; reads nothing yet.
    pub fn open(
        headers: &HeaderMap,
        body: Body,
        limit: usize,
        reservation: Arc<Reservation>,
    ) -> Result<BodyReader, Rejection> {
        let encoding = encoding_of(headers)?;
        let declared =
            headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        Ok(BodyReader { encoding, body, limit, declared, bytes: Vec::new(), ended: false, reservation })
    }

    /// Refuses a body declared over the limit, and reserves room for the rest
    /// of one of declared length, so that a request the budget cannot hold is
    /// refused before its body is read. A refused body is read and thrown
    /// away (bounded, in the background when over budget) so that the client
    /// sees the answer rather than a broken pipe.
    pub async fn reserve_declared(&mut self) -> Result<(), Rejection> {
        let Some(declared) = self.declared else {
            return Ok(());
        };
        if declared > self.limit as u64 {
            self.bytes = Vec::new();
            if declared <= DRAIN_BYTES as u64 {
                self.reservation.discard_from_now();
                drain(std::mem::replace(&mut self.body, Body::empty())).await;
            }
            return Err(Rejection::TooLarge { limit: self.limit, compressed: false });
        }
        let rest = (declared as usize).saturating_sub(self.bytes.len());
        match self.reservation.reserve_ahead(rest) {
            Ok(()) => {
                self.bytes.reserve_exact(rest);
                Ok(())
            }
            Err(over) => {
                self.reservation.discard_from_now();
                self.bytes = Vec::new();
                let body = std::mem::replace(&mut self.body, Body::empty());
                tokio::spawn(drain(body));
                Err(Rejection::OverBudget { limit: over.limit })
            }
        }
    }

    /// Reads one more frame; false once the body has ended.
    async fn read_frame(&mut self) -> Result<bool, Rejection> {
        if self.ended {
            return Ok(false);
        }
        let Some(frame) = self.body.frame().await else {
            self.ended = true;
            return Ok(false);
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                let rejection = body_error(e);
                if matches!(rejection, Rejection::OverBudget { .. }) {
                    self.bytes = Vec::new();
                    let body = std::mem::replace(&mut self.body, Body::empty());
                    tokio::spawn(drain(body));
                }
                return Err(rejection);
            }
        };
        if let Ok(data) = frame.into_data() {
            if self.bytes.len() + data.len() > self.limit {
                self.bytes = Vec::new();
                self.reservation.discard_from_now();
                drain(std::mem::replace(&mut self.body, Body::empty())).await;
                return Err(Rejection::TooLarge { limit: self.limit, compressed: false });
            }
            self.bytes.extend_from_slice(&data);
        }
        Ok(true)
    }

    /// The first line of the decompressed body, without its newline, reading
    /// only as much of the body as it takes; at most `max + 1` bytes when no
    /// newline comes sooner.
    pub async fn first_line(&mut self, max: usize) -> Result<Vec<u8>, Rejection> {
        loop {
            match self.first_line_so_far(max) {
                Ok(Some(line)) => return Ok(line),
                Ok(None) => {}
                // A compressed prefix may end mid-stream; only a whole body is corrupt.
                Err(e) if self.ended => return Err(e),
                Err(_) => {}
            }
            if self.bytes.len() > first_line_raw_cap(max) {
                return Err(Rejection::UnreadableBody(format!(
                    "no line of at most {max} bytes within the first {} compressed bytes",
                    first_line_raw_cap(max)
                )));
            }
            if !self.read_frame().await? {
                // The whole body is in: what there is, is the line.
                return Ok(self.first_line_so_far(max)?.unwrap_or_default());
            }
        }
    }

    /// The first line if what has been read holds it (or holds more than
    /// `max` bytes without a newline), else `None`.
    fn first_line_so_far(&self, max: usize) -> Result<Option<Vec<u8>>, Rejection> {
        let mut decoder = decoder(self.encoding, &self.bytes);
        let mut line = Vec::new();
        let mut chunk = [0u8; 8192];
        while line.len() <= max {
            let n = decoder
                .read(&mut chunk)
                .map_err(|e| Rejection::UnreadableBody(format!("the compressed body is corrupt: {e}")))?;
            if n == 0 {
                return Ok(self.ended.then_some(line));
            }
            if let Some(end) = chunk[..n].iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&chunk[..end]);
                return Ok(Some(line));
            }
            line.extend_from_slice(&chunk[..n]);
        }
        Ok(Some(line))
    }

    /// Reads the rest of the body.
    pub async fn finish(mut self) -> Result<RawBody, Rejection> {
        while self.read_frame().await? {}
        Ok(RawBody { encoding: self.encoding, bytes: self.bytes, reservation: self.reservation })
    }
}

/// What the connection layer's cut of a body, or a broken body, means to the client.
fn body_error(e: axum::Error) -> Rejection {
    let inner = e.into_inner();
    match inner.downcast_ref::<BodyCut>() {
        Some(BodyCut::TooSlow(limit)) => Rejection::BodyTooSlow { seconds: limit.as_secs() },
        Some(BodyCut::OverBudget(over)) => Rejection::OverBudget { limit: over.limit },
        None => Rejection::UnreadableBody(inner.to_string()),
    }
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
    /// The whole body decompressed, `limit` bytes at most; the decompressed
    /// bytes are charged to the request's share of the budget as they grow.
    pub fn decode(self, limit: usize) -> Result<Vec<u8>, Rejection> {
        if self.encoding == Encoding::Identity {
            return Ok(self.bytes);
        }
        let mut out = Vec::new();
        let mut decoder = decoder(self.encoding, &self.bytes).take(limit as u64 + 1);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = decoder
                .read(&mut chunk)
                .map_err(|e| Rejection::UnreadableBody(format!("the compressed body is corrupt: {e}")))?;
            if n == 0 {
                break;
            }
            self.reservation.reserve(n).map_err(|over| Rejection::OverBudget { limit: over.limit })?;
            out.extend_from_slice(&chunk[..n]);
        }
        if out.len() > limit {
            return Err(Rejection::TooLarge { limit, compressed: true });
        }
        drop(decoder);
        // The compressed bytes are gone; the share now covers what is kept.
        let kept = out.len();
        let reservation = self.reservation.clone();
        drop(self);
        reservation.shrink_to(kept);
        Ok(out)
    }
}

fn decoder(encoding: Encoding, raw: &[u8]) -> Box<dyn Read + '_> {
    match encoding {
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
