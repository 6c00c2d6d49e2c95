//! Fresh databases for tests: a new SQLite file, or a new schema in the PostgreSQL server named by
//! `TEST_POSTGRES_URL` (the project's test script starts one and sets it).
//!
//! [`store_test!`] turns one async test body into two tests, `…::sqlite` and `…::postgres`, so every store test
//! runs against both engines.

use rand::Rng;

use crate::store::{Backend, Store};

/// A database that lives as long as the test: the SQLite file's directory is removed on drop.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<TempDir>,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestDb {
    /// Creates an empty database for `backend`. Panics (failing the test) if PostgreSQL was asked for and
    /// `TEST_POSTGRES_URL` is not set: the store must be tested on both engines, never silently on one.
    pub async fn new(backend: Backend) -> TestDb {
        let tag: String = rand::thread_rng()
            .sample_iter(rand::distributions::Alphanumeric)
            .take(12)
            .map(|c| (c as char).to_ascii_lowercase())
            .collect();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("gateway-test-{tag}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}/test.db", dir.display());
                TestDb { url, backend, _dir: Some(TempDir(dir)) }
            }
            Backend::Postgres => {
                let base = std::env::var("TEST_POSTGRES_URL").expect(
                    "TEST_POSTGRES_URL is not set: run the tests with ./scripts/test, which starts PostgreSQL",
                );
                let schema = format!("t_{tag}");
                sqlx::any::install_default_drivers();
                let admin = sqlx::AnyPool::connect(&base).await.expect("connect to TEST_POSTGRES_URL");
                sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.expect("create schema");
                admin.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                TestDb { url, backend, _dir: None }
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url, 8).await.expect("connect test store")
    }
}

/// Defines a test module with one test per engine running the same body:
///
/// ```ignore
/// store_test!(claims_seats, |store: Store| async move { … });
/// ```
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$store:ident : Store| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testing::TestDb::new($crate::store::Backend::Sqlite).await;
                let $store = db.store().await;
                $body.await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::testing::TestDb::new($crate::store::Backend::Postgres).await;
                let $store = db.store().await;
                $body.await;
            }
        }
    };
}

/// The store's pool, for tests that must write or read a row no named function does (a corrupt row, a clock
/// moved back). Only tests see it: every query the product runs is a named function of this crate.
pub trait RawSql {
    fn raw_pool(&self) -> &sqlx::AnyPool;
}

impl RawSql for Store {
    fn raw_pool(&self) -> &sqlx::AnyPool {
        self.pool()
    }
}
