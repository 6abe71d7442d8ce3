//! Who may use the console: the token check (constant time), the sessions it opens (random ids,
//! kept here with their expiry and their CSRF token, at most [`MAX_SESSIONS`]) and the limit on
//! failed logins per client address (at most [`MAX_FAILURES`] a minute, [`MAX_TRACKED`] addresses
//! remembered). Pure state behind one [`Gate`]; nothing here knows HTTP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// Sessions kept at once; a new login past this ends the oldest.
pub const MAX_SESSIONS: usize = 64;
/// Failed logins allowed per address within [`FAILURE_WINDOW`]; then 429 until it ends.
pub const MAX_FAILURES: u32 = 5;
/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered; past this the oldest window is forgotten.
pub const MAX_TRACKED: usize = 4096;

/// A logged-in console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token state-changing requests must send in a header (`X-Console-Csrf`).
    pub csrf: String,
    expires: Instant,
    created: Instant,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The token is wrong.
    WrongToken,
    /// Too many failures from this address: try again after this long.
    TooMany(Duration),
}

/// The token, the sessions and the failed-login counts.
#[derive(Debug)]
pub struct Gate {
    /// SHA-256 of the configured token: compared in constant time with the given one's.
    token: [u8; 32],
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Gate {
    /// A gate for `token`, whose sessions last `ttl`.
    pub fn new(token: &str, ttl: Duration) -> Self {
        Gate {
            token: Sha256::digest(token.as_bytes()).into(),
            ttl,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// Checks `token` from `from`: a new session id and its session, or why not.
    pub fn log_in(&self, from: IpAddr, token: &str) -> Result<(String, Session), Refused> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((n, since)) = failures.get(&from) {
            let ends = *since + FAILURE_WINDOW;
            if *n >= MAX_FAILURES && ends > now {
                return Err(Refused::TooMany(ends - now));
            }
        }
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !bool::from(given.ct_eq(&self.token)) {
            note_failure(&mut failures, from, now);
            return Err(Refused::WrongToken);
        }
        failures.remove(&from);
        drop(failures);
        Ok(self.open(now))
    }

    fn open(&self, now: Instant) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            expires: now + self.ttl,
            created: now,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session with this id.
    pub fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends a session.
    pub fn log_out(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.remove(id);
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Counts a failure of `from`, forgetting the oldest window when too many addresses are
/// remembered.
fn note_failure(failures: &mut HashMap<IpAddr, (u32, Instant)>, from: IpAddr, now: Instant) {
    if !failures.contains_key(&from) && failures.len() >= MAX_TRACKED {
        failures.retain(|_, (_, since)| *since + FAILURE_WINDOW > now);
        if failures.len() >= MAX_TRACKED {
            let oldest = failures
                .iter()
                .min_by_key(|(_, (_, s))| *s)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                failures.remove(&oldest);
            }
        }
    }
    let entry = failures.entry(from).or_insert((0, now));
    if entry.1 + FAILURE_WINDOW <= now {
        *entry = (0, now);
    }
    entry.0 += 1;
}

/// 128 random bits from the operating system, as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // The OS generator failing leaves no safe way to make a session: refuse to run on.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    hex::encode(bytes)
}

/// Whether `given` (a header's value) is the session's CSRF token, in constant time.
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    session.csrf.len() == given.len() && bool::from(session.csrf.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-token-of-sixteen+";
    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test(start_paused = true)]
    async fn a_session_lasts_its_ttl_and_ends_at_logout() {
        let gate = Gate::new(TOKEN, Duration::from_secs(60));
        let (id, session) = gate.log_in(HERE, TOKEN).unwrap();
        assert_eq!(id.len(), 32);
        assert_ne!(id, session.csrf);
        assert_eq!(gate.session(&id), Some(session.clone()));
        assert!(csrf_matches(&session, &session.csrf.clone()));
        assert!(!csrf_matches(&session, "x"));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(gate.session(&id), None);
        let (id, _) = gate.log_in(HERE, TOKEN).unwrap();
        gate.log_out(&id);
        assert_eq!(gate.session(&id), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_limited_per_address_for_a_window() {
        let gate = Gate::new(TOKEN, Duration::from_secs(60));
        for _ in 0..MAX_FAILURES {
            assert_eq!(gate.log_in(HERE, "wrong"), Err(Refused::WrongToken));
        }
        // Limited now, even with the right token.
        assert!(matches!(gate.log_in(HERE, TOKEN), Err(Refused::TooMany(_))));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert!(gate.log_in(other, TOKEN).is_ok(), "other addresses are not");
        tokio::time::advance(FAILURE_WINDOW).await;
        assert!(gate.log_in(HERE, TOKEN).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded() {
        let gate = Gate::new(TOKEN, Duration::from_secs(60));
        for _ in 0..MAX_SESSIONS + 5 {
            gate.log_in(HERE, TOKEN).unwrap();
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(gate.sessions.lock().unwrap().len(), MAX_SESSIONS);
        for i in 0..MAX_TRACKED as u32 + 5 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = gate.log_in(ip, "wrong");
        }
        assert_eq!(gate.failures.lock().unwrap().len(), MAX_TRACKED);
    }
}
