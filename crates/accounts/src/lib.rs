//! Account administration and authentication tokens: the operations behind `parley user …`,
//! `parley token …` and the admin API's account and token routes, so that the command line
//! and the API run the same code.
//!
//! Everything here works on a [`parley_storage::Storage`] handed in by the caller; it opens
//! no sockets and knows no HTTP. Passwords only live long enough to derive SCRAM credentials
//! and are never logged or echoed, not even in the reasons an import line is rejected.

pub mod account;
pub mod admin;
pub mod credentials;
pub mod import;
pub mod invites;
pub mod piefxis;
pub mod tokens;

pub use account::{normalize_host, served_host, AccountJid, AccountJidError};
pub use admin::AccountError;
pub use credentials::derive_credentials;
pub use import::ImportSummary;
