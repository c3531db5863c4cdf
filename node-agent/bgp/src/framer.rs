//! Splits a TCP byte stream into BGP messages.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::{self, Notification, HEADER_LEN, MAX_MESSAGE_LEN};

pub(crate) enum FrameError {
    /// The peer closed the connection between messages.
    Closed,
    Io(io::Error),
    /// The header is bad: answer with this NOTIFICATION and close.
    Header(Notification),
}

/// Reads whole messages. `next` is cancel-safe (bytes read before a cancel
/// stay in the buffer), so it can sit in a `select!` beside timers. The
/// buffer never grows much past one maximum-size message: the header is
/// checked, length cap included, before the body is waited for.
pub(crate) struct Framer<R> {
    reader: R,
    buffer: BytesMut,
}

impl<R: AsyncRead + Unpin> Framer<R> {
    pub fn new(reader: R) -> Self {
        Framer {
            reader,
            buffer: BytesMut::with_capacity(MAX_MESSAGE_LEN),
        }
    }

    pub fn into_inner(self) -> R {
        self.reader
    }

    pub async fn next(&mut self) -> Result<Bytes, FrameError> {
        loop {
            let mut wanted = HEADER_LEN;
            if let Some(header) = self.buffer.first_chunk::<HEADER_LEN>() {
                let (_, length) = wire::check_header(header).map_err(FrameError::Header)?;
                if self.buffer.len() >= length {
                    return Ok(self.buffer.split_to(length).freeze());
                }
                wanted = length;
            }
            self.buffer.reserve(wanted - self.buffer.len());
            let read = self
                .reader
                .read_buf(&mut self.buffer)
                .await
                .map_err(FrameError::Io)?;
            if read == 0 {
                return Err(if self.buffer.is_empty() {
                    FrameError::Closed
                } else {
                    FrameError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a message",
                    ))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn keepalive() -> Vec<u8> {
        wire::encode_keepalive().unwrap()
    }

    #[tokio::test]
    async fn messages_split_across_reads_and_packed_together_are_framed() {
        let (client, server) = tokio::io::duplex(64);
        let mut framer = Framer::new(server);
        let writer = tokio::spawn(async move {
            let mut client = client;
            let mut stream = keepalive();
            stream.extend(keepalive());
            let open = wire::encode_open(65000, 90, "192.0.2.1".parse().unwrap()).unwrap();
            stream.extend(&open);
            for chunk in stream.chunks(7) {
                client.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            open
        });
        assert_eq!(&framer.next().await.ok().unwrap()[..], &keepalive()[..]);
        assert_eq!(&framer.next().await.ok().unwrap()[..], &keepalive()[..]);
        let open = writer.await.unwrap();
        assert_eq!(&framer.next().await.ok().unwrap()[..], &open[..]);
        assert!(matches!(framer.next().await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn a_bad_length_is_reported_before_the_body_arrives() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut framer = Framer::new(server);
        let mut header = [0xff; HEADER_LEN];
        header[16..18].copy_from_slice(&60000u16.to_be_bytes());
        header[18] = 2;
        client.write_all(&header).await.unwrap();
        let Err(FrameError::Header(notification)) = framer.next().await else {
            panic!("accepted a 60000 octet message");
        };
        assert_eq!((notification.code, notification.subcode), (1, 2));
    }

    #[tokio::test]
    async fn eof_inside_a_message_is_an_error_not_a_clean_close() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut framer = Framer::new(server);
        client.write_all(&keepalive()[..10]).await.unwrap();
        drop(client);
        assert!(matches!(framer.next().await, Err(FrameError::Io(_))));
    }
}
