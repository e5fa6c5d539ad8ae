//! Rate limits: a GCRA bucket (the `governor` crate) per principal and per client address,
//! refused with 429 and `Retry-After`. The per-address limit runs before authentication so a
//! flood of bad tokens is throttled too; the per-principal one runs right after it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimits;
use crate::error::{Error, Result};
use crate::state::AppState;

/// The most keys a limiter tracks before it forgets the idle ones (`retain_recent`): bounds the
/// memory a scan from many addresses can take.
pub const RATE_LIMIT_KEY_COUNT_MAX: usize = 100_000;

/// The per-principal and per-address limiters.
#[derive(Debug)]
pub struct Limiters {
    principal: DefaultKeyedRateLimiter<String>,
    address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn quota(per_s: u32, burst: u32) -> Quota {
    let per_s = NonZeroU32::new(per_s).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(per_s);
    Quota::per_second(per_s).allow_burst(burst)
}

impl Limiters {
    /// Limiters for `limits`.
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            principal: RateLimiter::keyed(quota(limits.per_principal_per_s, limits.per_principal_burst)),
            address: RateLimiter::keyed(quota(limits.per_ip_per_s, limits.per_ip_burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Admits one request from `subject`, or says how long to wait.
    pub fn check_principal(&self, subject: &str) -> Result<()> {
        if self.principal.len() > RATE_LIMIT_KEY_COUNT_MAX {
            self.principal.retain_recent();
        }
        self.principal.check_key(&subject.to_string()).map_err(|not_until| Error::RateLimited {
            scope: "principal",
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// Admits one request from `address`, or says how long to wait.
    pub fn check_address(&self, address: IpAddr) -> Result<()> {
        if self.address.len() > RATE_LIMIT_KEY_COUNT_MAX {
            self.address.retain_recent();
        }
        self.address.check_key(&address).map_err(|not_until| Error::RateLimited {
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
