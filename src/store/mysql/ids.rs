//! Multi-row INSERTs and the ids they allocate: MySQL reports only the first auto-increment value
//! of a statement, so the others are computed from how the server hands them out and, where it
//! may interleave concurrent inserts, read back and checked.

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Params, Transaction, Value};

use super::errors::map_err;
use super::rows::{all_rows, first_row};
use crate::store::backend::StoreError;

/// Rows per multi-row INSERT: amortises the round trip while staying far below the 65 535
/// placeholder limit.
const INSERT_CHUNK: usize = 500;
/// Payload bytes per multi-row INSERT, so long messages stay under `max_allowed_packet` (4 MiB on
/// older servers) even in a 500-row chunk.
const INSERT_CHUNK_BYTES: usize = 1 << 20;

/// How the ids of a multi-row INSERT are learnt from `LAST_INSERT_ID()` (the first one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdAllocation {
    /// `innodb_autoinc_lock_mode` 0 or 1: InnoDB documents that a simple multi-row INSERT gets
    /// consecutive values (spaced by `auto_increment_increment`), so they are computed.
    Consecutive { step: i64 },
    /// Lock mode 2 (MySQL 8's default, Galera): values may interleave with concurrent inserts, so
    /// the computed ids are read back and compared with what was inserted; on a mismatch the
    /// chunk is rolled back to a savepoint and inserted row by row.
    Verified { step: i64 },
    /// One INSERT per row, each id from its own `LAST_INSERT_ID()`: the path `Verified` falls back
    /// to, selectable on its own only by tests so that path is exercised.
    #[cfg_attr(not(test), allow(dead_code))]
    RowByRow,
}

/// Reads how this server hands out auto-increment values; see [`IdAllocation`].
pub(super) fn detect_id_allocation(conn: &mut Conn) -> Result<IdAllocation, StoreError> {
    let row: Option<(Option<i64>, Option<i64>)> = first_row(
        conn,
        "SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment",
        Params::Empty,
    )?;
    let (mode, step) = row.unwrap_or((None, None));
    let step = step.filter(|s| *s >= 1).unwrap_or(1);
    Ok(match mode {
        Some(0) | Some(1) => IdAllocation::Consecutive { step },
        _ => {
            log::info!(
                "mysql innodb_autoinc_lock_mode={mode:?}: multi-row insert ids are verified \
                 (set it to 1 to skip the check)"
            );
            IdAllocation::Verified { step }
        }
    })
}

/// Inserts `rows` (values in `columns` order) into `table` inside the caller's transaction and
/// returns their ids in input order.
pub(super) fn insert_rows(
    tx: &mut Transaction<'_>,
    ids: IdAllocation,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
) -> Result<Vec<i64>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in insert_chunks(rows) {
        let step = match ids {
            IdAllocation::RowByRow => {
                out.extend(insert_one_by_one(tx, table, columns, chunk)?);
                continue;
            }
            IdAllocation::Consecutive { step } | IdAllocation::Verified { step } => step,
        };
        let verify = matches!(ids, IdAllocation::Verified { .. });
        if verify {
            tx.query_drop("SAVEPOINT herald_insert").map_err(map_err)?;
        }
        let row_marks = format!("({})", vec!["?"; columns.len()].join(","));
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(","),
            vec![row_marks.as_str(); chunk.len()].join(",")
        );
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        tx.exec_drop(&sql, Params::Positional(params)).map_err(map_err)?;
        let first = first_insert_id(tx)?;
        let chunk_ids = consecutive_ids(first, step, chunk.len())?;
        if verify && !stored_as_expected(tx, table, columns, chunk, &chunk_ids)? {
            log::debug!("{table}: interleaved auto-increment ids, inserting row by row");
            tx.query_drop("ROLLBACK TO SAVEPOINT herald_insert").map_err(map_err)?;
            out.extend(insert_one_by_one(tx, table, columns, chunk)?);
            continue;
        }
        out.extend(chunk_ids);
    }
    Ok(out)
}

/// Splits rows into runs of at most `INSERT_CHUNK` rows and (unless one row alone is larger)
/// `INSERT_CHUNK_BYTES` bytes.
fn insert_chunks(rows: &[Vec<Value>]) -> Vec<&[Vec<Value>]> {
    let size = |row: &Vec<Value>| -> usize {
        row.iter()
            .map(|v| match v {
                Value::Bytes(b) => b.len(),
                _ => 8,
            })
            .sum()
    };
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let row_bytes = size(row);
        if i > start && (i - start == INSERT_CHUNK || bytes + row_bytes > INSERT_CHUNK_BYTES) {
            chunks.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += row_bytes;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

fn first_insert_id(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    tx.last_insert_id()
        .and_then(|id| i64::try_from(id).ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| StoreError::Other("insert returned no auto-increment id".into()))
}

fn consecutive_ids(first: i64, step: i64, count: usize) -> Result<Vec<i64>, StoreError> {
    (0..count)
        .map(|i| {
            i64::try_from(i)
                .ok()
                .and_then(|i| i.checked_mul(step))
                .and_then(|offset| first.checked_add(offset))
                .ok_or_else(|| StoreError::Other("auto-increment id overflow".into()))
        })
        .collect()
}

/// Whether the rows at `ids` are exactly the rows just inserted, in order.
fn stored_as_expected(
    tx: &mut Transaction<'_>,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    ids: &[i64],
) -> Result<bool, StoreError> {
    let (Some(low), Some(high)) = (ids.first(), ids.last()) else {
        return Ok(true);
    };
    let sql = format!(
        "SELECT id, {} FROM {table} WHERE id BETWEEN ? AND ? ORDER BY id",
        columns.join(",")
    );
    let found: Vec<::mysql::Row> = all_rows(tx, &sql, Params::Positional(vec![(*low).into(), (*high).into()]))?;
    if found.len() != rows.len() {
        return Ok(false);
    }
    for ((row, expected_id), expected) in found.into_iter().zip(ids).zip(rows) {
        // `Row::unwrap` hands over the column values; it cannot panic.
        let values = row.unwrap();
        let Some((id, rest)) = values.split_first() else {
            return Ok(false);
        };
        if *id != Value::Int(*expected_id) || rest != expected.as_slice() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn insert_one_by_one(
    tx: &mut Transaction<'_>,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
) -> Result<Vec<i64>, StoreError> {
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(","),
        vec!["?"; columns.len()].join(",")
    );
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        tx.exec_drop(&sql, Params::Positional(row.clone())).map_err(map_err)?;
        ids.push(first_insert_id(tx)?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backend::Backend;
    use crate::store::mysql::test_db::TestDb;
    use crate::store::mysql::CHAT_COLUMNS;
    use ::mysql::TxOpts;

    #[test]
    fn chunks_bound_rows_and_bytes() {
        let small = vec![vec![Value::from("x")]; 1203];
        let lens: Vec<usize> = insert_chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![500, 500, 203]);
        let big = vec![vec![Value::from("y".repeat(300_000))]; 7];
        let lens: Vec<usize> = insert_chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![3, 3, 1]);
        let huge = vec![vec![Value::from("z".repeat(2 << 20))]; 2];
        assert_eq!(insert_chunks(&huge).len(), 2);
        assert!(insert_chunks(&[]).is_empty());
    }

    #[test]
    fn verification_detects_ids_that_are_not_ours() {
        let Some(db) = TestDb::create() else { return };
        let mut b = db.open(None);
        b.migrate().unwrap();
        let rows: Vec<Vec<Value>> = (0..5)
            .map(|i| vec!["v-room".into(), "v".into(), format!("m{i}").into(), 7_i64.into()])
            .collect();
        let mut tx = b.conn.start_transaction(TxOpts::default()).unwrap();
        let ids = insert_rows(
            &mut tx,
            IdAllocation::Consecutive { step: 1 },
            "chat_messages",
            &CHAT_COLUMNS,
            &rows,
        )
        .unwrap();
        let check = |tx: &mut Transaction<'_>, ids: &[i64], rows: &[Vec<Value>]| {
            stored_as_expected(tx, "chat_messages", &CHAT_COLUMNS, rows, ids).unwrap()
        };
        assert!(check(&mut tx, &ids, &rows));
        let shifted: Vec<i64> = ids.iter().map(|id| id + 1).collect();
        assert!(!check(&mut tx, &shifted, &rows), "one id past the end");
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert!(!check(&mut tx, &ids, &swapped), "same rows, other order");
        tx.rollback().unwrap();
    }
}
