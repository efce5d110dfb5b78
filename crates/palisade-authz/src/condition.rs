//! Request attributes and the evaluation of binding conditions against them.
//!
//! Evaluation is three-valued: a condition whose attribute is missing is
//! `Unknown`. The caller decides what unknown means so that both allow and
//! deny bindings fail closed (see `Truth`).

use crate::error::{AuthzError, Result};
use crate::model::Condition;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What the caller knows about the request, for binding conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    /// The client IP, as the HTTP layer resolved it behind trusted proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The request time in Unix milliseconds; when absent, the engine's clock
    /// is used (time is passed in, so tests pin it with a manual clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unix_ms: Option<i64>,
    /// Claims of the caller's credential (`mfa`, `amr`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
}

impl Attributes {
    /// No attributes at all: conditional allow bindings will not apply.
    pub fn none() -> &'static Attributes {
        static NONE: Attributes = Attributes {
            ip: None,
            time_unix_ms: None,
            claims: BTreeMap::new(),
        };
        &NONE
    }
}

/// The outcome of evaluating a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Truth {
    True,
    False,
    /// The attribute the condition needs was not supplied.
    Unknown,
}

/// A condition with its inputs parsed once, at compile time.
#[derive(Debug, Clone)]
pub(crate) enum CompiledCondition {
    IpIn(Vec<IpNet>),
    Between {
        from: Option<i64>,
        until: Option<i64>,
    },
    Daily {
        start: i64,
        end: i64,
    },
    Claim {
        name: Box<str>,
        equals: serde_json::Value,
    },
}

const MINUTES_PER_DAY: i64 = 24 * 60;

impl CompiledCondition {
    pub(crate) fn compile(binding: &str, condition: &Condition, max_cidrs: usize) -> Result<Self> {
        let invalid = |reason: String| AuthzError::InvalidCondition {
            binding: crate::error::excerpt(binding),
            reason,
        };
        Ok(match condition {
            Condition::IpIn { cidrs } => {
                if cidrs.is_empty() {
                    return Err(invalid("ip_in needs at least one CIDR".into()));
                }
                if cidrs.len() > max_cidrs {
                    return Err(AuthzError::TooLarge {
                        what: "CIDRs in one condition",
                        limit: max_cidrs,
                    });
                }
                let nets = cidrs
                    .iter()
                    .map(|cidr| {
                        cidr.parse::<IpNet>()
                            .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
                            .map_err(|_| {
                                invalid(format!("{:?} is not a CIDR", crate::error::excerpt(cidr)))
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Self::IpIn(nets)
            }
            Condition::Between {
                not_before_unix_ms,
                not_after_unix_ms,
            } => {
                if let (Some(from), Some(until)) = (not_before_unix_ms, not_after_unix_ms)
                    && from >= until
                {
                    return Err(invalid("not_before must be earlier than not_after".into()));
                }
                if not_before_unix_ms.is_none() && not_after_unix_ms.is_none() {
                    return Err(invalid("between needs at least one bound".into()));
                }
                Self::Between {
                    from: *not_before_unix_ms,
                    until: *not_after_unix_ms,
                }
            }
            Condition::DailyWindow {
                start_minute_utc,
                end_minute_utc,
            } => {
                let (start, end) = (i64::from(*start_minute_utc), i64::from(*end_minute_utc));
                if start >= MINUTES_PER_DAY || end >= MINUTES_PER_DAY || start == end {
                    return Err(invalid(
                        "daily_window minutes must be distinct and below 1440".into(),
                    ));
                }
                Self::Daily { start, end }
            }
            Condition::Claim { name, equals } => {
                crate::pattern::validate_name("claim name", name, 256)?;
                Self::Claim {
                    name: name.as_str().into(),
                    equals: equals.clone(),
                }
            }
        })
    }

    pub(crate) fn evaluate(&self, attributes: &Attributes, now_unix_ms: i64) -> Truth {
        let holds = |b: bool| if b { Truth::True } else { Truth::False };
        match self {
            Self::IpIn(nets) => match attributes.ip {
                None => Truth::Unknown,
                Some(ip) => {
                    // An IPv4-mapped IPv6 address is the IPv4 client behind a
                    // dual-stack socket; compare it as IPv4.
                    let ip = match ip {
                        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                        v4 => v4,
                    };
                    holds(nets.iter().any(|net| net.contains(&ip)))
                }
            },
            Self::Between { from, until } => holds(
                from.is_none_or(|f| now_unix_ms >= f) && until.is_none_or(|u| now_unix_ms < u),
            ),
            Self::Daily { start, end } => {
                let minute = now_unix_ms.div_euclid(60_000).rem_euclid(MINUTES_PER_DAY);
                holds(if start < end {
                    (*start..*end).contains(&minute)
                } else {
                    minute >= *start || minute < *end
                })
            }
            Self::Claim { name, equals } => match attributes.claims.get(&**name) {
                None => Truth::Unknown,
                Some(value) => holds(value == equals),
            },
        }
    }

    pub(crate) fn uses_time(&self) -> bool {
        matches!(self, Self::Between { .. } | Self::Daily { .. })
    }
}

/// Evaluates all conditions of a binding: `True` if all hold, `False` if any
/// is false, otherwise `Unknown`.
pub(crate) fn evaluate_all(
    conditions: &[CompiledCondition],
    attributes: &Attributes,
    now_unix_ms: i64,
) -> Truth {
    let mut result = Truth::True;
    for condition in conditions {
        match condition.evaluate(attributes, now_unix_ms) {
            Truth::False => return Truth::False,
            Truth::Unknown => result = Truth::Unknown,
            Truth::True => {}
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(c: Condition) -> CompiledCondition {
        CompiledCondition::compile("b", &c, 16).unwrap()
    }

    #[test]
    fn ip_condition_matches_cidrs_and_mapped_ipv4() {
        let c = compile(Condition::IpIn {
            cidrs: vec![
                "10.0.0.0/8".into(),
                "2001:db8::/32".into(),
                "192.0.2.7".into(),
            ],
        });
        let at = |ip: &str| Attributes {
            ip: Some(ip.parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&at("10.1.2.3"), 0), Truth::True);
        assert_eq!(c.evaluate(&at("::ffff:10.1.2.3"), 0), Truth::True);
        assert_eq!(c.evaluate(&at("192.0.2.7"), 0), Truth::True);
        assert_eq!(c.evaluate(&at("192.0.2.8"), 0), Truth::False);
        assert_eq!(c.evaluate(&Attributes::default(), 0), Truth::Unknown);
    }

    #[test]
    fn daily_window_wraps_midnight() {
        let c = compile(Condition::DailyWindow {
            start_minute_utc: 22 * 60,
            end_minute_utc: 6 * 60,
        });
        let at_hour = |h: i64| h * 3_600_000 + 86_400_000 * 3;
        assert_eq!(c.evaluate(Attributes::none(), at_hour(23)), Truth::True);
        assert_eq!(c.evaluate(Attributes::none(), at_hour(5)), Truth::True);
        assert_eq!(c.evaluate(Attributes::none(), at_hour(12)), Truth::False);
    }

    #[test]
    fn rejects_unparseable_conditions() {
        let bad = [
            Condition::IpIn {
                cidrs: vec!["10.0.0.0/33".into()],
            },
            Condition::IpIn { cidrs: vec![] },
            Condition::Between {
                not_before_unix_ms: Some(10),
                not_after_unix_ms: Some(10),
            },
            Condition::DailyWindow {
                start_minute_utc: 1440,
                end_minute_utc: 0,
            },
        ];
        for c in bad {
            assert!(CompiledCondition::compile("b", &c, 16).is_err(), "{c:?}");
        }
    }
}
