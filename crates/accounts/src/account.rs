//! Account addresses: a bare JID with a user part on one of the served hosts, normalized
//! (nodeprep lowercases the user part, nameprep the domain) so that `Alice@EXAMPLE.org` and
//! `alice@example.org` are one account everywhere.

use std::fmt;

/// A validated, normalized account address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountJid {
    /// The normalized localpart.
    pub username: String,
    /// The normalized domain, one of the served hosts.
    pub host: String,
}

impl fmt::Display for AccountJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.username, self.host)
    }
}

/// Why a string is not an account JID of this server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountJidError {
    /// Not a JID at all.
    #[error("`{jid}` is not a valid JID: {reason}")]
    Invalid {
        /// The input.
        jid: String,
        /// The jid crate's reason.
        reason: String,
    },
    /// Accounts are bare JIDs.
    #[error("`{jid}` has a resource; accounts are bare JIDs (user@host)")]
    HasResource {
        /// The input.
        jid: String,
    },
    /// A bare domain is not an account.
    #[error("`{jid}` has no user part; accounts are user@host")]
    NoNode {
        /// The input.
        jid: String,
    },
    /// The domain is not served here.
    #[error("`{jid}`: host `{host}` is not in [server] hosts ({hosts})")]
    UnknownHost {
        /// The input.
        jid: String,
        /// Its normalized domain.
        host: String,
        /// The configured hosts, comma-separated.
        hosts: String,
    },
}

impl AccountJid {
    /// Parses a user-supplied account JID: bare, with a node, on one of `hosts`; the result
    /// is normalized.
    pub fn parse<H: AsRef<str>>(input: &str, hosts: &[H]) -> Result<AccountJid, AccountJidError> {
        let jid = jid::Jid::new(input.trim()).map_err(|e| AccountJidError::Invalid {
            jid: input.to_owned(),
            reason: e.to_string(),
        })?;
        if jid.resource().is_some() {
            return Err(AccountJidError::HasResource {
                jid: input.to_owned(),
            });
        }
        let Some(node) = jid.node() else {
            return Err(AccountJidError::NoNode {
                jid: input.to_owned(),
            });
        };
        let host = jid.domain().as_str();
        served_host(hosts, host)
            .ok_or_else(|| AccountJidError::UnknownHost {
                jid: input.to_owned(),
                host: host.to_owned(),
                hosts: join(hosts),
            })
            .map(|host| AccountJid {
                username: node.as_str().to_owned(),
                host,
            })
    }
}

/// Returns the normalized form of `host` if it is one of `hosts`.
pub fn served_host<H: AsRef<str>>(hosts: &[H], host: &str) -> Option<String> {
    let host = normalize_host(host).ok()?;
    // Loaded configs hold normalized hosts already; the fallback covers lists built in code.
    hosts
        .iter()
        .map(AsRef::as_ref)
        .any(|h| h == host || normalize_host(h).is_ok_and(|h| h == host))
        .then_some(host)
}

/// Normalizes a domain with the `jid` crate's nameprep; the error says why it is not one.
pub fn normalize_host(host: &str) -> Result<String, String> {
    let jid = jid::Jid::new(host).map_err(|e| format!("not a valid domain: {e}"))?;
    if jid.node().is_some() || jid.resource().is_some() {
        return Err("must be a bare domain, without `@` or `/`".to_owned());
    }
    Ok(jid.domain().as_str().to_owned())
}

/// The hosts, comma-separated, for messages.
pub(crate) fn join<H: AsRef<str>>(hosts: &[H]) -> String {
    hosts
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}
