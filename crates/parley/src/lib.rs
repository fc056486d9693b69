//! The Parley server as a library: configuration, the command line and start-up wiring.
//!
//! The binary (`main.rs`) is a thin shell over this library so that integration tests can
//! start a real server in-process on ephemeral ports.

pub mod cli;
pub mod config;
mod drain;
pub mod local_admin;
mod muc;
pub mod notify;
pub mod reload;
mod resume;
mod s2s;
pub mod server;
mod upload;
