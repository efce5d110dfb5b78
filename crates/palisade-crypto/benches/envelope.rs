//! Envelope encryption against raw aws-lc-rs AES-256-GCM on the same data,
//! and field-level encryption of a 2 KiB JSON document with 5 fields.
//!
//! The peer is what a user would write by hand: one `LessSafeKey`, a random
//! 96-bit nonce per message from `aws_lc_rs::rand`, the plaintext copied into
//! a fresh buffer and sealed in place (`nonce ‖ ciphertext ‖ tag`). Palisade
//! is the public API, `Keyring::encrypt` / `Keyring::decrypt`, with a cached
//! DEK (the state of a running instance): the extra work is the cache lookup
//! and the header. The keyring's futures are polled once with a no-op waker;
//! on an in-memory keyring they complete on that poll (the rare DEK refresh
//! after `max_uses` messages included), so no runtime overhead is measured.
//!
//! `cargo bench -p palisade-crypto --bench envelope`

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use palisade_crypto::{FieldKey, JsonPath, Keyring};
use serde_json::{Value, json};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Runs a future that completes on its first poll (everything in memory).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory keyring operation did not complete at once"),
    }
}

fn raw_seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).expect("random");
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .expect("seal");
    out.extend_from_slice(tag.as_ref());
    out
}

fn raw_open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Vec<u8> {
    let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).expect("nonce");
    let mut buffer = sealed[NONCE_LEN..].to_vec();
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .expect("open")
        .len();
    buffer.truncate(len);
    buffer
}

/// Palisade's throughput as a share of the peer's, measured in alternating
/// rounds (peer, Palisade, peer, ...) so a change of load on the machine
/// hits both alike: the median over the rounds of peer time / Palisade time.
fn interleaved_ratio(what: &str, mut peer: impl FnMut(), mut ours: impl FnMut()) {
    const ROUNDS: usize = 41;
    let time = |f: &mut dyn FnMut(), n: u32| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed()
    };
    // Size a batch to about 20 ms of the peer.
    let probe = time(&mut peer, 100).as_secs_f64() / 100.0;
    let n = ((0.02 / probe) as u32).clamp(10, 1_000_000);
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let p = time(&mut peer, n);
            let o = time(&mut ours, n);
            p.as_secs_f64() / o.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "ratio {what}: Palisade at {:.1}% of the peer's throughput (median of {ROUNDS} interleaved rounds of {n}; quartiles {:.1}%..{:.1}%)",
        ratios[ROUNDS / 2] * 100.0,
        ratios[ROUNDS / 4] * 100.0,
        ratios[3 * ROUNDS / 4] * 100.0,
    );
}

fn envelope(c: &mut Criterion) {
    let keyring = Keyring::ephemeral();
    ready(keyring.ensure_key("default")).expect("key");
    let mut key_bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key_bytes).expect("random");
    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("key"));
    let aad = b"tenant=acme;table=users;id=42";

    for size in [1024usize, 64 * 1024] {
        let plaintext: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let label = format!("{} KiB", size / 1024);

        let mut group = c.benchmark_group("encrypt");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("raw aws-lc-rs", &label), |b| {
            b.iter(|| raw_seal(&raw, black_box(aad), black_box(&plaintext)))
        });
        group.bench_function(BenchmarkId::new("palisade envelope", &label), |b| {
            b.iter(|| {
                ready(keyring.encrypt("default", black_box(&plaintext), black_box(aad)))
                    .expect("encrypt")
            })
        });
        group.finish();

        let raw_sealed = raw_seal(&raw, aad, &plaintext);
        let sealed = ready(keyring.encrypt("default", &plaintext, aad)).expect("encrypt");
        let mut group = c.benchmark_group("decrypt");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("raw aws-lc-rs", &label), |b| {
            b.iter(|| raw_open(&raw, black_box(aad), black_box(&raw_sealed)))
        });
        group.bench_function(BenchmarkId::new("palisade envelope", &label), |b| {
            b.iter(|| ready(keyring.decrypt(black_box(&sealed), black_box(aad))).expect("decrypt"))
        });
        group.finish();

        interleaved_ratio(
            &format!("encrypt {label}"),
            || {
                drop(black_box(raw_seal(
                    &raw,
                    black_box(aad),
                    black_box(&plaintext),
                )))
            },
            || {
                drop(black_box(
                    ready(keyring.encrypt("default", black_box(&plaintext), black_box(aad)))
                        .expect("encrypt"),
                ))
            },
        );
        interleaved_ratio(
            &format!("decrypt {label}"),
            || {
                drop(black_box(raw_open(
                    &raw,
                    black_box(aad),
                    black_box(&raw_sealed),
                )))
            },
            || {
                drop(black_box(
                    ready(keyring.decrypt(black_box(&sealed), black_box(aad))).expect("decrypt"),
                ))
            },
        );
    }
}

/// A customer record of about 2 KiB with 5 fields to encrypt.
fn document() -> Value {
    let orders: Vec<Value> = (0..18)
        .map(|i| {
            json!({
                "id": format!("ord-{i:04}"),
                "sku": format!("SKU-{:06}", i * 7919),
                "quantity": i % 5 + 1,
                "price_cents": 1999 + i * 250,
                "status": if i % 3 == 0 { "shipped" } else { "delivered" },
            })
        })
        .collect();
    json!({
        "id": "cus_8f14e45fceea167a5a36dedd4bea2543",
        "created_at": "2026-11-25T10:00:00Z",
        "user": {
            "name": "Alice Example",
            "email": "alice.example@example.com",
            "phone": "+1 555 010 9999",
            "address": {"street": "1 Example Road", "city": "Springfield", "zip": "12345", "country": "US"},
            "date_of_birth": "1985-04-12",
        },
        "payment": {"card_pan": "4111111111111111", "card_exp": "12/30", "brand": "visa"},
        "national_id": "123-45-6789",
        "preferences": {"newsletter": true, "language": "en-US", "theme": "dark"},
        "orders": orders,
    })
}

fn fields(c: &mut Criterion) {
    let keyring = Keyring::ephemeral();
    ready(keyring.ensure_key("default")).expect("key");
    let doc = document();
    let doc_bytes = serde_json::to_vec(&doc).expect("json");
    assert!(
        (1900..=2300).contains(&doc_bytes.len()),
        "document is {} bytes",
        doc_bytes.len()
    );
    let paths: Vec<JsonPath> = [
        "$.user.email",
        "$.user.phone",
        "$.user.date_of_birth",
        "$.payment.card_pan",
        "$.national_id",
    ]
    .iter()
    .map(|p| JsonPath::parse(p).expect("path"))
    .collect();
    let aad = b"tenant=acme;table=customers;id=cus_8f14";
    let mut encrypted = doc.clone();
    assert_eq!(
        ready(keyring.encrypt_fields(&mut encrypted, &paths, FieldKey::Key("default"), aad)),
        Ok(5)
    );

    let mut group = c.benchmark_group("fields 2 KiB document, 5 fields");
    group.bench_function("encrypt_fields (parsed document)", |b| {
        b.iter_batched_ref(
            || doc.clone(),
            |d| ready(keyring.encrypt_fields(d, &paths, FieldKey::Key("default"), aad)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("decrypt_fields (parsed document)", |b| {
        b.iter_batched_ref(
            || encrypted.clone(),
            |d| ready(keyring.decrypt_fields(d, &paths, aad)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function(
        "bytes in, bytes out (parse + encrypt_fields + serialize)",
        |b| {
            b.iter(|| {
                let mut d: Value = serde_json::from_slice(black_box(&doc_bytes)).expect("json");
                ready(keyring.encrypt_fields(&mut d, &paths, FieldKey::Key("default"), aad))
                    .expect("encrypt");
                serde_json::to_vec(&d).expect("json")
            })
        },
    );
    group.bench_function("peer: parse + serialize only, no encryption", |b| {
        b.iter(|| {
            let d: Value = serde_json::from_slice(black_box(&doc_bytes)).expect("json");
            serde_json::to_vec(&d).expect("json")
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = envelope, fields
}
criterion_main!(benches);
