//! The HTTPS side of one site: `/rest/...` and `/metrics`.
//!
//! Order of checks, as in Infinispan's `RestRequestHandler`: the route is looked up first and a
//! request that matches no route (404), no method (405) or no action (400) is answered without
//! authentication; then Basic auth unless the route is anonymous (health status); then the
//! operation.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use http::Method;
use http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use super::server::{self, Reply, Request};
use super::state::{
    CacheError, ContainerBend, ContainerStatus, FaultEffect, Operation, Side, XSiteAction,
};
use super::{IspnVersion, Pair, metrics};

/// The realm of the server's default security realm, as the Basic challenge names it.
const BASIC_CHALLENGE: &str = "Basic realm=\"default\"";

/// The cache manager's name in `/rest/v2/cache-managers/{name}/...`.
const CACHE_MANAGER: &str = "default";

pub(crate) async fn handle(pair: Arc<Pair>, side: Side, request: Request) -> Reply {
    let (reply, span) = crate::timeline::timed(handle_call(&pair, side, request)).await;
    if let Some(span) = span {
        pair.lock().site_mut(side).calls.timeline.push(span);
    }
    reply
}

async fn handle_call(pair: &Arc<Pair>, side: Side, request: Request) -> Reply {
    let path = request.uri().path().to_string();
    if path == "/metrics" || path.starts_with("/metrics/") {
        return handle_metrics(pair, side, request.method());
    }
    let segments = server::segments(&path);
    if segments.first().map(String::as_str) != Some("rest") {
        return server::empty(404);
    }
    let action = server::query_param(request.uri().query(), "action");
    let version = pair.site(side).version;
    let lookup = lookup(version, request.method(), &segments[1..], action.as_deref());

    let latency = {
        let mut state = pair.lock();
        let name = lookup
            .as_ref()
            .map_or("unknown", |route| route.operation.name());
        state.record_call(side, name);
        state.site(side).latency
    };
    crate::net::added_latency(latency).await;
    if pair.lock().site(side).down {
        return server::text(503, "Service Unavailable");
    }

    let route = match lookup {
        Ok(route) => route,
        Err(Miss::NotFound) => return server::empty(404),
        Err(Miss::MethodNotAllowed) => return server::empty(405),
        Err(Miss::InvalidAction) => {
            return server::text(400, "Invalid 'action' parameter supplied");
        }
    };
    if !route.anonymous && !authenticated(pair, side, request.headers().get(AUTHORIZATION)) {
        let mut reply = server::empty(401);
        reply
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
        return reply;
    }

    let fault = pair.lock().take_fault(side, route.operation);
    let mut bend = ContainerBend::default();
    match fault {
        Some(FaultEffect::Status { status, message }) => return server::text(status, message),
        Some(FaultEffect::EmptyObject) => return server::json(200, &json!({})),
        Some(FaultEffect::NoContent) => return server::empty(204),
        Some(FaultEffect::CacheFailures(failures)) => bend.failures = failures,
        Some(FaultEffect::OmitCaches(caches)) => bend.omitted = caches,
        Some(FaultEffect::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    dispatch(pair, side, request.method(), route, &bend)
}

fn handle_metrics(pair: &Pair, side: Side, method: &Method) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        return server::empty(405);
    }
    let state = pair.lock();
    if state.site(side).down {
        return server::text(503, "Service Unavailable");
    }
    server::prometheus(metrics::render(&state, side))
}

fn authenticated(pair: &Pair, side: Side, header: Option<&HeaderValue>) -> bool {
    let Some(credentials) = header.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let Some((scheme, encoded)) = credentials.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return false;
    };
    let site = pair.site(side);
    // Both must match: the seed's `and` bug is exactly what this emulator must not repeat.
    user == site.user && password == site.password
}

/// A request that matched a route, with the path variables it carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    operation: Operation,
    anonymous: bool,
    cache: String,
    site: String,
    manager: String,
    key: String,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    NotFound,
    MethodNotAllowed,
    InvalidAction,
}

/// One handler of a resource: method, `?action=` (none for plain calls), operation.
type Invocation = (Method, Option<&'static str>, Operation);

/// Finds the route of `segments` (the path after `/rest`), the way Infinispan's resource tree
/// does: literal segments before variables, then method and action.
pub(crate) fn lookup(
    version: IspnVersion,
    method: &Method,
    segments: &[String],
    action: Option<&str>,
) -> Result<Route, Miss> {
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let v14 = version == IspnVersion::V14;
    let v15 = version == IspnVersion::V15;
    let mut route = Route {
        operation: Operation::Health,
        anonymous: false,
        cache: String::new(),
        site: String::new(),
        manager: CACHE_MANAGER.to_string(),
        key: String::new(),
    };
    let table: Vec<Invocation> = match segments.as_slice() {
        ["v2", "container", "x-site", "backups"] if v15 => container_status_table(),
        ["v2", "container", "x-site", "backups", site] if v15 => {
            route.site = site.to_string();
            container_site_table()
        }
        ["v2", "cache-managers", manager, "x-site", "backups"] if v14 => {
            route.manager = manager.to_string();
            container_status_table()
        }
        ["v2", "cache-managers", manager, "x-site", "backups", site] if v14 => {
            route.manager = manager.to_string();
            route.site = site.to_string();
            container_site_table()
        }
        ["v2", "cache-managers", manager, "health", "status"] => {
            route.manager = manager.to_string();
            route.anonymous = true;
            health_table()
        }
        ["v2", "container", "health", "status"] if v15 => {
            route.anonymous = true;
            health_table()
        }
        ["v2", "caches", cache, "x-site", "backups"] => {
            route.cache = cache.to_string();
            vec![
                (Method::GET, None, Operation::CacheStatus),
                (
                    Method::GET,
                    Some("push-state-status"),
                    Operation::CachePushStateStatus,
                ),
            ]
        }
        ["v2", "caches", cache, "x-site", "backups", site] => {
            route.cache = cache.to_string();
            route.site = site.to_string();
            let mut table = vec![(Method::GET, None, Operation::CacheSiteStatus)];
            table.extend(XSiteAction::ALL.map(|action| {
                (
                    Method::POST,
                    Some(action.as_str()),
                    Operation::Cache(action),
                )
            }));
            table
        }
        ["v2", "caches", cache, "x-site", "local"] => {
            route.cache = cache.to_string();
            vec![(
                Method::POST,
                Some("clear-push-state-status"),
                Operation::CacheClearPushStateStatus,
            )]
        }
        // `x-site` is a literal child of the cache: it wins over `{cacheKey}` and has no handler.
        ["v2", "caches", _, "x-site"] => return Err(Miss::NotFound),
        ["v2", "caches", cache] => {
            route.cache = cache.to_string();
            vec![
                (Method::POST, Some("clear"), Operation::CacheClear),
                (Method::GET, Some("size"), Operation::CacheSize),
            ]
        }
        ["v2", "caches", cache, key] => {
            route.cache = cache.to_string();
            route.key = key.to_string();
            vec![
                (Method::PUT, None, Operation::CachePut),
                (Method::POST, None, Operation::CachePut),
            ]
        }
        _ => return Err(Miss::NotFound),
    };
    if action == Some("") {
        return Err(Miss::InvalidAction);
    }
    if let Some((_, _, operation)) = table.iter().find(|(m, a, _)| m == method && *a == action) {
        route.operation = *operation;
        return Ok(route);
    }
    if table.iter().any(|(m, _, _)| m == method) {
        Err(Miss::InvalidAction)
    } else {
        Err(Miss::MethodNotAllowed)
    }
}

fn container_status_table() -> Vec<Invocation> {
    vec![(Method::GET, None, Operation::ContainerStatus)]
}

fn container_site_table() -> Vec<Invocation> {
    let mut table = vec![(Method::GET, None, Operation::ContainerSiteStatus)];
    table.extend(XSiteAction::ALL.map(|action| {
        (
            Method::POST,
            Some(action.as_str()),
            Operation::Container(action),
        )
    }));
    table
}

fn health_table() -> Vec<Invocation> {
    vec![
        (Method::GET, None, Operation::Health),
        (Method::HEAD, None, Operation::Health),
    ]
}

fn dispatch(
    pair: &Arc<Pair>,
    side: Side,
    method: &Method,
    route: Route,
    bend: &ContainerBend,
) -> Reply {
    // Infinispan 14 answers 404 for any cache manager but its own; so does the health check.
    if route.manager != CACHE_MANAGER {
        return server::empty(404);
    }
    let mut state = pair.lock();
    match route.operation {
        Operation::Container(action) => {
            let (results, tickets) = state.container_action(side, &route.site, action, bend);
            drop(state);
            pair.schedule_pushes(tickets);
            server::json(200, &json!(results))
        }
        Operation::ContainerStatus => {
            let statuses: BTreeMap<String, Value> = state
                .container_status(side)
                .iter()
                .map(|(site, status)| (site.clone(), container_status_json(status)))
                .collect();
            server::json(200, &json!(statuses))
        }
        Operation::ContainerSiteStatus => match state.container_status(side).get(&route.site) {
            Some(status) => server::json(200, &container_status_json(status)),
            None => server::empty(404),
        },
        Operation::Cache(action) => {
            match state.cache_action(side, &route.cache, &route.site, action) {
                Ok(ticket) => {
                    drop(state);
                    pair.schedule_pushes(ticket.into_iter().collect());
                    server::empty(200)
                }
                Err(error) => cache_error(&error),
            }
        }
        Operation::CacheStatus => {
            let Ok(cache) = state.cache(side, &route.cache) else {
                return cache_error(&CacheError::NoSuchCache(route.cache));
            };
            let remote = pair.site(side).remote_site.clone();
            server::json(200, &json!({ remote: { "status": cache.backup.as_str() } }))
        }
        Operation::CacheSiteStatus => {
            if let Err(error) = state.check_backup(side, &route.cache, &route.site) {
                return cache_error(&error);
            }
            match state.cache(side, &route.cache) {
                Ok(cache) => {
                    let node = format!("{}-infinispan-0", pair.site(side).name);
                    server::json(200, &json!({ node: cache.backup.as_str() }))
                }
                Err(error) => cache_error(&error),
            }
        }
        Operation::CachePushStateStatus => match state.push_status(side, &route.cache) {
            Ok((site, status)) => server::json(200, &json!({ site: status.as_str() })),
            Err(error) => cache_error(&error),
        },
        Operation::CacheClearPushStateStatus => match state.clear_push_status(side, &route.cache) {
            // Infinispan serialises the operation's result, the string "ok", as JSON.
            Ok(()) => server::json(200, &json!("ok")),
            Err(error) => cache_error(&error),
        },
        Operation::CacheClear => match state.clear(side, &route.cache) {
            Ok(()) => server::empty(204),
            Err(error) => cache_error(&error),
        },
        Operation::CacheSize => match state.cache(side, &route.cache) {
            Ok(cache) => server::json(200, &json!(cache.entries.len())),
            Err(error) => cache_error(&error),
        },
        Operation::CachePut => match state.put(side, &route.cache, &route.key) {
            Ok(()) => server::empty(204),
            Err(error) => cache_error(&error),
        },
        Operation::Health => {
            if method == Method::HEAD {
                server::empty(200)
            } else {
                server::text(200, "HEALTHY")
            }
        }
    }
}

fn cache_error(error: &CacheError) -> Reply {
    server::text(error.status(), error.message())
}

/// `GlobalStatus.toJson`: the lists appear only when the status is mixed.
fn container_status_json(status: &ContainerStatus) -> Value {
    match status {
        ContainerStatus::Online => json!({ "status": "online" }),
        ContainerStatus::Offline => json!({ "status": "offline" }),
        ContainerStatus::Mixed { online, offline } => json!({
            "status": "mixed",
            "online": online,
            "offline": offline,
            "mixed": [],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(
        version: IspnVersion,
        method: Method,
        path: &str,
        action: Option<&str>,
    ) -> Result<Operation, Miss> {
        let segments = server::segments(path);
        lookup(version, &method, &segments, action).map(|route| route.operation)
    }

    #[test]
    fn container_paths_depend_on_version() {
        let take_offline = Ok(Operation::Container(XSiteAction::TakeOffline));
        let v15_path = "/v2/container/x-site/backups/site-b";
        let v14_path = "/v2/cache-managers/default/x-site/backups/site-b";
        assert_eq!(
            find(
                IspnVersion::V15,
                Method::POST,
                v15_path,
                Some("take-offline")
            ),
            take_offline
        );
        assert_eq!(
            find(
                IspnVersion::V14,
                Method::POST,
                v14_path,
                Some("take-offline")
            ),
            take_offline
        );
        assert_eq!(
            find(
                IspnVersion::V14,
                Method::POST,
                v15_path,
                Some("take-offline")
            ),
            Err(Miss::NotFound)
        );
        assert_eq!(
            find(
                IspnVersion::V15,
                Method::POST,
                v14_path,
                Some("take-offline")
            ),
            Err(Miss::NotFound)
        );
    }

    #[test]
    fn trailing_slash_is_irrelevant() {
        for path in [
            "/v2/caches/work/x-site/backups",
            "/v2/caches/work/x-site/backups/",
        ] {
            assert_eq!(
                find(IspnVersion::V15, Method::GET, path, None),
                Ok(Operation::CacheStatus)
            );
        }
    }

    #[test]
    fn wrong_method_and_wrong_action_differ() {
        let path = "/v2/caches/work/x-site/backups/site-b";
        assert_eq!(
            find(IspnVersion::V15, Method::DELETE, path, None),
            Err(Miss::MethodNotAllowed)
        );
        assert_eq!(
            find(IspnVersion::V15, Method::POST, path, Some("explode")),
            Err(Miss::InvalidAction)
        );
        assert_eq!(
            find(IspnVersion::V15, Method::POST, path, None),
            Err(Miss::InvalidAction)
        );
        assert_eq!(
            find(IspnVersion::V15, Method::POST, path, Some("")),
            Err(Miss::InvalidAction)
        );
    }

    #[test]
    fn x_site_is_not_a_cache_key() {
        assert_eq!(
            find(
                IspnVersion::V15,
                Method::PUT,
                "/v2/caches/work/x-site",
                None
            ),
            Err(Miss::NotFound)
        );
        assert_eq!(
            find(IspnVersion::V15, Method::PUT, "/v2/caches/work/k1", None),
            Ok(Operation::CachePut)
        );
    }

    #[test]
    fn health_status_is_anonymous_on_both_versions() {
        for version in [IspnVersion::V14, IspnVersion::V15] {
            let segments = server::segments("/v2/cache-managers/default/health/status");
            let route = lookup(version, &Method::GET, &segments, None).unwrap();
            assert!(route.anonymous);
        }
    }

    #[test]
    fn mixed_status_lists_caches_and_plain_status_does_not() {
        assert_eq!(
            container_status_json(&ContainerStatus::Online),
            json!({"status": "online"})
        );
        let mixed = ContainerStatus::Mixed {
            online: vec!["work".to_string()],
            offline: vec!["actionTokens".to_string()],
        };
        assert_eq!(
            container_status_json(&mixed),
            json!({"status": "mixed", "online": ["work"], "offline": ["actionTokens"], "mixed": []})
        );
    }
}
