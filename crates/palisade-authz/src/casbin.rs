//! Import of Casbin RBAC policies (with and without domains) into Palisade.
//!
//! Only models Palisade can represent exactly are accepted: the default RBAC
//! matchers (`g(r.sub, p.sub[, r.dom]) && [r.dom == p.dom &&] r.obj == p.obj
//! && r.act == p.act`, or `r.sub == p.sub` for ACL), effect
//! `some(where (p.eft == allow))` optionally with `&& !some(where (p.eft ==
//! deny))`. Anything else (keyMatch, regexMatch, ABAC expressions, priority
//! effects, several policy types) is rejected with an error naming it, never
//! approximated.
//!
//! Mapping. A Casbin request `(sub, dom, obj, act)` is the Palisade request
//! `{tenant: dom, subject: sub, resource: obj, action: act}`; without domains
//! the tenant is `CasbinOptions::tenant`. In Casbin a name is just a name:
//! `g(r.sub, p.sub)` holds when the names are equal or linked by `g`
//! transitively. So every name that appears as a p-subject or as the role of
//! a `g` line becomes a Palisade role *and* a subject bound to that role
//! (binding id `casbin:"name"`); `g, a, b` makes role `a` inherit `b` when `a`
//! is such a role, and otherwise binds subject `a` to role `b` (binding id
//! `casbin:"a"->"b"`). A `p` line becomes a grant of `act` on `obj` (allow or
//! deny) on the role named by its subject.
//!
//! Differences handled by rejecting: Casbin compares objects and actions
//! literally, so a `*` in them (a wildcard in Palisade) is rejected; Casbin
//! allows role cycles and stops following `g` links after 10 levels, so
//! cyclic policies and chains of 10 or more links are rejected.

use crate::error::{AuthzError, CycleKind, Result};
use crate::graph;
use crate::model::{Binding, Effect, Grant, PolicySet, RoleDef};
use std::collections::{BTreeMap, BTreeSet};

/// Casbin's default role manager follows at most this many levels of `g`.
const CASBIN_MAX_HIERARCHY_LEVEL: usize = 10;

/// Options for `import_casbin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasbinOptions {
    /// The tenant for models without domains.
    pub tenant: String,
}

impl Default for CasbinOptions {
    fn default() -> Self {
        Self {
            tenant: "default".to_owned(),
        }
    }
}

/// Reads a Casbin model (`model.conf` text) and policy (CSV of `p` and `g`
/// lines) into one `PolicySet` per tenant, sorted by tenant. With domains,
/// every domain named in a line becomes a tenant.
pub fn import_casbin(
    model: &str,
    policy_csv: &str,
    options: &CasbinOptions,
) -> Result<Vec<PolicySet>> {
    let model = CasbinModel::parse(model)?;
    let mut tenants: BTreeMap<String, TenantBuild> = BTreeMap::new();
    if !model.domains {
        tenants.entry(options.tenant.clone()).or_default();
    }
    for (index, line) in policy_csv.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = parse_csv_line(line);
        let bad = |reason: String| AuthzError::CasbinPolicy {
            line: line_no,
            reason,
        };
        let (key, values) = fields
            .split_first()
            .ok_or_else(|| bad("empty line".into()))?;
        for value in values {
            if value.is_empty() {
                return Err(bad("empty field (Palisade names must not be empty)".into()));
            }
        }
        match key.as_str() {
            "p" => {
                if values.len() != model.p_columns.len() {
                    return Err(bad(format!(
                        "p line has {} fields, the policy_definition has {}",
                        values.len(),
                        model.p_columns.len()
                    )));
                }
                let field = |name: PField| values[model.column(name)].clone();
                let effect = match model.column_opt(PField::Eft).map(|i| values[i].as_str()) {
                    None | Some("allow") => Effect::Allow,
                    Some("deny") => Effect::Deny,
                    Some(other) => {
                        return Err(bad(format!("eft must be allow or deny, not {other:?}")));
                    }
                };
                if effect == Effect::Deny && !model.deny_effect {
                    // Casbin ignores deny lines under an allow-only effect.
                    continue;
                }
                let (obj, act) = (field(PField::Obj), field(PField::Act));
                for (what, value) in [("object", &obj), ("action", &act)] {
                    if value.contains('*') {
                        return Err(bad(format!(
                            "{what} {value:?} contains `*`: Casbin's `==` matcher compares it literally, \
                             Palisade would read it as a wildcard"
                        )));
                    }
                }
                let tenant = if model.domains {
                    field(PField::Dom)
                } else {
                    options.tenant.clone()
                };
                let build = tenants.entry(tenant).or_default();
                build
                    .grants
                    .entry(field(PField::Sub))
                    .or_default()
                    .insert(GrantKey {
                        action: act,
                        resource: obj,
                        effect,
                    });
            }
            "g" if model.g_arity.is_some() => {
                let arity = model.g_arity.unwrap_or(2);
                if values.len() != arity {
                    return Err(bad(format!(
                        "g line has {} fields, the role_definition has {arity}",
                        values.len()
                    )));
                }
                if !model.uses_g {
                    // The matcher never calls g, so Casbin never consults these.
                    continue;
                }
                let tenant = if arity == 3 {
                    values[2].clone()
                } else {
                    options.tenant.clone()
                };
                if values[0] != values[1] {
                    // Casbin ignores self links.
                    let build = tenants.entry(tenant).or_default();
                    build
                        .links
                        .entry(values[0].clone())
                        .or_default()
                        .insert(values[1].clone());
                }
            }
            other => {
                return Err(bad(format!(
                    "policy type {other:?} is not defined by the model"
                )));
            }
        }
    }
    tenants
        .into_iter()
        .map(|(tenant, build)| build.into_policy(tenant))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GrantKey {
    action: String,
    resource: String,
    effect: Effect,
}

/// One tenant's lines, deduplicated as Casbin does.
#[derive(Debug, Default)]
struct TenantBuild {
    /// p-subject → grants.
    grants: BTreeMap<String, BTreeSet<GrantKey>>,
    /// g links: name → names it is linked to.
    links: BTreeMap<String, BTreeSet<String>>,
}

impl TenantBuild {
    fn into_policy(self, tenant: String) -> Result<PolicySet> {
        self.check_depth()?;
        let role_names: BTreeSet<&String> = self
            .grants
            .keys()
            .chain(self.links.values().flatten())
            .collect();
        let mut set = PolicySet {
            tenant,
            ..PolicySet::default()
        };
        for &name in &role_names {
            set.roles.push(RoleDef {
                name: name.clone(),
                inherits: self
                    .links
                    .get(name)
                    .map(|l| l.iter().cloned().collect())
                    .unwrap_or_default(),
                grants: self
                    .grants
                    .get(name)
                    .map(|grants| {
                        grants
                            .iter()
                            .map(|g| Grant {
                                action: g.action.clone(),
                                resource: g.resource.clone(),
                                effect: g.effect,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
            set.bindings.push(Binding::new(
                format!("casbin:{name:?}"),
                name.clone(),
                name.clone(),
            ));
        }
        for (user, roles) in &self.links {
            if role_names.contains(user) {
                continue;
            }
            for role in roles {
                set.bindings.push(Binding::new(
                    format!("casbin:{user:?}->{role:?}"),
                    user.clone(),
                    role.clone(),
                ));
            }
        }
        Ok(set)
    }

    /// Rejects cycles and chains Casbin's role manager would cut off.
    fn check_depth(&self) -> Result<()> {
        let names: Vec<&String> = self
            .links
            .keys()
            .chain(self.links.values().flatten())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let id = |name: &String| names.binary_search(&name).map_or(0, |i| i as u32);
        let mut edges: graph::Edges = vec![Vec::new(); names.len()];
        for (from, tos) in &self.links {
            edges[id(from) as usize].extend(tos.iter().map(id));
        }
        let order = graph::post_order(&edges).map_err(|cycle| AuthzError::Cycle {
            kind: CycleKind::Role,
            path: cycle.iter().map(|&n| names[n as usize].clone()).collect(),
        })?;
        let longest = graph::longest_chain(&edges, &order);
        if longest >= CASBIN_MAX_HIERARCHY_LEVEL {
            return Err(AuthzError::CasbinModel(format!(
                "a chain of {longest} g links: Casbin's default role manager stops after {} levels, \
                 Palisade would follow it",
                CASBIN_MAX_HIERARCHY_LEVEL - 1
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PField {
    Sub,
    Dom,
    Obj,
    Act,
    Eft,
}

/// The parts of a Casbin model that matter once it is known to be supported.
#[derive(Debug)]
struct CasbinModel {
    domains: bool,
    p_columns: Vec<PField>,
    /// Number of fields in a `g` line, when `g` is defined.
    g_arity: Option<usize>,
    /// Whether the matcher calls `g` (otherwise it compares subjects directly).
    uses_g: bool,
    deny_effect: bool,
}

impl CasbinModel {
    fn column(&self, field: PField) -> usize {
        self.column_opt(field).unwrap_or(0)
    }

    fn column_opt(&self, field: PField) -> Option<usize> {
        self.p_columns.iter().position(|&f| f == field)
    }

    fn parse(text: &str) -> Result<Self> {
        let unsupported = |reason: String| AuthzError::CasbinModel(reason);
        let sections = parse_ini(text)?;
        let get = |section: &str, key: &str, required: bool| -> Result<Option<String>> {
            let entries = sections.get(section);
            if let Some(entries) = entries
                && let Some(extra) = entries.keys().find(|k| k.as_str() != key)
            {
                return Err(unsupported(format!(
                    "[{section}] defines {extra:?}; only one {key:?} is supported"
                )));
            }
            match entries.and_then(|e| e.get(key)) {
                Some(value) => Ok(Some(value.clone())),
                None if required => Err(unsupported(format!("[{section}] {key} is missing"))),
                None => Ok(None),
            }
        };
        let r = get("request_definition", "r", true)?.unwrap_or_default();
        let p = get("policy_definition", "p", true)?.unwrap_or_default();
        let g = get("role_definition", "g", false)?;
        let e = get("policy_effect", "e", true)?.unwrap_or_default();
        let m = get("matchers", "m", true)?.unwrap_or_default();
        if let Some(section) = sections.keys().find(|s| {
            !matches!(
                s.as_str(),
                "request_definition"
                    | "policy_definition"
                    | "role_definition"
                    | "policy_effect"
                    | "matchers"
            )
        }) {
            return Err(unsupported(format!("unknown section [{section}]")));
        }

        let tokens = |v: &str| {
            v.split(',')
                .map(|t| t.trim().to_owned())
                .collect::<Vec<_>>()
        };
        let domains = match tokens(&r).iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["sub", "obj", "act"] => false,
            ["sub", "dom", "obj", "act"] => true,
            _ => {
                return Err(unsupported(format!(
                    "request_definition {r:?}: only `sub, obj, act` and `sub, dom, obj, act` are supported"
                )));
            }
        };
        let mut p_columns = Vec::new();
        for token in tokens(&p) {
            let field = match token.as_str() {
                "sub" => PField::Sub,
                "dom" if domains => PField::Dom,
                "obj" => PField::Obj,
                "act" => PField::Act,
                "eft" => PField::Eft,
                other => {
                    return Err(unsupported(format!(
                        "policy_definition field {other:?} is not supported"
                    )));
                }
            };
            if p_columns.contains(&field) {
                return Err(unsupported(format!("policy_definition repeats {token:?}")));
            }
            p_columns.push(field);
        }
        let required = if domains { 4 } else { 3 };
        if p_columns.iter().filter(|&&f| f != PField::Eft).count() != required {
            return Err(unsupported(format!(
                "policy_definition {p:?} must name the request's fields"
            )));
        }
        let g_arity = match g.as_deref().map(|g| g.replace(char::is_whitespace, "")) {
            None => None,
            Some(g) if g == "_,_" => Some(2),
            Some(g) if g == "_,_,_" => Some(3),
            Some(g) => {
                return Err(unsupported(format!(
                    "role_definition g = {g:?} is not supported"
                )));
            }
        };
        let compact = |s: &str| s.replace(char::is_whitespace, "");
        let deny_effect = match compact(&e).as_str() {
            "some(where(p.eft==allow))" => false,
            "some(where(p.eft==allow))&&!some(where(p.eft==deny))" => true,
            _ => {
                return Err(unsupported(format!(
                    "policy_effect {e:?}: only some(where (p.eft == allow)) [&& !some(where (p.eft == deny))] is supported"
                )));
            }
        };
        let matcher = compact(&m);
        let mut clauses: BTreeSet<&str> = BTreeSet::new();
        for clause in matcher.split("&&") {
            let clause = match clause {
                "p.sub==r.sub" => "r.sub==p.sub",
                "p.dom==r.dom" => "r.dom==p.dom",
                "p.obj==r.obj" => "r.obj==p.obj",
                "p.act==r.act" => "r.act==p.act",
                c => c,
            };
            clauses.insert(clause);
        }
        let subject_clause = if g_arity == Some(3) {
            "g(r.sub,p.sub,r.dom)"
        } else {
            "g(r.sub,p.sub)"
        };
        let uses_g = clauses.contains(subject_clause) && g_arity.is_some();
        let mut expected: BTreeSet<&str> = ["r.obj==p.obj", "r.act==p.act"].into();
        expected.insert(if uses_g {
            subject_clause
        } else {
            "r.sub==p.sub"
        });
        if domains {
            expected.insert("r.dom==p.dom");
        }
        if g_arity == Some(3) && !domains {
            return Err(unsupported(
                "role_definition has a domain but the request has none".into(),
            ));
        }
        if g_arity == Some(2) && domains && uses_g {
            return Err(unsupported(
                "roles without domains in a model with domains: Palisade roles always belong to one tenant".into(),
            ));
        }
        if clauses != expected {
            return Err(unsupported(format!(
                "matcher {m:?}: only the default RBAC/ACL matcher ({}) is supported; \
                 keyMatch, regexMatch and other functions or expressions are not",
                expected.iter().copied().collect::<Vec<_>>().join(" && ")
            )));
        }
        Ok(Self {
            domains,
            p_columns,
            g_arity,
            uses_g,
            deny_effect,
        })
    }
}

/// The INI dialect of Casbin model files: `[section]`, `key = value`, `#` and
/// `;` comments, `\` continuing a line.
fn parse_ini(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
            sections.entry(name.trim().to_owned()).or_default();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(AuthzError::CasbinModel(format!(
                "cannot read model line {line:?}"
            )));
        };
        let Some(section) = &current else {
            return Err(AuthzError::CasbinModel(format!(
                "{line:?} is outside any section"
            )));
        };
        // Casbin strips trailing comments from values.
        let value = value.split('#').next().unwrap_or_default().trim();
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(sections)
}

/// Splits a policy line as Casbin does: on commas, fields trimmed, a field in
/// double quotes may contain commas and loses its quotes.
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start();
        let (field, after) = if let Some(quoted) = trimmed.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => {
                    let tail = &quoted[end + 1..];
                    (
                        quoted[..end].to_owned(),
                        tail.find(',').map(|i| &tail[i + 1..]),
                    )
                }
                None => (trimmed.trim().to_owned(), None),
            }
        } else {
            match trimmed.find(',') {
                Some(i) => (trimmed[..i].trim().to_owned(), Some(&trimmed[i + 1..])),
                None => (trimmed.trim().to_owned(), None),
            }
        };
        fields.push(field);
        match after {
            Some(next) => rest = next,
            None => return fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_trimmed_and_unquoted() {
        assert_eq!(
            parse_csv_line("p, alice , \"data,1\", read"),
            ["p", "alice", "data,1", "read"]
        );
    }
}
