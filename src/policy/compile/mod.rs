//! Policy file → [`Policy`], reporting every problem at once with its location.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::file::{IntrospectFile, PolicyFile, RouteEntry};
use super::{Introspect, METHODS, Policy, Requirement, Route};
use crate::auth::RouteAuth;
use crate::auth::identity::ConditionClaims;
use crate::ground::Pos;
use overlap::check_overlaps;
use requirement::compile_requirement;

mod overlap;
mod requirement;
#[cfg(test)]
mod tests;

/// One problem in a policy file: where, and what to do about it.
pub type PolicyError = crate::ground::Located;

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

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
