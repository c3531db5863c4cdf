//! Byte hit ratio of the cache's eviction policies on a synthetic trace shaped
//! like update traffic; run by `bench/cache/eviction-sim.sh`, results in
//! docs/benchmarks.md.
//!
//! The trace (seeded, so every run sees the same one):
//! - a catalog of 10,000 objects cut into 1 MiB slices, sizes heavy-tailed:
//!   55% are one slice (definitions, metadata), 30% 2 to 64 (drivers,
//!   deltas), 12% 64 to 512 (cumulative updates, Office, Edge), 3% 512 MiB
//!   to 4 GiB (feature updates, games);
//! - 150,000 downloads; popularity Zipf(0.9) over the catalog, independent
//!   of size;
//! - releases: every 5,000 downloads 2% of the catalog is replaced by new
//!   objects that enter among the most popular 5% (a new month's updates);
//! - 75% of downloads read the whole object, the rest a contiguous 10-30%
//!   of an object over 64 MiB (express and delta updates, resumed downloads);
//! - 2% of downloads are one-off reads of 512 MiB to 4 GiB that nobody asks
//!   for again (a game one subscriber installs): the scans that hurt LRU.
//!
//! Every slice read is one access; the ratio is hits over accesses, which is
//! the byte hit ratio since slices are equal.

use std::collections::HashMap;

use lastmile_cache::eviction::{EvictionPolicy, Lru, S3Fifo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CATALOG: usize = 10_000;
const REQUESTS: usize = 150_000;
const RELEASE_EVERY: usize = 5_000;
const RELEASE_SHARE: f64 = 0.02;
const ZIPF_ALPHA: f64 = 0.9;
const PARTIAL_SHARE: f64 = 0.25;
const ONE_OFF_SHARE: f64 = 0.02;

#[derive(Clone, Copy)]
struct Access {
    object: u64,
    slice: u32,
}

fn object_slices(rng: &mut StdRng) -> u32 {
    let log_uniform = |rng: &mut StdRng, low: f64, high: f64| {
        (low.ln() + rng.gen::<f64>() * (high.ln() - low.ln()))
            .exp()
            .round() as u32
    };
    let pick: f64 = rng.gen();
    if pick < 0.55 {
        1
    } else if pick < 0.85 {
        log_uniform(rng, 2.0, 64.0)
    } else if pick < 0.97 {
        log_uniform(rng, 64.0, 512.0)
    } else {
        log_uniform(rng, 512.0, 4096.0)
    }
}

/// Samples ranks 0.. with probability proportional to 1 / (rank + 1)^alpha.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, alpha: f64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(alpha);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let target = rng.gen::<f64>() * self.cumulative.last().unwrap();
        self.cumulative.partition_point(|c| *c < target)
    }
}

fn trace() -> (Vec<Access>, u64) {
    let mut rng = StdRng::seed_from_u64(2024);
    let mut next_object = 0u64;
    let mut sizes: HashMap<u64, u32> = HashMap::new();
    let mut new_object = |rng: &mut StdRng, sizes: &mut HashMap<u64, u32>| {
        next_object += 1;
        sizes.insert(next_object, object_slices(rng));
        next_object
    };
    // ranking[r] is the object with popularity rank r.
    let mut ranking: Vec<u64> = (0..CATALOG)
        .map(|_| new_object(&mut rng, &mut sizes))
        .collect();
    let zipf = Zipf::new(CATALOG, ZIPF_ALPHA);
    let mut accesses = Vec::new();
    for request in 0..REQUESTS {
        if request > 0 && request % RELEASE_EVERY == 0 {
            let releases = (CATALOG as f64 * RELEASE_SHARE) as usize;
            for _ in 0..releases {
                // A new object takes a place among the top 5%, pushing the
                // old holder to the end (it fades out).
                let rank = rng.gen_range(0..CATALOG / 20);
                let old = ranking.remove(rank);
                ranking.push(old);
                let fresh = new_object(&mut rng, &mut sizes);
                ranking.insert(rank, fresh);
                ranking.truncate(CATALOG);
            }
        }
        let (object, slices) = if rng.gen::<f64>() < ONE_OFF_SHARE {
            let object = new_object(&mut rng, &mut sizes);
            let slices = rng.gen_range(512..4096);
            sizes.insert(object, slices);
            (object, slices)
        } else {
            let object = ranking[zipf.sample(&mut rng)];
            (object, sizes[&object])
        };
        let (first, count) = if slices > 64 && rng.gen::<f64>() < PARTIAL_SHARE {
            let count = ((slices as f64) * rng.gen_range(0.1..0.3)).ceil() as u32;
            (rng.gen_range(0..=slices - count), count)
        } else {
            (0, slices)
        };
        for slice in first..first + count {
            accesses.push(Access { object, slice });
        }
    }
    let mut distinct: Vec<(u64, u32)> = accesses.iter().map(|a| (a.object, a.slice)).collect();
    distinct.sort_unstable();
    distinct.dedup();
    (accesses, distinct.len() as u64)
}

fn hit_ratio<P: EvictionPolicy<(u64, u32)>>(
    mut policy: P,
    accesses: &[Access],
    capacity: u64,
) -> f64 {
    policy.set_capacity(capacity);
    let mut hits = 0u64;
    for access in accesses {
        let key = (access.object, access.slice);
        if policy.touch(&key) {
            hits += 1;
            continue;
        }
        while policy.bytes() + 1 > capacity {
            if policy.evict().is_none() {
                break;
            }
        }
        policy.insert(key, 1);
    }
    hits as f64 / accesses.len() as f64
}

fn main() {
    let (accesses, distinct) = trace();
    println!(
        "trace: {} slice reads ({:.1} TiB), {} distinct slices ({:.1} TiB)",
        accesses.len(),
        accesses.len() as f64 / 1024.0 / 1024.0,
        distinct,
        distinct as f64 / 1024.0 / 1024.0
    );
    println!(
        "best possible (only first reads miss): {:.1}%",
        (1.0 - distinct as f64 / accesses.len() as f64) * 100.0
    );
    println!();
    println!("| cache size (share of distinct bytes) | LRU | S3-FIFO (promote after 1 hit) | S3-FIFO (promote after 2 hits) |");
    println!("| --- | --- | --- | --- |");
    for share in [0.01, 0.03, 0.10, 0.30] {
        let capacity = ((distinct as f64) * share) as u64;
        let lru = hit_ratio(Lru::default(), &accesses, capacity);
        let s3_one = hit_ratio(S3Fifo::with_parameters(10, 1), &accesses, capacity);
        let s3_two = hit_ratio(S3Fifo::with_parameters(10, 2), &accesses, capacity);
        println!(
            "| {:.0}% | {:.1}% | {:.1}% | {:.1}% |",
            share * 100.0,
            lru * 100.0,
            s3_one * 100.0,
            s3_two * 100.0
        );
    }
}
