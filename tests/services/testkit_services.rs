//! The real-server harnesses start, serve requests, and (etcd) survive a restart with
//! their data.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use parley_testkit_services::{shared_etcd, shared_pg, EtcdServer, PgServer};

#[tokio::test]
async fn postgres_answers_select_one() {
    let server = PgServer::start();
    assert!(
        server.url.starts_with(&format!(
            "postgres://parley@127.0.0.1:{}/parley_",
            server.port
        )),
        "{}",
        server.url
    );
    let pool = sqlx::PgPool::connect(&server.url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    pool.close().await;

    let dir = server.dir().to_owned();
    drop(server);
    assert!(!dir.exists(), "data directory left behind");
}

#[tokio::test]
async fn shared_postgres_hands_out_distinct_empty_databases() {
    let server = shared_pg();
    let (a, b) = (server.database(), server.database());
    assert_ne!(a, b);
    let pool_a = sqlx::PgPool::connect(&a).await.unwrap();
    sqlx::query("CREATE TABLE t (x INT)")
        .execute(&pool_a)
        .await
        .unwrap();
    let pool_b = sqlx::PgPool::connect(&b).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool_b)
    .await
    .unwrap();
    assert_eq!(tables, 0, "a fresh database saw another's table");
    assert!(std::ptr::eq(server, shared_pg()));
}

fn put(etcd: &EtcdServer, key: &str, value: &str) {
    let body = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        B64.encode(key),
        B64.encode(value)
    );
    let (status, response) = etcd.http("POST", "/v3/kv/put", &body).unwrap();
    assert_eq!(status, 200, "{response}");
}

/// The value of `key`, through the v3 gateway's `/v3/kv/range`.
fn get(etcd: &EtcdServer, key: &str) -> Option<String> {
    let body = format!(r#"{{"key":"{}"}}"#, B64.encode(key));
    let (status, response) = etcd.http("POST", "/v3/kv/range", &body).unwrap();
    assert_eq!(status, 200, "{response}");
    let (_, after) = response.split_once(r#""value":""#)?;
    let encoded = &after[..after.find('"').expect("end of value")];
    Some(String::from_utf8(B64.decode(encoded).unwrap()).unwrap())
}

#[test]
fn etcd_stores_and_keeps_data_across_restart() {
    let mut etcd = EtcdServer::start();
    assert!(etcd.endpoint.starts_with("http://127.0.0.1:"));
    assert_eq!(get(&etcd, "parley/missing"), None);
    put(&etcd, "parley/greeting", "hello");
    assert_eq!(get(&etcd, "parley/greeting").as_deref(), Some("hello"));

    etcd.stop();
    assert!(!etcd.is_running());
    assert!(
        etcd.http("GET", "/health", "").is_err(),
        "a stopped etcd still answers"
    );

    let endpoint = etcd.endpoint.clone();
    etcd.restart();
    assert!(etcd.is_running());
    assert_eq!(etcd.endpoint, endpoint);
    assert_eq!(get(&etcd, "parley/greeting").as_deref(), Some("hello"));
}

#[test]
fn shared_etcd_is_one_server() {
    let etcd = shared_etcd();
    put(etcd, "shared/k", "v");
    assert_eq!(get(shared_etcd(), "shared/k").as_deref(), Some("v"));
    assert!(std::ptr::eq(etcd, shared_etcd()));
}
