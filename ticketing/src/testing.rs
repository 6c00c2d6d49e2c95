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
                let base = std::env::var("TEST_POSTGRES_URL")
                    .expect("TEST_POSTGRES_URL is not set: run the tests with ./scripts/test, which starts PostgreSQL");
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

/// One test body on both engines: a module `$name` with tests `sqlite` and `postgres`, each binding `$backend`
/// to its [`Backend`] and awaiting the body. Every crate's both-databases test macro is this one with its own
/// setup (a store here, a running gateway in the gateway's tests):
///
/// ```ignore
/// both_backends!(claims_seats, |backend| async move { let db = TestDb::new(backend).await; … });
/// ```
#[macro_export]
macro_rules! both_backends {
    ($name:ident, |$backend:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $backend = $crate::store::Backend::Sqlite;
                $body.await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $backend = $crate::store::Backend::Postgres;
                $body.await;
            }
        }
    };
}

/// One store test on both engines, each on a fresh database:
///
/// ```ignore
/// store_test!(claims_seats, |store: Store| async move { … });
/// ```
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$store:ident : Store| $body:expr) => {
        $crate::both_backends!($name, |backend| async move {
            let db = $crate::testing::TestDb::new(backend).await;
            let $store = db.store().await;
            $body.await;
        });
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

/// An event written straight into the store, for tests that need one in a state the API would not create (on
/// sale already, started an hour ago, free, cancelled). Defaults: a published $25.00 event by `alice` in space
/// `custom/s` accepting ETH, 10 seats, starting in an hour and lasting an hour, on sale from `now` until it
/// starts.
///
/// ```ignore
/// let id = SeedEvent::new(now).title("Live").price("500", "USD").accepts("ETH,SOL").starts(now - 60_000).insert(&store).await;
/// ```
#[derive(Debug, Clone)]
pub struct SeedEvent {
    creator: String,
    title: String,
    space_id: String,
    price_units: String,
    price_currency: String,
    accepts: String,
    capacity: i64,
    event_start: i64,
    event_end: i64,
    sales_start: i64,
    sales_end: Option<i64>,
    status: crate::events::StoredStatus,
    created_at: Option<i64>,
    shard_size: i64,
}

impl SeedEvent {
    pub fn new(now: i64) -> SeedEvent {
        SeedEvent {
            creator: "alice".into(),
            title: "Concert".into(),
            space_id: "s".into(),
            price_units: "2500".into(),
            price_currency: "USD".into(),
            accepts: "ETH".into(),
            capacity: 10,
            event_start: now + 3_600_000,
            event_end: now + 7_200_000,
            sales_start: now,
            sales_end: None,
            status: crate::events::StoredStatus::Published,
            created_at: None,
            shard_size: crate::events::SHARD_SIZE_MAX,
        }
    }

    pub fn creator(mut self, account: &str) -> Self {
        self.creator = account.into();
        self
    }

    pub fn title(mut self, title: &str) -> Self {
        self.title = title.into();
        self
    }

    pub fn space_id(mut self, space_id: &str) -> Self {
        self.space_id = space_id.into();
        self
    }

    /// The price in base units of `currency` (`"2500"`, `"USD"` is $25.00).
    pub fn price(mut self, units: &str, currency: &str) -> Self {
        self.price_units = units.into();
        self.price_currency = currency.into();
        self
    }

    /// The currencies accepted, comma-separated codes as stored (`"ETH,SOL"`).
    pub fn accepts(mut self, codes: &str) -> Self {
        self.accepts = codes.into();
        self
    }

    pub fn capacity(mut self, seats: i64) -> Self {
        self.capacity = seats;
        self
    }

    /// When it starts (unix ms); sales end then unless [`SeedEvent::sales`] says otherwise.
    pub fn starts(mut self, at: i64) -> Self {
        self.event_start = at;
        self
    }

    pub fn ends(mut self, at: i64) -> Self {
        self.event_end = at;
        self
    }

    /// The sales window: from `start`, until `end` (or the event's start).
    pub fn sales(mut self, start: i64, end: Option<i64>) -> Self {
        self.sales_start = start;
        self.sales_end = end;
        self
    }

    pub fn status(mut self, status: crate::events::StoredStatus) -> Self {
        self.status = status;
        self
    }

    /// Most attendees off stage in one shard (the store allows any size from 1; the API at most
    /// [`crate::events::SHARD_SIZE_MAX`]).
    pub fn shard_size(mut self, size: i64) -> Self {
        self.shard_size = size;
        self
    }

    /// When the row says it was created (the sales start unless set).
    pub fn created_at(mut self, at: i64) -> Self {
        self.created_at = Some(at);
        self
    }

    /// Writes the event and returns its id. Panics (failing the test) if the store refuses it.
    pub async fn insert(self, store: &Store) -> i64 {
        self.try_insert(store).await.expect("seed an event")
    }

    /// Writes the event and returns its id.
    pub async fn try_insert(self, store: &Store) -> Result<i64, crate::StoreError> {
        let created_at = self.created_at.unwrap_or(self.sales_start);
        sqlx::query_scalar(
            "INSERT INTO events (creator_account, title, space_type, space_id, price_units, price_currency, supported_crypto, \
             max_attendees, event_start, event_end, sales_start, sales_end, status, created_at, updated_at, shard_size) \
             VALUES ($1, $2, 'custom', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14) RETURNING id",
        )
        .bind(&self.creator)
        .bind(&self.title)
        .bind(&self.space_id)
        .bind(&self.price_units)
        .bind(&self.price_currency)
        .bind(&self.accepts)
        .bind(self.capacity)
        .bind(self.event_start)
        .bind(self.event_end)
        .bind(self.sales_start)
        .bind(self.sales_end.unwrap_or(self.event_start))
        .bind(self.status.as_str())
        .bind(created_at)
        .bind(self.shard_size)
        .fetch_one(store.pool())
        .await
        .map_err(Into::into)
    }
}

/// A sold ticket written straight into the store with its paid quote (1 HIVE, `status` as given; a valid one
/// also counts as sold on the event), for tests about what comes after a sale. The purchase path itself is
/// tested through `Purchases`. Returns the ticket's id.
pub async fn seed_ticket(
    store: &Store,
    event_id: i64,
    chain: &str,
    wallet: &str,
    status: crate::purchases::TicketStatus,
) -> i64 {
    let n: u64 = rand::random();
    let quote_id = format!("q{n:016x}");
    let now = crate::now_ms();
    let mut tx = store.pool().begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO quotes (id, event_id, currency, chain, wallet_address, amount_units, payment_address, status, \
         holds_seat, confirmations_required, created_at, expires_at, updated_at) \
         VALUES ($1, $2, 'HIVE', $3, $4, '100000', $5, 'paid', 0, 1, $6, $6, $6)",
    )
    .bind(&quote_id)
    .bind(event_id)
    .bind(chain)
    .bind(wallet)
    .bind(format!("addr-{n:x}"))
    .bind(now)
    .execute(&mut *tx)
    .await
    .expect("seed a paid quote");
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tickets (event_id, quote_id, token, chain, wallet_address, currency, amount_paid_units, \
         access_signature, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'HIVE', '100000', 'sig', $6, $7, $7) RETURNING id",
    )
    .bind(event_id)
    .bind(&quote_id)
    .bind(format!("tok-{n:x}"))
    .bind(chain)
    .bind(wallet)
    .bind(status.as_str())
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .expect("seed a ticket");
    if status == crate::purchases::TicketStatus::Valid {
        sqlx::query("UPDATE events SET tickets_sold = tickets_sold + 1 WHERE id = $1")
            .bind(event_id)
            .execute(&mut *tx)
            .await
            .expect("count the seat");
    }
    tx.commit().await.expect("commit the seeded ticket");
    id
}

/// Moves an event's schedule to `start`..`end`, on sale from `sales_start` until it ends: e.g. into the past,
/// which the API refuses to do.
pub async fn reschedule_event(store: &Store, event_id: i64, start: i64, end: i64, sales_start: i64) {
    sqlx::query("UPDATE events SET event_start = $2, event_end = $3, sales_start = $4, sales_end = $3 WHERE id = $1")
        .bind(event_id)
        .bind(start)
        .bind(end)
        .bind(sales_start)
        .execute(store.pool())
        .await
        .expect("reschedule the event");
}
