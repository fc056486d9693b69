//! Tests of the cluster's etcd registry and of the test kit's real servers (see the test
//! targets); nothing in this library itself.
