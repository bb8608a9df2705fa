//! The schema migration driver: the versions applied are rows of `schema_version`, and the steps
//! this build knows but the database lacks are applied in order. Each backend wraps
//! [`apply_missing`] in its own lock or transaction and says how to run its statements.

use super::backend::StoreError;
use super::model::Migrated;

/// The highest version applied, 0 before the first step; the same statement in every dialect.
pub(crate) const CURRENT_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_version";

/// One dialect's schema history.
pub(crate) struct Schema {
    /// The dialect's name in log lines (`sqlite`, `mysql`).
    pub dialect: &'static str,
    /// Step `i` brings the schema to version `i + 1`. Append, never edit a shipped step.
    pub steps: &'static [&'static [&'static str]],
}

/// What the driver needs from a connection that already holds the migration lock.
pub(crate) trait SchemaConn {
    /// Creates `schema_version (version PRIMARY KEY, applied_at)` if it does not exist.
    fn create_version_table(&mut self) -> Result<(), StoreError>;
    /// The highest version recorded ([`CURRENT_VERSION`]), 0 when there is none.
    fn current_version(&mut self) -> Result<i64, StoreError>;
    /// Runs one statement of a step.
    fn execute(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Records `version` as applied; a row already there (another process's) is kept.
    fn record_version(&mut self, version: i64, applied_at_ms: i64) -> Result<(), StoreError>;
}

/// Applies every step of `schema` the database lacks, recording each version after its
/// statements, so a step cut short (MySQL DDL commits as it goes) is re-run whole next time.
/// A database newer than this build is left alone with a warning.
pub(crate) fn apply_missing(conn: &mut impl SchemaConn, schema: &Schema) -> Result<Migrated, StoreError> {
    conn.create_version_table()?;
    let found = conn.current_version()?;
    let current = usize::try_from(found).unwrap_or(0);
    let known = schema.steps.len();
    if current > known {
        log::warn!(
            "{} schema is at version {current}, newer than this build knows ({known})",
            schema.dialect
        );
    }
    for (index, step) in schema.steps.iter().enumerate().skip(current) {
        for sql in *step {
            conn.execute(sql)?;
        }
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        conn.record_version(version, crate::clock::now_ms())?;
        log::info!("{} schema migrated to version {version}", schema.dialect);
    }
    Ok(Migrated {
        from: found,
        to: found.max(i64::try_from(known).unwrap_or(i64::MAX)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Remembers what the driver asked for, with a `schema_version` of its own.
    #[derive(Default)]
    struct Recorder {
        versions: Vec<i64>,
        ran: Vec<String>,
        fail_on: Option<&'static str>,
    }

    impl SchemaConn for Recorder {
        fn create_version_table(&mut self) -> Result<(), StoreError> {
            self.ran.push("create schema_version".into());
            Ok(())
        }
        fn current_version(&mut self) -> Result<i64, StoreError> {
            Ok(self.versions.iter().copied().max().unwrap_or(0))
        }
        fn execute(&mut self, sql: &str) -> Result<(), StoreError> {
            if self.fail_on == Some(sql) {
                return Err(StoreError::Other(format!("failed: {sql}")));
            }
            self.ran.push(sql.to_owned());
            Ok(())
        }
        fn record_version(&mut self, version: i64, _applied_at_ms: i64) -> Result<(), StoreError> {
            self.versions.push(version);
            Ok(())
        }
    }

    const SCHEMA: Schema = Schema {
        dialect: "test",
        steps: &[&["a1", "a2"], &["b1"], &["c1"]],
    };

    #[test]
    fn a_fresh_database_gets_every_step_in_order() {
        let mut db = Recorder::default();
        apply_missing(&mut db, &SCHEMA).unwrap();
        assert_eq!(db.ran, ["create schema_version", "a1", "a2", "b1", "c1"]);
        assert_eq!(db.versions, [1, 2, 3]);
    }

    #[test]
    fn only_missing_steps_run() {
        let mut db = Recorder {
            versions: vec![1, 2],
            ..Recorder::default()
        };
        apply_missing(&mut db, &SCHEMA).unwrap();
        assert_eq!(db.ran, ["create schema_version", "c1"]);
        assert_eq!(db.versions, [1, 2, 3]);
        db.ran.clear();
        apply_missing(&mut db, &SCHEMA).unwrap();
        assert_eq!(db.ran, ["create schema_version"], "up to date: nothing to do");
    }

    #[test]
    fn a_newer_database_is_left_alone() {
        let mut db = Recorder {
            versions: vec![1, 2, 3, 4],
            ..Recorder::default()
        };
        apply_missing(&mut db, &SCHEMA).unwrap();
        assert_eq!(db.ran, ["create schema_version"]);
        assert_eq!(db.versions, [1, 2, 3, 4]);
    }

    #[test]
    fn a_failed_statement_records_no_version() {
        let mut db = Recorder {
            fail_on: Some("b1"),
            ..Recorder::default()
        };
        assert!(apply_missing(&mut db, &SCHEMA).is_err());
        assert_eq!(db.versions, [1], "step 2 is not recorded, so it runs again next time");
    }
}
