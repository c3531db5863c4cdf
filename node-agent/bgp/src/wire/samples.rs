//! Well-formed messages of every kind the decoder handles: the seeds of the
//! mutation test and of the fuzz corpus (`fuzz/`), so both start from inputs
//! that reach deep into the decoder instead of dying at the marker.

use std::net::Ipv4Addr;

fn message(message_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((super::HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(message_type);
    out.extend_from_slice(body);
    out
}

fn attribute(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![flags, type_code, value.len() as u8];
    out.extend_from_slice(value);
    out
}

fn as_path(segments: &[(u8, &[u32])], four_octet: bool) -> Vec<u8> {
    let mut value = Vec::new();
    for (segment_type, asns) in segments {
        value.push(*segment_type);
        value.push(asns.len() as u8);
        for &asn in *asns {
            if four_octet {
                value.extend_from_slice(&asn.to_be_bytes());
            } else {
                value.extend_from_slice(&(asn as u16).to_be_bytes());
            }
        }
    }
    value
}

fn update(withdrawn: &[u8], attributes: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attributes = attributes.concat();
    let mut body = (withdrawn.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(&attributes);
    body.extend_from_slice(nlri);
    message(2, &body)
}

/// Well-formed messages: OPENs (ours and a peer's with unknown
/// capabilities), UPDATEs (classic, multiprotocol, 2- and 4-octet paths
/// with AS4_PATH, sets, communities, every attribute this speaker checks),
/// a NOTIFICATION, a KEEPALIVE and a ROUTE-REFRESH.
pub fn sample_messages() -> Vec<Vec<u8>> {
    let router = Ipv4Addr::new(192, 0, 2, 1);
    let mut samples = Vec::new();
    if let Ok(open) = super::encode_open(4_200_000_001, 90, router) {
        samples.push(open);
    }
    let capabilities = [
        2, 21, 1, 4, 0, 1, 0, 1, 2, 0, 65, 4, 0, 0, 0xfd, 0xe9, 200, 3, 1, 2, 3, 70, 0,
    ];
    let mut peer_open = vec![4, 0xfd, 0xe9, 0, 180, 10, 0, 0, 2, capabilities.len() as u8];
    peer_open.extend_from_slice(&capabilities);
    samples.push(message(1, &peer_open));
    samples.push(message(4, &[]));
    samples.push(message(3, &[6, 2, 5, b'b', b'y', b'e', b'!', b'!']));
    samples.push(message(5, &[0, 1, 0, 1]));

    let origin = attribute(0x40, 1, &[0]);
    let next_hop = attribute(0x40, 3, &[192, 0, 2, 1]);
    let path4 = attribute(
        0x40,
        2,
        &as_path(&[(2, &[65001, 4_200_000_001]), (1, &[1, 2])], true),
    );
    let path2 = attribute(0x40, 2, &as_path(&[(2, &[65001, 23456, 23456])], false));
    let as4_path = attribute(
        0xc0,
        17,
        &as_path(&[(2, &[4_200_000_001, 4_200_000_002])], true),
    );
    let nlri = [22, 100, 64, 4, 24, 198, 51, 100, 8, 10, 32, 203, 0, 113, 9];
    samples.push(update(
        &[],
        &[origin.clone(), path4.clone(), next_hop.clone()],
        &nlri,
    ));
    samples.push(update(&[16, 172, 16, 0], &[], &[]));
    samples.push(update(&[], &[], &[]));
    samples.push(update(
        &[],
        &[
            origin.clone(),
            path2,
            next_hop.clone(),
            as4_path,
            attribute(0xc0, 7, &[0x5b, 0xa0, 10, 0, 0, 1]),
            attribute(0xc0, 18, &[0xfa, 0x56, 0xea, 1, 10, 0, 0, 1]),
        ],
        &nlri,
    ));
    let mut mp_reach = vec![0, 1, 1, 4, 192, 0, 2, 9, 0];
    mp_reach.extend_from_slice(&nlri);
    samples.push(update(
        &[],
        &[
            attribute(0x80, 14, &mp_reach),
            attribute(0x80, 15, &[0, 1, 1, 16, 172, 16]),
            origin.clone(),
            path4.clone(),
        ],
        &[],
    ));
    samples.push(update(
        &[],
        &[
            origin,
            path4,
            next_hop,
            attribute(0x80, 4, &[0, 0, 0, 10]),
            attribute(0x40, 5, &[0, 0, 0, 100]),
            attribute(0x40, 6, &[]),
            attribute(0xc0, 8, &[0xfd, 0xe9, 0, 1, 0xff, 0xff, 0xff, 0x01]),
            attribute(0x80, 9, &[10, 0, 0, 3]),
            attribute(0x80, 10, &[10, 0, 0, 4]),
            attribute(0xc0, 16, &[0, 2, 0xfd, 0xe9, 0, 0, 0, 1]),
            attribute(0xc0, 32, &[0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2]),
            attribute(0xe0, 99, &[1, 2, 3]),
            // Optional transitive, extended length.
            vec![0xd0, 98, 0, 2, 7, 7],
        ],
        &nlri,
    ));
    // Near the size limit: an extended-length AS_PATH longer than 255
    // octets (two segments) and several hundred prefixes.
    let long_sequence: Vec<u32> = (1..=255).map(|i| 64_000 + i).collect();
    let mut long_path = vec![2, 255];
    for asn in [65001u32].iter().chain(&long_sequence[1..]) {
        long_path.extend_from_slice(&asn.to_be_bytes());
    }
    long_path.extend_from_slice(&[1, 40]);
    for asn in 0..40u32 {
        long_path.extend_from_slice(&(4_200_000_000 + asn).to_be_bytes());
    }
    let mut extended_as_path = vec![0x50, 2];
    extended_as_path.extend_from_slice(&(long_path.len() as u16).to_be_bytes());
    extended_as_path.extend_from_slice(&long_path);
    let many_prefixes: Vec<u8> = (0..600u16)
        .flat_map(|i| [24, 10, (i >> 8) as u8, i as u8])
        .collect();
    let big = update(
        &[],
        &[
            attribute(0x40, 1, &[2]),
            extended_as_path,
            attribute(0x40, 3, &[192, 0, 2, 1]),
        ],
        &many_prefixes,
    );
    samples.push(big);
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_message, DecodeContext, Message, MAX_MESSAGE_LEN};

    #[test]
    fn the_largest_sample_fits_a_message_and_decodes_whole() {
        let big = sample_messages().into_iter().max_by_key(Vec::len).unwrap();
        assert!(
            big.len() > 3500 && big.len() <= MAX_MESSAGE_LEN,
            "{}",
            big.len()
        );
        let ctx = DecodeContext {
            four_octet_as: true,
            peer_asn: 65001,
            ebgp: true,
        };
        let Ok(Message::Update(update)) = decode_message(&big, &ctx) else {
            panic!("the large sample does not decode");
        };
        assert_eq!(update.announced.len(), 600);
        assert_eq!(update.as_path.len(), 295);
        assert_eq!(update.treated_as_withdraw, None);
    }
}
