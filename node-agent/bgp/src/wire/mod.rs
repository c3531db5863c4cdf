//! BGP-4 messages as this speaker reads and writes them.
//!
//! [`decode_message`] is the whole decoder path a session runs every received
//! message through: header checks (RFC 4271 §6.1), OPEN decoding, the RFC 7606
//! classification of UPDATEs and raw NOTIFICATION reading. It is public so the
//! fuzz target and the tests can drive it directly; it never panics and always
//! returns either a decoded message or the NOTIFICATION the RFCs ask for.

pub mod notification;
pub mod samples;
mod update;

use std::io;
use std::net::Ipv4Addr;

use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::wire::deserializer::open::BgpOpenMessageParsingError;
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_bgp_pkt::BgpMessage;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use netgauze_parse_utils::WritablePdu;

pub use notification::Notification;
use notification::{code, header, open, route_refresh};
pub use update::{Reachability, UpdateOutcome};

/// Octets in the fixed message header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// The largest message allowed without the extended message capability
/// (RFC 8654), which this speaker does not advertise.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The 2-octet placeholder for a 4-octet ASN (RFC 6793).
pub const AS_TRANS: u16 = 23456;

const OPEN_MIN_LEN: usize = 29;
const UPDATE_MIN_LEN: usize = 23;
const NOTIFICATION_MIN_LEN: usize = 21;
const KEEPALIVE_LEN: usize = 19;
const ROUTE_REFRESH_LEN: usize = 23;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Open,
    Update,
    Notification,
    KeepAlive,
    RouteRefresh,
}

impl MessageType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::KeepAlive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }
}

/// Checks a message header before its body is read: the marker, the length
/// against the 4096 octet cap and against the type's minimum, and the type
/// (RFC 4271 §6.1). Returns the type and the whole message's length.
pub fn check_header(header_bytes: &[u8; HEADER_LEN]) -> Result<(MessageType, usize), Notification> {
    if header_bytes[..16].iter().any(|&b| b != 0xff) {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            header::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let length_field = [header_bytes[16], header_bytes[17]];
    let length = u16::from_be_bytes(length_field) as usize;
    let bad_length = || {
        Notification::new(
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            length_field.to_vec(),
        )
    };
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&length) {
        return Err(bad_length());
    }
    let Some(message_type) = MessageType::from_code(header_bytes[18]) else {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_TYPE,
            vec![header_bytes[18]],
        ));
    };
    let length_fits_type = match message_type {
        MessageType::Open => length >= OPEN_MIN_LEN,
        MessageType::Update => length >= UPDATE_MIN_LEN,
        MessageType::Notification => length >= NOTIFICATION_MIN_LEN,
        MessageType::KeepAlive => length == KEEPALIVE_LEN,
        // A ROUTE-REFRESH too short to hold its AFI/SAFI cannot be
        // answered with its own error code (RFC 7313 needs the subtype).
        MessageType::RouteRefresh => length >= ROUTE_REFRESH_LEN,
    };
    if !length_fits_type {
        return Err(bad_length());
    }
    Ok((message_type, length))
}

/// What the decoder needs to know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeContext {
    /// Both sides advertised the 4-octet ASN capability: AS_PATH carries
    /// 4-octet ASNs and AS4_PATH is not expected.
    pub four_octet_as: bool,
    /// The peer's ASN (the eBGP first-AS check needs it).
    pub peer_asn: u32,
    /// The session is eBGP (the peer's ASN differs from ours).
    pub ebgp: bool,
}

/// A received OPEN, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMessage {
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// The ASN in the 4-octet ASN capability, when the peer sent one.
    pub four_octet_asn: Option<u32>,
}

impl OpenMessage {
    /// The peer's real ASN: the capability's when present (RFC 6793).
    pub fn asn(&self) -> u32 {
        self.four_octet_asn.unwrap_or(self.my_as as u32)
    }
}

/// A received message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(OpenMessage),
    Update(UpdateOutcome),
    Notification(Notification),
    KeepAlive,
    RouteRefresh { afi: u16, safi: u8 },
}

/// Decodes one complete message (header included). Never panics: every
/// input gives a message or the NOTIFICATION to answer it with.
pub fn decode_message(frame: &[u8], ctx: &DecodeContext) -> Result<Message, Notification> {
    let Some(header_bytes) = frame.first_chunk::<HEADER_LEN>() else {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            (frame.len() as u16).to_be_bytes().to_vec(),
        ));
    };
    let (message_type, length) = check_header(header_bytes)?;
    if frame.len() != length {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            header::BAD_MESSAGE_LENGTH,
            (length as u16).to_be_bytes().to_vec(),
        ));
    }
    let body = &frame[HEADER_LEN..];
    match message_type {
        MessageType::Open => decode_open(body).map(Message::Open),
        MessageType::Update => update::decode_update(body, ctx).map(Message::Update),
        MessageType::Notification => Ok(Message::Notification(Notification::new(
            body[0],
            body[1],
            body[2..].to_vec(),
        ))),
        MessageType::KeepAlive => Ok(Message::KeepAlive),
        MessageType::RouteRefresh => decode_route_refresh(body),
    }
}

fn decode_open(body: &[u8]) -> Result<OpenMessage, Notification> {
    // Capabilities this speaker does not know, or knows but finds malformed,
    // are skipped rather than refused (RFC 5492 §5).
    let mut ctx = BgpParsingContext::new(
        true,
        Default::default(),
        Default::default(),
        true,
        true,
        false,
        true,
    );
    let mut reader = SliceReader::new(body);
    let open = BgpOpenMessage::parse(&mut reader, &mut ctx).map_err(open_error_notification)?;
    if !reader.is_empty() {
        // The optional parameters' length must account for the whole body.
        return Err(Notification::new(code::OPEN, open::UNSPECIFIC, Vec::new()));
    }
    Ok(OpenMessage {
        my_as: open.my_as(),
        hold_time: open.hold_time(),
        bgp_id: open.bgp_id(),
        four_octet_asn: find_four_octet_asn(body),
    })
}

/// The 4-octet ASN capability, found by walking the parameter and
/// capability TLVs by their lengths. netgauze skips a capability it finds
/// malformed from wherever its decoder stopped (some decoders consume the
/// rest of the parameter), which could hide or invent the one capability
/// this speaker acts on.
fn find_four_octet_asn(body: &[u8]) -> Option<u32> {
    let params_len = *body.get(9)? as usize;
    let mut params = body.get(10..10 + params_len)?;
    while let [param_type, param_len, rest @ ..] = params {
        let value = rest.get(..*param_len as usize)?;
        params = &rest[*param_len as usize..];
        if *param_type != 2 {
            continue;
        }
        let mut capabilities = value;
        while let [code, len, rest @ ..] = capabilities {
            let cap_value = rest.get(..*len as usize)?;
            capabilities = &rest[*len as usize..];
            if let (CAPABILITY_FOUR_OCTET_AS, [a, b, c, d]) = (*code, cap_value) {
                return Some(u32::from_be_bytes([*a, *b, *c, *d]));
            }
        }
    }
    None
}

const CAPABILITY_FOUR_OCTET_AS: u8 = 65;

fn open_error_notification(error: BgpOpenMessageParsingError) -> Notification {
    use netgauze_bgp_pkt::wire::deserializer::open::BgpParameterParsingError;
    match error {
        BgpOpenMessageParsingError::UnsupportedVersionNumber { .. } => Notification::new(
            code::OPEN,
            open::UNSUPPORTED_VERSION,
            4u16.to_be_bytes().to_vec(),
        ),
        BgpOpenMessageParsingError::UnacceptableHoldTime { time, .. } => Notification::new(
            code::OPEN,
            open::UNACCEPTABLE_HOLD_TIME,
            time.to_be_bytes().to_vec(),
        ),
        BgpOpenMessageParsingError::InvalidBgpId { bgp_id, .. } => Notification::new(
            code::OPEN,
            open::BAD_BGP_IDENTIFIER,
            bgp_id.octets().to_vec(),
        ),
        BgpOpenMessageParsingError::ParameterError(
            BgpParameterParsingError::UndefinedParameterType { code: param, .. },
        ) => Notification::new(
            code::OPEN,
            open::UNSUPPORTED_OPTIONAL_PARAMETER,
            vec![param],
        ),
        // Truncated fields and malformed parameters: RFC 4271 §6.2 leaves
        // these at subcode 0.
        BgpOpenMessageParsingError::Parse(_) | BgpOpenMessageParsingError::ParameterError(_) => {
            Notification::new(code::OPEN, open::UNSPECIFIC, Vec::new())
        }
    }
}

fn decode_route_refresh(body: &[u8]) -> Result<Message, Notification> {
    let invalid_length = || {
        Notification::new(
            code::ROUTE_REFRESH,
            route_refresh::INVALID_MESSAGE_LENGTH,
            body.to_vec(),
        )
    };
    if body.len() != ROUTE_REFRESH_LEN - HEADER_LEN {
        return Err(invalid_length());
    }
    // Read raw: netgauze refuses AFI/SAFI values it does not know, and
    // those are to be ignored (RFC 2918 §4), not answered with an error.
    let afi = u16::from_be_bytes([body[0], body[1]]);
    let safi = body[3];
    Ok(Message::RouteRefresh { afi, safi })
}

fn write_message(message: &BgpMessage) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(message.len());
    message.write(&mut out).map_err(io::Error::other)?;
    Ok(out)
}

/// Our OPEN: AS_TRANS in My AS when the ASN needs four octets, and the
/// multiprotocol IPv4 unicast, route refresh and 4-octet ASN capabilities.
pub fn encode_open(local_asn: u32, hold_time: u16, router_id: Ipv4Addr) -> io::Result<Vec<u8>> {
    let my_as = u16::try_from(local_asn).unwrap_or(AS_TRANS);
    let capabilities = vec![
        BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(
            AddressType::Ipv4Unicast,
        )),
        BgpCapability::RouteRefresh,
        BgpCapability::FourOctetAs(FourOctetAsCapability::new(local_asn)),
    ];
    let open = BgpOpenMessage::new(
        my_as,
        hold_time,
        router_id,
        vec![BgpOpenMessageParameter::Capabilities(
            capabilities.into_boxed_slice(),
        )],
    );
    write_message(&BgpMessage::Open(open))
}

pub fn encode_keepalive() -> io::Result<Vec<u8>> {
    write_message(&BgpMessage::KeepAlive)
}

pub fn encode_notification(notification: &Notification) -> io::Result<Vec<u8>> {
    if let Some(message) = notification.to_netgauze() {
        return write_message(&BgpMessage::Notification(message));
    }
    let length = HEADER_LEN + 2 + notification.data.len();
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&(length as u16).to_be_bytes());
    out.push(3);
    out.push(notification.code);
    out.push(notification.subcode);
    out.extend_from_slice(&notification.data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: DecodeContext = DecodeContext {
        four_octet_as: true,
        peer_asn: 65001,
        ebgp: true,
    };

    #[test]
    fn our_open_decodes_to_what_we_meant() {
        let bytes = encode_open(4_200_000_001, 90, Ipv4Addr::new(192, 0, 2, 1)).unwrap();
        let Message::Open(open) = decode_message(&bytes, &CTX).unwrap() else {
            panic!("not an OPEN");
        };
        assert_eq!(open.my_as, AS_TRANS);
        assert_eq!(open.asn(), 4_200_000_001);
        assert_eq!(open.hold_time, 90);
        assert_eq!(open.bgp_id, Ipv4Addr::new(192, 0, 2, 1));

        let bytes = encode_open(65000, 0, Ipv4Addr::new(192, 0, 2, 1)).unwrap();
        let Message::Open(open) = decode_message(&bytes, &CTX).unwrap() else {
            panic!("not an OPEN");
        };
        assert_eq!(open.my_as, 65000);
        assert_eq!(open.asn(), 65000);
    }

    #[test]
    fn our_open_carries_the_three_capabilities() {
        let bytes = encode_open(65000, 90, Ipv4Addr::new(192, 0, 2, 1)).unwrap();
        // Optional parameters start after version, AS, hold time, ID, length.
        let params = &bytes[HEADER_LEN + 10..];
        let expected_capabilities: &[&[u8]] = &[
            &[1, 4, 0, 1, 0, 1],        // multiprotocol IPv4 unicast
            &[2, 0],                    // route refresh
            &[65, 4, 0, 0, 0xfd, 0xe8], // 4-octet ASN 65000
        ];
        for capability in expected_capabilities {
            assert!(
                params.windows(capability.len()).any(|w| w == *capability),
                "capability {capability:?} missing from {params:?}"
            );
        }
    }

    #[test]
    fn keepalive_and_notification_encode_as_the_rfc_says() {
        let keepalive = encode_keepalive().unwrap();
        assert_eq!(keepalive.len(), 19);
        assert_eq!(keepalive[18], 4);
        let cease =
            encode_notification(&Notification::cease(notification::cease::PEER_DECONFIGURED))
                .unwrap();
        assert_eq!(&cease[16..], &[0, 21, 3, 6, 3]);
        let unknown = encode_notification(&Notification::new(9, 9, vec![1, 2])).unwrap();
        assert_eq!(&unknown[16..], &[0, 23, 3, 9, 9, 1, 2]);
        for (code_value, subcode) in [(1, 2), (2, 6), (3, 11), (4, 0), (5, 3), (6, 7), (7, 1)] {
            let n = Notification::new(code_value, subcode, vec![0xaa]);
            let bytes = encode_notification(&n).unwrap();
            assert_eq!(
                decode_message(&bytes, &CTX).unwrap(),
                Message::Notification(n)
            );
        }
    }

    fn header_with(length: u16, message_type: u8) -> [u8; HEADER_LEN] {
        let mut h = [0xff; HEADER_LEN];
        h[16..18].copy_from_slice(&length.to_be_bytes());
        h[18] = message_type;
        h
    }

    #[test]
    fn header_errors_get_their_rfc_4271_subcodes() {
        let mut bad_marker = header_with(19, 4);
        bad_marker[3] = 0;
        assert_eq!(check_header(&bad_marker).unwrap_err().subcode, 1);
        for (length, message_type) in [
            (18, 4),
            (4097, 2),
            (20, 4),
            (28, 1),
            (22, 2),
            (20, 3),
            (22, 5),
        ] {
            let err = check_header(&header_with(length, message_type)).unwrap_err();
            assert_eq!(
                (err.code, err.subcode),
                (1, 2),
                "length {length} type {message_type}"
            );
            assert_eq!(err.data, length.to_be_bytes());
        }
        let err = check_header(&header_with(19, 6)).unwrap_err();
        assert_eq!(
            (err.code, err.subcode, err.data.as_slice()),
            (1, 3, &[6][..])
        );
        assert_eq!(
            check_header(&header_with(4096, 2)).unwrap(),
            (MessageType::Update, 4096)
        );
    }

    #[test]
    fn route_refresh_with_a_wrong_length_is_refused_with_its_own_code() {
        let mut frame = header_with(24, 5).to_vec();
        frame.extend_from_slice(&[0, 1, 0, 1, 0]);
        let err = decode_message(&frame, &CTX).unwrap_err();
        assert_eq!((err.code, err.subcode), (7, 1));
        let mut frame = header_with(23, 5).to_vec();
        frame.extend_from_slice(&[0, 2, 0, 1]);
        assert_eq!(
            decode_message(&frame, &CTX).unwrap(),
            Message::RouteRefresh { afi: 2, safi: 1 }
        );
    }

    fn open_body(version: u8, my_as: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
        let mut body = vec![version];
        body.extend_from_slice(&my_as.to_be_bytes());
        body.extend_from_slice(&hold.to_be_bytes());
        body.extend_from_slice(&id);
        body.push(params.len() as u8);
        body.extend_from_slice(params);
        let mut frame = header_with((HEADER_LEN + body.len()) as u16, 1).to_vec();
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn open_errors_get_their_rfc_4271_subcodes() {
        let cases: &[(Vec<u8>, u8)] = &[
            (
                open_body(3, 65001, 90, [10, 0, 0, 1], &[]),
                open::UNSUPPORTED_VERSION,
            ),
            (
                open_body(4, 65001, 2, [10, 0, 0, 1], &[]),
                open::UNACCEPTABLE_HOLD_TIME,
            ),
            (
                open_body(4, 65001, 90, [0, 0, 0, 0], &[]),
                open::BAD_BGP_IDENTIFIER,
            ),
            (
                open_body(4, 65001, 90, [224, 0, 0, 1], &[]),
                open::BAD_BGP_IDENTIFIER,
            ),
            (
                open_body(4, 65001, 90, [10, 0, 0, 1], &[1, 2, 0, 0]),
                open::UNSUPPORTED_OPTIONAL_PARAMETER,
            ),
            // A capability parameter longer than the parameters field.
            (
                open_body(4, 65001, 90, [10, 0, 0, 1], &[2, 9, 65, 4]),
                open::UNSPECIFIC,
            ),
        ];
        for (frame, subcode) in cases {
            let err = decode_message(frame, &CTX).unwrap_err();
            assert_eq!((err.code, err.subcode), (2, *subcode), "{frame:?}");
        }
        let err = decode_message(&open_body(3, 65001, 90, [10, 0, 0, 1], &[]), &CTX).unwrap_err();
        assert_eq!(err.data, [0, 4], "the version we support");
    }

    #[test]
    fn a_malformed_capability_does_not_hide_the_four_octet_asn() {
        // A multiple-labels capability (8) with a stray octet: netgauze's
        // decoder for it reads on to the end of the parameter.
        let params = [2, 9, 8, 1, 0xff, 65, 4, 0, 1, 0, 0];
        let frame = open_body(4, AS_TRANS, 90, [10, 0, 0, 1], &params);
        let Message::Open(open) = decode_message(&frame, &CTX).unwrap() else {
            panic!("not an OPEN");
        };
        assert_eq!(open.four_octet_asn, Some(65536));
    }

    #[test]
    fn unknown_and_malformed_capabilities_are_ignored() {
        // Capability 200 (unknown) with 3 octets, then a truncated 4-octet
        // ASN capability inside its own parameter, then a good one.
        let params = [
            2, 5, 200, 3, 1, 2, 3, 2, 3, 65, 1, 9, 2, 6, 65, 4, 0, 1, 0, 0,
        ];
        let frame = open_body(4, AS_TRANS, 90, [10, 0, 0, 1], &params);
        let Message::Open(open) = decode_message(&frame, &CTX).unwrap() else {
            panic!("not an OPEN");
        };
        assert_eq!(open.asn(), 65536);
    }
}
