//! Token checking for SASL (OAUTHBEARER, and PLAIN with a token as the password). The
//! token rules live in [`parley_accounts::tokens`], shared with the CLI and the admin API;
//! this re-export keeps the session's own paths.

pub use parley_accounts::tokens::{verify, Refused, Verified};
