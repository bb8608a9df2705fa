//! Maps a method and path to a [`Route`]; 404 and 405 are decided here, nowhere else.

use super::request::Method;
use super::response::ApiError;
use crate::text::Text;

/// Every endpoint of SPEC §3–5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Signup,
    Login,
    Reissue,
    Logout,
    Me,
    /// `GET /chat/history/{roomId}` (room id still percent-encoded).
    History(String),
    NotificationStream,
    NotificationsList,
    NotificationsCreate,
    /// `POST /notifications/{id}/read` (id as given, validated by the handler).
    NotificationRead(String),
    /// `GET /rooms`: the caller's room list.
    RoomsList,
    /// `POST /rooms`: create a room.
    RoomCreate,
    /// `GET /rooms/{roomId}` (still percent-encoded, like every path value below).
    Room(String),
    /// `POST /rooms/{roomId}/members`: invite.
    RoomInvite(String),
    /// `DELETE /rooms/{roomId}/members/{username}`: remove, or leave.
    RoomRemove(String, String),
    /// `POST /rooms/{roomId}/read`: set the read mark.
    RoomRead(String),
    /// `POST /dm/{username}`: the direct-message room with that user.
    DirectRoom(String),
    Health,
    Metrics,
    /// `GET /ws/chat`: the WebSocket upgrade.
    WsChat,
    /// A CORS preflight on a known path.
    Preflight,
    /// `GET /` or `GET /web/…`: a file of the web client (the path as given; see `crate::web`).
    WebClient(String),
}

/// Resolves a request line. `HEAD` is served as `GET` without a body.
pub fn route(method: Method, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let get = matches!(method, Method::Get | Method::Head);
    let post = method == Method::Post;
    let (allowed, chosen): (&'static str, Option<Route>) = match segments.as_slice() {
        ["auth", "signup"] => ("POST, OPTIONS", post.then_some(Route::Signup)),
        ["auth", "login"] => ("POST, OPTIONS", post.then_some(Route::Login)),
        ["auth", "reissue"] | ["auth", "refresh"] => ("POST, OPTIONS", post.then_some(Route::Reissue)),
        ["auth", "logout"] => ("POST, OPTIONS", post.then_some(Route::Logout)),
        ["users", "me"] => ("GET, HEAD, OPTIONS", get.then_some(Route::Me)),
        ["chat", "history", room] if !room.is_empty() => {
            ("GET, HEAD, OPTIONS", get.then(|| Route::History((*room).to_string())))
        }
        ["notifications", "stream"] => (
            "GET, OPTIONS",
            (method == Method::Get).then_some(Route::NotificationStream),
        ),
        ["notifications"] => (
            "GET, HEAD, POST, OPTIONS",
            if get {
                Some(Route::NotificationsList)
            } else if post {
                Some(Route::NotificationsCreate)
            } else {
                None
            },
        ),
        ["notifications", id, "read"] => (
            "POST, OPTIONS",
            post.then(|| Route::NotificationRead((*id).to_string())),
        ),
        ["rooms"] => (
            "GET, HEAD, POST, OPTIONS",
            if get {
                Some(Route::RoomsList)
            } else if post {
                Some(Route::RoomCreate)
            } else {
                None
            },
        ),
        ["rooms", room] if !room.is_empty() => ("GET, HEAD, OPTIONS", get.then(|| Route::Room((*room).to_string()))),
        ["rooms", room, "members"] if !room.is_empty() => {
            ("POST, OPTIONS", post.then(|| Route::RoomInvite((*room).to_string())))
        }
        ["rooms", room, "members", user] if !room.is_empty() && !user.is_empty() => (
            "DELETE, OPTIONS",
            (method == Method::Delete).then(|| Route::RoomRemove((*room).to_string(), (*user).to_string())),
        ),
        ["rooms", room, "read"] if !room.is_empty() => {
            ("POST, OPTIONS", post.then(|| Route::RoomRead((*room).to_string())))
        }
        ["dm", user] if !user.is_empty() => ("POST, OPTIONS", post.then(|| Route::DirectRoom((*user).to_string()))),
        ["health"] => ("GET, HEAD", get.then_some(Route::Health)),
        ["metrics"] => ("GET, HEAD", get.then_some(Route::Metrics)),
        ["ws", "chat"] => ("GET", (method == Method::Get).then_some(Route::WsChat)),
        [] | ["web", ..] => ("GET, HEAD", get.then(|| Route::WebClient(path.to_string()))),
        _ => return Err(ApiError::NotFound(Text::PathNotFound)),
    };
    match chosen {
        Some(r) => Ok(r),
        None if method == Method::Options && allowed.contains("OPTIONS") => Ok(Route::Preflight),
        None => Err(ApiError::MethodNotAllowed(allowed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_every_endpoint() {
        assert_eq!(route(Method::Post, "/auth/login"), Ok(Route::Login));
        assert_eq!(route(Method::Post, "/auth/refresh"), Ok(Route::Reissue));
        assert_eq!(
            route(Method::Get, "/chat/history/room-1"),
            Ok(Route::History("room-1".into()))
        );
        assert_eq!(route(Method::Head, "/health"), Ok(Route::Health));
        assert_eq!(
            route(Method::Post, "/notifications/12/read"),
            Ok(Route::NotificationRead("12".into()))
        );
        assert_eq!(route(Method::Get, "/notifications"), Ok(Route::NotificationsList));
        assert_eq!(route(Method::Post, "/notifications"), Ok(Route::NotificationsCreate));
        assert_eq!(route(Method::Options, "/auth/login"), Ok(Route::Preflight));
        assert_eq!(route(Method::Get, "/users/me/"), Ok(Route::Me));
        assert_eq!(route(Method::Get, "/rooms"), Ok(Route::RoomsList));
        assert_eq!(route(Method::Post, "/rooms"), Ok(Route::RoomCreate));
        assert_eq!(route(Method::Get, "/rooms/team"), Ok(Route::Room("team".into())));
        assert_eq!(
            route(Method::Post, "/rooms/team/members"),
            Ok(Route::RoomInvite("team".into()))
        );
        assert_eq!(
            route(Method::Delete, "/rooms/team/members/bob"),
            Ok(Route::RoomRemove("team".into(), "bob".into()))
        );
        assert_eq!(
            route(Method::Post, "/rooms/team/read"),
            Ok(Route::RoomRead("team".into()))
        );
        assert_eq!(route(Method::Post, "/dm/bob"), Ok(Route::DirectRoom("bob".into())));
        assert_eq!(route(Method::Options, "/rooms/team/members/bob"), Ok(Route::Preflight));
        assert_eq!(route(Method::Get, "/"), Ok(Route::WebClient("/".into())));
        assert_eq!(
            route(Method::Head, "/web/js/main.js"),
            Ok(Route::WebClient("/web/js/main.js".into()))
        );
        assert_eq!(route(Method::Post, "/"), Err(ApiError::MethodNotAllowed("GET, HEAD")));
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        assert!(matches!(route(Method::Get, "/nope"), Err(ApiError::NotFound(_))));
        assert!(matches!(
            route(Method::Get, "/chat/history/"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(Method::Get, "/chat/history/a/b"),
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(
            route(Method::Get, "/auth/login"),
            Err(ApiError::MethodNotAllowed("POST, OPTIONS"))
        );
        assert!(matches!(
            route(Method::Delete, "/notifications"),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            route(Method::Other, "/health"),
            Err(ApiError::MethodNotAllowed(_))
        ));
        assert_eq!(
            route(Method::Post, "/rooms/team/members/bob"),
            Err(ApiError::MethodNotAllowed("DELETE, OPTIONS"))
        );
        assert_eq!(
            route(Method::Get, "/dm/bob"),
            Err(ApiError::MethodNotAllowed("POST, OPTIONS"))
        );
        assert!(matches!(route(Method::Post, "/dm"), Err(ApiError::NotFound(_))));
        assert!(matches!(route(Method::Get, "/rooms/a/b"), Err(ApiError::NotFound(_))));
    }
}
