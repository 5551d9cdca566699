//! A route's requirement: scopes, claim conditions and the sign-in rule, compiled with
//! every error at its position.

use serde_saphyr::Spanned;

use super::Errors;
use crate::ground::Pos;
use crate::policy::file::{AuthenticationEntry, ClaimEntry, ClaimName, RouteEntry, SpannedList};
use crate::policy::{
    Alternative, ClaimCondition, ClaimPath, ClaimTest, Requirement, StepUp, TokenRequirement,
};

pub(super) fn compile_requirement(
    r: &RouteEntry,
    at: &str,
    errors: &mut Errors,
) -> Option<Requirement> {
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

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}
