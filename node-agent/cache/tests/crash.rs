//! kill -9 of the standalone binary in the middle of fills, then restarts on
//! the same drive: whatever survived must be whole slices, and every byte
//! served afterwards must be the origin's.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};

/// Kills the child on drop, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start_binary(drive: &Path, origin: &Origin) -> (Running, SocketAddr) {
    let listen = free_port();
    let admin = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_lastmile-cache"))
        .args(["--listen", &listen.to_string()])
        .args(["--admin", &admin.to_string()])
        .args(["--drive", &format!("{}:64M", drive.display())])
        .args(["--allow-host", ORIGIN_HOST])
        .args(["--resolve", &format!("{ORIGIN_HOST}={}", origin.addr)])
        .args(["--slice-size", &SLICE.to_string()])
        .args(["--threads", "2"])
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let running = Running(child);
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(admin).await.is_ok()
            && request(admin, "GET", "/healthz", &[]).await.status == 200
        {
            return (running, listen);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the binary did not become healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_fills_then_restart_serves_only_whole_correct_slices() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let drive = drive(&dir, "d1");
    let slice = SLICE as usize;
    let len = 30 * slice + 1234;
    let body = content(99, len);
    origin.put("/big.bin", OriginObject::new(body.clone(), "\"big\""));
    // Slow bodies (4 KiB every 3 ms), so that kills land inside fills.
    origin.behave(
        "/big.bin",
        Behavior {
            trickle: Some(Duration::from_millis(3)),
            ..Behavior::default()
        },
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for round in 0..5 {
        let (mut running, addr) = start_binary(&drive, &origin).await;
        // Clients ask for the whole object and for a range further in.
        let whole = tokio::spawn(async move { get(addr, "/big.bin").await });
        let range_start = rng.gen_range(0..len);
        let range = format!("bytes={range_start}-");
        let part = tokio::spawn(async move { get_range(addr, "/big.bin", &range).await });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..200))).await;
        running.0.kill().unwrap();
        running.0.wait().unwrap();
        // Whatever a client got before the kill is a prefix of the truth.
        if let Ok(response) = whole.await {
            assert!(
                response.body == body[..response.body.len()],
                "round {round}: wrong bytes"
            );
        }
        if let Ok(response) = part.await {
            let expected = &body[range_start..];
            assert!(
                response.body == expected[..response.body.len()],
                "round {round}: wrong bytes"
            );
        }
        // Slice files on disk are whole: header + the slice's bytes.
        for file in slice_files(&drive) {
            let size = std::fs::metadata(&file).unwrap().len();
            assert!(
                size == 4096 + SLICE || size == 4096 + (len % slice) as u64,
                "round {round}: {} has {size} bytes",
                file.display()
            );
        }
    }

    let stored_before = slice_files(&drive).len();
    let first_on_disk = slice_files(&drive)
        .iter()
        .any(|p| p.to_str().unwrap().ends_with("-0.slice"));
    assert!(
        stored_before > 0,
        "no slice survived any round: the kills came too early"
    );
    let asked_before = origin.requests_for("/big.bin").len();
    let (_running, addr) = start_binary(&drive, &origin).await;
    // Interrupted fills were cleaned up at start.
    let tmp = drive.join("lastmile-cache/tmp");
    assert!(files_under(&tmp).is_empty(), "leftover temporary files");
    let response = get(addr, "/big.bin").await;
    assert_eq!(response.status, 200);
    assert!(response.complete);
    assert!(response.body == body, "wrong bytes after restart");
    // The slices that survived were served from disk, not fetched again:
    // the missing slices were fetched, plus a one-byte identity check when
    // the first slice was on disk (otherwise its fetch is the check).
    let asked_after = origin.requests_for("/big.bin").len() - asked_before;
    let slice_count = len.div_ceil(slice);
    let check = usize::from(first_on_disk);
    assert_eq!(asked_after, check + slice_count - stored_before);
}
