//! Operations endpoints: `/health` (the store's state) and `/metrics` (Prometheus text).

use super::{Handled, Outcome};
use crate::http::response::{ApiError, Response};
use crate::shared::Shared;

/// `/health`: 200 while the store answers (with Redis configured, `"cluster"` says whether the
/// link works: `UP`, or `DEGRADED` while the node polls the store instead — it still serves).
pub(super) fn health(shared: &Shared) -> Handled {
    Handled::Now(health_response(shared.pool.is_up(), shared.bus.cluster_up()))
}

fn health_response(store_up: bool, cluster_up: Option<bool>) -> Response {
    let cluster = match cluster_up {
        None => "",
        Some(true) => r#","cluster":"UP""#,
        Some(false) => r#","cluster":"DEGRADED""#,
    };
    if store_up {
        Response::raw_json(200, format!(r#"{{"status":"UP"{cluster}}}"#).into_bytes())
    } else {
        Response::raw_json(
            503,
            format!(r#"{{"status":"DOWN","store":"DOWN"{cluster}}}"#).into_bytes(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response) -> (u16, String) {
        let mut out = Vec::new();
        r.encode(&mut out, false, false, &[]);
        let text = String::from_utf8(out).unwrap_or_default();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (r.status, body)
    }

    #[test]
    fn health_names_the_cluster_only_when_there_is_one() {
        assert_eq!(body(&health_response(true, None)), (200, r#"{"status":"UP"}"#.into()));
        assert_eq!(
            body(&health_response(true, Some(true))),
            (200, r#"{"status":"UP","cluster":"UP"}"#.into())
        );
        assert_eq!(
            body(&health_response(true, Some(false))),
            (200, r#"{"status":"UP","cluster":"DEGRADED"}"#.into())
        );
        assert_eq!(
            body(&health_response(false, Some(false))),
            (503, r#"{"status":"DOWN","store":"DOWN","cluster":"DEGRADED"}"#.into())
        );
    }
}
