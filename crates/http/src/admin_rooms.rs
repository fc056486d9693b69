//! `/api/v1/rooms`: the chat rooms (XEP-0045) of the whole cluster. Listings and room
//! details come from storage, which every node shares (rooms, affiliations and occupants
//! are stored as they change); destroying a room and kicking an occupant are done by the
//! room's actor, on whichever node owns the room.

use actix_web::{web, HttpRequest, HttpResponse};
use parley_muc::{Controlled, RoomControl};
use serde::Deserialize;

use crate::{storage_error, AdminState};

/// Rooms in one listing at most.
const MAX_LIST: usize = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    service: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonQuery {
    reason: Option<String>,
}

fn no_muc() -> HttpResponse {
    crate::problem::not_found("multi-user chat is off ([muc] enabled)")
}

fn not_found(what: &str) -> HttpResponse {
    crate::problem::not_found(what)
}

/// A room JID's (service, name), if the service is one of ours.
fn split(state: &AdminState, jid: &str) -> Option<(String, String, jid::BareJid)> {
    let rooms = state.rooms.as_ref()?;
    let bare = jid::BareJid::new(jid).ok()?;
    let service = bare.domain().as_str().to_owned();
    if !rooms.services().any(|s| s == service) {
        return None;
    }
    let name = bare.node()?.as_str().to_owned();
    Some((service, name, bare))
}

/// `GET /api/v1/rooms?service=&after=&limit=`: rooms in name order, with their occupant
/// counts, public or not.
pub(crate) async fn list(
    state: web::Data<AdminState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let Some(rooms) = &state.rooms else {
        return no_muc();
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIST);
    let services: Vec<String> = match &query.service {
        Some(s) if rooms.services().any(|x| x == s) => vec![s.clone()],
        Some(_) => return not_found("no such chat service"),
        None => rooms.services().map(str::to_owned).collect(),
    };
    let mut out = Vec::new();
    for service in services {
        let list = match state
            .storage
            .muc_rooms(
                &service,
                query.after.as_deref(),
                limit - out.len().min(limit),
                false,
            )
            .await
        {
            Ok(list) => list,
            Err(e) => return storage_error(e),
        };
        for r in list {
            let occupants = match state.storage.muc_room(&service, &r.name).await {
                Ok(Some(s)) => s.occupants.len(),
                Ok(None) => continue,
                Err(e) => return storage_error(e),
            };
            out.push(serde_json::json!({
                "jid": format!("{}@{service}", r.name),
                "name": parley_muc::RoomConfig::from_json(&r.config).map(|c| c.name).unwrap_or_default(),
                "public": r.public,
                "persistent": r.persistent,
                "created": r.created_ms,
                "occupants": occupants,
            }));
        }
        if out.len() >= limit {
            break;
        }
    }
    HttpResponse::Ok().json(serde_json::json!({ "rooms": out }))
}

/// `GET /api/v1/rooms/{jid}`: one room's configuration, affiliations and occupants (with
/// their real JIDs: this is the operator's view).
pub(crate) async fn show(state: web::Data<AdminState>, path: web::Path<String>) -> HttpResponse {
    if state.rooms.is_none() {
        return no_muc();
    }
    let Some((service, name, _)) = split(&state, &path) else {
        return not_found("not a room of this server");
    };
    match state.storage.muc_room(&service, &name).await {
        Ok(Some(s)) => {
            let config = parley_muc::RoomConfig::from_json(&s.room.config).unwrap_or_default();
            HttpResponse::Ok().json(serde_json::json!({
                "jid": format!("{name}@{service}"),
                "name": config.name,
                "description": config.description,
                "public": s.room.public,
                "persistent": s.room.persistent,
                "members_only": config.members_only,
                "moderated": config.moderated,
                "password_protected": config.password.is_some(),
                "non_anonymous": config.non_anonymous(),
                "created": s.room.created_ms,
                "affiliations": s.affiliations.iter().map(|a| serde_json::json!({
                    "jid": a.jid, "affiliation": a.affiliation, "nick": a.nick,
                })).collect::<Vec<_>>(),
                "occupants": s.occupants.iter().map(|o| serde_json::json!({
                    "nick": o.nick, "role": o.role, "jid": o.jid,
                })).collect::<Vec<_>>(),
            }))
        }
        Ok(None) => not_found("no such room"),
        Err(e) => storage_error(e),
    }
}

/// `DELETE /api/v1/rooms/{jid}?reason=`: destroys the room (XEP-0045 §10.9): its occupants
/// are told, then it is gone with its archive.
pub(crate) async fn destroy(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<String>,
    query: web::Query<ReasonQuery>,
) -> HttpResponse {
    let Some(rooms) = state.rooms.clone() else {
        return no_muc();
    };
    let Some((service, name, bare)) = split(&state, &path) else {
        return not_found("not a room of this server");
    };
    match state.storage.muc_room(&service, &name).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found("no such room"),
        Err(e) => return storage_error(e),
    }
    let reason = query.into_inner().reason.map(|r| bounded(&r));
    crate::audit(&req, "room.destroy", &bare.to_string());
    match rooms.control(&bare, RoomControl::Destroy { reason }).await {
        Controlled::Done => {
            HttpResponse::Ok().json(serde_json::json!({ "destroyed": bare.to_string() }))
        }
        // The room's node does it as the request arrives there.
        Controlled::Forwarded => {
            HttpResponse::Accepted().json(serde_json::json!({ "destroying": bare.to_string() }))
        }
        Controlled::NotFound => not_found("no such room"),
    }
}

/// `DELETE /api/v1/rooms/{jid}/occupants/{nick}?reason=`: kicks the occupant (XEP-0045
/// §8.2: status 307, the reason shown to everyone).
pub(crate) async fn kick(
    req: HttpRequest,
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
    query: web::Query<ReasonQuery>,
) -> HttpResponse {
    let Some(rooms) = state.rooms.clone() else {
        return no_muc();
    };
    let (jid, nick) = path.into_inner();
    let Some((service, name, bare)) = split(&state, &jid) else {
        return not_found("not a room of this server");
    };
    match state.storage.muc_room(&service, &name).await {
        Ok(Some(s)) if s.occupants.iter().any(|o| o.nick == nick) => {}
        Ok(_) => return not_found("no such occupant"),
        Err(e) => return storage_error(e),
    }
    let reason = query.into_inner().reason.map(|r| bounded(&r));
    crate::audit(&req, "room.kick", &format!("{bare}/{nick}"));
    let op = RoomControl::Kick {
        nick: nick.clone(),
        reason,
    };
    match rooms.control(&bare, op).await {
        Controlled::Done => HttpResponse::Ok().json(serde_json::json!({ "kicked": nick })),
        Controlled::Forwarded => {
            HttpResponse::Accepted().json(serde_json::json!({ "kicking": nick }))
        }
        Controlled::NotFound => not_found("no such occupant"),
    }
}

/// A reason as shown to occupants: at most 1 KiB.
fn bounded(reason: &str) -> String {
    let mut r = reason.to_owned();
    let max = parley_proto::muc::MAX_REASON_BYTES;
    if r.len() > max {
        let mut cut = max;
        while !r.is_char_boundary(cut) {
            cut -= 1;
        }
        r.truncate(cut);
    }
    r
}
