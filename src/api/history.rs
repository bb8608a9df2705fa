//! `GET /chat/history/{roomId}`: a page of a room's messages, ascending by id, as the seed's
//! bare array (no envelope). A private room the caller is not in is 404, as if it did not exist.

use std::sync::Arc;

use super::{authenticate, id_param, limit_param, run, store_error, Lane, Outcome};
use crate::auth::validate;
use crate::bus::ConnRef;
use crate::http::request::{percent_decode, Request};
use crate::http::response::{ApiError, Response};
use crate::shared::Shared;
use crate::store::model::{AccessRead, HistoryQuery};
use crate::text::Text;
use crate::views::ChatView;

pub(super) fn history(shared: &Arc<Shared>, conn: ConnRef, req: &Request, room: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let room =
        percent_decode(room).ok_or_else(|| ApiError::InvalidRequest(Text::BadPercentEncoding.about("roomId")))?;
    validate::room_id(&room).map_err(|e| ApiError::InvalidRequest(format!("roomId: {e}")))?;
    let query = HistoryQuery {
        limit: limit_param(req)?,
        before: id_param(req, "before")?,
        after: id_param(req, "after")?,
    };
    run(shared, conn, Lane::General, move |worker, _| {
        let access = worker
            .with(|db| db.room_access(&room, &claims.sub, AccessRead::Snapshot))
            .map_err(store_error)?;
        if !access.allows() {
            return Err(ApiError::NotFound(Text::RoomNotFound));
        }
        let messages = worker.with(|db| db.chat_history(&room, query)).map_err(store_error)?;
        let views: Vec<ChatView> = messages.iter().map(ChatView::from).collect();
        Ok(Response::json(200, &views))
    })
}
