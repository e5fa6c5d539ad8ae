//! Rate limits: a GCRA bucket (the `governor` crate) per principal and per client address,
//! refused with 429 and `Retry-After`; each principal's limit is its subject's, its roles'
//! or the default ([`RateLimits::for_principal`]), and may be none. The per-address limit runs before authentication so a
//! flood of bad tokens is throttled too; the per-principal one runs right after it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::Principal;
use crate::config::{Limit, RateLimits};
use crate::error::{Error, Result};
use crate::state::AppState;

/// The most keys a limiter tracks before it forgets the idle ones (`retain_recent`): bounds the
/// memory a scan from many addresses can take.
pub const RATE_LIMIT_KEY_COUNT_MAX: usize = 100_000;

/// The per-principal and per-address limiters, replaced whole when the limits are reloaded
/// ([`Limiters::replace`]: buckets start full again).
#[derive(Debug)]
pub struct Limiters {
    current: std::sync::RwLock<std::sync::Arc<Buckets>>,
}

impl Limiters {
    /// Limiters for `limits`.
    pub fn new(limits: &RateLimits) -> Self {
        Self { current: std::sync::RwLock::new(std::sync::Arc::new(Buckets::new(limits))) }
    }

    fn current(&self) -> std::sync::Arc<Buckets> {
        match self.current.read() {
            Ok(current) => std::sync::Arc::clone(&current),
            Err(poisoned) => std::sync::Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        self.current().limits.clone()
    }

    /// Limits by `limits` from now on.
    pub fn replace(&self, limits: &RateLimits) {
        let buckets = std::sync::Arc::new(Buckets::new(limits));
        match self.current.write() {
            Ok(mut current) => *current = buckets,
            Err(poisoned) => *poisoned.into_inner() = buckets,
        }
    }

    /// Admits one request from `principal`, or says how long to wait.
    pub fn check_principal(&self, principal: &Principal) -> Result<()> {
        self.current().check_principal(principal)
    }

    /// Admits one request from `address`, or says how long to wait.
    pub fn check_address(&self, address: IpAddr) -> Result<()> {
        self.current().check_address(address)
    }
}

/// One keyed bucket set per distinct limit.
#[derive(Debug)]
struct Buckets {
    limits: RateLimits,
    principal: Vec<(Limit, DefaultKeyedRateLimiter<String>)>,
    address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

fn quota(per_s: u32, burst: u32) -> Quota {
    let per_s = NonZeroU32::new(per_s).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(per_s);
    Quota::per_second(per_s).allow_burst(burst)
}

fn limiter<K: Clone + std::hash::Hash + Eq>(limit: Limit) -> Option<DefaultKeyedRateLimiter<K>> {
    match limit {
        Limit::Unlimited => None,
        Limit::Rate { per_s, burst } => Some(RateLimiter::keyed(quota(per_s, burst))),
    }
}

impl Buckets {
    fn new(limits: &RateLimits) -> Self {
        let principal = limits
            .principal_limits()
            .into_iter()
            .filter_map(|limit| limiter(limit).map(|l| (limit, l)))
            .collect();
        Self {
            limits: limits.clone(),
            principal,
            address: limiter(limits.per_ip),
            clock: DefaultClock::default(),
        }
    }

    fn check_principal(&self, principal: &Principal) -> Result<()> {
        let limit = self.limits.for_principal(&principal.subject, principal.roles.iter().map(String::as_str));
        let Some((_, limiter)) = self.principal.iter().find(|(l, _)| *l == limit) else { return Ok(()) };
        if limiter.len() > RATE_LIMIT_KEY_COUNT_MAX {
            limiter.retain_recent();
        }
        limiter.check_key(&principal.subject).map_err(|not_until| Error::RateLimited {
            scope: "principal",
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    fn check_address(&self, address: IpAddr) -> Result<()> {
        let Some(limiter) = &self.address else { return Ok(()) };
        if limiter.len() > RATE_LIMIT_KEY_COUNT_MAX {
            limiter.retain_recent();
        }
        limiter.check_key(&address).map_err(|not_until| Error::RateLimited {
            scope: "address",
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }
}

/// Middleware: the per-address limit. The address is the TCP peer's (a proxy in front of the
/// gateway makes every client one address: give the proxy its own limits).
pub(crate) async fn limit_address(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    if let Err(error) = state.limits.check_address(address) {
        state.metrics.rate_limited.inc();
        return error.into_response();
    }
    next.run(request).await
}
