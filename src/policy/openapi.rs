//! An OpenAPI 3.0 document as a policy: `scopegate policy from-openapi` writes one from
//! the document's operations and OAuth 2.0 `security:` requirements, and
//! `scopegate check --openapi` compares a policy with the document.
//!
//! The mapping, operation by operation:
//!
//! | OpenAPI | policy |
//! |---|---|
//! | `operationId` | route `id` (else `<method>-<path>`, made an id) |
//! | path and method | `path` (the template syntax is the same) and `methods` |
//! | `security` (the operation's, else the document's) | one requirement set per item: `scopes`, or `any_of` for several |
//! | `security: []`, or an empty item `{}` | `public: true` (anonymous access allowed) |
//! | `x-scopegate: {claims, authentication, dry_run}` | copied to the route; `claims` join every requirement set |
//!
//! OpenAPI has no words for roles or step-up, hence the extension: the document stays the
//! one source, and the generated policy can mean what a hand-written one does.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use openapiv3::{OpenAPI, ReferenceOr, SecurityRequirement, SecurityScheme};
use serde_json::Value;

use crate::ground::Located;

use super::{METHODS, Policy};

/// The extension that carries what OpenAPI cannot say.
pub const EXTENSION: &str = "x-scopegate";

/// One operation of the document, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Upper-case method, e.g. `GET`.
    pub method: &'static str,
    /// The path template, e.g. `/timesheets/{id}`.
    pub path: String,
    /// `operationId`, if the document gives one.
    pub id: Option<String>,
    /// The requirement that applies (the operation's, else the document's): `None` when
    /// neither says.
    pub security: Option<Vec<SecurityRequirement>>,
    /// The `x-scopegate` extension, if any.
    pub extension: Option<Value>,
}

/// Reads an OpenAPI document (YAML or JSON).
pub fn read(file: &Path) -> Result<OpenAPI, Located> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| Located::whole(&shown, format!("cannot read the file: {e}")))?;
    parse(&text).map_err(|mut e| {
        e.file = shown;
        e
    })
}

/// Parses an OpenAPI document's text (YAML, of which JSON is a subset); errors name the
/// document `-` until [`read`] names its file.
pub fn parse(text: &str) -> Result<OpenAPI, Located> {
    // Through a JSON value: openapiv3's types lean on serde features (untagged and
    // flattened fields) that serde_json implements fully.
    let value: Value = serde_saphyr::from_str(text).map_err(|e| Located::parse("-", &e))?;
    if !value
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3."))
    {
        return Err(Located::whole(
            "-",
            "not an OpenAPI 3 document (no `openapi: 3.x`)",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Located::whole("-", format!("not a valid OpenAPI 3.0 document: {e}")))
}

/// Every operation, by path (sorted) and method. `trace` is left out: a policy cannot name
/// it.
pub fn operations(doc: &OpenAPI) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc.paths.iter() {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (method, op) in item.iter() {
            let upper = method.to_ascii_uppercase();
            let Some(method) = METHODS.iter().find(|m| **m == upper) else {
                continue;
            };
            out.push(Operation {
                method,
                path: path.clone(),
                id: op.operation_id.clone(),
                security: op.security.clone().or_else(|| doc.security.clone()),
                extension: op.extensions.get(EXTENSION).cloned(),
            });
        }
    }
    out
}

/// The policy YAML for `doc`, or every operation it cannot express. `source` names the
/// document in the header comment.
pub fn policy_yaml(doc: &OpenAPI, source: &str) -> Result<String, Vec<String>> {
    let oauth: BTreeSet<&str> = doc
        .components
        .iter()
        .flat_map(|c| c.security_schemes.iter())
        .filter(|(_, s)| {
            matches!(
                s,
                ReferenceOr::Item(
                    SecurityScheme::OAuth2 { .. } | SecurityScheme::OpenIDConnect { .. }
                )
            )
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let mut out = format!(
        "# Drawn from {source} by `scopegate policy from-openapi`; edit the document, not this file.\nversion: 1\nroutes:\n"
    );
    for op in operations(doc) {
        let at = format!("{} {}", op.method, op.path);
        let id = op
            .id
            .clone()
            .unwrap_or_else(|| route_id(op.method, &op.path));
        if !ids.insert(id.clone()) {
            problems.push(format!("{at}: route id \"{id}\" is used twice"));
            continue;
        }
        let extension = match &op.extension {
            None => serde_json::Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                problems.push(format!("{at}: {EXTENSION} must be an object"));
                continue;
            }
        };
        if let Some(key) = extension
            .keys()
            .find(|k| !matches!(k.as_str(), "claims" | "authentication" | "dry_run"))
        {
            problems.push(format!(
                "{at}: {EXTENSION}.{key} is unknown (expected claims, authentication, dry_run)"
            ));
            continue;
        }
        let _ = writeln!(out, "  - id: {}", quote(&id));
        let _ = writeln!(out, "    methods: [{}]", op.method);
        let _ = writeln!(out, "    path: {}", quote(&op.path));
        let claims = extension.get("claims");
        let sets = match requirement_sets(&op, &oauth) {
            Ok(sets) => sets,
            Err(why) => {
                problems.push(format!("{at}: {why}"));
                continue;
            }
        };
        match sets {
            None => {
                if claims.is_some() || extension.contains_key("authentication") {
                    problems.push(format!(
                        "{at}: a public operation takes no {EXTENSION} claims or authentication"
                    ));
                    continue;
                }
                out.push_str("    public: true\n");
            }
            Some(sets) if sets.len() == 1 => {
                let _ = writeln!(out, "    scopes: {}", json(&sets[0]));
                if let Some(claims) = claims {
                    let _ = writeln!(out, "    claims: {}", json(claims));
                }
            }
            Some(sets) => {
                out.push_str("    any_of:\n");
                for scopes in &sets {
                    let _ = write!(out, "      - scopes: {}", json(scopes));
                    match claims {
                        Some(claims) => {
                            let _ = writeln!(out, "\n        claims: {}", json(claims));
                        }
                        None => out.push('\n'),
                    }
                }
            }
        }
        for key in ["authentication", "dry_run"] {
            if let Some(v) = extension.get(key) {
                let _ = writeln!(out, "    {key}: {}", json(v));
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The scopes of each requirement set, or `None` for an operation anyone may call.
fn requirement_sets(
    op: &Operation,
    oauth: &BTreeSet<&str>,
) -> Result<Option<Vec<Vec<String>>>, String> {
    let Some(security) = &op.security else {
        return Err(
            "no security requirement (give one, or `security: []` for a public operation)".into(),
        );
    };
    // An empty list, or an empty item among the alternatives, lets anonymous callers in.
    if security.is_empty() || security.iter().any(|r| r.is_empty()) {
        return Ok(None);
    }
    let mut sets = Vec::new();
    for requirement in security {
        let mut scopes = Vec::new();
        for (scheme, names) in requirement {
            if !oauth.contains(scheme.as_str()) {
                return Err(format!(
                    "security scheme \"{scheme}\" is not an OAuth 2.0 or OpenID Connect scheme of components.securitySchemes"
                ));
            }
            scopes.extend(names.iter().cloned());
        }
        if scopes.is_empty() {
            return Err(
                "a requirement with no scopes cannot be a policy route; name a scope".into(),
            );
        }
        sets.push(scopes);
    }
    Ok(Some(sets))
}

/// What `scopegate check --openapi` reports: operations no route covers, and routes (by
/// method) whose template is no operation's.
pub fn compare(policy: &Policy, doc: &OpenAPI) -> Vec<String> {
    let ops = operations(doc);
    let mut problems = Vec::new();
    for op in &ops {
        // A template is a path too: `{id}` matches a parameter, and a static segment only
        // itself, so this asks the gateway's own matcher.
        if policy.route(op.method, &op.path).is_none() {
            let name = op
                .id
                .as_deref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default();
            problems.push(format!(
                "operation {} {}{name} is not covered by the policy: it would be denied (no_route)",
                op.method, op.path
            ));
        }
    }
    let documented: BTreeSet<(&str, String)> =
        ops.iter().map(|o| (o.method, shape(&o.path))).collect();
    for route in policy.routes() {
        for method in &route.methods {
            if !documented.contains(&(*method, shape(&route.template))) {
                problems.push(format!(
                    "route \"{}\" ({method} {}) matches no operation of the document",
                    route.id, route.template
                ));
            }
        }
    }
    problems
}

/// A template with its parameter names dropped: `/t/{id}` and `/t/{entry}` are one shape.
fn shape(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `GET /timesheets/{id}` → `get-timesheets-id`.
fn route_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for part in path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        id.push('-');
        id.push_str(part);
    }
    id.truncate(64);
    id
}

/// A YAML scalar that reads back as exactly `text`: a JSON string.
fn quote(text: &str) -> String {
    Value::from(text).to_string()
}

/// A flow-style YAML value (JSON is a subset of YAML).
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("plain values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
openapi: 3.0.3
info: {title: t, version: "1"}
components:
  securitySchemes:
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: "https://x/t", scopes: {a: "", b: ""}}}}
    key: {type: apiKey, in: header, name: X-Key}
security: [{oauth: [a]}]
paths:
  /items:
    get: {operationId: list, responses: {"200": {description: ok}}}
    post:
      operationId: create
      security: [{oauth: [a, b]}, {oauth: [admin]}]
      x-scopegate: {claims: [{claim: tid, equals: acme}]}
      responses: {"200": {description: ok}}
  /items/{id}:
    delete: {security: [], responses: {"200": {description: ok}}}
"#;

    #[test]
    fn operations_become_routes_with_alternatives_and_extensions() {
        let doc = parse(DOC).unwrap();
        let yaml = policy_yaml(&doc, "doc.yaml").unwrap();
        let policy = super::super::compile(yaml.as_bytes(), "gen.yaml")
            .unwrap_or_else(|e| panic!("{yaml}\n{e:?}"));
        assert_eq!(&*policy.route("GET", "/items").unwrap().id, "list");
        assert_eq!(
            &*policy.route("DELETE", "/items/7").unwrap().id,
            "delete-items-id"
        );
        assert!(policy.route("DELETE", "/items/7").unwrap().is_public());
        let super::super::Requirement::Token(t) =
            &policy.route("POST", "/items").unwrap().requirement
        else {
            panic!("protected")
        };
        assert_eq!(t.any_of.len(), 2);
        assert!(t.any_of.iter().all(|a| a.claims.len() == 1));
        assert_eq!(
            policy.scopes().into_iter().collect::<Vec<_>>(),
            ["a", "admin", "b"]
        );
        assert!(compare(&policy, &doc).is_empty());
    }

    #[test]
    fn what_a_policy_cannot_enforce_is_refused_and_gaps_are_reported() {
        let doc = parse(&DOC.replace("security: [{oauth: [a]}]", "security: [{key: []}]")).unwrap();
        let problems = policy_yaml(&doc, "doc.yaml").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("GET /items: security scheme \"key\""),
            "{problems:?}"
        );

        let policy = super::super::compile(
            b"version: 1\nroutes:\n  - {id: list, methods: [GET, HEAD], path: /items, scopes: [a]}\n",
            "p.yaml",
        )
        .unwrap();
        let gaps = compare(&policy, &parse(DOC).unwrap());
        assert_eq!(gaps.len(), 3, "{gaps:#?}");
        assert!(
            gaps[0].contains("POST /items (create) is not covered"),
            "{gaps:#?}"
        );
        assert!(
            gaps[2].contains("route \"list\" (HEAD /items) matches no operation"),
            "{gaps:#?}"
        );
    }
}
