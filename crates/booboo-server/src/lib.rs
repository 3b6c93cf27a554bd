//! The booboo server: receive → normalise (booboo-core) → group → store →
//! API and dashboard. See ARCHITECTURE.md for the map and its invariants.

pub mod access;
pub mod alerts;
pub mod api;
pub mod app;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod error;
pub mod group_commit;
pub mod identifiers;
pub mod ingest;
pub mod ingest_keys;
pub mod load_shedding;
pub mod mail;
pub mod memory_budget;
pub mod metrics;
pub mod monitoring;
pub mod outbound_allow;
pub mod payload_dictionaries;
pub mod pruning;
pub mod retention;
pub mod secrets;
pub mod serve;
pub mod state;
pub mod store;
pub mod web;
