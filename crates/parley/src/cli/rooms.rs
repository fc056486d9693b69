//! `parley room …`: the cluster's chat rooms (XEP-0045) through the running server's admin
//! API (`/api/v1/rooms`), as `parley sessions` does for sessions: listing and details come
//! from the shared storage, destroying and kicking are done by the room on its node.

use clap::Subcommand;

use crate::config::Config;

/// `parley room …`.
#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Print the rooms: JID, occupants, public or hidden, persistent or temporary.
    List {
        /// Only the rooms of this service (`conference.example.org`).
        #[arg(long)]
        service: Option<String>,
    },
    /// Print one room's settings, affiliations and occupants (with their real JIDs).
    Show {
        /// The room's JID.
        jid: String,
    },
    /// Destroy a room (its occupants are told, its archive goes with it).
    Destroy {
        /// The room's JID.
        jid: String,
        /// Shown to the occupants.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Kick an occupant by nick (status 307).
    Kick {
        /// The room's JID.
        jid: String,
        /// The occupant's nick.
        nick: String,
        /// Shown to the occupants.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs `command`; the lines to print, or the message of what went wrong.
pub fn run(config: &Config, command: RoomCommand) -> Result<Printed, String> {
    match command {
        RoomCommand::List { service } => {
            let mut path = "/api/v1/rooms?limit=500".to_owned();
            if let Some(s) = service {
                path.push_str(&format!("&service={}", encode(&s)));
            }
            let v = super::admin_request(config, "GET", &path)?;
            let mut listing = Listing::new(&["ROOM", "OCCUPANTS", "LISTED", "LIFETIME"]);
            for r in v["rooms"].as_array().into_iter().flatten() {
                let flag = |key: &str, yes: &str, no: &str| {
                    if r[key].as_bool() == Some(true) {
                        yes
                    } else {
                        no
                    }
                    .to_owned()
                };
                listing.push(
                    vec![
                        r["jid"].as_str().unwrap_or("?").to_owned(),
                        r["occupants"].as_u64().unwrap_or(0).to_string(),
                        flag("public", "public", "hidden"),
                        flag("persistent", "persistent", "temporary"),
                    ],
                    r.clone(),
                );
            }
            Ok(listing.into())
        }
        RoomCommand::Show { jid } => {
            let v =
                super::admin_request(config, "GET", &format!("/api/v1/rooms/{}", encode(&jid)))?;
            let mut lines = vec![format!(
                "{} name={:?} public={} persistent={} members_only={} moderated={} password={} non_anonymous={}",
                v["jid"].as_str().unwrap_or("?"),
                v["name"].as_str().unwrap_or(""),
                v["public"],
                v["persistent"],
                v["members_only"],
                v["moderated"],
                v["password_protected"],
                v["non_anonymous"],
            )];
            for a in v["affiliations"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "affiliation {} {}",
                    a["affiliation"].as_str().unwrap_or("?"),
                    a["jid"].as_str().unwrap_or("?")
                ));
            }
            for o in v["occupants"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "occupant {} {} {}",
                    o["nick"].as_str().unwrap_or("?"),
                    o["role"].as_str().unwrap_or("?"),
                    o["jid"].as_str().unwrap_or("?")
                ));
            }
            Ok(lines.into())
        }
        RoomCommand::Destroy { jid, reason } => {
            let mut path = format!("/api/v1/rooms/{}", encode(&jid));
            if let Some(r) = reason {
                path.push_str(&format!("?reason={}", encode(&r)));
            }
            super::admin_request(config, "DELETE", &path)?;
            Ok(vec![format!("destroyed {jid}")].into())
        }
        RoomCommand::Kick { jid, nick, reason } => {
            let mut path = format!("/api/v1/rooms/{}/occupants/{}", encode(&jid), encode(&nick));
            if let Some(r) = reason {
                path.push_str(&format!("?reason={}", encode(&r)));
            }
            super::admin_request(config, "DELETE", &path)?;
            Ok(vec![format!("kicked {nick} from {jid}")].into())
        }
    }
}

use super::admin_client::encode;
use super::listing::{Listing, Printed};

#[cfg(test)]
mod tests {
    #[test]
    fn nicks_and_reasons_are_encoded_whole() {
        assert_eq!(super::encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(super::encode("room@conference.x"), "room@conference.x");
        assert_eq!(super::encode("é"), "%C3%A9");
    }
}
