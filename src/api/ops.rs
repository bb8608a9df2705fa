//! Operations endpoints: `/health` (the store's state) and `/metrics` (Prometheus text).

use super::{Handled, Outcome};
use crate::http::response::{ApiError, Response};
use crate::shared::Shared;

pub(super) fn health(shared: &Shared) -> Handled {
    if shared.pool.is_up() {
        Handled::Now(Response::raw_json(200, br#"{"status":"UP"}"#.to_vec()))
    } else {
        Handled::Now(Response::raw_json(503, br#"{"status":"DOWN","store":"DOWN"}"#.to_vec()))
    }
}

pub(super) fn metrics(shared: &Shared, is_loopback: bool) -> Outcome {
    if shared.config.server.metrics_loopback_only && !is_loopback {
        return Err(ApiError::Forbidden);
    }
    let depth = shared.pool.queue_depth() + shared.chat.queue_depth();
    let body = shared.metrics.render(depth, shared.pool.is_up());
    Ok(Handled::Now(Response::text(200, "text/plain; version=0.0.4", body)))
}
