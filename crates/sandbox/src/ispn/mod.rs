//! Infinispan REST emulator: one HTTPS server per site of a two-site pair, sharing the state of
//! the cross-site link.
//!
//! Each site serves, over TLS with HTTP Basic auth, the parts of Infinispan's REST API that
//! sitefence and Keycloak's operational procedures use: container- and cache-level x-site
//! operations (take offline, bring online, push state and its status), cache clear, health,
//! and `/metrics` with `vendor_jgroups_site_view_status`. Paths, status codes and bodies follow
//! Infinispan's own REST resources (`XSiteResource`, `ContainerResource`), including the trap
//! that a container-level call answers 200 when some caches failed.
//!
//! Each site also has a plain-HTTP control port for tests (partition, down, faults, reset, call
//! counts, state); see the Infinispan section of the sandbox's `README.md`. Faults can make a
//! container-level action answer for fewer caches than the site has, `{}` or 204 without a
//! body, changing nothing for the caches left out: what a server answers that does not have
//! the caches (yet), and what a client must not take for success.

mod control;
mod metrics;
mod rest;
mod server;
mod state;
#[cfg(test)]
mod wire_tests;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use state::{PairState, PushTicket, Side};

/// Keycloak 26's caches with a cross-site backup.
pub const KEYCLOAK_26_CACHES: [&str; 4] = [
    "actionTokens",
    "authenticationSessions",
    "loginFailures",
    "work",
];

/// How long a push takes unless the options say otherwise.
pub const DEFAULT_PUSH_DELAY: Duration = Duration::from_secs(2);

/// Which REST paths the emulated server has for container-level x-site operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IspnVersion {
    /// 14.x: only `/rest/v2/cache-managers/default/x-site/...`.
    V14,
    /// A 15+ server without the deprecated x-site path: only `/rest/v2/container/x-site/...`.
    /// The health status answers on both `/rest/v2/container/health/status` and the
    /// deprecated `/rest/v2/cache-managers/default/health/status`.
    #[default]
    V15,
}

impl IspnVersion {
    fn as_str(self) -> &'static str {
        match self {
            IspnVersion::V14 => "14",
            IspnVersion::V15 => "15",
        }
    }
}

/// One site of the pair.
#[derive(Clone, Debug)]
pub struct IspnSiteOptions {
    /// This site's name, e.g. `site-a`.
    pub name: String,
    /// The other site's name: every cache backs up to it.
    pub remote_site: String,
    pub version: IspnVersion,
    pub user: String,
    pub password: String,
    pub caches: Vec<String>,
    /// How long a push-state stays `SENDING` before it ends.
    pub push_delay: Duration,
}

impl IspnSiteOptions {
    /// A site with Keycloak 26's caches, version 15 paths and the default push delay.
    pub fn new(name: &str, remote_site: &str, user: &str, password: &str) -> IspnSiteOptions {
        IspnSiteOptions {
            name: name.to_string(),
            remote_site: remote_site.to_string(),
            version: IspnVersion::default(),
            user: user.to_string(),
            password: password.to_string(),
            caches: KEYCLOAK_26_CACHES.map(String::from).to_vec(),
            push_delay: DEFAULT_PUSH_DELAY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IspnError {
    #[error("invalid Infinispan emulator options: {0}")]
    InvalidOptions(String),
    #[error("cannot listen on a loopback port: {0}")]
    Bind(#[from] std::io::Error),
}

/// A running site; its servers stop when it is dropped.
#[derive(Debug)]
pub struct IspnSite {
    name: String,
    port: u16,
    control_port: u16,
    tasks: Vec<AbortHandle>,
}

impl IspnSite {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The REST base URL, e.g. `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.url())
    }

    /// The test-only control API, plain HTTP, no auth.
    pub fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_port)
    }

    /// Stops both servers of this site (dropping does the same).
    pub fn shutdown(self) {}
}

impl Drop for IspnSite {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts both sites of a pair, sharing one link. `a.remote_site` must name `b` and the
/// reverse; both REST servers present `tls`.
pub async fn start_pair(
    a: IspnSiteOptions,
    b: IspnSiteOptions,
    tls: Arc<rustls::ServerConfig>,
) -> Result<(IspnSite, IspnSite), IspnError> {
    validate(&a, &b)?;
    let pair = Arc::new(Pair {
        state: Mutex::new(PairState::new([&a.name, &b.name], [&a.caches, &b.caches])),
        sites: [a, b],
    });
    let acceptor = TlsAcceptor::from(tls);
    let site_a = start_site(&pair, Side::A, &acceptor).await?;
    let site_b = start_site(&pair, Side::B, &acceptor).await?;
    Ok((site_a, site_b))
}

fn validate(a: &IspnSiteOptions, b: &IspnSiteOptions) -> Result<(), IspnError> {
    let invalid = |message: String| Err(IspnError::InvalidOptions(message));
    if a.name == b.name {
        return invalid(format!("both sites are named '{}'", a.name));
    }
    if a.remote_site != b.name || b.remote_site != a.name {
        return invalid(format!(
            "the sites must back up to each other: '{}' backs up to '{}', '{}' to '{}'",
            a.name, a.remote_site, b.name, b.remote_site
        ));
    }
    for site in [a, b] {
        if site.name.is_empty() || site.user.is_empty() {
            return invalid("site names and users must not be empty".to_string());
        }
        if site.user.contains(':') {
            return invalid(format!(
                "user '{}' of site '{}' contains ':', which Basic auth cannot carry",
                site.user, site.name
            ));
        }
        if site.caches.is_empty() {
            return invalid(format!("site '{}' has no caches", site.name));
        }
    }
    Ok(())
}

async fn start_site(
    pair: &Arc<Pair>,
    side: Side,
    acceptor: &TlsAcceptor,
) -> Result<IspnSite, IspnError> {
    let rest_listener = crate::net::bind_loopback().await?;
    let control_listener = crate::net::bind_loopback().await?;
    let port = rest_listener.local_addr()?.port();
    let control_port = control_listener.local_addr()?.port();

    let rest_pair = Arc::clone(pair);
    let rest = tokio::spawn(server::serve(
        rest_listener,
        Some(acceptor.clone()),
        move |request| rest::handle(Arc::clone(&rest_pair), side, request),
    ));
    let control_pair = Arc::clone(pair);
    let control = tokio::spawn(server::serve(control_listener, None, move |request| {
        control::handle(Arc::clone(&control_pair), side, request)
    }));

    let name = pair.site(side).name.clone();
    tracing::info!(site = %name, port, control_port, "Infinispan emulator listening");
    Ok(IspnSite {
        name,
        port,
        control_port,
        tasks: vec![rest.abort_handle(), control.abort_handle()],
    })
}

/// Both sites' settings and their shared state.
pub(crate) struct Pair {
    sites: [IspnSiteOptions; 2],
    state: Mutex<PairState>,
}

impl Pair {
    pub(crate) fn site(&self, side: Side) -> &IspnSiteOptions {
        &self.sites[side.index()]
    }

    /// The state lock is never held across an await, so a poisoned lock only means a panic in a
    /// test thread; the state is still consistent enough to keep serving.
    pub(crate) fn lock(&self) -> MutexGuard<'_, PairState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends each push after its site's push delay. The timers hold the pair weakly, so that a
    /// stopped pair is not kept alive by them.
    pub(crate) fn schedule_pushes(self: &Arc<Self>, tickets: Vec<PushTicket>) {
        for ticket in tickets {
            let delay = self.site(ticket.side).push_delay;
            let pair: Weak<Pair> = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(pair) = pair.upgrade() {
                    pair.lock().finish_push(&ticket);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(name: &str, remote: &str) -> IspnSiteOptions {
        IspnSiteOptions::new(name, remote, "admin", "pw")
    }

    #[test]
    fn sites_must_back_up_to_each_other() {
        let error =
            validate(&options("site-a", "site-b"), &options("site-b", "site-c")).unwrap_err();
        assert!(
            error.to_string().contains("back up to each other"),
            "{error}"
        );
        assert!(validate(&options("site-a", "site-b"), &options("site-b", "site-a")).is_ok());
    }

    #[test]
    fn same_name_twice_is_refused() {
        assert!(validate(&options("site-a", "site-a"), &options("site-a", "site-a")).is_err());
    }

    #[test]
    fn user_with_colon_is_refused() {
        let mut a = options("site-a", "site-b");
        a.user = "a:b".to_string();
        assert!(validate(&a, &options("site-b", "site-a")).is_err());
    }
}
