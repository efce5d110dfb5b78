//! Request inspection speed: a typical request (`typical_request.json`:
//! 300 bytes of query, 695 bytes of JSON body, a few headers and cookies,
//! about 1 KiB of input in all) inspected whole at each sensitivity level,
//! plus the same request carrying an attack in one field, and single values.
//!
//! The peer, libinjection, is C and cannot be linked here (the workspace
//! forbids `unsafe`, which FFI needs). It is timed by
//! `bench/libinjection/run.sh` on the same request's values (query values,
//! JSON keys and leaves, user agent and referer), calling `libinjection_sqli`
//! and `libinjection_xss` on each, as a WAF does; both numbers go side by side
//! in BENCHMARKS.md.
//!
//! Run: `cargo bench -p palisade-guard --bench inspect`

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_guard::inspect::{HttpRequest, Inspector, Sensitivity};
use std::hint::black_box;

struct Owned {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
    content_type: String,
}

fn typical() -> Owned {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("typical_request.json")).unwrap_or_default();
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let headers = v["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Owned {
        method: s("method"),
        path: s("path"),
        query: s("query"),
        headers,
        body: s("body"),
        content_type: s("content_type"),
    }
}

fn bench(c: &mut Criterion) {
    let inspector = Inspector::default();
    let plain = typical();
    let mut attack = typical();
    attack.body = attack
        .body
        .replace("Apt 4B", "Apt 4B' UNION SELECT password FROM users--");
    let mut group = c.benchmark_group("inspect");
    for (name, o) in [("typical", &plain), ("typical_with_sqli", &attack)] {
        let headers: Vec<(&str, &[u8])> = o
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let request = HttpRequest {
            method: &o.method,
            path: &o.path,
            query: &o.query,
            headers: &headers,
            body: o.body.as_bytes(),
            content_type: Some(&o.content_type),
        };
        for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
            group.bench_function(format!("{name}/level{}", level.level()), |b| {
                b.iter(|| inspector.inspect_at(black_box(&request), level))
            });
        }
    }
    for (name, value) in [
        ("value_benign", "blue+t-shirt"),
        ("value_sqli", "1%27%20OR%20%271%27%3D%271"),
        ("value_xss", "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| inspector.inspect_value(black_box(value), Sensitivity::Low))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
