//! `--private-rooms`: before the load, the bench rooms are created as private rooms owned by the
//! first bench user, with every bench user invited, so that each SEND is authorized as a member's
//! (SPEC §8). Run against Herald only.

use crate::cli::Config;
use crate::login::{request, LoginError};

/// Creates each bench room as a private room of user 0 and invites users 1.. into it. A room that
/// exists already is accepted only if it is such a room (an earlier run with the same names);
/// anything else (an open room with messages, a public room, another owner) is an error: pick
/// another `--room-prefix`.
pub fn make_private(cfg: &Config, tokens: &[String]) -> Result<(), LoginError> {
    let Some(owner_token) = tokens.first() else {
        return Err(LoginError::Rejected("--private-rooms needs at least one user".into()));
    };
    let owner = format!("{}0", cfg.user_prefix);
    for i in 0..cfg.rooms {
        let room = cfg.room(i);
        let body = serde_json::json!({ "roomId": room, "name": format!("bench {i}"), "private": true }).to_string();
        let created = request(
            &cfg.http,
            0,
            cfg.sources,
            "POST",
            "/rooms",
            Some(&body),
            Some(owner_token),
        )?;
        match created.status {
            201 => {}
            409 => check_existing(cfg, &room, &owner, owner_token)?,
            status => return Err(rejected(&format!("POST /rooms {room}"), status, &created.body)),
        }
        for u in 1..cfg.users {
            let body = serde_json::json!({ "username": format!("{}{u}", cfg.user_prefix) }).to_string();
            let path = format!("/rooms/{room}/members");
            let invited = request(&cfg.http, 0, cfg.sources, "POST", &path, Some(&body), Some(owner_token))?;
            if !matches!(invited.status, 200 | 201) {
                return Err(rejected(&format!("POST {path}"), invited.status, &invited.body));
            }
        }
    }
    eprintln!(
        "herald-bench: {} private rooms owned by {owner}, {} members each",
        cfg.rooms, cfg.users
    );
    Ok(())
}

fn check_existing(cfg: &Config, room: &str, owner: &str, token: &str) -> Result<(), LoginError> {
    let path = format!("/rooms/{room}");
    let found = request(&cfg.http, 0, cfg.sources, "GET", &path, None, Some(token))?;
    let v: serde_json::Value = serde_json::from_slice(&found.body).unwrap_or_default();
    let data = &v["data"];
    if found.status == 200 && data["private"] == true && data["owner"] == owner {
        return Ok(());
    }
    Err(LoginError::Rejected(format!(
        "{room} exists and is not a private room of {owner} (an open room with messages, or another \
         run's): use another --room-prefix"
    )))
}

fn rejected(what: &str, status: u16, body: &[u8]) -> LoginError {
    LoginError::Rejected(format!("{what}: HTTP {status} {}", String::from_utf8_lossy(body)))
}
