//! The decoder path every received message goes through, fed a few
//! hundred thousand seeded mutations of well-formed messages: it must never
//! panic, and must always return either a message that keeps the route
//! table's invariants or a NOTIFICATION the RFCs define.
//!
//! Deterministic (fixed seed), so a failure reproduces; the long,
//! coverage-guided campaign is the libFuzzer target in `fuzz/`.

use std::collections::BTreeMap;

use lastmile_bgp::wire::samples::sample_messages;
use lastmile_bgp::wire::{
    decode_message, encode_notification, DecodeContext, Message, Notification, HEADER_LEN,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ITERATIONS: usize = 150_000;

const CONTEXTS: [DecodeContext; 3] = [
    DecodeContext {
        four_octet_as: true,
        peer_asn: 65001,
        ebgp: true,
    },
    DecodeContext {
        four_octet_as: false,
        peer_asn: 65001,
        ebgp: true,
    },
    DecodeContext {
        four_octet_as: true,
        peer_asn: 65000,
        ebgp: false,
    },
];

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..=4) {
        let len = bytes.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let at = rng.gen_range(0..len);
                bytes[at] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let at = rng.gen_range(0..len);
                bytes[at] = *[0u8, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 32, 33]
                    .get(rng.gen_range(0..10))
                    .unwrap();
            }
            2 if len > 0 => {
                let at = rng.gen_range(0..len);
                bytes[at] = rng.gen();
            }
            3 => {
                let at = rng.gen_range(0..=len);
                let count = rng.gen_range(1..8);
                for _ in 0..count {
                    bytes.insert(at, rng.gen());
                }
            }
            4 if len > 0 => {
                let at = rng.gen_range(0..len);
                let end = (at + rng.gen_range(1..8)).min(len);
                bytes.drain(at..end);
            }
            5 => bytes.truncate(rng.gen_range(0..=len)),
            6 if len > 1 => {
                // Repeat a slice, as a duplicated attribute would.
                let from = rng.gen_range(0..len);
                let to = (from + rng.gen_range(1..16)).min(len);
                let slice = bytes[from..to].to_vec();
                let at = rng.gen_range(0..=len);
                bytes.splice(at..at, slice);
            }
            7 => {
                // Splice the tail of another seed.
                let other = &seeds[rng.gen_range(0..seeds.len())];
                let cut = rng.gen_range(0..=len);
                let other_cut = rng.gen_range(0..=other.len());
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[other_cut..]);
            }
            _ if len >= HEADER_LEN + 4 => {
                // Nudge one of the inner 16-bit length fields.
                let at = rng.gen_range(HEADER_LEN..len - 1);
                let value = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
                let value = value.wrapping_add(rng.gen_range(0..5)).wrapping_sub(2);
                bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
            }
            _ => {}
        }
    }
    // Mostly keep the header consistent, so the body decoders are reached.
    if rng.gen_bool(0.8) && bytes.len() >= HEADER_LEN && bytes.len() <= u16::MAX as usize {
        bytes[..16].fill(0xff);
        let len = bytes.len() as u16;
        bytes[16..18].copy_from_slice(&len.to_be_bytes());
    }
    bytes
}

/// What the session relies on in whatever the decoder returns.
fn check(frame: &[u8], ctx: &DecodeContext, outcome: &Result<Message, Notification>) -> String {
    match outcome {
        Ok(Message::Update(update)) => {
            if let Some(reason) = &update.treated_as_withdraw {
                assert!(
                    update.announced.is_empty(),
                    "treat-as-withdraw announced: {frame:?}"
                );
                assert!(!reason.is_empty());
                return "update: treat-as-withdraw".into();
            }
            for (prefix, next_hop) in &update.announced {
                assert!(
                    prefix.network().octets()[0] < 224,
                    "non-unicast {prefix} announced"
                );
                assert!(
                    !next_hop.is_unspecified() && next_hop.octets()[0] < 224,
                    "next hop {next_hop} accepted from {frame:?}"
                );
                assert_eq!(*prefix, prefix.trunc(), "host bits left in {prefix}");
            }
            if !update.announced.is_empty() && ctx.ebgp {
                assert_eq!(
                    update.as_path.first(),
                    Some(&ctx.peer_asn),
                    "first AS: {frame:?}"
                );
            }
            if update.announced.is_empty() {
                "update: nothing announced".into()
            } else {
                "update: accepted".into()
            }
        }
        Ok(Message::Open(_)) => "open".into(),
        Ok(Message::Notification(_)) => "notification".into(),
        Ok(Message::KeepAlive) => "keepalive".into(),
        Ok(Message::RouteRefresh { .. }) => "route-refresh".into(),
        Err(notification) => {
            assert!(
                (1..=7).contains(&notification.code) && notification.code != 4,
                "undefined error code in {notification:?} for {frame:?}"
            );
            assert!(
                notification.name().contains(": ")
                    || (notification.code, notification.subcode) == (2, 0)
                    || (notification.code, notification.subcode) == (3, 0),
                "subcode without a name: {notification:?}"
            );
            // What we would send must encode and read back the same.
            let bytes = encode_notification(notification).expect("encodes");
            assert!(bytes.len() <= 4096);
            match decode_message(&bytes, ctx) {
                Ok(Message::Notification(back)) => assert_eq!(&back, notification),
                other => panic!("{notification:?} read back as {other:?}"),
            }
            format!("error {}/{}", notification.code, notification.subcode)
        }
    }
}

#[test]
fn mutated_messages_never_panic_and_are_always_classified() {
    let seeds = sample_messages();
    for seed in &seeds {
        // Each seed is well-formed for at least one kind of session.
        let clean = CONTEXTS.iter().any(|ctx| match decode_message(seed, ctx) {
            Ok(Message::Update(update)) => update.treated_as_withdraw.is_none(),
            Ok(_) => true,
            Err(_) => false,
        });
        assert!(clean, "seed {seed:?} is not well-formed");
    }
    let mut rng = StdRng::seed_from_u64(0x1a57_b6f0);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..ITERATIONS {
        let frame = mutate(&mut rng, &seeds);
        let ctx = &CONTEXTS[rng.gen_range(0..CONTEXTS.len())];
        let outcome = decode_message(&frame, ctx);
        // Decoding is a pure function of its input.
        assert_eq!(outcome, decode_message(&frame, ctx));
        *seen.entry(check(&frame, ctx, &outcome)).or_default() += 1;
    }
    // The mutator must reach every kind of outcome, or this test proves
    // little: each of these needs the decoder to get deep into a message.
    for expected in [
        "update: accepted",
        "update: treat-as-withdraw",
        "update: nothing announced",
        "open",
        "error 1/1",
        "error 1/2",
        "error 1/3",
        "error 2/1",
        "error 2/3",
        "error 2/4",
        "error 2/6",
        "error 3/1",
        "error 3/2",
        "error 3/9",
        "error 3/10",
        "error 7/1",
    ] {
        assert!(
            seen.contains_key(expected),
            "never saw {expected}: {seen:#?}"
        );
    }
}
