//! The command line: `booboo serve` and the administration commands. Each
//! command loads the one configuration, opens the store, does one thing.

use crate::config::{Config, Overrides};
use crate::identifiers::{check_email, check_slug};
use crate::mail::{Mailer, OutgoingMail};
use crate::serve::open_store;
use crate::store::{Accounts, Role, Store};
use crate::{backup, clock, secrets, serve};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "booboo", version, about = "booboo: a self-hosted error tracker in one binary")]
struct Cli {
    /// A file of `key = value` settings, below environment variables and flags.
    #[arg(long, global = true, env = "BOOBOO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where booboo keeps its data (the SQLite database by default).
    #[arg(long, global = true, env = "BOOBOO_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite:PATH or postgres://…; default: a SQLite file in the data dir.
    #[arg(long, global = true, env = "BOOBOO_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// Address to listen on (default 127.0.0.1:8000).
    #[arg(long, global = true, env = "BOOBOO_BIND", value_name = "ADDR")]
    bind: Option<String>,
    /// The URL clients reach this server at, used in DSNs (default from --bind).
    #[arg(long, global = true, env = "BOOBOO_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Largest accepted event body, after decompression (default 1 MiB).
    #[arg(long, global = true, env = "BOOBOO_MAX_BODY_BYTES", value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest accepted Sentry envelope, after decompression (default 20 MiB).
    #[arg(long, global = true, env = "BOOBOO_MAX_ENVELOPE_BYTES", value_name = "BYTES")]
    max_envelope_bytes: Option<usize>,
    /// Comma-separated proxy addresses whose X-Forwarded-For is believed (default 127.0.0.1,::1).
    #[arg(long, global = true, env = "BOOBOO_TRUSTED_PROXIES", value_name = "IPS")]
    trusted_proxies: Option<String>,
    /// Events that may wait for the database before clients are told to retry.
    #[arg(long, global = true, env = "BOOBOO_QUEUE_CAPACITY", value_name = "EVENTS")]
    queue_capacity: Option<usize>,
    /// Most events stored in one transaction.
    #[arg(long, global = true, env = "BOOBOO_MAX_BATCH", value_name = "EVENTS")]
    max_batch: Option<usize>,
    /// Days an invitation or password link works unless used first (default 7).
    #[arg(long, global = true, env = "BOOBOO_LINK_LIFETIME_DAYS", value_name = "DAYS")]
    link_lifetime_days: Option<usize>,
    /// Comma-separated hosts, IPs or CIDRs alerts may reach although they are loopback, private or link-local.
    #[arg(long, global = true, env = "BOOBOO_OUTBOUND_ALLOW", value_name = "HOSTS")]
    outbound_allow: Option<String>,
    /// Longest wait before a failed alert's first retry, doubling after (default 10000; lower for tests).
    #[arg(long, global = true, env = "BOOBOO_ALERT_RETRY_FIRST_MS", value_name = "MS")]
    alert_retry_first_ms: Option<usize>,
    /// Alert e-mails one address gets per --alert-email-period; the rest wait for a digest (default 60).
    #[arg(long, global = true, env = "BOOBOO_ALERT_EMAIL_CAP", value_name = "EMAILS")]
    alert_email_cap: Option<usize>,
    /// Seconds the per-recipient cap counts in; the digest of what it held back is sent when they end
    /// (default 3600, at most 86400).
    #[arg(long, global = true, env = "BOOBOO_ALERT_EMAIL_PERIOD", value_name = "SECONDS")]
    alert_email_period: Option<u64>,
    /// Send e-mail through this server: smtp://user:pass@host:587 (STARTTLS when offered;
    /// add ?starttls=required to demand it) or smtps://host:465 (implicit TLS).
    #[arg(long, global = true, env = "BOOBOO_SMTP_URL", value_name = "URL")]
    smtp_url: Option<String>,
    /// The sender of booboo's e-mail, such as booboo@example.com (needed with --smtp-url).
    #[arg(long, global = true, env = "BOOBOO_EMAIL_FROM", value_name = "ADDRESS")]
    email_from: Option<String>,
    /// Seconds a client has, from its first byte, to send a request's headers (default 10).
    #[arg(long, global = true, env = "BOOBOO_HEADER_TIMEOUT", value_name = "SECONDS")]
    header_timeout: Option<u64>,
    /// Seconds a client has, once the headers are in, to send the whole body (default 60).
    #[arg(long, global = true, env = "BOOBOO_BODY_TIMEOUT", value_name = "SECONDS")]
    body_timeout: Option<u64>,
    /// Seconds a connection may sit with nothing moving between requests (default 30).
    #[arg(long, global = true, env = "BOOBOO_IDLE_TIMEOUT", value_name = "SECONDS")]
    idle_timeout: Option<u64>,
    /// Open connections at once; more wait to be accepted (default 1024).
    #[arg(long, global = true, env = "BOOBOO_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Bytes of request bodies and queued events held at once; past it ingestion answers "retry later" (default 256 MiB).
    #[arg(long, global = true, env = "BOOBOO_MAX_INFLIGHT_BYTES", value_name = "BYTES")]
    max_inflight_bytes: Option<usize>,
    /// Stored events a project keeps when it sets no limit of its own (default 100000).
    #[arg(long, global = true, env = "BOOBOO_DEFAULT_MAX_EVENTS", value_name = "N")]
    default_max_events: Option<String>,
    /// Days events are kept when the project sets no limit of its own (default 90).
    #[arg(long, global = true, env = "BOOBOO_DEFAULT_RETENTION_DAYS", value_name = "DAYS")]
    default_retention_days: Option<String>,
    /// A budget for the database on disk, such as 20GB or 500MiB (default off).
    #[arg(long, global = true, env = "BOOBOO_MAX_DISK_BYTES", value_name = "SIZE")]
    max_disk_bytes: Option<String>,
    /// Days after which events keep only exception, stack trace and tags (default off).
    #[arg(long, global = true, env = "BOOBOO_FULL_PAYLOAD_DAYS", value_name = "DAYS")]
    full_payload_days: Option<String>,
    /// Free disk below which ingestion sheds load, such as 1GiB; 0 turns it off (default 1GiB).
    #[arg(long, global = true, env = "BOOBOO_MIN_FREE_DISK", value_name = "SIZE")]
    min_free_disk: Option<String>,
    /// Events stored per period for all projects together, such as 5000/hour (default off). Given
    /// before the command (`booboo --rate-limit 5000/hour serve`): after it, `project set` has its own.
    #[arg(long, env = "BOOBOO_RATE_LIMIT", value_name = "RATE")]
    rate_limit: Option<String>,
    /// Seconds between retention passes (default 60).
    #[arg(long, global = true, env = "BOOBOO_RETENTION_INTERVAL", value_name = "SECONDS")]
    retention_interval: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: ingestion, API and dashboard.
    Serve,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage organisation memberships.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage alert rules: when to tell whom that something broke.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Work on issues: merge several into one.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Manage a project's ingestion keys (the tokens inside its DSNs).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the e-mail settings (--smtp-url, --email-from).
    #[command(subcommand)]
    Email(EmailCommand),
    /// Copy the SQLite database, consistently, to a new file while the server runs.
    Backup {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Put a backup in place of the SQLite database (the server must be stopped).
    Restore {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Write a project's issues and events as JSON Lines to standard output.
    Export {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
    },
    /// Apply the retention limits now (the server does it every --retention-interval).
    #[command(subcommand)]
    Retention(RetentionCommand),
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// One retention pass: age and count limits, the lighter tier, the disk budget.
    Run {
        /// Measure ages from this time (RFC 3339, e.g. 2030-01-01T00:00:00Z) instead of now.
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input or BOOBOO_PASSWORD.
    Create {
        #[arg(long)]
        email: String,
        /// An installation administrator sees every organisation.
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password, read from standard input or BOOBOO_PASSWORD;
    /// signs out all their sessions.
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Print a one-time link with which the user chooses a new password.
    ResetLink {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Make a user a member of an organisation (or change their role).
    Add {
        org: String,
        email: String,
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Member,
    Admin,
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create ORG/PROJECT (and the organisation if needed); prints its DSN last.
    Create {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
    },
    /// Delete ORG/PROJECT with its keys, issues and events (asks for --yes).
    Delete {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
        /// Confirm: the project and everything stored for it go for good.
        #[arg(long)]
        yes: bool,
    },
    /// Change ORG/PROJECT's limits; prints the settings that then apply.
    Set(ProjectSet),
}

#[derive(clap::Args)]
struct ProjectSet {
    #[arg(value_name = "ORG/PROJECT")]
    path: String,
    /// Stored events the project keeps, or `default` for the installation's.
    #[arg(long, value_name = "N|default", allow_hyphen_values = true)]
    max_events: Option<String>,
    /// Days events are kept, or `default` for the installation's.
    #[arg(long, value_name = "DAYS|default", allow_hyphen_values = true)]
    retention_days: Option<String>,
    /// Events stored per period, such as 100/min or 5000/hour, or `off`.
    #[arg(long, value_name = "RATE|off")]
    rate_limit: Option<String>,
    /// Cap the project at a multiple of its own recent hourly rate: on or off.
    #[arg(long, value_name = "on|off")]
    spike_guard: Option<String>,
}

impl ProjectSet {
    /// The change the flags ask for, each value checked before the database is opened.
    fn patch(&self) -> Result<crate::store::ProjectLimitsPatch, String> {
        use crate::store::project_limits::{read_max_events, read_rate_limit, read_retention_days, read_switch};
        let mut patch = crate::store::ProjectLimitsPatch::default();
        if let Some(v) = &self.max_events {
            patch.max_events = read_max_events(v).map_err(|e| format!("--max-events: {e}"))?;
        }
        if let Some(v) = &self.retention_days {
            patch.retention_days = read_retention_days(v).map_err(|e| format!("--retention-days: {e}"))?;
        }
        if let Some(v) = &self.rate_limit {
            patch.rate_limit = read_rate_limit(v).map_err(|e| format!("--rate-limit: {e}"))?;
        }
        if let Some(v) = &self.spike_guard {
            patch.spike_guard = Some(read_switch(v).map_err(|e| format!("--spike-guard: {e}"))?);
        }
        Ok(patch)
    }
}

#[derive(Subcommand)]
enum IssueCommand {
    /// Merge the SOURCE issues into TARGET (all of one project): their counts, users, history and
    /// events move to TARGET, and their later events are counted there too.
    Merge {
        target: i64,
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<i64>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List the keys of ORG/PROJECT: id, state, label and DSN.
    List {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
    },
    /// Add a key to ORG/PROJECT; prints its DSN last.
    Add {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Revoke a key: its DSN is refused from now on; the key stays listed as revoked.
    Revoke {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
        id: i64,
    },
    /// Delete a key, live or revoked: its DSN is refused and it leaves the list (asks for --yes).
    Delete {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
        id: i64,
        /// Confirm: applications still using this key can no longer send errors.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user; prints it last.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(clap::Args)]
struct AlertAdd {
    #[arg(value_name = "ORG/PROJECT")]
    path: String,
    /// new-issue, regression, unignored, frequency or users.
    #[arg(long = "on", value_name = "TRIGGER")]
    trigger: String,
    /// For frequency and users rules: how many events (or users) within the window.
    #[arg(long)]
    count: Option<i64>,
    /// For frequency and users rules: 1m to 1d, such as 5m.
    #[arg(long)]
    window: Option<String>,
    /// Only events from this environment (repeat for several).
    #[arg(long = "environment", value_name = "ENVIRONMENT")]
    environments: Vec<String>,
    /// Only events at least this level: debug, info, warning, error, fatal.
    #[arg(long)]
    level: Option<String>,
    /// Only events of this release.
    #[arg(long)]
    release: Option<String>,
    /// Only events with this tag, as key=value.
    #[arg(long)]
    tag: Option<String>,
    /// Quiet time per issue after the rule fired, such as 30m (default: the window, or 0).
    #[arg(long)]
    throttle: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// E-mail this address (needs --smtp-url).
    #[arg(long = "email", value_name = "ADDR")]
    emails: Vec<String>,
    /// E-mail the organisation's members (needs --smtp-url).
    #[arg(long)]
    email_members: bool,
    /// A Slack incoming webhook URL.
    #[arg(long = "slack", value_name = "URL")]
    slacks: Vec<String>,
    /// A Discord webhook URL.
    #[arg(long = "discord", value_name = "URL")]
    discords: Vec<String>,
    /// A generic webhook URL, signed per Standard Webhooks.
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    /// The webhook's whsec_… signing secret (generated and printed when not given).
    #[arg(long)]
    secret: Option<String>,
}

#[derive(Subcommand)]
enum AlertCommand {
    /// Add a rule to ORG/PROJECT; prints a generated webhook secret (once), then the rule's id last.
    Add(Box<AlertAdd>),
    /// List the rules of ORG/PROJECT, with each channel's last failure.
    List {
        #[arg(value_name = "ORG/PROJECT")]
        path: String,
    },
    /// Send a test message to every channel of a rule.
    Test { id: i64 },
    /// Delete a rule.
    Remove { id: i64 },
}

#[derive(Subcommand)]
enum EmailCommand {
    /// Send a test e-mail through the configured SMTP server; says why when it fails.
    Test {
        #[arg(long, value_name = "ADDRESS")]
        to: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted.
    Show,
}

/// Parses the command line and runs it; the error is one line for a person.
pub fn run() -> Result<(), String> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            let _ = e.print();
            return if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                Err("a command is needed; see the list above".into())
            } else {
                Ok(())
            };
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            return Err(format!("{first} (see booboo --help)"));
        }
    };
    let config = Config::load(Overrides {
        config_file: cli.config,
        bind: cli.bind,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        public_url: cli.public_url,
        max_body_bytes: cli.max_body_bytes,
        max_envelope_bytes: cli.max_envelope_bytes,
        queue_capacity: cli.queue_capacity,
        max_batch: cli.max_batch,
        trusted_proxies: cli.trusted_proxies,
        link_lifetime_days: cli.link_lifetime_days,
        outbound_allow: cli.outbound_allow,
        alert_retry_first_ms: cli.alert_retry_first_ms,
        alert_email_cap: cli.alert_email_cap,
        alert_email_period: cli.alert_email_period,
        smtp_url: cli.smtp_url,
        email_from: cli.email_from,
        header_timeout: cli.header_timeout,
        body_timeout: cli.body_timeout,
        idle_timeout: cli.idle_timeout,
        max_connections: cli.max_connections,
        max_inflight_bytes: cli.max_inflight_bytes,
        default_max_events: cli.default_max_events,
        default_retention_days: cli.default_retention_days,
        max_disk_bytes: cli.max_disk_bytes,
        full_payload_days: cli.full_payload_days,
        min_free_disk: cli.min_free_disk,
        rate_limit: cli.rate_limit,
        retention_interval: cli.retention_interval,
    })?;
    if let Command::Config(ConfigCommand::Show) = cli.command {
        print!("{}", config.show());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        if let Command::Serve = cli.command {
            return serve::serve(config).await;
        }
        if let Command::Email(EmailCommand::Test { to }) = &cli.command {
            // No store: this checks the mail settings alone.
            return send_test_email(&config, to).await;
        }
        validate_arguments(&cli.command)?;
        if let Command::Restore { path } = &cli.command {
            // Not through the store: opening it would create and migrate
            // the very database that is about to be replaced.
            return restore(&config, path).await;
        }
        let store = open_store(&config).await?;
        match cli.command {
            Command::User(UserCommand::Create { email, admin }) => create_user(&*store, &email, admin).await,
            Command::User(UserCommand::SetPassword { email }) => set_password(&*store, &email).await,
            Command::User(UserCommand::ResetLink { email }) => reset_link(&*store, &config, &email).await,
            Command::Member(MemberCommand::Add { org, email, role }) => add_member(&*store, &org, &email, role).await,
            Command::Project(ProjectCommand::Create { path }) => create_project(&*store, &config, &path).await,
            Command::Project(ProjectCommand::Delete { path, yes }) => delete_project(&*store, &path, yes).await,
            Command::Project(ProjectCommand::Set(set)) => set_project(&*store, &config, &set).await,
            Command::Token(TokenCommand::Create { email, label }) => create_token(&*store, &email, &label).await,
            Command::Backup { path } => {
                backup::backup(&*store, &path).await?;
                println!("Backed up to {}.", path.display());
                Ok(())
            }
            Command::Export { path } => export(store, &path).await,
            Command::Alert(command) => alert(store, &config, command).await,
            Command::Retention(RetentionCommand::Run { now }) => retention_run(&*store, &config, now.as_deref()).await,
            Command::Issue(IssueCommand::Merge { target, sources }) => merge_issues(&*store, target, &sources).await,
            Command::Key(command) => key(&*store, &config, command).await,
            Command::Serve | Command::Config(_) | Command::Restore { .. } | Command::Email(_) => {
                unreachable!("handled above")
            }
        }
    })
}

/// Checks what can be checked without the database, so that a typo never
/// creates a data directory.
fn validate_arguments(command: &Command) -> Result<(), String> {
    match command {
        Command::User(UserCommand::Create { email, .. })
        | Command::User(UserCommand::SetPassword { email })
        | Command::User(UserCommand::ResetLink { email })
        | Command::Member(MemberCommand::Add { email, .. })
        | Command::Token(TokenCommand::Create { email, .. }) => check_email(email).map(|_| ()),
        Command::Key(KeyCommand::Add { label, .. }) if label.chars().count() > MAX_KEY_LABEL_CHARS => {
            Err(format!("a key's label can be at most {MAX_KEY_LABEL_CHARS} characters"))
        }
        Command::Project(ProjectCommand::Create { path } | ProjectCommand::Delete { path, .. })
        | Command::Export { path }
        | Command::Alert(AlertCommand::List { path })
        | Command::Key(
            KeyCommand::List { path }
            | KeyCommand::Add { path, .. }
            | KeyCommand::Revoke { path, .. }
            | KeyCommand::Delete { path, .. },
        ) => split_project_path(path).map(|_| ()),
        Command::Issue(IssueCommand::Merge { target, sources }) => {
            crate::store::IssueMerge::new(*target, sources).map(|_| ())
        }
        Command::Alert(AlertCommand::Add(add)) => split_project_path(&add.path).map(|_| ()),
        Command::Project(ProjectCommand::Set(set)) => {
            split_project_path(&set.path)?;
            set.patch().map(|_| ())
        }
        Command::Alert(AlertCommand::Test { .. }) | Command::Alert(AlertCommand::Remove { .. }) => Ok(()),
        Command::Retention(RetentionCommand::Run { now }) => now.as_deref().map(parse_now).transpose().map(|_| ()),
        Command::Serve | Command::Config(_) | Command::Email(_) | Command::Backup { .. } | Command::Restore { .. } => {
            Ok(())
        }
    }
}

fn split_project_path(path: &str) -> Result<(&str, &str), String> {
    let (org, project) =
        path.split_once('/').ok_or_else(|| format!("{path:?} must be ORG/PROJECT, such as acme/web"))?;
    check_slug(org, "organisation")?;
    check_slug(project, "project")?;
    Ok((org, project))
}

fn read_password() -> Result<String, String> {
    let password = match std::env::var("BOOBOO_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            input.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if password.chars().count() < 8 {
        return Err(
            "the password must be at least 8 characters (give it on standard input or in BOOBOO_PASSWORD)".into()
        );
    }
    Ok(password)
}

async fn create_user(store: &dyn Accounts, email: &str, admin: bool) -> Result<(), String> {
    let email = check_email(email)?;
    let password = read_password()?;
    let hash = secrets::hash_password(&password)?;
    let user = store.create_user(&email, &hash, admin, clock::now_millis()).await.map_err(|e| e.to_string())?;
    println!("Created {} {}.", if admin { "administrator" } else { "user" }, user.email);
    Ok(())
}

async fn set_password(store: &dyn Accounts, email: &str) -> Result<(), String> {
    let user = user_named(store, email).await?;
    let password = read_password()?;
    let hash = secrets::hash_password(&password)?;
    // No session is kept: whoever was signed in as this user is signed out.
    store.set_password(user.id, &hash, "").await.map_err(|e| e.to_string())?;
    println!("Changed the password of {}; their sessions were signed out.", user.email);
    Ok(())
}

async fn reset_link(store: &dyn Store, config: &Config, email: &str) -> Result<(), String> {
    let user = user_named(store, email).await?;
    let token = secrets::new_session_token();
    let now = clock::now_millis();
    store
        .create_password_link(&secrets::token_hash(&token), user.id, now, now + config.link_lifetime_ms())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Give this link to {} only: it lets whoever opens it choose the password. It works once, for {} days.",
        user.email, config.link_lifetime_days
    );
    println!("{}", config.password_link_url(&token));
    Ok(())
}

async fn send_test_email(config: &Config, to: &str) -> Result<(), String> {
    let mailer = Mailer::from_config(config)?
        .ok_or("e-mail is not configured: set --smtp-url (BOOBOO_SMTP_URL) and --email-from (BOOBOO_EMAIL_FROM)")?;
    let text = format!(
        "This test e-mail from booboo at {} shows that its e-mail settings work: {}.",
        config.public_url,
        mailer.describe()
    );
    let mail = OutgoingMail {
        to: to.to_string(),
        subject: "booboo test e-mail".into(),
        html: format!("<p>{}</p>", text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")),
        text,
    };
    mailer.send(mail).await.map_err(|e| format!("the test e-mail was not sent: {e}"))?;
    println!("Sent a test e-mail to {to} through {}.", mailer.describe());
    Ok(())
}

async fn user_named(store: &dyn Accounts, email: &str) -> Result<crate::store::User, String> {
    let email = check_email(email)?;
    store
        .user_by_email(&email)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user with the email {email}; create one with `booboo user create --email {email}`"))
}

async fn add_member(store: &dyn Store, org: &str, email: &str, role: RoleArg) -> Result<(), String> {
    let user = user_named(store, email).await?;
    let role = match role {
        RoleArg::Member => Role::Member,
        RoleArg::Admin => Role::Admin,
    };
    store.set_membership(org, user.id, role).await.map_err(|e| e.to_string())?;
    println!("{} is now {} of {org}.", user.email, if role == Role::Admin { "an admin" } else { "a member" });
    Ok(())
}

async fn create_project(store: &dyn Store, config: &Config, path: &str) -> Result<(), String> {
    let (org, project) = split_project_path(path)?;
    let (project, key) = store
        .create_project(org, project, &secrets::new_ingest_token(), clock::now_millis())
        .await
        .map_err(|e| e.to_string())?;
    if config.public_url_guessed {
        eprintln!(
            "warning: --public-url (BOOBOO_PUBLIC_URL) is not set, so these DSNs point at {}, guessed from \
             --bind; applications on other machines cannot reach that. Set it to the address they reach booboo \
             at (e.g. BOOBOO_PUBLIC_URL=https://errors.example.com); the project's setup page in the dashboard \
             then shows DSNs built from it.",
            config.public_url
        );
    }
    if config.smtp_url.is_some() {
        crate::alerts::add_default_email_rules(store, project.id, clock::now_millis())
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "New issues and regressions will be e-mailed to the members of {} (see `booboo alert list`).",
            project.org_slug
        );
    }
    println!("Created project {}/{}.", project.org_slug, project.slug);
    println!("Sentry DSN (for Sentry SDKs): {}", config.sentry_dsn(&key.token, project.id));
    println!("Send errors to it with this DSN:");
    println!("{}", config.dsn(&key.token, &project.org_slug, &project.slug));
    Ok(())
}

async fn restore(config: &Config, from: &std::path::Path) -> Result<(), String> {
    let now = booboo_core::timestamp::format(booboo_core::timestamp::from_unix_millis(clock::now_millis()))
        .replace([':', '-'], "")
        .replace('.', "-");
    let kept = backup::restore(&config.database_url, from, &now).await?;
    println!("Restored {} from {}.", config.database_url, from.display());
    if let Some(kept) = kept {
        println!("The previous database is kept at {} (delete it once the restored one works).", kept.display());
    }
    Ok(())
}

/// Streams the export to standard output, with a running count on the
/// terminal (standard error) when there is one.
async fn export(store: Arc<dyn Store>, path: &str) -> Result<(), String> {
    use std::io::{IsTerminal, Write};
    let (org, slug) = split_project_path(path)?;
    let operator = crate::store::Viewer { user_id: 0, is_admin: true };
    let project = store
        .project_for(operator, org, slug)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no project {org}/{slug}"))?;
    let mut export = crate::api::export::Export::start(store, project).await.map_err(|e| e.to_string())?;
    let progress = std::io::stderr().is_terminal();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(chunk) = export.next_chunk().await.map_err(|e| format!("the export stopped: {e}"))? {
        out.write_all(&chunk).map_err(|e| format!("writing the export: {e}"))?;
        if progress {
            eprint!("\rexported {} issues, {} events", export.issues, export.events);
        }
    }
    out.flush().map_err(|e| format!("writing the export: {e}"))?;
    if progress {
        eprintln!();
    }
    Ok(())
}

async fn delete_project(store: &dyn Store, path: &str, yes: bool) -> Result<(), String> {
    let (org, slug) = split_project_path(path)?;
    let operator = crate::store::Viewer { user_id: 0, is_admin: true };
    let project = store
        .project_for(operator, org, slug)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no project {org}/{slug}"))?;
    if !yes {
        return Err(format!(
            "this deletes {org}/{slug} with its keys, issues and events for good; \
             run `booboo export {org}/{slug}` first to keep a copy, then again with --yes"
        ));
    }
    store.delete_project(operator, project.id, clock::now_millis()).await.map_err(|e| e.to_string())?;
    println!("Deleted project {org}/{slug}.");
    Ok(())
}

async fn set_project(store: &dyn Store, config: &Config, set: &ProjectSet) -> Result<(), String> {
    let (org, slug) = split_project_path(&set.path)?;
    let patch = set.patch()?;
    let operator = crate::store::Viewer { user_id: 0, is_admin: true };
    let project = store
        .project_for(operator, org, slug)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no project {org}/{slug}"))?;
    let limits = if patch.is_empty() {
        project.limits
    } else {
        store
            .set_project_limits(operator, project.id, &patch)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no project {org}/{slug}"))?
    };
    let effective = limits.effective(config.limit_defaults());
    let source = |own: bool| if own { "" } else { " (installation default)" };
    println!("{org}/{slug}:");
    println!("  max events:     {}{}", effective.max_events, source(limits.max_events.is_some()));
    println!("  retention days: {}{}", effective.retention_days, source(limits.retention_days.is_some()));
    println!("  rate limit:     {}", effective.rate_limit.map_or("off".to_string(), |r| r.to_string()));
    println!("  spike guard:    {}", if effective.spike_guard { "on" } else { "off" });
    Ok(())
}

async fn create_token(store: &dyn Store, email: &str, label: &str) -> Result<(), String> {
    let user = user_named(store, email).await?;
    let token = secrets::new_api_token();
    store
        .create_api_token(user.id, &secrets::token_hash(&token), label, clock::now_millis())
        .await
        .map_err(|e| e.to_string())?;
    println!("API token for {} (shown once; use it as `Authorization: Bearer TOKEN`):", user.email);
    println!("{token}");
    Ok(())
}

/// The operator at the command line sees every organisation.
const OPERATOR: crate::store::Viewer = crate::store::Viewer { user_id: 0, is_admin: true };

async fn alert(store: Arc<dyn Store>, config: &Config, command: AlertCommand) -> Result<(), String> {
    use crate::alerts::rules::{ChannelInput, RuleInput, EMAIL_MEMBERS};
    match command {
        AlertCommand::Add(add) => {
            let AlertAdd {
                path,
                trigger,
                count,
                window,
                environments,
                level,
                release,
                tag,
                throttle,
                name,
                emails,
                email_members,
                slacks,
                discords,
                webhooks,
                secret,
            } = *add;
            let (org, slug) = split_project_path(&path)?;
            if secret.is_some() && webhooks.is_empty() {
                return Err("--secret signs a --webhook; give the webhook's URL too".into());
            }
            let channel = |kind: &str, target: &String| ChannelInput {
                kind: kind.into(),
                target: target.clone(),
                secret: if kind == "webhook" { secret.clone() } else { None },
            };
            let mut channels: Vec<ChannelInput> = Vec::new();
            channels.extend(emails.iter().map(|t| channel("email", t)));
            if email_members {
                channels.push(channel("email", &EMAIL_MEMBERS.to_string()));
            }
            channels.extend(slacks.iter().map(|t| channel("slack", t)));
            channels.extend(discords.iter().map(|t| channel("discord", t)));
            channels.extend(webhooks.iter().map(|t| channel("webhook", t)));
            let input =
                RuleInput { name, trigger, count, window, environments, level, release, tag, throttle, channels };
            let (rule, generated) =
                crate::alerts::prepare_rule(&input, &config.outbound_allow, config.smtp_url.is_some())
                    .await
                    .map_err(|e| format!("--{}", cli_field(&e)))?;
            let project = store
                .project_for(OPERATOR, org, slug)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no project {org}/{slug}"))?;
            let created =
                store.create_alert_rule(project.id, &rule, clock::now_millis()).await.map_err(|e| e.to_string())?;
            for (_, secret) in &generated {
                println!("Webhook signing secret (shown once; receivers verify signatures with it):");
                println!("{secret}");
            }
            println!("Created alert rule {:?} for {org}/{slug}; its id:", created.name);
            println!("{}", created.id);
            Ok(())
        }
        AlertCommand::List { path } => {
            let (org, slug) = split_project_path(&path)?;
            let project = store
                .project_for(OPERATOR, org, slug)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no project {org}/{slug}"))?;
            let rules = store.alert_rules(project.id).await.map_err(|e| e.to_string())?;
            if rules.is_empty() {
                println!(
                    "{org}/{slug} has no alert rules; add one with `booboo alert add {org}/{slug} --on new-issue …`"
                );
            }
            for rule in rules {
                let value = crate::api::alerts::rule_json(&rule, &[]);
                println!(
                    "{}\t{}\t{}\tthrottle {}",
                    rule.id,
                    rule.trigger.name(),
                    rule.name,
                    value["throttle"].as_str().unwrap_or("")
                );
                for channel in &rule.channels {
                    let failure = match &channel.last_failure {
                        Some(f) => format!(
                            "\tlast failure {}: {}",
                            booboo_core::timestamp::format(booboo_core::timestamp::from_unix_millis(f.at)),
                            f.detail
                        ),
                        None => String::new(),
                    };
                    println!("\t{} {}{failure}", channel.kind.as_str(), channel.target);
                }
            }
            Ok(())
        }
        AlertCommand::Test { id } => {
            let rule = store
                .alert_rule(OPERATOR, id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no alert rule {id}"))?;
            let project = store
                .projects_for(OPERATOR)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|p| p.id == rule.project_id)
                .ok_or_else(|| format!("no alert rule {id}"))?;
            let email = crate::alerts::deliver::EmailSender {
                mailer: crate::mail::Mailer::from_config(config)?.map(Arc::new),
                store: store.clone(),
                cap: config.alert_email_cap as i64,
                period_ms: config.alert_email_period.as_millis() as i64,
            };
            let results =
                crate::alerts::send_test(&*store, &email, &config.outbound_allow, &config.public_url, project, &rule)
                    .await
                    .map_err(|e| e.to_string())?;
            let mut failed = 0;
            for result in &results {
                match &result.detail {
                    None => println!("{} channel {}: delivered", result.kind, result.channel_id),
                    Some(detail) => {
                        failed += 1;
                        println!("{} channel {}: FAILED: {detail}", result.kind, result.channel_id);
                    }
                }
            }
            if failed > 0 {
                return Err(format!("{failed} of {} channels did not take the test message", results.len()));
            }
            Ok(())
        }
        AlertCommand::Remove { id } => {
            if store.delete_alert_rule(OPERATOR, id).await.map_err(|e| e.to_string())? {
                println!("Removed alert rule {id}.");
                Ok(())
            } else {
                Err(format!("no alert rule {id}"))
            }
        }
    }
}

/// A rule field error in the CLI's words: `channels[0].url` is the first
/// channel flag's value.
fn cli_field(e: &crate::alerts::rules::FieldError) -> String {
    let field = match e.field.as_str() {
        "trigger" => "on".to_string(),
        "environment" => "environment".to_string(),
        f if f.starts_with("channels[") => {
            let part = f.rsplit('.').next().unwrap_or("");
            match part {
                "secret" => "secret".into(),
                "to" => "email".into(),
                "kind" => "email".into(),
                _ => "channel URL (--slack, --discord or --webhook)".into(),
            }
        }
        "channels" => "channels".into(),
        other => other.to_string(),
    };
    format!("{field}: {}", e.message)
}

/// `--now` for `booboo retention run`: an RFC 3339 time, as milliseconds.
fn parse_now(text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(booboo_core::timestamp::unix_millis)
        .map_err(|_| format!("--now: {text:?} is not an RFC 3339 time such as 2030-01-01T00:00:00Z"))
}

async fn retention_run(store: &dyn Store, config: &Config, now: Option<&str>) -> Result<(), String> {
    let now = match now {
        Some(text) => parse_now(text)?,
        None => crate::clock::now_millis(),
    };
    let report =
        crate::retention::run_once(store, &crate::retention::RetentionSettings::from_config(config), now, None)
            .await
            .map_err(|e| format!("retention failed (nothing half-done is left; run it again): {e}"))?;
    println!(
        "Removed {} events over their project's limit, {} older than the age limit and {} over the disk budget; \
         removed {} issues with no event left; lightened {} events.",
        report.over_count, report.over_age, report.over_disk, report.issues_removed, report.lightened
    );
    Ok(())
}

async fn merge_issues(store: &dyn Store, target: i64, sources: &[i64]) -> Result<(), String> {
    let merge = crate::store::IssueMerge::new(target, sources)?;
    if !store.merge_issues(OPERATOR, &merge, clock::now_millis()).await.map_err(|e| e.to_string())? {
        return Err(format!("no issue {target}"));
    }
    let issue = store
        .issue_detail(OPERATOR, target)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no issue {target}"))?
        .issue;
    let merged = merge.sources().iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    println!("Merged issue(s) {merged} into issue {target}: {} events from {} users.", issue.count, issue.users);
    Ok(())
}

/// The longest label a key can have (as on the dashboard and in the API).
const MAX_KEY_LABEL_CHARS: usize = 100;

async fn key(store: &dyn Store, config: &Config, command: KeyCommand) -> Result<(), String> {
    let (KeyCommand::List { path }
    | KeyCommand::Add { path, .. }
    | KeyCommand::Revoke { path, .. }
    | KeyCommand::Delete { path, .. }) = &command;
    let (org, slug) = split_project_path(path)?;
    let project = store
        .project_for(OPERATOR, org, slug)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no project {org}/{slug}"))?;
    let keys = store
        .project_keys(OPERATOR, project.id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no project {org}/{slug}"))?;
    let known = |id: i64| keys.iter().find(|k| k.id == id);
    match command {
        KeyCommand::List { .. } => {
            for k in &keys {
                let state = if k.revoked_at.is_some() { "revoked" } else { "live" };
                println!("{}\t{state}\t{}\t{}", k.id, k.label, config.dsn(&k.token, org, slug));
            }
            Ok(())
        }
        KeyCommand::Add { ref label, .. } => {
            let key = store
                .add_project_key(OPERATOR, project.id, &secrets::new_ingest_token(), label, clock::now_millis())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no project {org}/{slug}"))?;
            println!("Added key {} to {org}/{slug}.", key.id);
            println!("Sentry DSN (for Sentry SDKs): {}", config.sentry_dsn(&key.token, project.id));
            println!("{}", config.dsn(&key.token, org, slug));
            Ok(())
        }
        KeyCommand::Revoke { id, .. } => {
            if store
                .revoke_project_key(OPERATOR, project.id, id, clock::now_millis())
                .await
                .map_err(|e| e.to_string())?
            {
                println!("Revoked key {id} of {org}/{slug}; its DSN is refused from now on.");
                Ok(())
            } else if known(id).is_some() {
                Err(format!("key {id} of {org}/{slug} is already revoked; `booboo key delete {org}/{slug} {id} --yes` removes it"))
            } else {
                Err(format!("{org}/{slug} has no key {id}; `booboo key list {org}/{slug}` shows its keys"))
            }
        }
        KeyCommand::Delete { id, yes, .. } => {
            let Some(key) = known(id) else {
                return Err(format!("{org}/{slug} has no key {id}; `booboo key list {org}/{slug}` shows its keys"));
            };
            if !yes {
                let live =
                    if key.revoked_at.is_none() { "; applications still sending with it will be refused" } else { "" };
                return Err(format!(
                    "this deletes key {id} ({}) of {org}/{slug} for good{live}; run again with --yes",
                    key.label
                ));
            }
            if !store.delete_project_key(OPERATOR, project.id, id).await.map_err(|e| e.to_string())? {
                return Err(format!("{org}/{slug} has no key {id}"));
            }
            println!("Deleted key {id} of {org}/{slug}.");
            Ok(())
        }
    }
}
