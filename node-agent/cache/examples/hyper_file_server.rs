//! The measurement behind serving hits with hand-written HTTP/1.1: a hyper
//! server answering single Range requests for one file by reading it into
//! buffers and streaming them (hyper's body model; there is no way to hand it
//! a file descriptor for sendfile). `bench/cache/hyper-vs-sendfile.sh` runs
//! it against lastmile-cache's hit path under the same wrk load and compares
//! server CPU per GB. Not part of the product.
//!
//!     hyper_file_server <listen address> <file>

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Read size per body frame.
const CHUNK: usize = 256 * 1024;

fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let (first, last) = value.strip_prefix("bytes=")?.split_once('-')?;
    let first: u64 = first.parse().ok()?;
    let last: u64 = last.parse::<u64>().ok()?.min(len - 1);
    (first <= last).then_some((first, last + 1))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: hyper_file_server <listen address> <file>");
        std::process::exit(2);
    };
    let path = Arc::new(std::path::PathBuf::from(path));
    let len = std::fs::metadata(&*path)?.len();
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let path = path.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let path = path.clone();
                async move {
                    let range = request
                        .headers()
                        .get(http::header::RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_range(v, len));
                    let (start, end) = range.unwrap_or((0, len));
                    let (tx, rx) =
                        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
                    // Blocking reads, like a file read without sendfile.
                    tokio::task::spawn_blocking(move || {
                        let mut file = std::fs::File::open(&*path).expect("file opens");
                        file.seek(SeekFrom::Start(start)).expect("seek");
                        let mut left = end - start;
                        while left > 0 {
                            let mut buf = vec![0u8; CHUNK.min(left as usize)];
                            file.read_exact(&mut buf).expect("read");
                            left -= buf.len() as u64;
                            if tx.blocking_send(Ok(Frame::data(Bytes::from(buf)))).is_err() {
                                return;
                            }
                        }
                    });
                    let mut response = Response::new(StreamBody::new(Frames(rx)));
                    if range.is_some() {
                        *response.status_mut() = http::StatusCode::PARTIAL_CONTENT;
                    }
                    let headers = response.headers_mut();
                    headers.insert(http::header::CONTENT_LENGTH, (end - start).into());
                    if range.is_some() {
                        headers.insert(
                            http::header::CONTENT_RANGE,
                            format!("bytes {start}-{}/{len}", end - 1).parse().unwrap(),
                        );
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The body: frames the reading thread sends, as a `Stream`.
struct Frames(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl futures_core::Stream for Frames {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
