//! How an event's payload is kept in the `events` table: the normalised
//! event's JSON compressed with zstd in the `body` column, `payload` left
//! empty. Rows written before compression (and any whose compression
//! failed) have no `body` and their JSON in `payload`; readers take
//! whichever the row has, so old and new rows live side by side.
//!
//! Events of one installation look alike (the same stack frames, tags and
//! contexts again and again), so once it has stored enough of them a zstd
//! dictionary is trained on a sample and kept in `payload_dictionaries`
//! (`payload_dictionaries.rs` runs this); from then on bodies are compressed
//! with it, several times smaller. Each compressed frame records the id of
//! its dictionary, so any body reads back with the dictionary it names.
//!
//! What searches read from an event besides its columns (its tags, its
//! user's e-mail) is kept in small columns of their own (`tags`,
//! `user_email`), because a compressed body cannot be looked into by SQL.

use booboo_core::Event;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// zstd's default level: about 3× smaller for event JSON without a
/// dictionary, at a few tens of microseconds per event, off the writer's
/// path (see [`super::NewEvent::new`]).
const LEVEL: i32 = 3;

/// The size of a trained dictionary: 64 KiB, what zstd's trainer does well
/// with on a thousand samples.
pub const DICTIONARY_BYTES: usize = 64 * 1024;

/// A new dictionary compresses bodies only this long after it was stored,
/// so every node has loaded it (they look every [`REFRESH_SECONDS`]) before
/// any body needs it to be read.
pub const SETTLE_MS: i64 = 90_000;
pub const REFRESH_SECONDS: u64 = 30;

/// A dictionary as stored: zstd's own id for it (which every frame
/// compressed with it records), when it was stored, and its bytes.
#[derive(Debug, Clone)]
pub struct PayloadDictionary {
    pub id: i64,
    pub created_at: i64,
    pub bytes: Vec<u8>,
}

/// Every dictionary this process has loaded, by id, for reading bodies.
/// Process-wide: a dictionary is immutable and named by its id, and row
/// readers have no store at hand.
fn decoders() -> &'static RwLock<HashMap<u32, Arc<DecoderDictionary<'static>>>> {
    static DECODERS: OnceLock<RwLock<HashMap<u32, Arc<DecoderDictionary<'static>>>>> = OnceLock::new();
    DECODERS.get_or_init(Default::default)
}

/// How one store compresses new bodies: with its installation's settled
/// dictionary once there is one, else without.
#[derive(Default)]
pub struct PayloadCodec {
    encoder: RwLock<Option<(i64, Arc<EncoderDictionary<'static>>)>>,
}

impl PayloadCodec {
    /// The compressed form of an event's JSON; `None` if zstd refused (then
    /// the JSON is stored as text, as before compression).
    pub fn compress(&self, json: &str) -> Option<Vec<u8>> {
        let encoder = self.encoder.read().ok().and_then(|e| e.as_ref().map(|(_, d)| d.clone()));
        compress_on_this_thread(json.as_bytes(), encoder.as_deref())
    }

    /// The id of the dictionary new bodies are compressed with, if any.
    pub fn current(&self) -> Option<i64> {
        self.encoder.read().ok().and_then(|e| e.as_ref().map(|(id, _)| *id))
    }

    /// Loads dictionaries (all of them, or new ones) for reading, and
    /// compresses from now on with the newest one stored at least
    /// [`SETTLE_MS`] before `now`. Returns the id it compresses with.
    pub fn install(&self, dictionaries: &[PayloadDictionary], now: i64) -> Option<i64> {
        if let Ok(mut known) = decoders().write() {
            for d in dictionaries {
                known.entry(d.id as u32).or_insert_with(|| Arc::new(DecoderDictionary::copy(&d.bytes)));
            }
        }
        let newest =
            dictionaries.iter().filter(|d| d.created_at + SETTLE_MS <= now).max_by_key(|d| (d.created_at, d.id));
        let mut encoder = self.encoder.write().ok()?;
        if let Some(d) = newest {
            if encoder.as_ref().map(|(id, _)| *id) != Some(d.id) {
                *encoder = Some((d.id, Arc::new(EncoderDictionary::copy(&d.bytes, LEVEL))));
            }
        }
        encoder.as_ref().map(|(id, _)| *id)
    }
}

/// An event's JSON compressed without a dictionary.
pub fn compress(json: &str) -> Option<Vec<u8>> {
    compress_on_this_thread(json.as_bytes(), None)
}

thread_local! {
    /// Each thread's compression context, reused from one event to the
    /// next: creating one costs about as much as compressing a 7 KB event.
    /// A one-shot compression leaves nothing of itself in it.
    static CONTEXT: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> = const { std::cell::RefCell::new(None) };
}

/// `bytes` compressed (with `dictionary`, whose level it was prepared
/// with, or at [`LEVEL`]) by this thread's context; `None` if zstd refused.
fn compress_on_this_thread(bytes: &[u8], dictionary: Option<&EncoderDictionary<'static>>) -> Option<Vec<u8>> {
    CONTEXT.with(|context| {
        let mut context = context.try_borrow_mut().ok()?;
        if context.is_none() {
            *context = Some(zstd::zstd_safe::CCtx::try_create()?);
        }
        let cctx = context.as_mut()?;
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(bytes.len()));
        match dictionary {
            Some(dictionary) => cctx.compress_using_cdict(&mut out, bytes, dictionary.as_cdict()),
            None => cctx.compress(&mut out, bytes, LEVEL),
        }
        .ok()?;
        Some(out)
    })
}

/// Trains a dictionary on sample payloads (JSON texts).
pub fn train(samples: &[String]) -> Result<PayloadDictionary, String> {
    let bytes = zstd::dict::from_samples(samples, DICTIONARY_BYTES)
        .map_err(|e| format!("training a payload dictionary on {} samples: {e}", samples.len()))?;
    let id = zstd::zstd_safe::get_dict_id(&bytes).ok_or("the trained dictionary has no id")?;
    Ok(PayloadDictionary { id: i64::from(id.get()), created_at: 0, bytes })
}

/// The JSON of a stored event, from its row's `payload` and `body`.
pub(super) fn read(payload: String, body: Option<Vec<u8>>) -> Result<String, sqlx::Error> {
    let Some(body) = body else { return Ok(payload) };
    decompress(&body).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn decompress(body: &[u8]) -> Result<String, String> {
    use std::io::Read;
    let damaged = |e: std::io::Error| format!("a stored event's compressed payload is damaged: {e}");
    let mut bytes = Vec::new();
    match zstd::zstd_safe::get_dict_id_from_frame(body) {
        None => bytes = zstd::stream::decode_all(body).map_err(damaged)?,
        Some(id) => {
            let dictionary =
                decoders().read().ok().and_then(|known| known.get(&id.get()).cloned()).ok_or_else(|| {
                    format!(
                        "a stored event was compressed with payload dictionary {id}, which this node has not loaded"
                    )
                })?;
            zstd::stream::Decoder::with_prepared_dictionary(body, &dictionary)
                .and_then(|mut d| d.read_to_end(&mut bytes))
                .map_err(damaged)?;
        }
    }
    String::from_utf8(bytes).map_err(|e| format!("a stored event's payload is not UTF-8: {e}"))
}

/// The event's tags as a JSON object, for the `tags` column.
pub(super) fn tags_column(event: &Event) -> String {
    serde_json::to_string(&event.tags).unwrap_or_else(|_| "{}".into())
}

/// At most this many tags of an event are hashed into its `tag_hashes`
/// column; an event with more keeps it NULL (and is searched through its
/// `tags`), so the filter index's entries stay small.
pub(super) const MAX_HASHED_TAGS: usize = 32;

/// The 8-byte hash of one tag, as the `tag_hashes` column holds it and the
/// search looks for it. BLAKE2b, so that nobody can make up a tag that a
/// search for another mistakes for it.
pub(super) fn tag_hash(key: &str, value: &str) -> [u8; 8] {
    use blake2::digest::{consts::U8, Digest};
    let mut hasher = blake2::Blake2b::<U8>::new();
    hasher.update((key.len() as u64).to_le_bytes());
    hasher.update(key.as_bytes());
    hasher.update(value.as_bytes());
    hasher.finalize().into()
}

/// The event's tags as their hashes one after another, for the
/// `tag_hashes` column; `None` for more than [`MAX_HASHED_TAGS`] tags.
pub(super) fn tag_hashes_column(event: &Event) -> Option<Vec<u8>> {
    (event.tags.len() <= MAX_HASHED_TAGS).then(|| event.tags.iter().flat_map(|(k, v)| tag_hash(k, v)).collect())
}

/// The event's user's e-mail as text, for the `user_email` column (what
/// the search's `user.email:` compares with).
pub(super) fn user_email_column(event: &Event) -> Option<String> {
    match event.user.as_ref()?.get("email")? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Defines the dictionary queries and `impl PayloadDictionaries` for one
/// backend's store (`$pool` its pool type, `q` its placeholders): written
/// once, expanded in `sqlite.rs` and `postgres.rs`.
macro_rules! payload_dictionary_queries {
    ($store:ty, $pool:ty) => {
        async fn payload_dictionaries_in(pool: &$pool) -> StoreResult<Vec<super::stored_payload::PayloadDictionary>> {
            let rows: Vec<(i64, i64, Vec<u8>)> =
                sqlx::query_as("SELECT id, created_at, dictionary FROM payload_dictionaries ORDER BY created_at, id")
                    .fetch_all(pool)
                    .await
                    .map_err(unavailable("reading payload dictionaries"))?;
            Ok(rows
                .into_iter()
                .map(|(id, created_at, bytes)| super::stored_payload::PayloadDictionary { id, created_at, bytes })
                .collect())
        }

        /// Stores a dictionary once (a second node that trained one with
        /// the same id at the same moment changes nothing).
        async fn add_payload_dictionary_in(
            pool: &$pool,
            dictionary: &super::stored_payload::PayloadDictionary,
        ) -> StoreResult<()> {
            sqlx::query(&q(
                "INSERT INTO payload_dictionaries (id, created_at, dictionary) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
            ))
            .bind(dictionary.id)
            .bind(dictionary.created_at)
            .bind(&dictionary.bytes)
            .execute(pool)
            .await
            .map_err(unavailable("storing a payload dictionary"))?;
            Ok(())
        }

        /// The newest stored payloads, up to `limit` of them and about
        /// `max_bytes` in all, as JSON.
        async fn payload_samples_in(pool: &$pool, limit: i64, max_bytes: usize) -> StoreResult<Vec<String>> {
            let rows: Vec<(String, Option<Vec<u8>>)> =
                sqlx::query_as(&q("SELECT payload, body FROM events ORDER BY id DESC LIMIT ?"))
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                    .map_err(unavailable("sampling stored payloads"))?;
            let mut samples = Vec::with_capacity(rows.len());
            let mut bytes = 0;
            for (payload, body) in rows {
                let json = super::stored_payload::read(payload, body).map_err(unavailable("sampling stored payloads"))?;
                bytes += json.len();
                samples.push(json);
                if bytes >= max_bytes {
                    break;
                }
            }
            Ok(samples)
        }

        #[async_trait]
        impl PayloadDictionaries for $store {
            fn payload_codec(&self) -> &super::stored_payload::PayloadCodec {
                &self.payload_codec
            }

            async fn payload_dictionaries(&self) -> StoreResult<Vec<super::stored_payload::PayloadDictionary>> {
                payload_dictionaries_in(&self.pool).await
            }

            async fn add_payload_dictionary(
                &self,
                dictionary: &super::stored_payload::PayloadDictionary,
            ) -> StoreResult<()> {
                add_payload_dictionary_in(&self.pool, dictionary).await
            }

            async fn payload_samples(&self, limit: i64, max_bytes: usize) -> StoreResult<Vec<String>> {
                payload_samples_in(&self.pool, limit, max_bytes).await
            }
        }
    };
}

pub(super) use payload_dictionary_queries;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_payloads_read_back_and_old_rows_read_as_they_are() {
        let json = format!("{{\"message\":\"{}\"}}", "boom ".repeat(500));
        let body = compress(&json).unwrap();
        assert!(body.len() * 10 < json.len(), "{} of {}", body.len(), json.len());
        assert_eq!(read(String::new(), Some(body)).unwrap(), json);
        assert_eq!(read(json.clone(), None).unwrap(), json);
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_panic() {
        assert!(read(String::new(), Some(b"not zstd at all".to_vec())).is_err());
        let mut body = compress("{\"a\":1}").unwrap();
        body.truncate(body.len() / 2);
        assert!(read(String::new(), Some(body)).is_err());
    }

    fn sample(i: usize) -> String {
        format!(
            "{{\"event_id\":\"{i:032x}\",\"level\":\"error\",\"exception\":{{\"type\":\"ValueError\",\"value\":\"bad {i}\"}},\
             \"frames\":[{{\"filename\":\"/srv/app/views.py\",\"function\":\"handler_{}\",\"lineno\":{},\
             \"context_line\":\"raise ValueError(x)\",\"vars\":{{\"x\":\"{}\"}}}}],\
             \"tags\":{{\"region\":\"eu\",\"browser\":\"Firefox {}\",\"release\":\"1.{}\"}}}}",
            i % 7,
            i % 90,
            i * 31,
            i % 5,
            i % 3
        )
    }

    #[test]
    fn a_settled_dictionary_compresses_smaller_and_reads_back_anywhere() {
        let samples: Vec<String> = (0..1000).map(sample).collect();
        let mut dictionary = train(&samples).unwrap();
        dictionary.created_at = 1_000;
        let codec = PayloadCodec::default();
        let json = sample(5_001);
        let plain = codec.compress(&json).unwrap();

        assert_eq!(codec.install(std::slice::from_ref(&dictionary), 1_000 + SETTLE_MS - 1), None, "not settled yet");
        assert_eq!(codec.compress(&json).unwrap(), plain);
        assert_eq!(codec.install(std::slice::from_ref(&dictionary), 1_000 + SETTLE_MS), Some(dictionary.id));
        let small = codec.compress(&json).unwrap();
        assert!(small.len() * 2 < plain.len(), "{} with the dictionary, {} without", small.len(), plain.len());
        // Another store of the process (another node, after its refresh)
        // reads it with the dictionary the frame names.
        assert_eq!(read(String::new(), Some(small)).unwrap(), json);
        assert_eq!(read(String::new(), Some(plain)).unwrap(), json);
    }

    #[test]
    fn a_body_whose_dictionary_is_not_loaded_is_a_clear_error() {
        let samples: Vec<String> = (0..1000).map(|i| sample(i * 3 + 7)).collect();
        let dictionary = train(&samples).unwrap();
        // Compress with it without loading it for reading.
        let encoder = EncoderDictionary::copy(&dictionary.bytes, LEVEL);
        let body = zstd::bulk::Compressor::with_prepared_dictionary(&encoder).unwrap().compress(b"{}").unwrap();
        let error = read(String::new(), Some(body)).unwrap_err().to_string();
        assert!(error.contains("has not loaded"), "{error}");
    }
}
