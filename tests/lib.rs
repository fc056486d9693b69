//! Shared helpers for the workspace integration tests live in parley-testkit; this library is empty.
