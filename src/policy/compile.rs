//! Policy file → [`Policy`], reporting every problem at once with its location.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use serde_saphyr::Spanned;

use super::file::{
    AuthenticationEntry, ClaimEntry, ClaimName, IntrospectFile, PolicyFile, RouteEntry, SpannedList,
};
use super::{
    Alternative, ClaimCondition, ClaimPath, ClaimTest, Introspect, METHODS, Policy, Requirement,
    Route, StepUp, TokenRequirement,
};
use crate::auth::RouteAuth;
use crate::auth::identity::ConditionClaims;
use crate::ground::Pos;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file, as given.
    pub file: String,
    /// Where the problem is.
    pub pos: Pos,
    /// YAML path of the offending value, e.g. `routes[2].methods[0]`.
    pub yaml_path: String,
    /// The route's id, when the problem is inside a route.
    pub route: Option<String>,
    /// What is wrong, with a hint.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.pos.line > 0 {
            write!(f, ":{}:{}", self.pos.line, self.pos.column)?;
        }
        write!(f, ": ")?;
        if !self.yaml_path.is_empty() {
            write!(f, "{}", self.yaml_path)?;
            if let Some(route) = &self.route {
                write!(f, " (route \"{route}\")")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Reads and compiles a policy file.
pub fn load(path: &Path) -> Result<Policy, Vec<PolicyError>> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => compile(&bytes, &file),
        Err(e) => Err(vec![PolicyError {
            file,
            pos: Pos::default(),
            yaml_path: String::new(),
            route: None,
            message: format!("cannot read the file: {e}"),
        }]),
    }
}

/// Compiles policy text; `file` names it in errors.
pub fn compile(bytes: &[u8], file: &str) -> Result<Policy, Vec<PolicyError>> {
    let mut errors = Errors {
        file,
        list: Vec::new(),
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            errors.push(Pos::default(), "", None, "the file is not UTF-8".into());
            return Err(errors.list);
        }
    };
    let parsed: PolicyFile = match serde_saphyr::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    column: l.column(),
                })
                .unwrap_or_default();
            errors.push(pos, "", None, crate::ground::located::message(&e));
            return Err(errors.list);
        }
    };
    if parsed.version.value != 1 {
        errors.push(
            Pos::of(&parsed.version),
            "version",
            None,
            format!("unsupported version {} (expected 1)", parsed.version.value),
        );
    }

    let dry_run = parsed.dry_run.as_ref().is_some_and(|d| d.value);
    let mut routes = Vec::with_capacity(parsed.routes.len());
    let mut templates = Vec::with_capacity(parsed.routes.len());
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, entry) in parsed.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let r = &entry.value;
        let id = r.id.value.clone();
        let route_name = Some(id.as_str());
        if !valid_id(&id) {
            errors.push(
                Pos::of(&r.id),
                &format!("{at}.id"),
                None,
                format!("\"{id}\" is not a route id (use letters, digits, '-', '_', '.')"),
            );
        }
        if let Some(first) = ids.insert(id.clone(), i) {
            errors.push(
                Pos::of(&r.id),
                &format!("{at}.id"),
                route_name,
                format!("duplicate id, first used by routes[{first}]"),
            );
        }
        let methods = compile_methods(r, &at, &mut errors);
        let template = compile_template(r, &at, &mut errors);
        let requirement = compile_requirement(r, &at, &mut errors);
        if let (Some(dpop), Some(true)) = (&r.dpop, r.public.as_ref().map(|p| p.value)) {
            errors.push(
                Pos::of(dpop),
                &format!("{at}.dpop"),
                route_name,
                "a public route reads no token, so no DPoP proof: remove one of the two".into(),
            );
        }
        if let (Some(template), Some(requirement)) = (template, requirement) {
            let names = methods.iter().map(|&m| METHODS[m]).collect();
            templates.push((i, methods, template.clone()));
            routes.push(Route {
                id: Arc::from(id.as_str()),
                template: r.path.value.clone(),
                methods: names,
                requirement,
                auth: RouteAuth {
                    introspect: match r.introspect.as_ref().map(|i| i.value) {
                        Some(IntrospectFile::Always) => Introspect::Always,
                        None => Introspect::Opaque,
                    },
                    dpop: r.dpop.as_ref().map(|d| d.value).unwrap_or_default(),
                },
                dry_run: r.dry_run.as_ref().map_or(dry_run, |d| d.value),
                pos: Pos::of(entry),
            });
        }
    }
    // Indices into `routes` may lag behind file indices when a route failed to compile;
    // overlap checks are only meaningful on a fully valid file.
    if !errors.list.is_empty() {
        return Err(errors.list);
    }
    check_overlaps(&parsed.routes, &templates, &mut errors);
    if !errors.list.is_empty() {
        return Err(errors.list);
    }

    let mut routers: Vec<Option<matchit::Router<usize>>> = vec![None; METHODS.len()];
    for (index, methods, _) in &templates {
        for &m in methods {
            let router = routers[m].get_or_insert_with(matchit::Router::new);
            if let Err(e) = router.insert(routes[*index].template.clone(), *index) {
                // The overlap check runs first, so this is a template matchit reads
                // differently from us; report it rather than guess.
                errors.push(
                    routes[*index].pos,
                    &format!("routes[{index}].path"),
                    Some(&routes[*index].id),
                    format!("cannot be routed: {e}"),
                );
            }
        }
    }
    if !errors.list.is_empty() {
        return Err(errors.list);
    }
    let conditions = ConditionClaims::new(routes.iter().flat_map(|r| {
        match &r.requirement {
            Requirement::Token(t) => t
                .any_of
                .iter()
                .flat_map(|a| a.claims.iter().map(|c| c.claim.segments[0].as_str()))
                .collect(),
            Requirement::Public => Vec::new(),
        }
    }));
    Ok(Policy {
        routes,
        routers,
        hash: hex(&Sha256::digest(bytes)),
        dry_run,
        conditions,
    })
}

struct Errors<'a> {
    file: &'a str,
    list: Vec<PolicyError>,
}

impl Errors<'_> {
    fn push(&mut self, pos: Pos, yaml_path: &str, route: Option<&str>, message: String) {
        self.list.push(PolicyError {
            file: self.file.to_owned(),
            pos,
            yaml_path: yaml_path.to_owned(),
            route: route.map(str::to_owned),
            message,
        });
    }
}

fn compile_methods(r: &RouteEntry, at: &str, errors: &mut Errors) -> Vec<usize> {
    let id = Some(r.id.value.as_str());
    let mut out = BTreeSet::new();
    if r.methods.value.is_empty() {
        errors.push(
            Pos::of(&r.methods),
            &format!("{at}.methods"),
            id,
            "name at least one method".into(),
        );
    }
    for (j, m) in r.methods.value.iter().enumerate() {
        match METHODS.iter().position(|k| *k == m.value) {
            Some(k) => {
                if !out.insert(k) {
                    errors.push(
                        Pos::of(m),
                        &format!("{at}.methods[{j}]"),
                        id,
                        format!("method \"{}\" is listed twice", m.value),
                    );
                }
            }
            None => errors.push(
                Pos::of(m),
                &format!("{at}.methods[{j}]"),
                id,
                format!(
                    "unknown method \"{}\" (expected {})",
                    m.value,
                    METHODS.join(", ")
                ),
            ),
        }
    }
    out.into_iter().collect()
}

/// A path template, segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Static(String),
    Param,
    CatchAll,
}

fn compile_template(r: &RouteEntry, at: &str, errors: &mut Errors) -> Option<Vec<Segment>> {
    let id = Some(r.id.value.as_str());
    let path = &r.path.value;
    let fail = |errors: &mut Errors, message: String| {
        errors.push(Pos::of(&r.path), &format!("{at}.path"), id, message);
        None
    };
    if !path.starts_with('/') {
        return fail(errors, format!("\"{path}\" must start with '/'"));
    }
    if path == "/" {
        return Some(vec![]);
    }
    let parts: Vec<&str> = path[1..].split('/').collect();
    let mut segments = Vec::with_capacity(parts.len());
    let mut names = BTreeSet::new();
    for (k, part) in parts.iter().enumerate() {
        let last = k + 1 == parts.len();
        if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let (catch_all, name) = match inner.strip_prefix('*') {
                Some(name) => (true, name),
                None => (false, inner),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return fail(errors, format!("\"{part}\" is not a parameter name"));
            }
            if !names.insert(name) {
                return fail(errors, format!("parameter \"{name}\" is used twice"));
            }
            if catch_all && !last {
                return fail(
                    errors,
                    format!("\"{part}\" must be the last segment (it takes the rest of the path)"),
                );
            }
            segments.push(if catch_all {
                Segment::CatchAll
            } else {
                Segment::Param
            });
        } else if part.contains(['{', '}']) {
            return fail(
                errors,
                format!("\"{part}\": a parameter must be a whole segment, like {{id}}"),
            );
        } else if part.is_empty() && !last {
            return fail(
                errors,
                "empty segment ('//'): requests never have one".into(),
            );
        } else if *part == "." || *part == ".." {
            return fail(errors, "dot segments never reach the policy".into());
        } else {
            match crate::ground::path::normalize(&format!("/{part}")) {
                Ok(n) if n == format!("/{part}") || part.is_empty() => {
                    segments.push(Segment::Static(part.to_string()))
                }
                _ => {
                    return fail(
                        errors,
                        format!("\"{part}\" is not in normalized form (see README, Paths)"),
                    );
                }
            }
        }
    }
    Some(segments)
}

fn compile_requirement(r: &RouteEntry, at: &str, errors: &mut Errors) -> Option<Requirement> {
    let id = Some(r.id.value.as_str());
    let public = r.public.as_ref().map(|p| p.value).unwrap_or(false);
    if public {
        let asked = [
            ("scopes", r.scopes.as_ref().map(Pos::of)),
            ("claims", r.claims.as_ref().map(Pos::of)),
            ("any_of", r.any_of.as_ref().map(Pos::of)),
            ("authentication", r.authentication.as_ref().map(Pos::of)),
        ];
        let mut clean = true;
        for (key, pos) in asked {
            if let Some(pos) = pos {
                clean = false;
                errors.push(
                    pos,
                    &format!("{at}.{key}"),
                    id,
                    format!("a public route takes no {key}: remove one of the two"),
                );
            }
        }
        return clean.then_some(Requirement::Public);
    }
    let direct = r.scopes.is_some() || r.claims.is_some();
    let any_of = match (&r.any_of, direct) {
        (Some(list), false) => {
            if list.value.is_empty() {
                errors.push(
                    Pos::of(list),
                    &format!("{at}.any_of"),
                    id,
                    "list at least one requirement set".into(),
                );
                None
            } else {
                let compiled: Vec<Option<Alternative>> = list
                    .value
                    .iter()
                    .enumerate()
                    .map(|(k, alt)| {
                        let where_ = Place {
                            pos: Pos::of(alt),
                            at: format!("{at}.any_of[{k}]"),
                            id,
                        };
                        compile_alternative(
                            alt.value.scopes.as_ref(),
                            alt.value.claims.as_ref(),
                            &where_,
                            errors,
                        )
                    })
                    .collect();
                compiled.into_iter().collect::<Option<Vec<_>>>()
            }
        }
        (Some(list), true) => {
            errors.push(
                Pos::of(list),
                &format!("{at}.any_of"),
                id,
                "give any_of or scopes/claims, not both (move them into an alternative)".into(),
            );
            None
        }
        (None, true) => {
            let where_ = Place {
                pos: Pos::of(&r.id),
                at: at.to_owned(),
                id,
            };
            compile_alternative(r.scopes.as_ref(), r.claims.as_ref(), &where_, errors)
                .map(|a| vec![a])
        }
        (None, false) => {
            errors.push(
                Pos::of(&r.id),
                at,
                id,
                "say what the route requires: scopes: [...], claims: [...], any_of: [...] or public: true".into(),
            );
            None
        }
    };
    let authentication = match &r.authentication {
        None => Some(None),
        Some(a) => compile_authentication(a, &format!("{at}.authentication"), id, errors).map(Some),
    };
    Some(Requirement::Token(TokenRequirement {
        any_of: any_of?,
        authentication: authentication?,
    }))
}

/// Where a requirement set is written, for its errors.
struct Place<'a> {
    pos: Pos,
    at: String,
    id: Option<&'a str>,
}

fn compile_alternative(
    scopes: Option<&SpannedList<String>>,
    claims: Option<&SpannedList<ClaimEntry>>,
    place: &Place,
    errors: &mut Errors,
) -> Option<Alternative> {
    let (at, id) = (place.at.as_str(), place.id);
    if scopes.is_none() && claims.is_none() {
        errors.push(place.pos, at, id, "name scopes, claims or both".into());
        return None;
    }
    let mut ok = true;
    let mut all = Vec::new();
    if let Some(scopes) = scopes {
        if scopes.value.is_empty() {
            ok = false;
            errors.push(
                Pos::of(scopes),
                &format!("{at}.scopes"),
                id,
                "name at least one scope, or set public: true".into(),
            );
        }
        for (j, s) in scopes.value.iter().enumerate() {
            if !valid_scope(&s.value) {
                ok = false;
                errors.push(
                    Pos::of(s),
                    &format!("{at}.scopes[{j}]"),
                    id,
                    format!("\"{}\" is not a scope token (RFC 6749 §3.3)", s.value),
                );
            } else if !all.contains(&s.value) {
                all.push(s.value.clone());
            }
        }
    }
    let mut conditions = Vec::new();
    if let Some(claims) = claims {
        if claims.value.is_empty() {
            ok = false;
            errors.push(
                Pos::of(claims),
                &format!("{at}.claims"),
                id,
                "name at least one claim condition, or leave claims out".into(),
            );
        }
        for (j, c) in claims.value.iter().enumerate() {
            match compile_claim(c, &format!("{at}.claims[{j}]"), id, errors) {
                Some(condition) => conditions.push(condition),
                None => ok = false,
            }
        }
    }
    ok.then(|| Alternative {
        joined: all.join(" "),
        scopes: all,
        claims: conditions,
    })
}

fn compile_claim(
    entry: &Spanned<ClaimEntry>,
    at: &str,
    id: Option<&str>,
    errors: &mut Errors,
) -> Option<ClaimCondition> {
    let c = &entry.value;
    let segments = match &c.claim.value {
        ClaimName::Name(name) => vec![name.clone()],
        ClaimName::Path(names) => names.clone(),
    };
    let mut ok = true;
    if segments.is_empty() || segments.iter().any(String::is_empty) {
        ok = false;
        errors.push(
            Pos::of(&c.claim),
            &format!("{at}.claim"),
            id,
            "name the claim: \"https://exampleco.com/roles\", or [realm_access, roles] for a nested one".into(),
        );
    }
    let list = |key: &str, values: &SpannedList<String>, errors: &mut Errors| {
        if values.value.is_empty() {
            errors.push(
                Pos::of(values),
                &format!("{at}.{key}"),
                id,
                "list at least one value".into(),
            );
            return None;
        }
        Some(
            values
                .value
                .iter()
                .map(|v| v.value.clone())
                .collect::<Vec<_>>(),
        )
    };
    let mut tests = Vec::new();
    if let Some(v) = &c.equals {
        tests.push(Some(ClaimTest::Equals(v.value.clone())));
    }
    if let Some(v) = &c.contains_any {
        tests.push(list("contains_any", v, errors).map(ClaimTest::ContainsAny));
    }
    if let Some(v) = &c.contains_all {
        tests.push(list("contains_all", v, errors).map(ClaimTest::ContainsAll));
    }
    if tests.len() != 1 {
        errors.push(
            Pos::of(entry),
            at,
            id,
            "give exactly one of equals, contains_any or contains_all".into(),
        );
        return None;
    }
    let test = tests.pop().flatten()?;
    ok.then(|| ClaimCondition {
        claim: ClaimPath {
            shown: segments.join("."),
            segments,
        },
        test,
    })
}

fn compile_authentication(
    entry: &Spanned<AuthenticationEntry>,
    at: &str,
    id: Option<&str>,
    errors: &mut Errors,
) -> Option<StepUp> {
    let a = &entry.value;
    if a.acr.is_none() && a.max_age.is_none() {
        errors.push(
            Pos::of(entry),
            at,
            id,
            "say what sign-in the route needs: acr: [...], max_age: <seconds> or both".into(),
        );
        return None;
    }
    let mut acr = Vec::new();
    let mut ok = true;
    if let Some(values) = &a.acr {
        if values.value.is_empty() {
            ok = false;
            errors.push(
                Pos::of(values),
                &format!("{at}.acr"),
                id,
                "list at least one acr value, or leave acr out".into(),
            );
        }
        for (j, v) in values.value.iter().enumerate() {
            // `acr_values` is space-separated (RFC 9470 §3): a value cannot hold a space.
            if v.value.is_empty() || v.value.contains(char::is_whitespace) {
                ok = false;
                errors.push(
                    Pos::of(v),
                    &format!("{at}.acr[{j}]"),
                    id,
                    format!("\"{}\" is not an acr value (no spaces)", v.value),
                );
            } else if !acr.contains(&v.value) {
                acr.push(v.value.clone());
            }
        }
    }
    ok.then(|| StepUp {
        acr_values: acr.join(" "),
        acr,
        max_age: a.max_age.as_ref().map(|m| m.value),
    })
}

/// Two routes that share a method and can match the same path are an error naming both:
/// an operator must never have to guess which one wins.
fn check_overlaps(
    entries: &[Spanned<RouteEntry>],
    templates: &[(usize, Vec<usize>, Vec<Segment>)],
    errors: &mut Errors,
) {
    let mut pairs = BTreeSet::new();
    let mut consider = |a: usize, b: usize| {
        let (a, b) = (a.min(b), a.max(b));
        if a == b {
            return;
        }
        let (ta, tb) = (&templates[a], &templates[b]);
        let shared = ta.1.iter().find(|m| tb.1.contains(m));
        if let Some(&m) = shared
            && overlap(&ta.2, &tb.2)
        {
            pairs.insert((ta.0, tb.0, m));
        }
    };
    let all: Vec<usize> = (0..templates.len()).collect();
    overlap_candidates(&all, 0, templates, &mut consider);
    for (a, b, m) in pairs {
        let (ea, eb) = (&entries[a].value, &entries[b].value);
        errors.push(
            Pos::of(&eb.path),
            &format!("routes[{b}].path"),
            Some(&eb.id.value),
            format!(
                "{} {} can also match route \"{}\" ({} at routes[{a}]); make the paths disjoint",
                METHODS[m], eb.path.value, ea.id.value, ea.path.value
            ),
        );
    }
}

/// Calls `consider` for every pair of templates in `group` that might overlap. Templates
/// with different static segments at the same depth never do, so the group is split by
/// its segment at `depth` (a walk down the templates' trie) and only templates that end or
/// hold a parameter there are compared with the whole group: large policies under one
/// shared prefix (`/api/...`) compile in milliseconds instead of comparing every pair.
fn overlap_candidates(
    group: &[usize],
    depth: usize,
    templates: &[(usize, Vec<usize>, Vec<Segment>)],
    consider: &mut dyn FnMut(usize, usize),
) {
    if group.len() < 2 {
        return;
    }
    let mut buckets: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut wild = Vec::new();
    for &k in group {
        match templates[k].2.get(depth) {
            // An empty segment is compared like a parameter (`overlap` knows the rule).
            Some(Segment::Static(s)) if !s.is_empty() => {
                buckets.entry(s.as_str()).or_default().push(k)
            }
            _ => wild.push(k),
        }
    }
    for &w in &wild {
        for &k in group {
            consider(w, k);
        }
    }
    for members in buckets.values() {
        overlap_candidates(members, depth + 1, templates, consider);
    }
}

/// Whether some path matches both templates.
fn overlap(a: &[Segment], b: &[Segment]) -> bool {
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (None, None) => return true,
            // A catch-all needs at least one more character.
            (Some(Segment::CatchAll), Some(_)) | (Some(_), Some(Segment::CatchAll)) => {
                return true;
            }
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Segment::Static(x)), Some(Segment::Static(y))) if x != y => return false,
            (Some(Segment::Static(x)), Some(Segment::Param))
            | (Some(Segment::Param), Some(Segment::Static(x)))
                if x.is_empty() =>
            {
                return false;
            }
            _ => i += 1,
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        compile(yaml.as_bytes(), "p.yaml")
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn unknown_method_is_reported_with_line_column_and_hint() {
        let e = errors(
            "version: 1
routes:
  - id: a
    methods: [GET, FETCH]
    path: /a
    scopes: [read:a]
",
        );
        assert_eq!(
            e,
            [
                "p.yaml:4:20: routes[0].methods[1] (route \"a\"): unknown method \"FETCH\" (expected GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)"
            ]
        );
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let e = errors(
            "version: 2
routes:
  - id: a
    methods: [GET]
    path: a
    scopes: [read:a]
  - id: b
    methods: [POST]
    path: /b
  - id: b
    methods: [PUT]
    path: /c
    public: true
    scopes: [x]
",
        );
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].starts_with("p.yaml:1:10: version"), "{}", e[0]);
    }

    #[test]
    fn new_keys_report_their_own_positions() {
        let e = errors(
            "version: 1
routes:
  - id: a
    methods: [GET]
    path: /a
    claims:
      - claim: roles
        equals: x
        contains_any: [y]
      - claim: []
        contains_all: []
    authentication:
      acr: [\"multi factor\"]
  - id: b
    methods: [GET]
    path: /b
    scopes: [s]
    any_of:
      - scopes: [t]
  - id: c
    methods: [GET]
    path: /c
    any_of:
      - {}
      - scopes: [\"bad scope\"]
    authentication: {}
",
        );
        assert_eq!(
            e,
            [
                "p.yaml:7:9: routes[0].claims[0] (route \"a\"): give exactly one of equals, contains_any or contains_all",
                "p.yaml:10:16: routes[0].claims[1].claim (route \"a\"): name the claim: \"https://exampleco.com/roles\", or [realm_access, roles] for a nested one",
                "p.yaml:11:23: routes[0].claims[1].contains_all (route \"a\"): list at least one value",
                "p.yaml:13:13: routes[0].authentication.acr[0] (route \"a\"): \"multi factor\" is not an acr value (no spaces)",
                "p.yaml:19:7: routes[1].any_of (route \"b\"): give any_of or scopes/claims, not both (move them into an alternative)",
                "p.yaml:24:9: routes[2].any_of[0] (route \"c\"): name scopes, claims or both",
                "p.yaml:25:18: routes[2].any_of[1].scopes[0] (route \"c\"): \"bad scope\" is not a scope token (RFC 6749 §3.3)",
                "p.yaml:26:21: routes[2].authentication (route \"c\"): say what sign-in the route needs: acr: [...], max_age: <seconds> or both",
            ],
            "{e:#?}"
        );
    }

    #[test]
    fn alternatives_nested_claims_and_dry_run_compile() {
        let p = compile(
            br#"version: 1
dry_run: true
routes:
  - id: read
    methods: [GET]
    path: /t
    any_of:
      - scopes: [read:t]
      - scopes: [admin:t]
        claims:
          - claim: [resource_access, my.client, roles]
            contains_all: [admin]
  - id: tenant
    dry_run: false
    methods: [POST]
    path: /t
    claims:
      - {claim: tid, equals: acme}
"#,
            "p.yaml",
        )
        .unwrap();
        assert_eq!(
            p.scopes().into_iter().collect::<Vec<_>>(),
            ["admin:t", "read:t"]
        );
        assert_eq!(
            p.condition_claims().names().collect::<Vec<_>>(),
            ["resource_access", "tid"]
        );
        assert!(p.dry_run && p.route("GET", "/t").unwrap().dry_run);
        assert!(!p.route("POST", "/t").unwrap().dry_run);
        let Requirement::Token(t) = &p.route("GET", "/t").unwrap().requirement else {
            panic!("a protected route")
        };
        assert_eq!(
            t.any_of[1].claims[0].claim.segments,
            ["resource_access", "my.client", "roles"]
        );
    }

    #[test]
    fn a_public_route_takes_no_claims_or_authentication() {
        let e = errors(
            "version: 1
routes:
  - id: h
    methods: [GET]
    path: /h
    public: true
    claims: [{claim: x, equals: y}]
    authentication: {max_age: 5}
",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].contains("routes[0].claims") && e[1].contains("routes[0].authentication"),
            "{e:#?}"
        );
    }

    #[test]
    fn overlapping_routes_name_both() {
        let e = errors(
            "version: 1
routes:
  - id: one
    methods: [GET]
    path: /timesheets/{id}
    scopes: [read:timesheets]
  - id: two
    methods: [GET, POST]
    path: /timesheets/upload
    scopes: [batch:upload]
",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("\"two\"") && e[0].contains("\"one\""),
            "{}",
            e[0]
        );
    }

    /// Three routes per tenant under `/api/t{n}/`, one starting with a parameter, and
    /// `extra`: the overlap check walks them segment by segment, not pairwise.
    fn tenants(extra: &str) -> Vec<String> {
        let mut y = String::from("version: 1\nroutes:\n");
        for t in 0..200 {
            for (id, path) in [
                ("list", format!("/api/t{t}/items")),
                ("read", format!("/api/t{t}/items/{{id}}")),
                ("files", format!("/api/t{t}/items/{{id}}/files/{{*path}}")),
            ] {
                y.push_str(&format!(
                    "  - {{id: {id}-{t}, methods: [GET], path: \"{path}\", scopes: [s]}}\n"
                ));
            }
        }
        y.push_str(
            "  - {id: status, methods: [GET], path: \"/{tenant}/status/{id}\", scopes: [s]}\n",
        );
        y.push_str(extra);
        match compile(y.as_bytes(), "t.yaml") {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn overlaps_are_found_in_large_policies_under_one_prefix() {
        assert_eq!(tenants(""), Vec::<String>::new());
        // A parameter where the others have the tenant: it overlaps every tenant's list
        // route, and the leading-parameter route too (`/api/status/items`).
        let e = tenants("  - {id: clash, methods: [GET], path: \"/api/{t}/items\", scopes: [s]}\n");
        assert_eq!(e.len(), 201, "{}", e[0]);
        assert!(e[0].contains("\"list-0\""), "{}", e[0]);
        assert!(e[200].contains("\"status\""), "{}", e[200]);
        // A static segment under one tenant's parameter.
        let e = tenants("  - {id: new, methods: [GET], path: /api/t150/items/new, scopes: [s]}\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("\"read-150\""), "{}", e[0]);
        // Under a catch-all.
        let e = tenants(
            "  - {id: deep, methods: [GET], path: /api/t7/items/1/files/a/b, scopes: [s]}\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("\"files-7\""), "{}", e[0]);
    }

    #[test]
    fn same_path_different_methods_is_fine() {
        let p = compile(
            br#"version: 1
routes:
  - {id: get, methods: [GET], path: "/t/{id}", scopes: [r]}
  - {id: del, methods: [DELETE], path: "/t/{id}", scopes: [d]}
  - {id: up, methods: [POST], path: /t/upload, scopes: [u]}
  - {id: files, methods: [GET], path: "/files/{*rest}", public: true}
"#,
            "p.yaml",
        )
        .unwrap();
        assert_eq!(&*p.route("DELETE", "/t/9").unwrap().id, "del");
        assert_eq!(&*p.route("POST", "/t/upload").unwrap().id, "up");
        assert_eq!(&*p.route("GET", "/files/a/b/c").unwrap().id, "files");
        assert_eq!(p.hash.len(), 64);
    }

    #[test]
    fn yaml_syntax_errors_carry_a_location() {
        let e = errors("version: 1\nroutes:\n  - id: [\n");
        assert!(e[0].starts_with("p.yaml:"), "{}", e[0]);
        assert!(
            e[0].split(':').nth(1).unwrap().parse::<u32>().is_ok(),
            "{}",
            e[0]
        );
    }

    #[test]
    fn template_overlap_rules() {
        use Segment::*;
        let s = |x: &str| Static(x.into());
        assert!(overlap(&[s("a"), Param], &[s("a"), s("b")]));
        assert!(!overlap(&[s("a"), Param], &[s("a")]));
        assert!(overlap(&[s("a"), CatchAll], &[s("a"), s("b"), s("c")]));
        assert!(!overlap(&[s("a"), CatchAll], &[s("a")]));
        assert!(!overlap(&[s("a")], &[s("b")]));
    }
}
