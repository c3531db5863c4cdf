//! Input: one selector octet (bit 0: the session has 4-octet ASNs, bit 1:
//! it is eBGP), then the message bytes as they came off the wire.

#![no_main]

use lastmile_bgp::wire::{decode_message, encode_notification, DecodeContext, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let ebgp = selector & 2 != 0;
    let ctx = DecodeContext {
        four_octet_as: selector & 1 != 0,
        peer_asn: if ebgp { 65001 } else { 65000 },
        ebgp,
    };
    match decode_message(frame, &ctx) {
        Ok(Message::Update(update)) => {
            if update.treated_as_withdraw.is_some() {
                assert!(update.announced.is_empty());
            }
            for (prefix, next_hop) in &update.announced {
                assert!(prefix.network().octets()[0] < 224);
                assert_eq!(*prefix, prefix.trunc());
                assert!(!next_hop.is_unspecified() && next_hop.octets()[0] < 224);
            }
            if ebgp && !update.announced.is_empty() {
                assert_eq!(update.as_path.first(), Some(&ctx.peer_asn));
            }
        }
        Ok(_) => {}
        Err(notification) => {
            assert!((1..=7).contains(&notification.code) && notification.code != 4);
            let bytes = encode_notification(&notification).expect("encodes");
            assert!(bytes.len() <= 4096);
            match decode_message(&bytes, &ctx) {
                Ok(Message::Notification(back)) => assert_eq!(back, notification),
                other => panic!("{notification:?} read back as {other:?}"),
            }
        }
    }
});
