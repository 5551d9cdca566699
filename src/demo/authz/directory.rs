//! Who may log in, and what each may be granted: the users, groups, roles and clients the
//! seed's Authorization Extension sets up (group Employees → role Employee, group Managers →
//! role Manager). Everything here is public demo data, never real credentials.

use crate::demo::API_AUDIENCE;

/// Every scope the Timesheets API defines; anything else in a request is `invalid_scope`.
pub const API_SCOPES: [&str; 5] = [
    "read:timesheets",
    "create:timesheets",
    "delete:timesheets",
    "approve:timesheets",
    "batch:upload",
];

/// The one-time code of every demo user's second factor (`acr_values=mfa`). Public on
/// purpose, like the passwords: this server is for demos and tests only.
pub const DEMO_ONE_TIME_CODE: &str = "123456";

/// The public client of the mobile app (authorization code with PKCE, refresh tokens).
pub const MOBILE_CLIENT_ID: &str = "timesheets-mobile";
/// Where the mobile app receives its authorization code (a private-use URI scheme, RFC 8252).
pub const MOBILE_REDIRECT_URI: &str = "com.exampleco.timesheets://callback";
/// The confidential back-office client (client credentials).
pub const BATCH_CLIENT_ID: &str = "timesheets-batch";
/// The batch client's secret. Public on purpose: this server is for demos and tests only.
pub const BATCH_CLIENT_SECRET: &str = "timesheets-batch-demo-secret";
/// The resource server's client: the demo gateway, which introspects opaque tokens
/// (RFC 7662) and may revoke any token (RFC 7009). It is never issued a token itself.
pub const RESOURCE_SERVER_CLIENT_ID: &str = "scopegate";
/// The resource server's secret. Public on purpose: this server is for demos and tests only.
pub const RESOURCE_SERVER_CLIENT_SECRET: &str = "scopegate-demo-introspection-secret";

/// A user who can log in.
#[derive(Debug, PartialEq, Eq)]
pub struct User {
    /// Short login name, e.g. `alice`.
    pub username: &'static str,
    /// Email, also accepted as the login name; copied into the email claim.
    pub email: &'static str,
    password: &'static str,
    /// `sub`, shaped like Auth0's database-connection ids.
    pub subject: &'static str,
    /// Group memberships; roles come from the groups.
    pub groups: &'static [&'static str],
}

struct Group {
    name: &'static str,
    roles: &'static [&'static str],
}

struct Role {
    name: &'static str,
    permissions: &'static [&'static str],
}

static USERS: [User; 2] = [
    User {
        username: "alice",
        email: "alice@exampleco.com",
        password: "alice",
        subject: "auth0|alice",
        groups: &["Employees"],
    },
    User {
        username: "bob",
        email: "bob@exampleco.com",
        password: "bob",
        subject: "auth0|bob",
        groups: &["Managers"],
    },
];

static GROUPS: [Group; 2] = [
    Group {
        name: "Employees",
        roles: &["Employee"],
    },
    Group {
        name: "Managers",
        roles: &["Manager"],
    },
];

static ROLES: [Role; 2] = [
    Role {
        name: "Employee",
        permissions: &["read:timesheets", "create:timesheets", "delete:timesheets"],
    },
    Role {
        name: "Manager",
        permissions: &[
            "read:timesheets",
            "create:timesheets",
            "delete:timesheets",
            "approve:timesheets",
        ],
    },
];

impl User {
    /// The user's roles, through their groups.
    pub fn roles(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.groups
            .iter()
            .filter_map(|g| GROUPS.iter().find(|group| group.name == *g))
            .flat_map(|group| group.roles.iter().copied())
    }

    /// Whether any of the user's roles carries `scope`.
    pub fn permits(&self, scope: &str) -> bool {
        self.roles()
            .filter_map(|r| ROLES.iter().find(|role| role.name == r))
            .any(|role| role.permissions.contains(&scope))
    }

    /// The requested scopes this user's roles permit; never more than was asked for.
    pub fn grantable(&self, requested: &[&'static str]) -> Vec<&'static str> {
        requested
            .iter()
            .copied()
            .filter(|s| self.permits(s))
            .collect()
    }
}

/// The user with this login name (`alice`) or email (any case), if the password is right.
pub fn authenticate(login: &str, password: &str) -> Option<&'static User> {
    let user = USERS
        .iter()
        .find(|u| u.username == login || u.email.eq_ignore_ascii_case(login))?;
    constant_time_eq(user.password, password).then_some(user)
}

/// The user with this subject.
pub fn user_by_subject(subject: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.subject == subject)
}

/// How a client proves who it is, and what it may do.
#[derive(Debug)]
pub enum ClientKind {
    /// A native app: no secret; authorization code with PKCE to these exact redirect URIs.
    Public {
        /// Registered redirect URIs, compared exactly.
        redirect_uris: &'static [&'static str],
    },
    /// A server-side client: client credentials with a secret.
    Confidential {
        /// The client secret.
        secret: &'static str,
        /// Scopes the client may be granted (Auth0's client grant).
        scopes: &'static [&'static str],
    },
    /// A resource server: authenticates with a secret to introspect and revoke tokens, and
    /// is granted none.
    ResourceServer {
        /// The client secret.
        secret: &'static str,
    },
}

/// A registered client.
#[derive(Debug)]
pub struct Client {
    /// `client_id`.
    pub id: &'static str,
    /// Public or confidential.
    pub kind: ClientKind,
}

static CLIENTS: [Client; 3] = [
    Client {
        id: MOBILE_CLIENT_ID,
        kind: ClientKind::Public {
            redirect_uris: &[MOBILE_REDIRECT_URI],
        },
    },
    Client {
        id: BATCH_CLIENT_ID,
        kind: ClientKind::Confidential {
            secret: BATCH_CLIENT_SECRET,
            scopes: &["batch:upload"],
        },
    },
    Client {
        id: RESOURCE_SERVER_CLIENT_ID,
        kind: ClientKind::ResourceServer {
            secret: RESOURCE_SERVER_CLIENT_SECRET,
        },
    },
];

/// The client with this id.
pub fn client(id: &str) -> Option<&'static Client> {
    CLIENTS.iter().find(|c| c.id == id)
}

impl Client {
    /// The registered redirect URI equal to `uri`, if any (exact match, RFC 9700 §4.1.3).
    pub fn redirect_uri(&self, uri: &str) -> Option<&'static str> {
        match &self.kind {
            ClientKind::Public { redirect_uris } => {
                redirect_uris.iter().copied().find(|r| *r == uri)
            }
            ClientKind::Confidential { .. } | ClientKind::ResourceServer { .. } => None,
        }
    }

    /// Whether `secret` is this client's secret; compared in constant time. A public client
    /// has none.
    pub fn secret_matches(&self, secret: &str) -> bool {
        match &self.kind {
            ClientKind::Confidential { secret: s, .. }
            | ClientKind::ResourceServer { secret: s } => constant_time_eq(s, secret),
            ClientKind::Public { .. } => false,
        }
    }

    /// Whether the client has a secret to authenticate with.
    pub fn is_confidential(&self) -> bool {
        match &self.kind {
            ClientKind::Confidential { .. } | ClientKind::ResourceServer { .. } => true,
            ClientKind::Public { .. } => false,
        }
    }
}

/// Parses a `scope` parameter (RFC 6749 §3.3: space-delimited) into the API's scopes, in
/// the API's order, without duplicates. Fails on an empty list or a scope the API does not
/// define; the message names it (bounded, since it echoes client input).
pub fn parse_scope(scope: &str) -> Result<Vec<&'static str>, String> {
    let mut wanted = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        match API_SCOPES.iter().find(|known| **known == s) {
            Some(known) => wanted.push(*known),
            None => {
                let shown: String = s.chars().take(64).collect();
                return Err(format!(
                    "\"{shown}\" is not a scope of {API_AUDIENCE} (known: {})",
                    API_SCOPES.join(" ")
                ));
            }
        }
    }
    if wanted.is_empty() {
        return Err(format!(
            "name the scopes you need, from: {}",
            API_SCOPES.join(" ")
        ));
    }
    Ok(API_SCOPES
        .iter()
        .copied()
        .filter(|s| wanted.contains(s))
        .collect())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn employees_may_not_approve_and_managers_may() {
        let alice = authenticate("alice", "alice").unwrap();
        let bob = authenticate("bob@exampleco.com", "bob").unwrap();
        assert_eq!(alice.roles().collect::<Vec<_>>(), ["Employee"]);
        assert_eq!(bob.roles().collect::<Vec<_>>(), ["Manager"]);
        assert!(alice.permits("delete:timesheets"));
        assert!(!alice.permits("approve:timesheets"));
        assert!(bob.permits("approve:timesheets"));
        assert!(
            !bob.permits("batch:upload"),
            "batch upload is for the batch client only"
        );
    }

    #[test]
    fn a_user_is_granted_only_requested_scopes_their_roles_permit() {
        let alice = authenticate("Alice@ExampleCo.com", "alice").unwrap();
        let asked = parse_scope("approve:timesheets read:timesheets").unwrap();
        assert_eq!(alice.grantable(&asked), ["read:timesheets"]);
        assert!(alice.grantable(&["approve:timesheets"]).is_empty());
    }

    #[test]
    fn wrong_passwords_and_unknown_users_do_not_authenticate() {
        assert!(authenticate("alice", "bob").is_none());
        assert!(authenticate("alice", "").is_none());
        assert!(authenticate("mallory", "mallory").is_none());
    }

    #[test]
    fn scopes_parse_in_api_order_without_duplicates_and_unknown_ones_fail() {
        assert_eq!(
            parse_scope(" create:timesheets read:timesheets  create:timesheets").unwrap(),
            ["read:timesheets", "create:timesheets"]
        );
        assert!(
            parse_scope("read:timesheets openid")
                .unwrap_err()
                .contains("openid")
        );
        assert!(parse_scope("read:timesheets_extra").is_err());
        assert!(parse_scope("  ").is_err());
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let mobile = client(MOBILE_CLIENT_ID).unwrap();
        assert!(mobile.redirect_uri(MOBILE_REDIRECT_URI).is_some());
        assert!(
            mobile
                .redirect_uri("com.exampleco.timesheets://callback/")
                .is_none()
        );
        assert!(
            client(BATCH_CLIENT_ID)
                .unwrap()
                .secret_matches(BATCH_CLIENT_SECRET)
        );
        assert!(!mobile.secret_matches(""));
    }
}
