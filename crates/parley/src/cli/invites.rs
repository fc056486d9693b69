//! `parley invite …`: invitations to register an account in band (XEP-0401 / XEP-0445),
//! straight in the configured storage, as `parley token …` does for tokens. The token is
//! printed once with its `xmpp:` URI; storage keeps only its hash.

use std::time::Duration;

use clap::Subcommand;
use parley_accounts::invites;

use super::listing::{Listing, Printed};
use crate::config::Config;

/// `parley invite …`.
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Issue an invitation and print its token and `xmpp:` URI (shown only this once).
    /// It lets its holder register an account in band when `[register] mode` is `invite`
    /// or `open`.
    Create {
        /// The domain the account will be on (default: the first of `server.hosts`).
        #[arg(long)]
        host: Option<String>,
        /// Lifetime in seconds (default: `[register] invite_ttl_s`, 7 days).
        #[arg(long)]
        ttl: Option<u64>,
        /// Accounts it may register (1 to 1000).
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    /// Print the invitations: id, host, created, expires, uses left (never tokens).
    List,
    /// Revoke one invitation by id.
    Revoke {
        /// The id `list` shows (ids are base64url: one may start with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

/// Runs `command`; the lines to print, or the message of what went wrong.
pub fn run(config: &Config, command: InviteCommand) -> Result<Printed, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let url = config.storage_url();
    let ms = parley_proto::datetime::xep0082;
    match command {
        InviteCommand::Create { host, ttl, uses } => {
            let host = match host {
                Some(h) => config.served_host(&h).ok_or_else(|| {
                    format!(
                        "--host: `{h}` is not one of server.hosts ({})",
                        config.server.hosts.join(", ")
                    )
                })?,
                None => config
                    .server
                    .hosts
                    .first()
                    .cloned()
                    .ok_or("server.hosts is empty")?,
            };
            let ttl = ttl.unwrap_or(config.register.invite_ttl_s);
            if ttl == 0 || ttl > 365 * 24 * 3600 {
                return Err("--ttl must be 1 to 31536000 seconds (a year)".into());
            }
            if !(1..=invites::MAX_USES).contains(&uses) {
                return Err(format!("--uses must be 1 to {}", invites::MAX_USES));
            }
            runtime.block_on(async {
                let storage = parley_storage::open(&url)
                    .await
                    .map_err(|e| format!("cannot open storage: {e}"))?;
                let issued = invites::issue(&*storage, &host, Duration::from_secs(ttl), uses)
                    .await
                    .map_err(|e| format!("invite create: {e}"))?;
                Ok(Printed::from(vec![
                    issued.token,
                    issued.uri,
                    format!(
                        "id={} host={} expires={} uses={}",
                        issued.record.id,
                        issued.record.host,
                        ms(issued.record.expires_ms),
                        issued.record.uses_left
                    ),
                ]))
            })
        }
        InviteCommand::List => runtime.block_on(async {
            let storage = parley_storage::open(&url)
                .await
                .map_err(|e| format!("cannot open storage: {e}"))?;
            let list = invites::list(&*storage)
                .await
                .map_err(|e| format!("invite list: {e}"))?;
            let mut listing = Listing::new(&["ID", "HOST", "CREATED", "EXPIRES", "USES LEFT"]);
            for i in &list {
                listing.push(
                    vec![
                        i.id.clone(),
                        i.host.clone(),
                        ms(i.created_ms),
                        ms(i.expires_ms),
                        i.uses_left.to_string(),
                    ],
                    serde_json::json!({
                        "id": i.id,
                        "host": i.host,
                        "created": ms(i.created_ms),
                        "expires": ms(i.expires_ms),
                        "uses_left": i.uses_left,
                    }),
                );
            }
            Ok(listing.into())
        }),
        InviteCommand::Revoke { id } => runtime.block_on(async {
            let storage = parley_storage::open(&url)
                .await
                .map_err(|e| format!("cannot open storage: {e}"))?;
            match invites::revoke(&*storage, &id).await {
                Ok(true) => Ok(vec!["revoked".to_owned()].into()),
                Ok(false) => Err("no such invitation".into()),
                Err(e) => Err(format!("invite revoke: {e}")),
            }
        }),
    }
}
