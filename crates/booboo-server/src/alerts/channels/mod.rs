//! One file per channel kind: each turns an [`crate::alerts::message::AlertMessage`]
//! into the body (and headers) its receiver expects.

pub mod discord;
pub mod email;
pub mod slack;
pub mod webhook;
