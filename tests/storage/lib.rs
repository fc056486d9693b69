//! Tests of parley-storage against a real PostgreSQL (the `postgres` test target); nothing in
//! this library itself.
