//! wework-msgaudit: archives WeCom (企业微信) 会话内容存档 chat records for many corps.
//!
//! The crate is a library with a thin binary (`src/main.rs`) on top, so that every part can be
//! tested on its own:
//!
//! - [`sdk`]: the vendor SDK behind a safe trait (the only `unsafe` code), and the emulator
//!   standing in for it;
//! - [`crypto`]: private keys, the per-corp keyring, RSA, and the native `DecryptData`;
//! - [`message`]: a decrypted record → the row and media items to store (every msgtype, hostile
//!   input);
//! - [`decode`]: an encrypted record → its complete row (decrypt with [`crypto`], parse with
//!   [`message`]) on the decrypt pool, for the pipeline and `redecrypt`;
//! - [`store`]: the `Store` trait over MySQL/MariaDB and SQLite (per-corp tables, one transaction
//!   per batch, the Java-schema upgrade);
//! - [`config`]: layered configuration (defaults < TOML < environment);
//! - `toml_errors`: what an error about a TOML file (the configuration, the corps file) may say:
//!   the key and its `file:line`, never the value;
//! - [`secret`]: a string type that never prints itself, and URL redaction;
//! - [`corps`]: corp sources (tables, file) → the desired set of corps;
//! - [`actors`]: the ingestion pipeline (supervisor, one actor per corp, DB writer, SDK pool);
//! - [`callback`]: WeCom's callback endpoint (`msgaudit_notify` → pull that corp now);
//! - [`alerts`]: rule hits sent to robots, webhooks and mail through a durable outbox;
//! - [`observe`]: the per-corp report, `/healthz`, `/metrics`, `/status`, retention alerts;
//! - [`reload`]: watching the configuration and corps files (hot reload);
//! - [`review`]: reading the archive: roles and scopes, the review API, the access log;
//! - [`rules`]: content and behaviour rules evaluated at ingest, their hits stored with the
//!   records;
//! - [`quality`]: 质检, reply-time checks over the stored messages (hits, daily statistics);
//! - [`logging`]: the tracing subscriber with a reloadable filter;
//! - [`cli`]: the subcommands;
//! - [`backoff`], [`unwind`]: exponential backoff with jitter, and the one place where panics at
//!   untrusted edges become errors.
//!
//! `crypto`, `message`, `decode`, `store` and `config` know nothing of actors; `actors` is the glue.
//!
//! `unsafe` code is denied everywhere but in [`sdk`], and every `unsafe` block there says why it is
//! sound in a `// SAFETY:` comment (clippy's `undocumented_unsafe_blocks`).

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod actors;
pub mod alerts;
pub mod backoff;
pub mod callback;
pub mod cli;
pub mod config;
pub mod corps;
pub mod crypto;
pub mod decode;
pub mod logging;
pub mod media;
pub mod message;
pub mod observe;
pub mod quality;
pub mod reload;
pub mod review;
pub mod rules;
#[allow(unsafe_code)]
pub mod sdk;
pub mod search;
pub mod secret;
pub mod security;
pub mod store;
pub(crate) mod toml_errors;
pub mod unwind;
pub mod wecom;
