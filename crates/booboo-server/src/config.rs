//! The one configuration: defaults < config file < `BOOBOO_*` environment
//! variables < command-line flags. Flags and variables are read by clap
//! (see `cli.rs`); this file layers them over the file and the defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::project_limits::{check_max_events, check_retention_days};
use crate::store::{LimitDefaults, RateLimit};

pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
pub const DEFAULT_DATA_DIR: &str = "./booboo-data";
/// Existing clients send up to 100 KB; a megabyte leaves room for our own.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// A Sentry envelope may carry attachments and sessions beside its event;
/// only the event is kept, and it still answers to `max_body_bytes`.
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 20 * 1024 * 1024;
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// A proxy on the same machine is trusted by default; others must be named.
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.1,::1";
pub const DEFAULT_MAX_BATCH: usize = 500;
/// Invitation and password links work for a week unless used first.
pub const DEFAULT_LINK_LIFETIME_DAYS: usize = 7;
/// A setup link works until the first administrator exists, or for a day
/// after the start that printed it.
pub const SETUP_LINK_LIFETIME_MS: i64 = 24 * 3_600_000;
/// A failed alert is first retried within 10 s; tests shorten this.
pub const DEFAULT_ALERT_RETRY_FIRST_MS: usize = 10_000;
/// Alert e-mails to one address per period before the rest wait for a digest.
pub const DEFAULT_ALERT_EMAIL_CAP: usize = 60;
/// The period the per-recipient cap counts in; a digest of what it held back
/// is sent when it ends. An hour.
pub const DEFAULT_ALERT_EMAIL_PERIOD_SECS: u64 = 3_600;
/// The longest period: a day.
pub const MAX_ALERT_EMAIL_PERIOD_SECS: u64 = 86_400;
/// A client gets this long, from its first byte, to send a request's headers.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// And this long, once the headers are in, to send the whole body.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 60;
/// A kept-alive connection with nothing moving is closed after this long.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Request bodies being read plus events waiting for the database, in bytes.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;
/// Stored events a project keeps unless it says otherwise.
pub const DEFAULT_MAX_EVENTS: i64 = 100_000;
/// Days an event is kept unless its project says otherwise.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;
/// Free space on the data directory's disk below which ingestion sheds load: 1 GiB.
pub const DEFAULT_MIN_FREE_DISK: u64 = 1 << 30;
/// Seconds between retention passes.
pub const DEFAULT_RETENTION_INTERVAL_SECS: u64 = 60;

#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: String,
    /// Whether `public_url` was only guessed from `bind` (nobody set it), so
    /// DSNs built from it likely do not reach this server from elsewhere.
    pub public_url_guessed: bool,
    /// The largest event, after decompression, in either protocol.
    pub max_body_bytes: usize,
    /// The largest Sentry envelope, after decompression.
    pub max_envelope_bytes: usize,
    pub queue_capacity: usize,
    pub max_batch: usize,
    /// Proxies (nginx in front of several nodes) whose `X-Forwarded-For`
    /// names the real client, for per-address sign-in limits.
    pub trusted_proxies: Vec<IpAddr>,
    /// How long invitation and password links work, unless used first.
    pub link_lifetime_days: usize,
    /// Hosts and networks alerts may reach although their addresses are
    /// loopback, private or link-local (`--outbound-allow`).
    pub outbound_allow: crate::outbound_allow::OutboundPolicy,
    /// The text `outbound_allow` was read from, for `config show`.
    pub outbound_allow_text: String,
    /// The longest wait before a failed alert's first retry (doubling after).
    pub alert_retry_first_ms: usize,
    /// Alert e-mails one address gets per `alert_email_period`; more wait
    /// for a digest.
    pub alert_email_cap: usize,
    /// The period the cap counts in, at whose end the digest is sent.
    pub alert_email_period: Duration,
    /// Where e-mail leaves (`smtp://user:pass@host:587`); no e-mail without
    /// it. Checked by `mail::Mailer::from_config` at start-up.
    pub smtp_url: Option<String>,
    /// The sender of every e-mail (`booboo@example.com`).
    pub email_from: Option<String>,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    /// Open connections; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// One budget for request bodies in flight and queued events.
    pub max_inflight_bytes: usize,
    /// Stored events per project when the project sets none (`--default-max-events`).
    pub default_max_events: i64,
    /// Days events are kept when the project sets none (`--default-retention-days`).
    pub default_retention_days: i64,
    /// A budget for the whole database on disk (`--max-disk-bytes`); `None`: off.
    pub max_disk_bytes: Option<u64>,
    /// After this many days events keep only their exception, stack trace and
    /// tags (`--full-payload-days`); `None`: off.
    pub full_payload_days: Option<i64>,
    /// Free disk below which ingestion sheds load (`--min-free-disk`); 0: off.
    pub min_free_disk: u64,
    /// One rate for all projects together (`--rate-limit`); `None`: off.
    pub rate_limit: Option<RateLimit>,
    /// Time between retention passes (`--retention-interval`).
    pub retention_interval: Duration,
}

impl Config {
    /// The lifetime of invitation and password links in milliseconds.
    pub fn link_lifetime_ms(&self) -> i64 {
        self.link_lifetime_days as i64 * 86_400_000
    }

    /// What a project's unset limits fall back to.
    pub fn limit_defaults(&self) -> LimitDefaults {
        LimitDefaults { max_events: self.default_max_events, retention_days: self.default_retention_days }
    }
}

/// What the user set, from flags or the environment (clap merges those two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub max_envelope_bytes: Option<usize>,
    pub queue_capacity: Option<usize>,
    pub max_batch: Option<usize>,
    pub trusted_proxies: Option<String>,
    pub link_lifetime_days: Option<usize>,
    pub outbound_allow: Option<String>,
    pub alert_retry_first_ms: Option<usize>,
    pub alert_email_cap: Option<usize>,
    pub alert_email_period: Option<u64>,
    pub smtp_url: Option<String>,
    pub email_from: Option<String>,
    pub header_timeout: Option<u64>,
    pub body_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_inflight_bytes: Option<usize>,
    pub default_max_events: Option<String>,
    pub default_retention_days: Option<String>,
    pub max_disk_bytes: Option<String>,
    pub full_payload_days: Option<String>,
    pub min_free_disk: Option<String>,
    pub rate_limit: Option<String>,
    pub retention_interval: Option<u64>,
}

impl Config {
    pub fn load(overrides: Overrides) -> Result<Config, String> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let text = |flag: Option<String>, key: &str| flag.or_else(|| file.get(key).cloned());
        let number = |flag: Option<usize>, key: &str, default: usize| -> Result<usize, String> {
            match flag {
                Some(n) => Ok(n),
                None => match file.get(key) {
                    Some(v) => v.parse().map_err(|_| format!("config file: `{key}` must be a whole number, got {v:?}")),
                    None => Ok(default),
                },
            }
        };

        let bind_text = text(overrides.bind, "bind").unwrap_or_else(|| DEFAULT_BIND.into());
        let bind: SocketAddr =
            bind_text.parse().map_err(|_| format!("--bind: {bind_text:?} is not an address such as 127.0.0.1:8000"))?;
        let data_dir = overrides
            .data_dir
            .or_else(|| file.get("data_dir").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = text(overrides.database_url, "database_url")
            .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("booboo.db").display()));
        let public_url = text(overrides.public_url, "public_url");
        let public_url_guessed = public_url.is_none();
        let public_url = public_url.unwrap_or_else(|| public_url_for(bind));
        let public_url = public_url.trim_end_matches('/').to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(format!("--public-url: {public_url:?} must start with http:// or https://"));
        }
        let max_body_bytes = number(overrides.max_body_bytes, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)?;
        if max_body_bytes < 102_400 {
            return Err(format!("--max-body-bytes: {max_body_bytes} is below 102400, the size existing clients send"));
        }
        let max_envelope_bytes =
            number(overrides.max_envelope_bytes, "max_envelope_bytes", DEFAULT_MAX_ENVELOPE_BYTES)?;
        if max_envelope_bytes < max_body_bytes {
            return Err(format!(
                "--max-envelope-bytes: {max_envelope_bytes} is below --max-body-bytes ({max_body_bytes}); an envelope must fit one event"
            ));
        }
        let queue_capacity = number(overrides.queue_capacity, "queue_capacity", DEFAULT_QUEUE_CAPACITY)?.max(1);
        let max_batch = number(overrides.max_batch, "max_batch", DEFAULT_MAX_BATCH)?.max(1);
        let proxies_text =
            text(overrides.trusted_proxies, "trusted_proxies").unwrap_or_else(|| DEFAULT_TRUSTED_PROXIES.into());
        let trusted_proxies = proxies_text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<IpAddr>().map_err(|_| format!("--trusted-proxies: {p:?} is not an IP address")))
            .collect::<Result<Vec<_>, _>>()?;
        let link_lifetime_days =
            number(overrides.link_lifetime_days, "link_lifetime_days", DEFAULT_LINK_LIFETIME_DAYS)?;
        if !(1..=90).contains(&link_lifetime_days) {
            return Err(format!(
                "--link-lifetime-days: {link_lifetime_days} is outside 1 to 90; a link is a password, keep it short-lived"
            ));
        }
        let outbound_allow_text = text(overrides.outbound_allow, "outbound_allow").unwrap_or_default();
        let outbound_allow = crate::outbound_allow::OutboundPolicy::parse(&outbound_allow_text)?;
        let alert_retry_first_ms =
            number(overrides.alert_retry_first_ms, "alert_retry_first_ms", DEFAULT_ALERT_RETRY_FIRST_MS)?;
        if !(100..=DEFAULT_ALERT_RETRY_FIRST_MS).contains(&alert_retry_first_ms) {
            return Err(format!(
                "--alert-retry-first-ms: {alert_retry_first_ms} is outside 100 to {DEFAULT_ALERT_RETRY_FIRST_MS}"
            ));
        }
        let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let smtp_url = non_empty(text(overrides.smtp_url, "smtp_url"));
        let email_from = non_empty(text(overrides.email_from, "email_from"));
        let alert_email_cap = number(overrides.alert_email_cap, "alert_email_cap", DEFAULT_ALERT_EMAIL_CAP)?;
        if !(1..=10_000).contains(&alert_email_cap) {
            return Err(format!("--alert-email-cap: {alert_email_cap} is outside 1 to 10000"));
        }
        let seconds = |flag: Option<u64>, key: &str, flag_name: &str, default: u64| -> Result<Duration, String> {
            let n = match flag {
                Some(n) => n,
                None => match file.get(key) {
                    Some(v) => v
                        .parse()
                        .map_err(|_| format!("config file: `{key}` must be a whole number of seconds, got {v:?}"))?,
                    None => default,
                },
            };
            if n == 0 {
                return Err(format!("{flag_name}: must be at least 1 second"));
            }
            Ok(Duration::from_secs(n))
        };
        let header_timeout =
            seconds(overrides.header_timeout, "header_timeout", "--header-timeout", DEFAULT_HEADER_TIMEOUT_SECS)?;
        let body_timeout =
            seconds(overrides.body_timeout, "body_timeout", "--body-timeout", DEFAULT_BODY_TIMEOUT_SECS)?;
        let idle_timeout =
            seconds(overrides.idle_timeout, "idle_timeout", "--idle-timeout", DEFAULT_IDLE_TIMEOUT_SECS)?;
        let alert_email_period = seconds(
            overrides.alert_email_period,
            "alert_email_period",
            "--alert-email-period",
            DEFAULT_ALERT_EMAIL_PERIOD_SECS,
        )?;
        if alert_email_period.as_secs() > MAX_ALERT_EMAIL_PERIOD_SECS {
            return Err(format!(
                "--alert-email-period: {} seconds is longer than a day ({MAX_ALERT_EMAIL_PERIOD_SECS})",
                alert_email_period.as_secs()
            ));
        }
        let max_connections = number(overrides.max_connections, "max_connections", DEFAULT_MAX_CONNECTIONS)?;
        // The semaphore that enforces it counts in u32.
        if max_connections == 0 || max_connections > 1_000_000 {
            return Err(format!("--max-connections: {max_connections} must be between 1 and 1000000"));
        }
        let max_inflight_bytes =
            number(overrides.max_inflight_bytes, "max_inflight_bytes", DEFAULT_MAX_INFLIGHT_BYTES)?;
        if max_inflight_bytes < max_body_bytes {
            return Err(format!(
                "--max-inflight-bytes: {max_inflight_bytes} is below --max-body-bytes ({max_body_bytes}); the budget must hold one event"
            ));
        }
        let limit = |flag: Option<String>, key: &str| text(flag, key).map(|v| v.trim().to_string());
        let off = |v: &str| v.eq_ignore_ascii_case("off") || v.is_empty();
        let default_max_events = match limit(overrides.default_max_events, "default_max_events") {
            Some(v) => parse_whole(&v).and_then(check_max_events).map_err(|e| format!("--default-max-events: {e}"))?,
            None => DEFAULT_MAX_EVENTS,
        };
        let default_retention_days = match limit(overrides.default_retention_days, "default_retention_days") {
            Some(v) => {
                parse_whole(&v).and_then(check_retention_days).map_err(|e| format!("--default-retention-days: {e}"))?
            }
            None => DEFAULT_RETENTION_DAYS,
        };
        let max_disk_bytes = match limit(overrides.max_disk_bytes, "max_disk_bytes") {
            Some(v) if !off(&v) => {
                let bytes = parse_size(&v).map_err(|e| format!("--max-disk-bytes: {e}"))?;
                if bytes < 1 << 20 {
                    return Err(format!("--max-disk-bytes: {v} is below 1MiB; no database fits in that"));
                }
                Some(bytes)
            }
            _ => None,
        };
        let full_payload_days = match limit(overrides.full_payload_days, "full_payload_days") {
            Some(v) if !off(&v) => Some(
                parse_whole(&v)
                    .and_then(check_retention_days)
                    .map_err(|e| format!("--full-payload-days: {e} (or off)"))?,
            ),
            _ => None,
        };
        let min_free_disk = match limit(overrides.min_free_disk, "min_free_disk") {
            Some(v) if off(&v) => 0,
            Some(v) => parse_size(&v).map_err(|e| format!("--min-free-disk: {e} (0 turns the check off)"))?,
            None => DEFAULT_MIN_FREE_DISK,
        };
        let rate_limit = match limit(overrides.rate_limit, "rate_limit") {
            Some(v) if !off(&v) => Some(RateLimit::parse(&v).map_err(|e| format!("--rate-limit: {e} (or off)"))?),
            _ => None,
        };
        let retention_interval = seconds(
            overrides.retention_interval,
            "retention_interval",
            "--retention-interval",
            DEFAULT_RETENTION_INTERVAL_SECS,
        )?;
        Ok(Config {
            retention_interval,
            default_max_events,
            default_retention_days,
            max_disk_bytes,
            full_payload_days,
            min_free_disk,
            rate_limit,
            alert_email_cap,
            alert_email_period,
            outbound_allow,
            outbound_allow_text,
            alert_retry_first_ms,
            bind,
            data_dir,
            database_url,
            public_url,
            public_url_guessed,
            max_body_bytes,
            max_envelope_bytes,
            queue_capacity,
            max_batch,
            trusted_proxies,
            link_lifetime_days,
            smtp_url,
            email_from,
            header_timeout,
            body_timeout,
            idle_timeout,
            max_connections,
            max_inflight_bytes,
        })
    }

    /// Where a password link's token is redeemed.
    pub fn password_link_url(&self, token: &str) -> String {
        format!("{}/password/{token}", self.public_url)
    }

    /// The ingestion DSN of a project in URL form (`docs/protocol.md`).
    pub fn dsn(&self, token: &str, org: &str, project: &str) -> String {
        let (scheme, host) = self.public_url.split_once("://").unwrap_or(("http", &self.public_url));
        let host = host.split('/').next().unwrap_or(host);
        format!("{scheme}://{token}@{host}/{org}/{project}")
    }

    /// The DSN Sentry SDKs take for a project: the same token as the key and
    /// the project's numeric id as the last path segment. A path in the
    /// public URL stays (Sentry SDKs put `/api/…` after it), so a server
    /// behind a reverse proxy under a prefix works.
    pub fn sentry_dsn(&self, token: &str, project_id: i64) -> String {
        let (scheme, rest) = self.public_url.split_once("://").unwrap_or(("http", &self.public_url));
        format!("{scheme}://{token}@{rest}/{project_id}")
    }

    /// `key = value` lines, secrets redacted, for `booboo config show`.
    pub fn show(&self) -> String {
        format!(
            "bind = {}\ndata_dir = {}\ndatabase_url = {}\npublic_url = {}\nmax_body_bytes = {}\nmax_envelope_bytes = {}\nqueue_capacity = {}\nmax_batch = {}\ntrusted_proxies = {}\nlink_lifetime_days = {}\noutbound_allow = {}\nalert_retry_first_ms = {}\nalert_email_cap = {}\nalert_email_period = {}\nsmtp_url = {}\nemail_from = {}\nheader_timeout = {}\nbody_timeout = {}\nidle_timeout = {}\nmax_connections = {}\nmax_inflight_bytes = {}\ndefault_max_events = {}\ndefault_retention_days = {}\nmax_disk_bytes = {}\nfull_payload_days = {}\nmin_free_disk = {}\nrate_limit = {}\nretention_interval = {}\n",
            self.bind,
            self.data_dir.display(),
            crate::store::redact_url(&self.database_url),
            self.public_url,
            self.max_body_bytes,
            self.max_envelope_bytes,
            self.queue_capacity,
            self.max_batch,
            self.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            self.link_lifetime_days,
            self.outbound_allow_text,
            self.alert_retry_first_ms,
            self.alert_email_cap,
            self.alert_email_period.as_secs(),
            self.smtp_url.as_deref().map(crate::store::redact_url).unwrap_or_default(),
            self.email_from.as_deref().unwrap_or_default(),
            self.header_timeout.as_secs(),
            self.body_timeout.as_secs(),
            self.idle_timeout.as_secs(),
            self.max_connections,
            self.max_inflight_bytes,
            self.default_max_events,
            self.default_retention_days,
            self.max_disk_bytes.map_or("off".to_string(), |b| b.to_string()),
            self.full_payload_days.map_or("off".to_string(), |d| d.to_string()),
            self.min_free_disk,
            self.rate_limit.map_or("off".to_string(), |r| r.to_string()),
            self.retention_interval.as_secs(),
        )
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.show())
    }
}

fn parse_whole(text: &str) -> Result<i64, String> {
    text.trim().replace('_', "").parse().map_err(|_| format!("{text:?} is not a whole number"))
}

/// Reads a size such as `1048576`, `500MB` (10^6 bytes) or `1GiB` (2^30
/// bytes): a whole number with an optional unit B, KB, MB, GB, TB or KiB,
/// MiB, GiB, TiB (case does not matter; `K`, `M`, `G`, `T` are the binary ones).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write it like 500MB, 1GiB or a number of bytes"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(format!("{text:?}: {unit:?} is not a unit; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too large"))
}

/// A listening address turned into a URL clients can reach.
fn public_url_for(bind: SocketAddr) -> String {
    let host = if bind.ip().is_unspecified() { "127.0.0.1".to_string() } else { bind.ip().to_string() };
    let host = if bind.is_ipv6() && !bind.ip().is_unspecified() { format!("[{host}]") } else { host };
    format!("http://{host}:{}", bind.port())
}

/// Reads `key = value` lines; `#` starts a comment; values may be quoted.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let mut values = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) =
            line.split_once('=').ok_or_else(|| format!("{}:{}: expected `key = value`", path.display(), n + 1))?;
        let key = key.trim();
        let known = [
            "bind",
            "data_dir",
            "database_url",
            "public_url",
            "max_body_bytes",
            "max_envelope_bytes",
            "queue_capacity",
            "max_batch",
            "trusted_proxies",
            "link_lifetime_days",
            "outbound_allow",
            "alert_retry_first_ms",
            "alert_email_cap",
            "alert_email_period",
            "smtp_url",
            "email_from",
            "header_timeout",
            "body_timeout",
            "idle_timeout",
            "max_connections",
            "max_inflight_bytes",
            "default_max_events",
            "default_retention_days",
            "max_disk_bytes",
            "full_payload_days",
            "min_free_disk",
            "rate_limit",
            "retention_interval",
        ];
        if !known.contains(&key) {
            return Err(format!("{}:{}: unknown setting `{key}`", path.display(), n + 1));
        }
        let value = value.trim().trim_matches('"').to_string();
        values.insert(key.to_string(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("booboo.conf");
        std::fs::write(&file, "# comment\nbind = \"0.0.0.0:9000\"\nmax_body_bytes = 200000\n").unwrap();
        let config =
            Config::load(Overrides { config_file: Some(file), max_body_bytes: Some(300_000), ..Overrides::default() })
                .unwrap();
        assert_eq!(config.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(config.public_url, "http://127.0.0.1:9000");
        assert_eq!(config.max_body_bytes, 300_000);
        assert_eq!(config.database_url, "sqlite:./booboo-data/booboo.db");
    }

    #[test]
    fn sizes_read_decimal_and_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size(" 2 gb "), Ok(2_000_000_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("5 parsecs").unwrap_err().contains("not a unit"));
        assert!(parse_size("-5MB").unwrap_err().contains("not a size"));
        assert!(parse_size("99999999999TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn limit_defaults_parse_and_show() {
        let default = Config::load(Overrides::default()).unwrap();
        assert_eq!(default.default_max_events, 100_000);
        assert_eq!(default.default_retention_days, 90);
        assert_eq!(default.max_disk_bytes, None);
        assert_eq!(default.full_payload_days, None);
        assert_eq!(default.min_free_disk, 1 << 30);
        assert_eq!(default.rate_limit, None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("booboo.conf");
        std::fs::write(&file, "max_disk_bytes = 500MB\nrate_limit = 5000/hour\nmin_free_disk = 0\n").unwrap();
        let set = Config::load(Overrides {
            config_file: Some(file),
            default_max_events: Some("1000".into()),
            default_retention_days: Some("30".into()),
            full_payload_days: Some("7".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(set.default_max_events, 1000);
        assert_eq!(set.default_retention_days, 30);
        assert_eq!(set.max_disk_bytes, Some(500_000_000));
        assert_eq!(set.full_payload_days, Some(7));
        assert_eq!(set.min_free_disk, 0);
        assert_eq!(set.rate_limit, Some(RateLimit { count: 5000, seconds: 3600 }));
        let shown = set.show();
        assert!(shown.contains("rate_limit = 5000/hour") && shown.contains("max_disk_bytes = 500000000"), "{shown}");
        for (overrides, flag) in [
            (Overrides { default_max_events: Some("0".into()), ..Overrides::default() }, "--default-max-events"),
            (
                Overrides { default_max_events: Some("2000000000".into()), ..Overrides::default() },
                "--default-max-events",
            ),
            (
                Overrides { default_retention_days: Some("-1".into()), ..Overrides::default() },
                "--default-retention-days",
            ),
            (
                Overrides { default_retention_days: Some("40000".into()), ..Overrides::default() },
                "--default-retention-days",
            ),
            (Overrides { max_disk_bytes: Some("12 furlongs".into()), ..Overrides::default() }, "--max-disk-bytes"),
            (Overrides { max_disk_bytes: Some("100".into()), ..Overrides::default() }, "--max-disk-bytes"),
            (Overrides { full_payload_days: Some("0".into()), ..Overrides::default() }, "--full-payload-days"),
            (Overrides { min_free_disk: Some("-1GB".into()), ..Overrides::default() }, "--min-free-disk"),
            (Overrides { rate_limit: Some("100/fortnight".into()), ..Overrides::default() }, "--rate-limit"),
        ] {
            let err = Config::load(overrides).err().unwrap();
            assert!(err.starts_with(flag), "{err}");
        }
    }

    #[test]
    fn dsn_uses_the_public_url() {
        let config =
            Config::load(Overrides { public_url: Some("https://errors.example.com/".into()), ..Overrides::default() })
                .unwrap();
        assert_eq!(config.dsn("abc", "acme", "web"), "https://abc@errors.example.com/acme/web");
        assert_eq!(config.sentry_dsn("abc", 7), "https://abc@errors.example.com/7");
        let behind_a_proxy =
            Config::load(Overrides { public_url: Some("https://example.com/errors/".into()), ..Overrides::default() })
                .unwrap();
        assert_eq!(behind_a_proxy.sentry_dsn("abc", 7), "https://abc@example.com/errors/7");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = Config::load(Overrides { bind: Some("nope".into()), ..Overrides::default() }).err().unwrap();
        assert!(err.contains("--bind"), "{err}");
        let err = Config::load(Overrides { trusted_proxies: Some("10.0.0.1, nginx".into()), ..Overrides::default() })
            .err()
            .unwrap();
        assert!(err.contains("--trusted-proxies") && err.contains("nginx"), "{err}");
        let err = Config::load(Overrides { max_body_bytes: Some(10), ..Overrides::default() }).err().unwrap();
        assert!(err.contains("102400"), "{err}");
        let err = Config::load(Overrides {
            max_body_bytes: Some(2_000_000),
            max_envelope_bytes: Some(1_000_000),
            ..Overrides::default()
        })
        .err()
        .unwrap();
        assert!(err.contains("--max-envelope-bytes"), "{err}");
        let err = Config::load(Overrides { link_lifetime_days: Some(0), ..Overrides::default() }).err().unwrap();
        assert!(err.contains("--link-lifetime-days"), "{err}");
        let err = Config::load(Overrides { header_timeout: Some(0), ..Overrides::default() }).err().unwrap();
        assert!(err.contains("--header-timeout"), "{err}");
        let err = Config::load(Overrides { max_connections: Some(0), ..Overrides::default() }).err().unwrap();
        assert!(err.contains("--max-connections"), "{err}");
        let err = Config::load(Overrides { max_inflight_bytes: Some(200_000), ..Overrides::default() }).err().unwrap();
        assert!(err.contains("--max-inflight-bytes"), "{err}");
    }

    #[test]
    fn connection_limits_come_from_the_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("booboo.conf");
        std::fs::write(
            &file,
            "header_timeout = 3\nidle_timeout = 4\nmax_connections = 9\nmax_inflight_bytes = 2000000\n",
        )
        .unwrap();
        let config =
            Config::load(Overrides { config_file: Some(file), body_timeout: Some(5), ..Overrides::default() }).unwrap();
        assert_eq!(config.header_timeout, Duration::from_secs(3));
        assert_eq!(config.body_timeout, Duration::from_secs(5));
        assert_eq!(config.idle_timeout, Duration::from_secs(4));
        assert_eq!(config.max_connections, 9);
        assert_eq!(config.max_inflight_bytes, 2_000_000);
        assert!(config.show().contains("max_inflight_bytes = 2000000"));
    }

    #[test]
    fn the_alert_email_period_defaults_to_an_hour_comes_from_the_file_and_is_bounded() {
        let default = Config::load(Overrides::default()).unwrap();
        assert_eq!(default.alert_email_period, Duration::from_secs(3_600));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("booboo.conf");
        std::fs::write(&file, "alert_email_period = 600\n").unwrap();
        let from_file = Config::load(Overrides { config_file: Some(file.clone()), ..Overrides::default() }).unwrap();
        assert_eq!(from_file.alert_email_period, Duration::from_secs(600));
        assert!(from_file.show().contains("alert_email_period = 600"));
        let flag = Overrides { config_file: Some(file), alert_email_period: Some(5), ..Overrides::default() };
        assert_eq!(Config::load(flag).unwrap().alert_email_period, Duration::from_secs(5));
        for bad in [0, 86_401] {
            let err = Config::load(Overrides { alert_email_period: Some(bad), ..Overrides::default() }).err().unwrap();
            assert!(err.contains("--alert-email-period"), "{err}");
        }
    }

    #[test]
    fn the_retention_interval_defaults_to_a_minute_and_comes_from_the_file() {
        assert_eq!(Config::load(Overrides::default()).unwrap().retention_interval, Duration::from_secs(60));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("booboo.conf");
        std::fs::write(&file, "retention_interval = 5\n").unwrap();
        let config = Config::load(Overrides { config_file: Some(file), ..Overrides::default() }).unwrap();
        assert_eq!(config.retention_interval, Duration::from_secs(5));
        assert!(config.show().contains("retention_interval = 5"));
        let err = Config::load(Overrides { retention_interval: Some(0), ..Overrides::default() }).err().unwrap();
        assert!(err.contains("--retention-interval"), "{err}");
    }

    #[test]
    fn smtp_settings_come_from_the_file_and_the_password_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("booboo.conf");
        std::fs::write(
            &file,
            "smtp_url = \"smtp://mailer:hunter22@mail.example.com:587\"\nemail_from = booboo@example.com\n",
        )
        .unwrap();
        let config = Config::load(Overrides { config_file: Some(file), ..Overrides::default() }).unwrap();
        assert_eq!(config.smtp_url.as_deref(), Some("smtp://mailer:hunter22@mail.example.com:587"));
        assert_eq!(config.email_from.as_deref(), Some("booboo@example.com"));
        let shown = config.show();
        assert!(shown.contains("smtp_url = smtp://mailer:[redacted]@mail.example.com:587"), "{shown}");
        assert!(!format!("{config:?}").contains("hunter22"));
    }
}
