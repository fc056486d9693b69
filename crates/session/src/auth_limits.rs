//! Failed authentications per IP address and per account (Prosody's mod_limit_auth, with
//! growing delays): a node-wide table of failure counts in fixed windows.
//!
//! * Per IP (IPv6 by /64, since one host usually holds a whole /64): past `ip_delay_after`
//!   failures in the window each further failure answer is delayed (doubling, capped); at
//!   `ip_refuse_after` new attempts from that address are refused until the window passes.
//! * Per account: past `account_delay_after` failures each further failure answer is delayed
//!   likewise, whoever fails. At `account_refuse_after` the account is refused, but only to
//!   the addresses that have themselves failed on it in the window: an attacker must not be
//!   able to lock the owner out from a clean address.
//!
//! Success answers are never delayed (the owner who knows the password is not slowed down).
//! The table holds at most `table_size` entries; when full, the entry whose window started
//! first goes (an attacker who fills it can make the table forget; the per-connection
//! attempt bound still holds). Account names are kept as keyed 64-bit hashes so that an
//! entry's size does not depend on input. The table is per node: in a cluster each node
//! counts on its own.

use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The limits, from the `[auth]` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLimitConfig {
    /// How long failures count, from the first one of a window.
    pub window: Duration,
    /// Failures from one address before its failure answers are delayed.
    pub ip_delay_after: u32,
    /// Failures from one address before its attempts are refused.
    pub ip_refuse_after: u32,
    /// Failures on one account before its failure answers are delayed.
    pub account_delay_after: u32,
    /// Failures on one account before it is refused to the addresses that failed on it.
    pub account_refuse_after: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Entries (addresses, accounts, address-account pairs) the table holds at most.
    pub table_size: usize,
}

impl Default for AuthLimitConfig {
    fn default() -> Self {
        AuthLimitConfig {
            window: Duration::from_secs(600),
            ip_delay_after: 5,
            ip_refuse_after: 20,
            account_delay_after: 5,
            account_refuse_after: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            table_size: 100_000,
        }
    }
}

/// Whether an authentication attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check the credentials.
    Open,
    /// The address has failed too often in the window.
    RefusedIp,
    /// The account has failed too often, and this address took part.
    RefusedAccount,
}

/// An address as counted: IPv4 whole, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Addr {
    V4(u32),
    V6Prefix(u64),
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Addr::V4(v4.into()),
                None => Addr::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip(Addr),
    Account(u64),
    Pair(u64, Addr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    since: Instant,
    failures: u32,
    /// Which queue item is this entry's (older items for the key are stale).
    generation: u64,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    /// Keys in the order their windows started, for expiry and eviction.
    order: VecDeque<(Key, u64)>,
    next_generation: u64,
}

/// The node's failure table. Shared by every session; each call holds the lock briefly.
#[derive(Debug)]
pub struct AuthLimits {
    config: AuthLimitConfig,
    table: Mutex<Table>,
    hasher: RandomState,
}

impl AuthLimits {
    /// An empty table with these limits.
    pub fn new(config: AuthLimitConfig) -> AuthLimits {
        AuthLimits {
            config,
            table: Mutex::new(Table::default()),
            hasher: RandomState::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &AuthLimitConfig {
        &self.config
    }

    fn account_key(&self, account: &str) -> u64 {
        self.hasher.hash_one(account)
    }

    /// Whether an attempt from `ip` on `account` (normalized bare JID, when the mechanism
    /// names one) may go ahead at `now`.
    pub fn check(&self, ip: Option<IpAddr>, account: Option<&str>, now: Instant) -> Gate {
        let addr = ip.map(Addr::from);
        let acct = account.map(|a| self.account_key(a));
        let table = self.table.lock();
        let count = |key: Key| table.failures(key, now, self.config.window);
        if let Some(addr) = addr {
            if count(Key::Ip(addr)) >= self.config.ip_refuse_after {
                return Gate::RefusedIp;
            }
        }
        if let Some(acct) = acct {
            let took_part = addr.is_some_and(|a| count(Key::Pair(acct, a)) > 0);
            if took_part && count(Key::Account(acct)) >= self.config.account_refuse_after {
                return Gate::RefusedAccount;
            }
        }
        Gate::Open
    }

    /// Records a failed attempt at `now`; returns how long to hold its failure answer back.
    pub fn failed(&self, ip: Option<IpAddr>, account: Option<&str>, now: Instant) -> Duration {
        let addr = ip.map(Addr::from);
        let acct = account.map(|a| self.account_key(a));
        let cfg = &self.config;
        let mut table = self.table.lock();
        let mut delay = Duration::ZERO;
        if let Some(addr) = addr {
            let n = table.record(Key::Ip(addr), now, cfg);
            delay = delay.max(cfg.delay_for(n, cfg.ip_delay_after));
        }
        if let Some(acct) = acct {
            let n = table.record(Key::Account(acct), now, cfg);
            delay = delay.max(cfg.delay_for(n, cfg.account_delay_after));
            if let Some(addr) = addr {
                table.record(Key::Pair(acct, addr), now, cfg);
            }
        }
        delay
    }

    /// Records a successful login: this address's failures on the account are forgiven
    /// (its failures as an address are not: one good account must not launder guesses).
    pub fn succeeded(&self, ip: Option<IpAddr>, account: &str) {
        let Some(addr) = ip.map(Addr::from) else {
            return;
        };
        let acct = self.account_key(account);
        let mut table = self.table.lock();
        table.entries.remove(&Key::Pair(acct, addr));
    }

    /// Entries held now (for tests and metrics).
    pub fn len(&self) -> usize {
        let table = self.table.lock();
        table.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AuthLimitConfig {
    /// These limits with every delay capped at half of `auth_timeout`: a client whose
    /// failure answer is delayed still has time to try again before its unauthenticated
    /// connection times out.
    pub fn within_auth_timeout(mut self, auth_timeout: Duration) -> Self {
        self.base_delay = self.base_delay.min(auth_timeout / 2);
        self.max_delay = self.max_delay.min(auth_timeout / 2);
        self
    }

    /// The delay for the `n`th failure when delays start past `after`: the base, doubling,
    /// capped.
    fn delay_for(&self, n: u32, after: u32) -> Duration {
        if n <= after {
            return Duration::ZERO;
        }
        let doublings = (n - after - 1).min(31);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

impl Table {
    fn failures(&self, key: Key, now: Instant, window: Duration) -> u32 {
        self.entries
            .get(&key)
            .filter(|e| now.saturating_duration_since(e.since) < window)
            .map_or(0, |e| e.failures)
    }

    /// Adds a failure for `key`; returns its count in the current window.
    fn record(&mut self, key: Key, now: Instant, cfg: &AuthLimitConfig) -> u32 {
        self.expire(now, cfg.window);
        if let Some(e) = self.entries.get_mut(&key) {
            if now.saturating_duration_since(e.since) < cfg.window {
                e.failures = e.failures.saturating_add(1);
                return e.failures;
            }
        }
        while self.entries.len() >= cfg.table_size.max(1) && !self.entries.contains_key(&key) {
            if !self.evict_oldest() {
                break;
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.entries.insert(
            key,
            Entry {
                since: now,
                failures: 1,
                generation,
            },
        );
        self.order.push_back((key, generation));
        if self.order.len() > 2 * cfg.table_size.max(1) + 16 {
            // Stale items (forgiven or restarted entries) pile up; drop them.
            let entries = &self.entries;
            self.order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
        1
    }

    /// Drops entries whose window has passed, oldest first, stopping at the first live one.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&(key, generation)) = self.order.front() {
            match self.entries.get(&key) {
                Some(e) if e.generation == generation => {
                    if now.saturating_duration_since(e.since) < window {
                        return;
                    }
                    self.entries.remove(&key);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Removes the entry whose window started first; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_half_the_auth_timeout() {
        let c = AuthLimitConfig::default().within_auth_timeout(Duration::from_secs(4));
        assert_eq!(c.base_delay, Duration::from_millis(250));
        assert_eq!(c.max_delay, Duration::from_secs(2));
        let c = AuthLimitConfig::default().within_auth_timeout(Duration::from_millis(200));
        assert_eq!(
            (c.base_delay, c.max_delay),
            (Duration::from_millis(100), Duration::from_millis(100))
        );
    }

    fn limits() -> AuthLimits {
        AuthLimits::new(AuthLimitConfig {
            window: Duration::from_secs(60),
            ip_delay_after: 2,
            ip_refuse_after: 6,
            account_delay_after: 2,
            account_refuse_after: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            table_size: 1000,
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn failure_answers_are_delayed_doubling_and_capped_past_the_threshold() {
        let l = limits();
        let t = Instant::now();
        let delays: Vec<u64> = (0..6)
            .map(|_| l.failed(ip("192.0.2.1"), None, t).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 100, 200, 350, 350]);
    }

    #[test]
    fn an_address_is_refused_until_its_window_passes() {
        let l = limits();
        let t = Instant::now();
        for i in 0..6 {
            assert_eq!(l.check(ip("192.0.2.1"), None, t), Gate::Open, "attempt {i}");
            l.failed(ip("192.0.2.1"), Some(&format!("u{i}@example.org")), t);
        }
        assert_eq!(l.check(ip("192.0.2.1"), None, t), Gate::RefusedIp);
        assert_eq!(l.check(ip("192.0.2.2"), None, t), Gate::Open);
        let later = t + Duration::from_secs(60);
        assert_eq!(l.check(ip("192.0.2.1"), None, later), Gate::Open);
    }

    #[test]
    fn ipv6_addresses_count_by_64_prefix_and_mapped_ipv4_as_ipv4() {
        let l = limits();
        let t = Instant::now();
        for i in 0..6 {
            l.failed(ip(&format!("2001:db8:1:2::{i}")), None, t);
        }
        assert_eq!(l.check(ip("2001:db8:1:2::ffff"), None, t), Gate::RefusedIp);
        assert_eq!(l.check(ip("2001:db8:1:3::1"), None, t), Gate::Open);
        for _ in 0..6 {
            l.failed(ip("::ffff:192.0.2.9"), None, t);
        }
        assert_eq!(l.check(ip("192.0.2.9"), None, t), Gate::RefusedIp);
    }

    #[test]
    fn an_account_under_attack_is_refused_only_to_the_addresses_that_failed_on_it() {
        let l = limits();
        let t = Instant::now();
        let victim = Some("alice@example.org");
        for i in 0..4 {
            l.failed(ip(&format!("198.51.100.{i}")), victim, t);
        }
        assert_eq!(l.check(ip("198.51.100.0"), victim, t), Gate::RefusedAccount);
        assert_eq!(l.check(ip("203.0.113.7"), victim, t), Gate::Open);
        assert_eq!(
            l.check(ip("198.51.100.0"), Some("bob@example.org"), t),
            Gate::Open
        );
        // Everyone's failures on it are delayed, the owner's too.
        assert!(l.failed(ip("203.0.113.7"), victim, t) > Duration::ZERO);
        // A success forgives that address's failures on the account.
        l.succeeded(ip("198.51.100.1"), "alice@example.org");
        assert_eq!(l.check(ip("198.51.100.1"), victim, t), Gate::Open);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_windows_first() {
        let l = AuthLimits::new(AuthLimitConfig {
            table_size: 100,
            ..limits().config().clone()
        });
        let t = Instant::now();
        for i in 0..10_000u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            l.failed(Some(addr), None, t + Duration::from_millis(u64::from(i)));
        }
        assert!(l.len() <= 100, "{}", l.len());
        let newest = Some(IpAddr::from(9_999u32.to_be_bytes()));
        for _ in 0..5 {
            l.failed(newest, None, t + Duration::from_secs(10));
        }
        assert_eq!(
            l.check(newest, None, t + Duration::from_secs(10)),
            Gate::RefusedIp
        );
        let queue = l.table.lock().order.len();
        assert!(queue <= 2 * 100 + 16, "{queue}");
    }

    #[test]
    fn windows_that_passed_are_dropped_as_new_failures_arrive() {
        let l = limits();
        let t = Instant::now();
        for i in 0..50u32 {
            l.failed(Some(IpAddr::from(i.to_be_bytes())), None, t);
        }
        assert_eq!(l.len(), 50);
        l.failed(ip("192.0.2.1"), None, t + Duration::from_secs(61));
        assert_eq!(l.len(), 1);
    }
}
