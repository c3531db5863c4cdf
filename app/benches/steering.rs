//! Steering lookups in process: a million prefixes shaped like a real table
//! (mostly /24s, some shorter, some longer), spread over 500 nodes, and
//! random subscriber addresses. Run with `bench/steering/run.sh`, or:
//! `cargo bench -p app --features ssr --bench steering`.

use app::backend::steering::{Member, RouteIndex};
use app::model::RouteSource;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;
use std::time::Instant;

const PREFIXES: usize = 1_000_000;
const NODES: i64 = 500;

fn table(rng: &mut rand::rngs::StdRng) -> Vec<(Ipv4Net, Member)> {
    (0..PREFIXES)
        .map(|_| {
            // Roughly the shape of the IPv4 table: 60 % /24, the rest spread
            // from /16 to /30.
            let len = if rng.gen_bool(0.6) {
                24
            } else {
                rng.gen_range(16..=30)
            };
            let net = Ipv4Net::new(Ipv4Addr::from(rng.gen::<u32>()), len)
                .unwrap()
                .trunc();
            let member = Member {
                node_id: rng.gen_range(1..=NODES),
                source: if rng.gen_bool(0.5) {
                    RouteSource::Manual
                } else {
                    RouteSource::Bgp
                },
            };
            (net, member)
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let claims = table(&mut rng);
    let started = Instant::now();
    let index = RouteIndex::build(claims.clone());
    eprintln!(
        "built an index of {} prefixes in {:.2} s",
        index.prefix_count(),
        started.elapsed().as_secs_f64()
    );
    // Half the lookups hit a prefix (an address inside a random table
    // entry), half are random addresses, which mostly miss.
    let inside: Vec<Ipv4Addr> = (0..4096)
        .map(|_| {
            let (net, _) = claims[rng.gen_range(0..claims.len())];
            let span = 1u32 << (32 - net.prefix_len());
            Ipv4Addr::from(u32::from(net.network()) + rng.gen_range(0..span))
        })
        .collect();
    let random: Vec<Ipv4Addr> = (0..4096)
        .map(|_| Ipv4Addr::from(rng.gen::<u32>()))
        .collect();
    // Every fifth node is unhealthy, so some lookups walk to a shorter
    // prefix, as they do when nodes fail.
    let healthy = |m: &Member| m.node_id % 5 != 0;

    let mut group = c.benchmark_group("steering lookup, 1M prefixes");
    let mut i = 0;
    group.bench_function("address inside a prefix", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(index.lookup(black_box(inside[i]), healthy))
        })
    });
    group.bench_function("random address", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(index.lookup(black_box(random[i]), healthy))
        })
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
