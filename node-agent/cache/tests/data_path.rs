//! The data path against a local origin the tests control. Nothing here
//! depends on timing for its verdict, except lower bounds (a rate limit
//! must take at least so long) which a slow machine cannot break.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use lastmile_cache::{ApplyError, DriveConfig, Problem};
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;

async fn setup() -> (Origin, tempfile::TempDir, std::path::PathBuf) {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let drive = drive(&dir, "d1");
    (origin, dir, drive)
}

fn expect_bytes(response: &Response, expected: &[u8]) {
    assert!(
        response.complete,
        "body cut short: {} bytes",
        response.body.len()
    );
    assert_eq!(response.body.len(), expected.len());
    assert!(response.body == expected, "body differs from the origin's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ranges_match_the_origin_byte_for_byte() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let slice = SLICE as usize;
    let sizes = [1, 1000, slice - 1, slice, slice + 1, 5 * slice + 123];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (i, &size) in sizes.iter().enumerate() {
        let path = format!("/objects/{i}.bin");
        let body = content(i as u64, size);
        origin.put(&path, OriginObject::new(body.clone(), &format!("\"v{i}\"")));
        for _ in 0..25 {
            let (header, start, end) = match rng.gen_range(0..3) {
                0 => {
                    let first = rng.gen_range(0..size);
                    let last = rng.gen_range(first..size + 50);
                    (format!("bytes={first}-{last}"), first, (last + 1).min(size))
                }
                1 => {
                    let first = rng.gen_range(0..size);
                    (format!("bytes={first}-"), first, size)
                }
                _ => {
                    let suffix = rng.gen_range(1..size + 50);
                    (format!("bytes=-{suffix}"), size - suffix.min(size), size)
                }
            };
            let response = get_range(node.addr, &path, &header).await;
            assert_eq!(response.status, 206, "{header} on {size} bytes");
            let content_range = format!("bytes {start}-{}/{size}", end - 1);
            assert_eq!(
                response.header("Content-Range"),
                Some(content_range.as_str())
            );
            expect_bytes(&response, &body[start..end]);
        }
        let whole = get(node.addr, &path).await;
        assert_eq!(whole.status, 200);
        assert_eq!(whole.header("Content-Range"), None);
        assert_eq!(whole.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(whole.header("ETag"), Some(format!("\"v{i}\"").as_str()));
        expect_bytes(&whole, &body);
    }
    // Everything is on disk now: another pass must not reach the origin.
    node.settle().await;
    let asked = origin.requests().len();
    for (i, &size) in sizes.iter().enumerate() {
        let whole = get(node.addr, &format!("/objects/{i}.bin")).await;
        assert_eq!(whole.header("X-Cache"), Some("HIT"));
        expect_bytes(&whole, &content(i as u64, size));
    }
    assert_eq!(origin.requests().len(), asked);
    let counters = node.cache.counters();
    assert!(counters.hit_bytes > 0 && counters.miss_bytes > 0);
    assert_eq!(counters.cut_responses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_ranges_if_range_and_head() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let len = 3 * SLICE as usize + 10;
    let body = content(3, len);
    origin.put("/f", OriginObject::new(body.clone(), "\"e1\""));
    let last_modified = "Wed, 21 Oct 2015 07:28:00 GMT";

    // HEAD of an object not cached yet, then with a range.
    let head = request(node.addr, "HEAD", "/f", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(head.header("ETag"), Some("\"e1\""));
    assert_eq!(head.header("Last-Modified"), Some(last_modified));
    let head = request(node.addr, "HEAD", "/f", &[("Range", "bytes=10-19")]).await;
    assert_eq!(head.status, 206);
    assert_eq!(head.header("Content-Length"), Some("10"));
    assert_eq!(
        head.header("Content-Range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );

    // Ranges that select nothing.
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 9),
        "bytes=-0".to_string(),
    ] {
        let response = get_range(node.addr, "/f", &range).await;
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(
            response.header("Content-Range"),
            Some(format!("bytes */{len}").as_str())
        );
    }
    // Several ranges, or a range that does not parse: the whole object.
    for range in ["bytes=0-1,5-6", "bytes=9-2", "lines=1-2"] {
        let response = get_range(node.addr, "/f", range).await;
        assert_eq!(response.status, 200, "{range}");
        expect_bytes(&response, &body);
    }
    // If-Range: a matching strong ETag or date keeps the range.
    for validator in ["\"e1\"", last_modified] {
        let response = request(
            node.addr,
            "GET",
            "/f",
            &[("Range", "bytes=5-9"), ("If-Range", validator)],
        )
        .await;
        assert_eq!(response.status, 206, "{validator}");
        expect_bytes(&response, &body[5..10]);
    }
    // Anything else sends the whole object.
    for validator in [
        "\"other\"",
        "W/\"e1\"",
        "Thu, 22 Oct 2015 07:28:00 GMT",
        "garbage",
    ] {
        let response = request(
            node.addr,
            "GET",
            "/f",
            &[("Range", "bytes=5-9"), ("If-Range", validator)],
        )
        .await;
        assert_eq!(response.status, 200, "{validator}");
        expect_bytes(&response, &body);
    }
    // 416 for an object seen for the first time.
    origin.put("/g", OriginObject::new(content(4, 100), "\"g\""));
    let response = get_range(node.addr, "/g", "bytes=100-").await;
    assert_eq!(response.status, 416);
    assert_eq!(response.header("Content-Range"), Some("bytes */100"));
    // An empty object.
    origin.put("/empty", OriginObject::new(Vec::new(), "\"z\""));
    let response = get(node.addr, "/empty").await;
    assert_eq!(response.status, 200);
    expect_bytes(&response, b"");
    let response = get_range(node.addr, "/empty", "bytes=0-").await;
    assert_eq!(response.status, 416);
    // Methods other than GET and HEAD.
    let response = request(node.addr, "POST", "/f", &[("Content-Length", "0")]).await;
    assert_eq!(response.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etag_change_mid_object_cuts_the_response_and_never_mixes_versions() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let len = 8 * SLICE as usize;
    let old = content(10, len);
    let new = content(11, len);
    origin.put("/changing", OriginObject::new(old.clone(), "\"old\""));
    // The origin answers three slice requests with the old object, then
    // switches to the new one.
    origin.behave(
        "/changing",
        Behavior {
            replace_after: Some((3, OriginObject::new(new.clone(), "\"new\""))),
            ..Behavior::default()
        },
    );
    let cut = get(node.addr, "/changing").await;
    assert_eq!(cut.status, 200);
    assert_eq!(cut.header("ETag"), Some("\"old\""));
    assert!(!cut.complete, "a response mixing two versions must be cut");
    assert!(cut.body.len() < len);
    assert!(
        cut.body == old[..cut.body.len()],
        "bytes of the new version were sent"
    );
    assert!(node.cache.counters().cut_responses >= 1);

    // From now on only the new version, whole, even the slices that were
    // cached from the old one.
    let again = get(node.addr, "/changing").await;
    assert_eq!(again.header("ETag"), Some("\"new\""));
    expect_bytes(&again, &new);
    let start = get_range(node.addr, "/changing", "bytes=0-99").await;
    expect_bytes(&start, &new[..100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_answers_from_before_a_change_are_neither_stored_nor_mixed() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let len = 8 * SLICE as usize;
    let old = content(14, len);
    let new = content(15, len);
    origin.put("/late", OriginObject::new(old.clone(), "\"old\""));
    // The first request (slice 0) and the next two get the old object, but
    // those two answers come back only after the requests that got the new
    // one: the order in which a cache's concurrent fetches return around a
    // change is anyone's.
    origin.behave(
        "/late",
        Behavior {
            replace_after: Some((3, OriginObject::new(new.clone(), "\"new\""))),
            late_answers: (vec![2, 3], Duration::from_millis(300)),
            ..Behavior::default()
        },
    );
    let first = get(node.addr, "/late").await;
    assert!(!first.complete);
    assert!(
        first.body == old[..first.body.len()],
        "bytes of two versions in one response"
    );
    // The late old answers are still on their way: the next response must
    // not take them (nor have them cut it).
    let second = get(node.addr, "/late").await;
    assert_eq!(second.header("ETag"), Some("\"new\""));
    expect_bytes(&second, &new);
    node.settle().await;
    // And they were not stored: everything comes from disk, new.
    let asked = origin.requests_for("/late").len();
    let third = get(node.addr, "/late").await;
    assert_eq!(third.header("X-Cache"), Some("HIT"));
    expect_bytes(&third, &new);
    assert_eq!(origin.requests_for("/late").len(), asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_object_is_dropped_when_a_missing_slice_reveals_it() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let slice = SLICE as usize;
    let old = content(12, 4 * slice);
    let new = content(13, 4 * slice + 7);
    origin.put("/obj", OriginObject::new(old.clone(), "\"old\""));
    // Only the first slice gets cached.
    expect_bytes(
        &get_range(node.addr, "/obj", "bytes=0-99").await,
        &old[..100],
    );
    origin.put("/obj", OriginObject::new(new.clone(), "\"new\""));
    // Asking for an uncached slice reaches the origin, which answers with
    // the new identity: that request is answered from the new version...
    let tail = get_range(node.addr, "/obj", &format!("bytes={}-", 3 * slice)).await;
    assert_eq!(tail.header("ETag"), Some("\"new\""));
    expect_bytes(&tail, &new[3 * slice..]);
    // ...and the cached first slice of the old one is gone.
    let head = get_range(node.addr, "/obj", "bytes=0-99").await;
    assert_eq!(head.header("ETag"), Some("\"new\""));
    expect_bytes(&head, &new[..100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_never_exceeded_and_eviction_makes_room() {
    let (origin, _dir, drive) = setup().await;
    let mut settings = config(&drive, &origin);
    let quota = 10 * (SLICE + 4096);
    settings.drives[0].quota_bytes = quota;
    let node = Node::start(settings.clone()).await;
    let len = 3 * SLICE as usize - 100;
    for round in 0..2 {
        for i in 0..12u64 {
            let path = format!("/q/{i}");
            if round == 0 {
                origin.put(&path, OriginObject::new(content(100 + i, len), "\"q\""));
            }
            let response = get(node.addr, &path).await;
            expect_bytes(&response, &content(100 + i, len));
            let on_disk = drive_usage(&drive);
            assert!(on_disk <= quota, "{on_disk} bytes on disk, quota {quota}");
            let counted = node.cache.counters().drives[0].used_bytes;
            assert!(counted <= quota, "{counted} bytes counted, quota {quota}");
        }
    }
    let counters = node.cache.counters();
    assert!(counters.evictions >= 20, "{} evictions", counters.evictions);
    assert!(counters.evicted_bytes >= 20 * SLICE);
    // Lowering the quota evicts at once.
    settings.drives[0].quota_bytes = 5 * (SLICE + 4096);
    node.cache.apply(settings).await.unwrap();
    eventually("the lowered quota to be kept", || {
        drive_usage(&drive) <= 5 * (SLICE + 4096)
    })
    .await;
    expect_bytes(&get(node.addr, "/q/0").await, &content(100, len));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_off_the_allow_list_are_refused_without_reaching_the_origin() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    origin.put("/x", OriginObject::new(content(1, 10), "\"x\""));
    let refused = [
        request(node.addr, "GET", "/x", &[("Host", "evil.example")]).await,
        get(node.addr, "/x?cacheHostOrigin=evil.example").await,
        request(
            node.addr,
            "GET",
            "http://evil.example/x",
            &[("Host", ORIGIN_HOST)],
        )
        .await,
        request(
            node.addr,
            "GET",
            "/x",
            &[("Host", "origin.test.evil.example")],
        )
        .await,
        request(node.addr, "GET", "/x", &[("Host", "127.0.0.1")]).await,
    ];
    for response in &refused {
        assert_eq!(response.status, 403);
    }
    assert!(origin.requests().is_empty());
    // No Host at all: 400. The allowed host by any route: 200.
    let allowed = [
        get(node.addr, "/x").await,
        request(
            node.addr,
            "GET",
            "/x?cacheHostOrigin=origin.test",
            &[("Host", "node.isp.example")],
        )
        .await,
        request(
            node.addr,
            "GET",
            "/x?cacheHostOrigin=Origin.Test.",
            &[("Host", "node.isp.example")],
        )
        .await,
    ];
    for response in &allowed {
        expect_bytes(response, &content(1, 10));
    }
    // The origin never sees cacheHostOrigin.
    assert!(origin
        .requests()
        .iter()
        .all(|r| !r.path.contains("cacheHostOrigin")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_paths_are_refused_and_no_file_leaves_the_cache_folder() {
    let (origin, dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    for target in [
        "/../../etc/passwd",
        "/files/%2e%2e/%2E%2E/etc/passwd",
        "/a/./b",
        "/a/..",
    ] {
        let response = get(node.addr, target).await;
        assert_eq!(response.status, 400, "{target}");
    }
    assert!(origin.requests().is_empty());
    // Encoded slashes are not dot segments; whatever the URL, the cache
    // stores by hash inside its own folder.
    let sneaky = "/..%2f..%2f..%2fescaped";
    origin.put(
        sneaky,
        OriginObject::new(content(5, 3 * SLICE as usize), "\"s\""),
    );
    expect_bytes(
        &get(node.addr, sneaky).await,
        &content(5, 3 * SLICE as usize),
    );
    let root = drive.join("lastmile-cache");
    let files = files_under(dir.path());
    assert!(!files.is_empty());
    for file in files {
        assert!(
            file.starts_with(&root),
            "{} outside the cache folder",
            file.display()
        );
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(!name.contains("escaped"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_breaks_off_mid_slice_is_retried() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let body = content(20, 4 * SLICE as usize);
    origin.put("/flaky", OriginObject::new(body.clone(), "\"f\""));
    origin.behave(
        "/flaky",
        Behavior {
            break_after: Some((SLICE as usize / 2, 1)),
            ..Behavior::default()
        },
    );
    expect_bytes(&get(node.addr, "/flaky").await, &body);
    let first_slice = format!("bytes=0-{}", SLICE - 1);
    let asked = origin
        .requests_for("/flaky")
        .iter()
        .filter(|r| r.range.as_deref() == Some(first_slice.as_str()))
        .count();
    assert_eq!(asked, 2, "the broken slice is fetched again, once");
    // The retried slice was stored whole.
    node.settle().await;
    assert_eq!(
        get(node.addr, "/flaky").await.header("X-Cache"),
        Some("HIT")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_fetch_is_taken_over_by_a_waiter() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let body = content(21, 3 * SLICE as usize);
    origin.put("/stall", OriginObject::new(body.clone(), "\"s\""));
    origin.behave(
        "/stall",
        Behavior {
            stall_after: Some((SLICE as usize / 2, 1)),
            ..Behavior::default()
        },
    );
    let (a, b, c) = tokio::join!(
        get(node.addr, "/stall"),
        get(node.addr, "/stall"),
        get_range(node.addr, "/stall", "bytes=100-"),
    );
    expect_bytes(&a, &body);
    expect_bytes(&b, &body);
    expect_bytes(&c, &body[100..]);
    let first_slice = format!("bytes=0-{}", SLICE - 1);
    let asked = origin
        .requests_for("/stall")
        .iter()
        .filter(|r| r.range.as_deref() == Some(first_slice.as_str()))
        .count();
    assert_eq!(
        asked, 2,
        "one stalled fetch, one take-over, however many waiters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_share_one_origin_fetch_per_slice() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let len = 6 * SLICE as usize;
    let body = Arc::new(content(30, len));
    origin.put("/herd", OriginObject::new(body.to_vec(), "\"h\""));
    // Slow answers, so that the clients pile up behind each fetch.
    origin.behave(
        "/herd",
        Behavior {
            delay: Duration::from_millis(100),
            ..Behavior::default()
        },
    );
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let addr = node.addr;
        clients.spawn(async move { get(addr, "/herd").await });
    }
    while let Some(response) = clients.join_next().await {
        expect_bytes(&response.unwrap(), &body);
    }
    let ranges: Vec<Option<String>> = origin
        .requests_for("/herd")
        .into_iter()
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges.len(), 6, "one fetch per slice, got {ranges:?}");
    assert_eq!(ranges.iter().collect::<HashSet<_>>().len(), 6);
    assert_eq!(origin.body_bytes(), len as u64);
    let counters = node.cache.counters();
    assert_eq!(counters.origin_bytes, len as u64);
    assert!(counters.collapsed >= 19, "{} collapsed", counters.collapsed);
    // The server counts a slice's bytes once it has sent them all, which
    // can be just after the client read them.
    eventually("every byte sent is counted", || {
        let c = node.cache.counters();
        c.miss_bytes + c.hit_bytes == 20 * len as u64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_range_deep_in_an_object_fetches_only_its_slices() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let slice = SLICE as usize;
    let body = content(31, 40 * slice + 5);
    origin.put("/deep", OriginObject::new(body.clone(), "\"d\""));
    let (start, end) = (30 * slice + 100, 31 * slice + 100);
    let response = get_range(node.addr, "/deep", &format!("bytes={start}-{}", end - 1)).await;
    expect_bytes(&response, &body[start..end]);
    let ranges: HashSet<Option<String>> = origin
        .requests_for("/deep")
        .into_iter()
        .map(|r| r.range)
        .collect();
    let expected: HashSet<Option<String>> = [30, 31]
        .iter()
        .map(|i| Some(format!("bytes={}-{}", i * slice, (i + 1) * slice - 1)))
        .collect();
    assert_eq!(ranges, expected);
    assert_eq!(origin.body_bytes(), 2 * SLICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_is_served_when_the_origin_cannot_be_asked() {
    let (origin, _dir, drive) = setup().await;
    let mut config = config(&drive, &origin);
    // Every request revalidates.
    config.default_freshness = Duration::ZERO;
    let node = Node::start(config.clone()).await;
    let body = content(40, 2 * SLICE as usize);
    origin.put("/kept", OriginObject::new(body.clone(), "\"k\""));
    expect_bytes(&get(node.addr, "/kept").await, &body);
    node.settle().await;
    // Revalidation while the origin is fine: one-byte probe, still a hit.
    let response = get(node.addr, "/kept").await;
    assert_eq!(response.header("X-Cache"), Some("HIT"));
    expect_bytes(&response, &body);
    assert_eq!(
        origin
            .requests_for("/kept")
            .last()
            .unwrap()
            .range
            .as_deref(),
        Some("bytes=0-0")
    );

    // The origin answers 503: the cached copy is served; what is not
    // cached gets the origin's error.
    origin.behave(
        "/kept",
        Behavior {
            error: Some((503, "maintenance".into())),
            ..Behavior::default()
        },
    );
    origin.behave(
        "/new",
        Behavior {
            error: Some((503, "maintenance".into())),
            ..Behavior::default()
        },
    );
    expect_bytes(&get(node.addr, "/kept").await, &body);
    let missing = get(node.addr, "/new").await;
    assert_eq!(missing.status, 503);
    assert_eq!(missing.body, b"maintenance");
    eventually("a stale answer is counted", || {
        node.cache.counters().stale_served >= 1
    })
    .await;

    // The origin is unreachable: the same, with 502 for what is not cached.
    config
        .origin
        .resolve
        .insert(ORIGIN_HOST.into(), "127.0.0.1:9".parse().unwrap());
    node.cache.apply(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The stale copy was just revalidated-with-error; it stays served.
    expect_bytes(&get(node.addr, "/kept").await, &body);
    assert_eq!(get(node.addr, "/other").await.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_errors_are_passed_on_and_never_cached() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let missing = get(node.addr, "/later").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, b"no such object");
    origin.behave(
        "/broken",
        Behavior {
            error: Some((500, "boom".into())),
            ..Behavior::default()
        },
    );
    origin.put("/broken", OriginObject::new(content(50, 100), "\"b\""));
    let broken = get(node.addr, "/broken").await;
    assert_eq!(broken.status, 500);
    assert_eq!(broken.body, b"boom");
    assert!(slice_files(&drive).is_empty(), "an error was stored");

    origin.put("/later", OriginObject::new(content(51, 100), "\"l\""));
    origin.behave("/broken", Behavior::default());
    expect_bytes(&get(node.addr, "/later").await, &content(51, 100));
    expect_bytes(&get(node.addr, "/broken").await, &content(50, 100));
    eventually("every answer is counted", || {
        node.cache.counters().requests == 4
    })
    .await;
    let counters = node.cache.counters();
    assert_eq!(counters.requests_by_status.get(&404), Some(&1));
    assert_eq!(counters.requests_by_status.get(&500), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_that_may_not_be_stored_are_served_but_not_stored() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let mut private = OriginObject::new(content(60, 2 * SLICE as usize), "\"p\"");
    private.cache_control = Some("private, max-age=60".into());
    origin.put("/private", private.clone());
    let mut unvalidated = OriginObject::new(content(61, 2 * SLICE as usize), "\"u\"");
    unvalidated.etag = None;
    unvalidated.last_modified = None;
    origin.put("/unvalidated", unvalidated.clone());
    for _ in 0..2 {
        expect_bytes(&get(node.addr, "/private").await, &private.body);
        expect_bytes(&get(node.addr, "/unvalidated").await, &unvalidated.body);
    }
    assert_eq!(origin.requests_for("/private").len(), 4);
    assert_eq!(origin.requests_for("/unvalidated").len(), 4);
    node.settle().await;
    assert!(slice_files(&drive).is_empty());
    let tmp = drive.join("lastmile-cache/tmp");
    eventually("temporary files are removed", || {
        files_under(&tmp).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_ignores_range_still_gives_correct_slices() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let body = content(62, 5 * SLICE as usize + 3);
    origin.put("/norange", OriginObject::new(body.clone(), "\"n\""));
    origin.behave(
        "/norange",
        Behavior {
            ignore_range: true,
            ..Behavior::default()
        },
    );
    let start = 2 * SLICE as usize + 5;
    expect_bytes(
        &get_range(node.addr, "/norange", &format!("bytes={start}-")).await,
        &body[start..],
    );
    expect_bytes(&get(node.addr, "/norange").await, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidating_against_an_origin_that_ignores_range_reads_no_body() {
    let (origin, _dir, drive) = setup().await;
    let mut settings = config(&drive, &origin);
    settings.default_freshness = Duration::ZERO;
    let node = Node::start(settings).await;
    let len = 40 * SLICE as usize;
    let body = content(63, len);
    origin.put("/big", OriginObject::new(body.clone(), "\"b\""));
    expect_bytes(&get(node.addr, "/big").await, &body);
    node.settle().await;
    origin.behave(
        "/big",
        Behavior {
            ignore_range: true,
            ..Behavior::default()
        },
    );
    let before = node.cache.counters().origin_bytes;
    // Stale: the one-byte check gets the whole object as 200, which is
    // enough to confirm the identity and is not read.
    let response = get_range(node.addr, "/big", "bytes=0-99").await;
    assert_eq!(response.header("X-Cache"), Some("HIT"));
    expect_bytes(&response, &body[..100]);
    assert_eq!(node.cache.counters().origin_bytes, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_origin_answers_are_refused_not_stored() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    origin.put("/gz", OriginObject::new(content(64, 1000), "\"g\""));
    origin.behave(
        "/gz",
        Behavior {
            extra_header: Some("Content-Encoding: gzip".into()),
            ..Behavior::default()
        },
    );
    assert_eq!(get(node.addr, "/gz").await.status, 502);
    node.settle().await;
    assert!(slice_files(&drive).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_is_refused_and_the_connection_closed() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    origin.put("/p", OriginObject::new(content(65, 10), "\"p\""));
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let smuggled = format!("GET /p HTTP/1.1\r\nHost: {ORIGIN_HOST}\r\nContent-Length: 37\r\n\r\nGET /p HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    stream.write_all(smuggled.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let response = read_next_response(&mut stream, &mut buf, false).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.header("Connection"), Some("close"));
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest)
        .await
        .unwrap();
    assert!(
        buf.is_empty() && rest.is_empty(),
        "a second answer came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_parameters_do_not_split_the_cache() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let body = content(70, SLICE as usize);
    origin.put("/signed", OriginObject::new(body.clone(), "\"s\""));
    expect_bytes(
        &get(node.addr, "/signed?P1=1700000000&P2=404&P3=2&P4=c2lnQQ").await,
        &body,
    );
    node.settle().await;
    let second = get(node.addr, "/signed?P1=1700000999&P2=404&P3=2&P4=c2lnQg").await;
    assert_eq!(second.header("X-Cache"), Some("HIT"));
    expect_bytes(&second, &body);
    let asked = origin.requests_for("/signed");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].path, "/signed?P1=1700000000&P2=404&P3=2&P4=c2lnQQ");
    // A parameter that is not a signature is part of the key.
    origin.put("/signed", OriginObject::new(body.clone(), "\"s\""));
    assert_eq!(
        get(node.addr, "/signed?version=2").await.header("X-Cache"),
        Some("MISS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_answers_503_and_health_follows_the_configuration() {
    let (origin, dir, drive) = setup().await;
    let mut config = config(&drive, &origin);
    config.enabled = false;
    let node = Node::start(config.clone()).await;
    origin.put("/h", OriginObject::new(content(80, 10), "\"h\""));
    assert_eq!(get(node.addr, "/h").await.status, 503);
    let healthz = request(node.admin, "GET", "/healthz", &[]).await;
    assert_eq!(healthz.status, 503);
    assert!(String::from_utf8_lossy(&healthz.body).contains("disabled"));
    assert!(!node.cache.health().serving);
    assert!(origin.requests().is_empty());

    config.enabled = true;
    node.cache.apply(config.clone()).await.unwrap();
    expect_bytes(&get(node.addr, "/h").await, &content(80, 10));
    assert_eq!(
        request(node.admin, "GET", "/healthz", &[]).await.status,
        200
    );

    // Refused configurations name the reason and leave the old one in force.
    let with_drive = |path: std::path::PathBuf, quota_bytes: u64| {
        let mut c = config.clone();
        c.drives = vec![DriveConfig { path, quota_bytes }];
        c
    };
    let missing = dir.path().join("not-there");
    assert_eq!(
        node.cache
            .apply(with_drive(missing.clone(), 64 << 20))
            .await,
        Err(ApplyError::DriveMissing { path: missing })
    );
    let too_big = node.cache.apply(with_drive(drive.clone(), 1 << 62)).await;
    assert!(
        matches!(too_big, Err(ApplyError::DriveTooSmall { .. })),
        "{too_big:?}"
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(
        node.cache.apply(with_drive(file.clone(), 64 << 20)).await,
        Err(ApplyError::DriveNotAFolder { path: file })
    );
    // A folder in which the cache cannot make its own folder.
    let blocked = common::drive(&dir, "blocked");
    std::fs::write(blocked.join("lastmile-cache"), b"in the way").unwrap();
    let not_writable = node.cache.apply(with_drive(blocked, 64 << 20)).await;
    assert!(
        matches!(not_writable, Err(ApplyError::DriveNotWritable { .. })),
        "{not_writable:?}"
    );
    let nested = node
        .cache
        .apply({
            let mut c = config.clone();
            c.drives.push(DriveConfig {
                path: drive.join("inner"),
                quota_bytes: 64 << 20,
            });
            std::fs::create_dir_all(drive.join("inner")).unwrap();
            c
        })
        .await;
    assert!(
        matches!(nested, Err(ApplyError::DriveOverlaps { .. })),
        "{nested:?}"
    );
    assert_eq!(get(node.addr, "/h").await.status, 200);
    assert!(node.cache.health().serving);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_that_fails_makes_the_node_unhealthy() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    origin.put("/a", OriginObject::new(content(81, 100), "\"a\""));
    expect_bytes(&get(node.addr, "/a").await, &content(81, 100));
    node.settle().await;
    // The temporary folder becomes unusable.
    let tmp = drive.join("lastmile-cache/tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"not a folder").unwrap();
    origin.put("/b", OriginObject::new(content(82, 100), "\"b\""));
    assert_eq!(get(node.addr, "/b").await.status, 503);
    let health = node.cache.health();
    assert!(!health.serving);
    assert!(health.problems.contains(&Problem::NoWritableDrive));
    assert!(health
        .problems
        .iter()
        .any(|p| matches!(p, Problem::DriveFailed { .. })));
    assert_eq!(
        request(node.admin, "GET", "/healthz", &[]).await.status,
        503
    );
    // What is cached is still served.
    expect_bytes(&get(node.addr, "/a").await, &content(81, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_requests_bytes_and_families() {
    let (origin, _dir, drive) = setup().await;
    let mut config = config(&drive, &origin);
    config
        .origin
        .resolve
        .insert("assets1.xboxlive.com".into(), origin.addr);
    let node = Node::start(config).await;
    let len = 2 * SLICE as usize;
    origin.put("/game.xvc", OriginObject::new(content(90, len), "\"x\""));
    let xbox = [("Host", "assets1.xboxlive.com")];
    expect_bytes(
        &request(node.addr, "GET", "/game.xvc", &xbox).await,
        &content(90, len),
    );
    node.settle().await;
    expect_bytes(
        &request(node.addr, "GET", "/game.xvc", &xbox).await,
        &content(90, len),
    );
    assert_eq!(
        get(node.addr, "/x?cacheHostOrigin=evil.example")
            .await
            .status,
        403
    );

    // Answers are counted just after they are sent.
    eventually("every answer is counted", || {
        node.cache.counters().requests == 3
    })
    .await;
    let counters = node.cache.counters();
    assert_eq!(counters.requests_by_status.get(&200), Some(&2));
    assert_eq!(counters.requests_by_status.get(&403), Some(&1));
    assert_eq!(counters.hit_bytes, len as u64);
    assert_eq!(counters.miss_bytes, len as u64);
    assert_eq!(counters.origin_bytes, len as u64);
    assert_eq!(counters.bytes_by_family.xbox, 2 * len as u64);
    assert_eq!(counters.bytes_by_family.other, 0);
    assert_eq!(counters.drives[0].used_bytes, 2 * (SLICE + 4096));

    let metrics = request(node.admin, "GET", "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    for line in [
        "lastmile_cache_requests_total{status=\"200\"} 2".to_string(),
        "lastmile_cache_requests_total{status=\"403\"} 1".to_string(),
        format!("lastmile_cache_hit_bytes_total {len}"),
        format!("lastmile_cache_miss_bytes_total {len}"),
        format!("lastmile_cache_origin_bytes_total {len}"),
        format!(
            "lastmile_cache_served_bytes_total{{family=\"xbox\"}} {}",
            2 * len
        ),
        "lastmile_cache_served_bytes_total{family=\"windows_update\"} 0".to_string(),
        "lastmile_cache_healthy 1".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.contains("lastmile_cache_drive_used_bytes{drive="));
    assert_eq!(request(node.admin, "GET", "/nope", &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_rebuilt_from_disk_and_damaged_slices_are_refetched() {
    let (origin, _dir, drive) = setup().await;
    let config = config(&drive, &origin);
    let node = Node::start(config.clone()).await;
    let body = content(95, 4 * SLICE as usize + 17);
    origin.put("/kept", OriginObject::new(body.clone(), "\"k\""));
    expect_bytes(&get(node.addr, "/kept").await, &body);
    node.settle().await;
    let cache = node.stop().await;
    drop(cache);

    // Damage one byte of the data of slice 2.
    let slice2 = slice_files(&drive)
        .into_iter()
        .find(|p| p.to_str().unwrap().ends_with("-2.slice"))
        .unwrap();
    let mut bytes = std::fs::read(&slice2).unwrap();
    bytes[4096 + 10] ^= 0xff;
    std::fs::write(&slice2, bytes).unwrap();

    let asked = origin.requests_for("/kept").len();
    let node = Node::start(config).await;
    let response = get(node.addr, "/kept").await;
    assert_eq!(response.header("X-Cache"), Some("HIT"));
    expect_bytes(&response, &body);
    let after: Vec<Option<String>> = origin.requests_for("/kept")[asked..]
        .iter()
        .map(|r| r.range.clone())
        .collect();
    // One check that the object did not change, and the damaged slice.
    assert_eq!(
        after,
        vec![
            Some("bytes=0-0".to_string()),
            Some(format!("bytes={}-{}", 2 * SLICE, 3 * SLICE - 1))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_egress_limit_slows_every_client() {
    let (origin, _dir, drive) = setup().await;
    let mut config = config(&drive, &origin);
    // 2 Mbit/s = 250 kB/s.
    config.egress_limit_bits_per_sec = Some(2_000_000);
    let node = Node::start(config).await;
    let body = content(96, 4 * SLICE as usize);
    origin.put("/slow", OriginObject::new(body.clone(), "\"s\""));
    let started = Instant::now();
    let (a, b) = tokio::join!(get(node.addr, "/slow"), get(node.addr, "/slow"));
    expect_bytes(&a, &body);
    expect_bytes(&b, &body);
    // 128 KiB at 250 kB/s takes half a second; the bucket's burst is 12.5 kB.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );

    // Turns are shared: a small download that starts while a big one runs
    // is not stuck behind it (the big one needs a second at least).
    let big_body = content(98, 16 * SLICE as usize);
    origin.put("/big", OriginObject::new(big_body.clone(), "\"b\""));
    let addr = node.addr;
    let before = node.cache.counters().miss_bytes;
    let big = tokio::spawn(async move { get(addr, "/big").await });
    eventually("the big download to be under way", || {
        node.cache.counters().miss_bytes > before
    })
    .await;
    let small = get_range(node.addr, "/slow", "bytes=0-8191").await;
    expect_bytes(&small, &body[..8192]);
    assert!(
        !big.is_finished(),
        "the small download waited for the big one"
    );
    expect_bytes(&big.await.unwrap(), &big_body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_spread_over_drives_each_within_its_quota() {
    let (origin, dir, first) = setup().await;
    let second = drive(&dir, "d2");
    let quota = 12 * (SLICE + 4096);
    let mut settings = config(&first, &origin);
    settings.drives = vec![
        DriveConfig {
            path: first.clone(),
            quota_bytes: quota,
        },
        DriveConfig {
            path: second.clone(),
            quota_bytes: quota,
        },
    ];
    let node = Node::start(settings.clone()).await;
    let body = content(99, 20 * SLICE as usize);
    origin.put("/spread", OriginObject::new(body.clone(), "\"s\""));
    expect_bytes(&get(node.addr, "/spread").await, &body);
    node.settle().await;
    let (on_first, on_second) = (slice_files(&first).len(), slice_files(&second).len());
    assert!(
        on_first > 0 && on_second > 0,
        "{on_first} and {on_second} slices"
    );
    assert_eq!(on_first + on_second, 20);
    for d in [&first, &second] {
        assert!(drive_usage(d) <= quota);
    }
    let usage = node.cache.counters().drives;
    assert_eq!(usage.len(), 2);
    assert!(usage
        .iter()
        .all(|d| d.used_bytes <= d.quota_bytes && d.writable));

    // Without the second drive the object is still served whole (what was
    // on it is fetched again, onto the first), within the first's quota.
    settings.drives.truncate(1);
    node.cache.apply(settings.clone()).await.unwrap();
    expect_bytes(&get(node.addr, "/spread").await, &body);
    node.settle().await;
    assert!(drive_usage(&first) <= quota);
    assert_eq!(node.cache.counters().drives.len(), 1);
    // The second drive's files stay where they are.
    assert_eq!(slice_files(&second).len(), on_second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_from_disk_and_from_the_origin_take_turns_on_one_connection() {
    // Bytes from disk go out with partial segments held back (TCP_CORK)
    // until the response ends; bytes of a fetch go out as they arrive. A
    // response that ended with bytes held would leave its client waiting
    // (and in debug builds trips the data path's assertion, which closes
    // the connection before the next answer).
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let body = content(101, 6 * SLICE as usize + 777);
    origin.put("/mixed", OriginObject::new(body.clone(), "\"m\""));
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let mut buf = Vec::new();
    let slice = SLICE as usize;
    let steps: [(Option<(usize, usize)>, &str); 6] = [
        // Slice 1 fetched.
        (Some((slice, slice + 3000)), "MISS"),
        // Fetch, disk, fetch: slices 0, 1, 2.
        (Some((100, 2 * slice + 5000)), "MISS"),
        // Disk, disk, disk, fetch: slices 0 to 3.
        (Some((200, 3 * slice + 9)), "HIT"),
        // The whole object: slices 0 to 3 from disk, then 4 to 6 fetched.
        (None, "HIT"),
        // All from disk, ending inside a slice.
        (Some((300, 5 * slice + 123)), "HIT"),
        // And the connection still answers.
        (Some((0, 0)), "HIT"),
    ];
    for (range, x_cache) in steps {
        let mut request = format!("GET /mixed HTTP/1.1\r\nHost: {ORIGIN_HOST}\r\n");
        if let Some((first, last)) = range {
            request.push_str(&format!("Range: bytes={first}-{last}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_next_response(&mut stream, &mut buf, false).await;
        let (first, last) = range.unwrap_or((0, body.len() - 1));
        expect_bytes(&response, &body[first..=last]);
        assert_eq!(response.header("x-cache"), Some(x_cache), "{range:?}");
    }
    assert_eq!(
        origin.body_bytes(),
        body.len() as u64,
        "each slice fetched once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_pipelined_requests() {
    let (origin, _dir, drive) = setup().await;
    let node = Node::start(config(&drive, &origin)).await;
    let body = content(97, 1000);
    origin.put("/p", OriginObject::new(body.clone(), "\"p\""));
    let mut stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let one = format!("GET /p HTTP/1.1\r\nHost: {ORIGIN_HOST}\r\nRange: bytes=0-9\r\n\r\n");
    let two = format!("GET /p HTTP/1.1\r\nHost: {ORIGIN_HOST}\r\n\r\n");
    stream
        .write_all(format!("{one}{two}").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let first = read_next_response(&mut stream, &mut buf, false).await;
    expect_bytes(&first, &body[..10]);
    let second = read_next_response(&mut stream, &mut buf, false).await;
    expect_bytes(&second, &body);
    stream.write_all(one.as_bytes()).await.unwrap();
    expect_bytes(
        &read_next_response(&mut stream, &mut buf, false).await,
        &body[..10],
    );
    // A malformed head is answered 400 and the connection closed.
    stream.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
    assert_eq!(
        read_next_response(&mut stream, &mut buf, false)
            .await
            .status,
        400
    );
}
