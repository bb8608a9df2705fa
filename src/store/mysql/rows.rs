//! Running one prepared statement and turning its rows into model values, failing (never
//! panicking) on a row of a surprising shape.

use ::mysql::prelude::{FromRow, Queryable};
use ::mysql::{Conn, Params, Value};

use super::errors::map_err;
use crate::store::backend::StoreError;
use crate::store::model::{ChatMessage, Notification};

/// The columns [`notification`] reads, in its order.
pub(super) const NOTIFICATION_COLUMNS: &str = "id, recipient, type, sender, room_id, message, created_at, read_at";

/// A `notifications` row as [`NOTIFICATION_COLUMNS`] selects it.
pub(super) type NotificationRow = (i64, String, String, String, Option<String>, String, i64, Option<i64>);

/// A `chat_messages` row: `id, room_id, sender, message, sent_at`.
pub(super) type ChatRow = (i64, String, String, String, i64);

/// Runs a prepared query and converts every row.
pub(super) fn all_rows<T: FromRow>(q: &mut impl Queryable, sql: &str, params: Params) -> Result<Vec<T>, StoreError> {
    q.exec_opt::<T, _, _>(sql, params)
        .map_err(map_err)?
        .into_iter()
        .map(|r| r.map_err(|e| StoreError::Other(format!("unexpected row shape: {e}"))))
        .collect()
}

/// Like [`all_rows`] for the first row only.
pub(super) fn first_row<T: FromRow>(
    q: &mut impl Queryable,
    sql: &str,
    params: Params,
) -> Result<Option<T>, StoreError> {
    q.exec_first_opt::<T, _, _>(sql, params)
        .map_err(map_err)?
        .transpose()
        .map_err(|e| StoreError::Other(format!("unexpected row shape: {e}")))
}

/// Runs a statement and says how many rows it changed.
pub(super) fn affected(q: &mut Conn, sql: &str, params: Params) -> Result<u64, StoreError> {
    q.exec_drop(sql, params).map_err(map_err)?;
    Ok(q.affected_rows())
}

/// Positional parameters.
pub(super) fn params(values: Vec<Value>) -> Params {
    Params::Positional(values)
}

/// A notification from its row.
pub(super) fn notification(row: NotificationRow) -> Notification {
    let (id, recipient, kind, sender, room_id, message, created_at_ms, read_at) = row;
    Notification {
        id,
        recipient,
        kind,
        sender,
        room_id,
        message,
        created_at_ms,
        read: read_at.is_some(),
    }
}

/// A chat message from its row.
pub(super) fn chat(row: ChatRow) -> ChatMessage {
    let (id, room_id, sender, message, sent_at_ms) = row;
    ChatMessage {
        id,
        room_id,
        sender,
        message,
        sent_at_ms,
    }
}
