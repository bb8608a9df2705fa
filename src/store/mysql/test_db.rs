//! A throwaway database per MySQL test, on the server named by `HERALD_TEST_MYSQL_URL`.

use std::sync::atomic::{AtomicUsize, Ordering};

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Opts, OptsBuilder};

use super::ids::IdAllocation;
use super::{MysqlBackend, CONNECT_TIMEOUT};
use crate::store::url::redact;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database created for one test and dropped when it ends.
pub(super) struct TestDb {
    pub(super) admin: Conn,
    name: String,
    opts: Opts,
}

impl TestDb {
    /// A fresh database, or `None` (after a loud notice) when no server runs and CI is unset.
    pub(super) fn create() -> Option<TestDb> {
        let url =
            std::env::var("HERALD_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
        let admin_opts = Opts::from_url(&url).expect("HERALD_TEST_MYSQL_URL must parse");
        let admin = OptsBuilder::from_opts(admin_opts.clone()).tcp_connect_timeout(Some(CONNECT_TIMEOUT));
        let mut admin = match Conn::new(admin) {
            Ok(c) => c,
            Err(e) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                assert!(!ci, "CI=true but MySQL at {} is unreachable: {e}", redact(&url));
                eprintln!(
                    "\n!!!!!!!! SKIPPING MySQL backend test: {} unreachable ({e}). \
                     Set HERALD_TEST_MYSQL_URL or start MariaDB. !!!!!!!!\n",
                    redact(&url)
                );
                return None;
            }
        };
        let name = format!(
            "herald_t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        admin.query_drop(format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        admin
            .query_drop(format!(
                "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            ))
            .unwrap();
        let opts = OptsBuilder::from_opts(admin_opts).db_name(Some(&name)).into();
        Some(TestDb { admin, name, opts })
    }

    /// The database's name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// A connection to the test database, with `ids` forced when given.
    pub(super) fn open(&self, ids: Option<IdAllocation>) -> MysqlBackend {
        let mut backend =
            MysqlBackend::connect_opts(self.opts.clone()).unwrap_or_else(|e| panic!("connect to {}: {e}", self.name));
        if let Some(ids) = ids {
            backend.ids = ids;
        }
        backend
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self.admin.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}
