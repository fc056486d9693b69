//! Tests of the storage and cluster crates against real PostgreSQL and etcd (see the test
//! targets); nothing in this library itself.
