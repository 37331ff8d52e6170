//! The route table of `docs/DESIGN.md`: path prefix + host kind + auth mode → upstream.

/// Which hosts a route is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Apex,
    Tenant,
    Any,
}

/// How a route is authenticated at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Public,
    Jwt,
    /// A signed grant in the query, verified by the upstream (share pages).
    Grant,
    /// An event stream: a bearer token is verified at the edge as on [`AuthMode::Jwt`];
    /// without one, the single-use ticket in the query is redeemed by the upstream.
    Ticket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    TenantResolver,
    UserService,
    ProjectService,
    UrlShortener,
    Analytics,
    Notifications,
}

impl Upstream {
    pub const ALL: [Self; 6] = [
        Self::TenantResolver,
        Self::UserService,
        Self::ProjectService,
        Self::UrlShortener,
        Self::Analytics,
        Self::Notifications,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::TenantResolver => "tenant-resolver",
            Self::UserService => "user-service",
            Self::ProjectService => "project-service",
            Self::UrlShortener => "url-shortener",
            Self::Analytics => "analytics-service",
            Self::Notifications => "notification-service",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub prefix: &'static str,
    pub host: HostKind,
    pub auth: AuthMode,
    pub upstream: Upstream,
    /// Whether the per-address limit applies (public routes worth throttling).
    pub limit_by_ip: bool,
    /// A long-lived event stream: served by hyper (never the fast lane), unbuffered,
    /// outside the request timeout, and counted against the open-stream limits.
    pub stream: bool,
}

const fn route(prefix: &'static str, host: HostKind, auth: AuthMode, upstream: Upstream) -> Route {
    Route {
        prefix,
        host,
        auth,
        upstream,
        limit_by_ip: matches!(auth, AuthMode::Public | AuthMode::Ticket),
        stream: false,
    }
}

const fn stream(prefix: &'static str, auth: AuthMode) -> Route {
    Route {
        stream: true,
        ..route(prefix, HostKind::Tenant, auth, Upstream::Notifications)
    }
}

/// The contract's table. `/internal/...` is deliberately absent: never routed.
pub const TABLE: [Route; 19] = [
    route(
        "/api/v1/tenants",
        HostKind::Apex,
        AuthMode::Public,
        Upstream::TenantResolver,
    ),
    route(
        "/api/v1/tenant",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::TenantResolver,
    ),
    route(
        "/api/v1/auth",
        HostKind::Tenant,
        AuthMode::Public,
        Upstream::UserService,
    ),
    route(
        "/api/v1/users",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::UserService,
    ),
    route(
        "/api/v1/invites",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::UserService,
    ),
    // Key reads are cheap and cached by every verifier; not throttled per address.
    Route {
        prefix: "/.well-known/jwks.json",
        host: HostKind::Any,
        auth: AuthMode::Public,
        upstream: Upstream::UserService,
        limit_by_ip: false,
        stream: false,
    },
    route(
        "/api/v1/projects",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::ProjectService,
    ),
    route(
        "/api/v1/tasks",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::ProjectService,
    ),
    route(
        "/shared/tasks",
        HostKind::Tenant,
        AuthMode::Grant,
        Upstream::ProjectService,
    ),
    route(
        "/shared/projects",
        HostKind::Tenant,
        AuthMode::Grant,
        Upstream::ProjectService,
    ),
    route(
        "/api/v1/links",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::UrlShortener,
    ),
    route(
        "/s",
        HostKind::Any,
        AuthMode::Public,
        Upstream::UrlShortener,
    ),
    route(
        "/api/v1/analytics",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::Analytics,
    ),
    route(
        "/api/v1/notifications",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::Notifications,
    ),
    // Mails' unsubscribe links: the signed token is the permission (checked upstream),
    // and links point at the public URL, so any host.
    route(
        "/api/v1/notifications/unsubscribe",
        HostKind::Any,
        AuthMode::Public,
        Upstream::Notifications,
    ),
    // The live stream: a bearer token, or a ticket (EventSource cannot send headers).
    stream("/api/v1/stream", AuthMode::Ticket),
    route(
        "/api/v1/stream/tickets",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::Notifications,
    ),
    // A share page's stream, authorised by the page's grant (checked upstream).
    stream("/api/v1/stream/shared", AuthMode::Grant),
    route(
        "/api/v1/webhooks",
        HostKind::Tenant,
        AuthMode::Jwt,
        Upstream::Notifications,
    ),
];

/// The longest prefix that matches `path` on a segment boundary.
pub fn find(path: &str) -> Option<&'static Route> {
    TABLE
        .iter()
        .filter(|r| {
            path.strip_prefix(r.prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|r| r.prefix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert_eq!(
            find("/api/v1/tenant").unwrap().upstream,
            Upstream::TenantResolver
        );
        assert_eq!(find("/api/v1/tenants").unwrap().host, HostKind::Apex);
        assert_eq!(
            find("/api/v1/tasks/1/move").unwrap().upstream,
            Upstream::ProjectService
        );
        assert_eq!(
            find("/s/abc12345").unwrap().upstream,
            Upstream::UrlShortener
        );
        assert_eq!(
            find("/api/v1/notifications/unsubscribe").unwrap().auth,
            AuthMode::Public
        );
        assert_eq!(
            find("/api/v1/notifications/1/read").unwrap().auth,
            AuthMode::Jwt
        );
        let stream = find("/api/v1/stream").unwrap();
        assert!(stream.stream && stream.auth == AuthMode::Ticket);
        assert_eq!(find("/api/v1/stream/tickets").unwrap().auth, AuthMode::Jwt);
        assert!(!find("/api/v1/stream/tickets").unwrap().stream);
        assert_eq!(find("/api/v1/stream/shared").unwrap().auth, AuthMode::Grant);
        assert!(find("/api/v1/streams").is_none());
        assert!(find("/sx").is_none());
        assert!(find("/api/v1/tasksx").is_none());
        assert!(
            find("/internal/tenants/by-slug/acme").is_none(),
            "internal endpoints are never routed"
        );
    }
}
