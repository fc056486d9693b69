//! A room's configuration (XEP-0045 §10.2): the fields of the `muc#roomconfig` form, the
//! form an owner gets and what a submitted form changes. Stored as JSON (opaque to
//! storage), so a field added later reads back from an older row with its default.

use parley_proto::muc::{self, field, form, list_field};
use parley_xml::Element;
use serde::{Deserialize, Serialize};

/// Who sees occupants' real JIDs (`muc#roomconfig_whois`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Whois {
    /// Semi-anonymous: moderators only.
    Moderators,
    /// Non-anonymous: every occupant.
    Anyone,
}

/// Who may send private messages (`muc#roomconfig_allowpm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    None,
}

impl AllowPm {
    fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::None => "none",
        }
    }
}

/// One room's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomConfig {
    pub name: String,
    pub description: String,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// None: no password.
    pub password: Option<String>,
    pub whois: Whois,
    /// Occupants at most (never above the service's `[muc] max_occupants`).
    pub max_occupants: usize,
    pub change_subject: bool,
    /// Members (not only admins) may invite into a members-only room.
    pub allow_invites: bool,
    pub allow_pm: AllowPm,
    /// Messages are kept in the room archive (XEP-0313) and counted by status 170.
    pub archive: bool,
    /// History messages kept for joins.
    pub history_length: usize,
    /// The room waits for its owner's configuration (§10.1.2): nobody else may join.
    pub locked: bool,
    /// Salt of the occupant ids (XEP-0421), random per room so ids differ between rooms.
    pub occupant_salt: String,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: None,
            whois: Whois::Moderators,
            max_occupants: 200,
            change_subject: false,
            allow_invites: false,
            allow_pm: AllowPm::Anyone,
            archive: true,
            history_length: 20,
            locked: false,
            occupant_salt: String::new(),
        }
    }
}

/// A submitted value the room cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value for {0}")]
pub struct BadField(pub String);

impl RoomConfig {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a config always serializes")
    }

    /// Reads a stored config; a corrupt one falls back to the defaults (and is logged by
    /// the caller).
    pub fn from_json(s: &str) -> Option<RoomConfig> {
        serde_json::from_str(s).ok()
    }

    pub fn non_anonymous(&self) -> bool {
        self.whois == Whois::Anyone
    }

    /// §10.2: the form an owner fills, with the current values.
    pub fn form(&self, max_occupants: usize, max_history: usize) -> Element {
        let b = |v: bool| if v { "1" } else { "0" };
        let max_users = self.max_occupants.to_string();
        let history = self.history_length.to_string();
        let max_allowed = max_occupants.to_string();
        let hist_allowed = max_history.to_string();
        form("form", muc::NS_ROOMCONFIG)
            .with_child(field(
                "muc#roomconfig_roomname",
                Some("text-single"),
                Some("Name"),
                &[&self.name],
            ))
            .with_child(field(
                "muc#roomconfig_roomdesc",
                Some("text-single"),
                Some("Description"),
                &[&self.description],
            ))
            .with_child(field(
                "muc#roomconfig_persistentroom",
                Some("boolean"),
                Some("Persistent (kept when empty)"),
                &[b(self.persistent)],
            ))
            .with_child(field(
                "muc#roomconfig_publicroom",
                Some("boolean"),
                Some("Listed in the directory"),
                &[b(self.public)],
            ))
            .with_child(field(
                "muc#roomconfig_membersonly",
                Some("boolean"),
                Some("Members only"),
                &[b(self.members_only)],
            ))
            .with_child(field(
                "muc#roomconfig_moderatedroom",
                Some("boolean"),
                Some("Moderated (visitors cannot speak)"),
                &[b(self.moderated)],
            ))
            .with_child(field(
                "muc#roomconfig_passwordprotectedroom",
                Some("boolean"),
                Some("Password protected"),
                &[b(self.password.is_some())],
            ))
            .with_child(field(
                "muc#roomconfig_roomsecret",
                Some("text-private"),
                Some("Password"),
                &[self.password.as_deref().unwrap_or("")],
            ))
            .with_child(list_field(
                "muc#roomconfig_whois",
                "Who may see real JIDs",
                if self.non_anonymous() {
                    "anyone"
                } else {
                    "moderators"
                },
                &[("moderators", "Moderators"), ("anyone", "Anyone")],
            ))
            .with_child(field(
                "muc#roomconfig_maxusers",
                Some("text-single"),
                Some(&format!("Most occupants (at most {max_allowed})")),
                &[&max_users],
            ))
            .with_child(field(
                "muc#roomconfig_changesubject",
                Some("boolean"),
                Some("Occupants may change the subject"),
                &[b(self.change_subject)],
            ))
            .with_child(field(
                "muc#roomconfig_allowinvites",
                Some("boolean"),
                Some("Members may invite"),
                &[b(self.allow_invites)],
            ))
            .with_child(list_field(
                "muc#roomconfig_allowpm",
                "Who may send private messages",
                self.allow_pm.as_str(),
                &[
                    ("anyone", "Anyone"),
                    ("participants", "Participants"),
                    ("moderators", "Moderators"),
                    ("none", "Nobody"),
                ],
            ))
            .with_child(field(
                "muc#roomconfig_enablearchiving",
                Some("boolean"),
                Some("Archive messages"),
                &[b(self.archive)],
            ))
            .with_child(field(
                "muc#roomconfig_historylength",
                Some("text-single"),
                Some(&format!(
                    "History messages for new occupants (at most {hist_allowed})"
                )),
                &[&history],
            ))
    }

    /// Applies a submitted form (§10.2): fields it names change, others stay. Checked as
    /// a whole before anything changes.
    pub fn apply(
        &self,
        submitted: &Element,
        max_occupants: usize,
        max_history: usize,
    ) -> Result<RoomConfig, BadField> {
        let mut next = self.clone();
        let mut password_on = None;
        for (var, values) in muc::form_fields(submitted) {
            let value = values.first().map(String::as_str).unwrap_or("");
            let boolean = || match value {
                "1" | "true" => Ok(true),
                "0" | "false" | "" => Ok(false),
                _ => Err(BadField(var.clone())),
            };
            match var.as_str() {
                "FORM_TYPE" if value != muc::NS_ROOMCONFIG => return Err(BadField(var)),
                "FORM_TYPE" => {}
                "muc#roomconfig_roomname" => next.name = bounded(value, &var)?,
                "muc#roomconfig_roomdesc" => next.description = bounded(value, &var)?,
                "muc#roomconfig_persistentroom" => next.persistent = boolean()?,
                "muc#roomconfig_publicroom" => next.public = boolean()?,
                "muc#roomconfig_membersonly" => next.members_only = boolean()?,
                "muc#roomconfig_moderatedroom" => next.moderated = boolean()?,
                "muc#roomconfig_passwordprotectedroom" => password_on = Some(boolean()?),
                "muc#roomconfig_roomsecret" => {
                    let secret = bounded(value, &var)?;
                    next.password = (!secret.is_empty()).then_some(secret);
                }
                "muc#roomconfig_whois" => {
                    next.whois = match value {
                        "moderators" => Whois::Moderators,
                        "anyone" => Whois::Anyone,
                        _ => return Err(BadField(var)),
                    }
                }
                "muc#roomconfig_maxusers" => {
                    next.max_occupants = match value {
                        "" | "none" => max_occupants,
                        n => n
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=max_occupants).contains(n))
                            .ok_or(BadField(var))?,
                    }
                }
                "muc#roomconfig_changesubject" => next.change_subject = boolean()?,
                "muc#roomconfig_allowinvites" => next.allow_invites = boolean()?,
                "muc#roomconfig_allowpm" => {
                    next.allow_pm = match value {
                        "anyone" => AllowPm::Anyone,
                        "participants" => AllowPm::Participants,
                        "moderators" => AllowPm::Moderators,
                        "none" => AllowPm::None,
                        _ => return Err(BadField(var)),
                    }
                }
                "muc#roomconfig_enablearchiving" | "muc#roomconfig_enablelogging" => {
                    next.archive = boolean()?
                }
                "muc#roomconfig_historylength" => {
                    next.history_length = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n <= max_history)
                        .ok_or(BadField(var))?
                }
                // Fields of other servers' forms that Parley does not offer are ignored,
                // as XEP-0004 §3.3 lets a form processor do.
                _ => {}
            }
        }
        if password_on == Some(false) {
            next.password = None;
        } else if password_on == Some(true) && next.password.is_none() {
            return Err(BadField("muc#roomconfig_roomsecret".into()));
        }
        next.locked = false;
        Ok(next)
    }
}

fn bounded(value: &str, var: &str) -> Result<String, BadField> {
    if value.len() > muc::MAX_REASON_BYTES {
        return Err(BadField(var.to_owned()));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_xml::Limits;

    fn submit(fields: &str) -> Element {
        Element::parse(
            format!(
                "<x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>{}</value></field>{fields}</x>",
                muc::NS_ROOMCONFIG
            )
            .as_bytes(),
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn xep0045_10_2_submitted_fields_change_only_themselves() {
        let c = RoomConfig {
            locked: true,
            ..RoomConfig::default()
        };
        let next = c
            .apply(
                &submit(
                    "<field var='muc#roomconfig_membersonly'><value>1</value></field>\
                     <field var='muc#roomconfig_whois'><value>anyone</value></field>\
                     <field var='muc#roomconfig_roomsecret'><value>pw</value></field>",
                ),
                100,
                50,
            )
            .unwrap();
        assert!(next.members_only && next.non_anonymous() && !next.locked);
        assert_eq!(next.password.as_deref(), Some("pw"));
        assert_eq!(next.public, c.public);
    }

    #[test]
    fn xep0045_10_2_bad_values_change_nothing() {
        let c = RoomConfig::default();
        for bad in [
            "<field var='muc#roomconfig_maxusers'><value>1000000</value></field>",
            "<field var='muc#roomconfig_whois'><value>everyone</value></field>",
            "<field var='muc#roomconfig_persistentroom'><value>yes</value></field>",
            "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>",
        ] {
            assert!(c.apply(&submit(bad), 100, 50).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stored_config_missing_new_fields_reads_with_defaults() {
        let c = RoomConfig::from_json("{\"name\":\"x\"}").unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.history_length, RoomConfig::default().history_length);
    }
}
