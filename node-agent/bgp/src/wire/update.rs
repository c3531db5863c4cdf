//! UPDATE decoding with the error handling of RFC 7606.
//!
//! netgauze's UPDATE decoder stops at the first bad attribute and returns no
//! NLRI with the error, so it cannot drive "treat-as-withdraw" (which needs
//! the prefixes of a message whose attributes are broken), and it does not
//! detect duplicate or missing attributes. So this module walks the message
//! framing itself: the withdrawn routes and NLRI fields, each attribute's
//! flags/type/length header, the MP_REACH_NLRI and MP_UNREACH_NLRI contents
//! for IPv4 unicast, and the length rules of RFC 7606 §7. The values the
//! route table keeps (ORIGIN, AS_PATH, AS4_PATH, NEXT_HOP, AGGREGATOR) are
//! decoded by netgauze from the attribute's own bytes; a value netgauze
//! refuses is malformed and handled as RFC 7606 says for that attribute.
//!
//! Every error is classified as one of the RFC's three approaches; when
//! several apply, the strongest wins (RFC 7606 §3): session reset (a
//! NOTIFICATION), treat-as-withdraw (the message's announcements become
//! withdrawals), attribute discard (the attribute is ignored).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netgauze_bgp_pkt::path_attribute::{
    Aggregator, AsPath, AsPathSegmentType, PathAttribute, PathAttributeValue,
};
use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;

use super::notification::{code, update as subcode, Notification};
use super::{DecodeContext, AS_TRANS};

const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_PARTIAL: u8 = 0x20;
const FLAG_EXTENDED_LENGTH: u8 = 0x10;

const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const MULTI_EXIT_DISC: u8 = 4;
const LOCAL_PREF: u8 = 5;
const ATOMIC_AGGREGATE: u8 = 6;
const AGGREGATOR: u8 = 7;
const COMMUNITIES: u8 = 8;
const ORIGINATOR_ID: u8 = 9;
const CLUSTER_LIST: u8 = 10;
const MP_REACH_NLRI: u8 = 14;
const MP_UNREACH_NLRI: u8 = 15;
const EXTENDED_COMMUNITIES: u8 = 16;
const AS4_PATH: u8 = 17;
const AS4_AGGREGATOR: u8 = 18;
const IPV6_EXTENDED_COMMUNITIES: u8 = 25;
const LARGE_COMMUNITIES: u8 = 32;

const AFI_IPV4: u16 = 1;
const SAFI_UNICAST: u8 = 1;

/// What one UPDATE asks of the route table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateOutcome {
    /// Prefixes to remove: the withdrawn ones (classic and MP_UNREACH_NLRI)
    /// and, under treat-as-withdraw, the ones the message announced.
    pub withdrawn: Vec<Ipv4Net>,
    /// Routes to add or replace, after the withdrawals.
    pub announced: Vec<(Ipv4Net, Ipv4Addr)>,
    /// The AS path of every announced route, 4-octet ASNs, AS_SET members
    /// flattened in wire order.
    pub as_path: Vec<u32>,
    /// Why the announcements were turned into withdrawals, when they were.
    pub treated_as_withdraw: Option<String>,
    /// Attributes discarded and prefixes ignored, for the log.
    pub notes: Vec<String>,
}

/// What became of an UPDATE's announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// The message announced nothing (a withdrawal or End-of-RIB).
    None,
    /// The announcements were accepted.
    Accepted,
    /// The announcements were treated as withdrawals.
    TreatedAsWithdraw,
}

impl UpdateOutcome {
    pub fn reachability(&self) -> Reachability {
        if self.treated_as_withdraw.is_some() {
            Reachability::TreatedAsWithdraw
        } else if self.announced.is_empty() {
            Reachability::None
        } else {
            Reachability::Accepted
        }
    }
}

/// How an attribute's own malformation is handled (RFC 7606 §7, RFC 6793 §6).
#[derive(Clone, Copy)]
enum OnMalformed {
    TreatAsWithdraw,
    Discard,
    SessionReset,
}

struct AttributeSpec {
    name: &'static str,
    optional: bool,
    transitive: bool,
    on_malformed: OnMalformed,
}

fn spec(type_code: u8) -> Option<AttributeSpec> {
    use OnMalformed::*;
    let (name, optional, transitive, on_malformed) = match type_code {
        ORIGIN => ("ORIGIN", false, true, TreatAsWithdraw),
        AS_PATH => ("AS_PATH", false, true, TreatAsWithdraw),
        NEXT_HOP => ("NEXT_HOP", false, true, TreatAsWithdraw),
        MULTI_EXIT_DISC => ("MULTI_EXIT_DISC", true, false, TreatAsWithdraw),
        LOCAL_PREF => ("LOCAL_PREF", false, true, TreatAsWithdraw),
        ATOMIC_AGGREGATE => ("ATOMIC_AGGREGATE", false, true, Discard),
        AGGREGATOR => ("AGGREGATOR", true, true, Discard),
        COMMUNITIES => ("COMMUNITIES", true, true, TreatAsWithdraw),
        ORIGINATOR_ID => ("ORIGINATOR_ID", true, false, TreatAsWithdraw),
        CLUSTER_LIST => ("CLUSTER_LIST", true, false, TreatAsWithdraw),
        MP_REACH_NLRI => ("MP_REACH_NLRI", true, false, SessionReset),
        MP_UNREACH_NLRI => ("MP_UNREACH_NLRI", true, false, SessionReset),
        EXTENDED_COMMUNITIES => ("EXTENDED_COMMUNITIES", true, true, TreatAsWithdraw),
        AS4_PATH => ("AS4_PATH", true, true, Discard),
        AS4_AGGREGATOR => ("AS4_AGGREGATOR", true, true, Discard),
        IPV6_EXTENDED_COMMUNITIES => ("IPv6 EXTENDED_COMMUNITIES", true, true, TreatAsWithdraw),
        LARGE_COMMUNITIES => ("LARGE_COMMUNITY", true, true, TreatAsWithdraw),
        _ => return None,
    };
    Some(AttributeSpec {
        name,
        optional,
        transitive,
        on_malformed,
    })
}

/// One path attribute as framed on the wire.
struct RawAttribute<'a> {
    flags: u8,
    type_code: u8,
    value: &'a [u8],
    /// The whole attribute, header included: NOTIFICATION data and the
    /// input netgauze decodes.
    bytes: &'a [u8],
}

type Segments = Vec<(AsPathSegmentType, Vec<u32>)>;

/// Which attribute type codes a message has carried so far.
struct SeenTypes([bool; 256]);

impl Default for SeenTypes {
    fn default() -> Self {
        SeenTypes([false; 256])
    }
}

impl SeenTypes {
    fn contains(&self, type_code: u8) -> bool {
        self.0[type_code as usize]
    }

    fn insert(&mut self, type_code: u8) {
        self.0[type_code as usize] = true;
    }
}

/// The path being built while the attributes are read.
#[derive(Default)]
struct Collected {
    treat_as_withdraw: Option<String>,
    notes: Vec<String>,
    seen: SeenTypes,
    next_hop: Option<Ipv4Addr>,
    as_path: Option<Segments>,
    as4_path: Option<Segments>,
    aggregator_asn: Option<u32>,
    as4_aggregator_asn: Option<u32>,
    mp_reach_present: bool,
    mp_next_hop: Option<Ipv4Addr>,
    mp_announced: Vec<Ipv4Net>,
    mp_withdrawn: Vec<Ipv4Net>,
}

impl Collected {
    fn treat_as_withdraw(&mut self, reason: String) {
        if self.treat_as_withdraw.is_none() {
            self.treat_as_withdraw = Some(reason);
        }
    }
}

fn session_reset(subcode: u8, data: &[u8]) -> Notification {
    Notification::new(code::UPDATE, subcode, data.to_vec())
}

/// Decodes an UPDATE body (the message without its 19-octet header).
pub fn decode_update(body: &[u8], ctx: &DecodeContext) -> Result<UpdateOutcome, Notification> {
    let malformed_list = || session_reset(subcode::MALFORMED_ATTRIBUTE_LIST, &[]);
    let withdrawn_len = read_u16(body, 0).ok_or_else(malformed_list)? as usize;
    let withdrawn_field = body.get(2..2 + withdrawn_len).ok_or_else(malformed_list)?;
    let attributes_len = read_u16(body, 2 + withdrawn_len).ok_or_else(malformed_list)? as usize;
    let attributes_start = 4 + withdrawn_len;
    let attributes_field = body
        .get(attributes_start..attributes_start + attributes_len)
        .ok_or_else(malformed_list)?;
    let nlri_field = &body[attributes_start + attributes_len..];

    // A field of prefixes that cannot be parsed leaves nothing to treat as
    // withdrawn: session reset (RFC 7606 §5.3).
    let withdrawn = parse_prefixes(withdrawn_field)
        .map_err(|_| session_reset(subcode::INVALID_NETWORK_FIELD, &[]))?;
    let nlri = parse_prefixes(nlri_field)
        .map_err(|_| session_reset(subcode::INVALID_NETWORK_FIELD, &[]))?;

    let mut collected = Collected::default();
    let (attributes, framing_error) = split_attributes(attributes_field);
    if let Some(framing_error) = framing_error {
        // The Total Attribute Length still locates the NLRI (RFC 7606 §4).
        collected.treat_as_withdraw(framing_error);
    }
    for attribute in &attributes {
        read_attribute(attribute, ctx, &mut collected)?;
    }

    let announces = !nlri.is_empty() || !collected.mp_announced.is_empty();
    if announces {
        check_mandatory_attributes(&nlri, &mut collected);
    }
    let as_path = if collected.treat_as_withdraw.is_none() && announces {
        build_as_path(ctx, &mut collected)
    } else {
        Vec::new()
    };

    let mut outcome = UpdateOutcome {
        withdrawn,
        announced: Vec::new(),
        as_path,
        treated_as_withdraw: None,
        notes: std::mem::take(&mut collected.notes),
    };
    outcome.withdrawn.append(&mut collected.mp_withdrawn);
    let classic = nlri.into_iter().map(|prefix| (prefix, collected.next_hop));
    let multiprotocol = collected
        .mp_announced
        .iter()
        .map(|&prefix| (prefix, collected.mp_next_hop));
    for (prefix, next_hop) in classic.chain(multiprotocol) {
        if !is_unicast_prefix(prefix) {
            // RFC 4271 §6.3: a semantically incorrect prefix is ignored.
            outcome
                .notes
                .push(format!("ignored {prefix}: not a unicast prefix"));
            continue;
        }
        match (&collected.treat_as_withdraw, next_hop) {
            (None, Some(next_hop)) => outcome.announced.push((prefix, next_hop)),
            _ => outcome.withdrawn.push(prefix),
        }
    }
    outcome.treated_as_withdraw = collected.treat_as_withdraw;
    Ok(outcome)
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

/// Parses `<length, prefix>` entries (RFC 4271 §4.3); any entry longer than
/// 32 bits or running past the field makes the whole field malformed.
fn parse_prefixes(mut field: &[u8]) -> Result<Vec<Ipv4Net>, ()> {
    let mut prefixes = Vec::new();
    while let Some((&length, rest)) = field.split_first() {
        if length > 32 {
            return Err(());
        }
        let octets = (length as usize).div_ceil(8);
        let address_bytes = rest.get(..octets).ok_or(())?;
        let mut address = [0u8; 4];
        address[..octets].copy_from_slice(address_bytes);
        // Bits past the prefix length are irrelevant (RFC 4271 §4.3).
        let prefix = Ipv4Net::new(Ipv4Addr::from(address), length)
            .map_err(|_| ())?
            .trunc();
        prefixes.push(prefix);
        field = &rest[octets..];
    }
    Ok(prefixes)
}

/// Multicast (224/4) and the reserved block above it (240/4) are no
/// subscriber's unicast prefix.
fn is_unicast_prefix(prefix: Ipv4Net) -> bool {
    !(prefix.prefix_len() >= 3 && prefix.network().octets()[0] >= 224)
}

fn is_valid_next_hop(address: Ipv4Addr) -> bool {
    !(address.is_unspecified() || address.is_broadcast() || address.octets()[0] >= 224)
}

/// Splits the path attributes field into attributes. A header or length
/// that runs past the field ends the walk with a framing error (RFC 7606 §4).
fn split_attributes(field: &[u8]) -> (Vec<RawAttribute<'_>>, Option<String>) {
    let mut attributes = Vec::new();
    let mut at = 0;
    while at < field.len() {
        let rest = &field[at..];
        let flags = rest[0];
        let header_len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            4
        } else {
            3
        };
        if rest.len() < header_len {
            return (
                attributes,
                Some(format!(
                    "{} octet(s) left in the path attributes, too few for an attribute header",
                    rest.len()
                )),
            );
        }
        let type_code = rest[1];
        let value_len = if header_len == 4 {
            u16::from_be_bytes([rest[2], rest[3]]) as usize
        } else {
            rest[2] as usize
        };
        let Some(bytes) = rest.get(..header_len + value_len) else {
            return (
                attributes,
                Some(format!(
                    "attribute type {type_code} claims {value_len} octet(s) but only {} remain",
                    rest.len() - header_len
                )),
            );
        };
        attributes.push(RawAttribute {
            flags,
            type_code,
            value: &bytes[header_len..],
            bytes,
        });
        at += header_len + value_len;
    }
    (attributes, None)
}

fn read_attribute(
    attribute: &RawAttribute<'_>,
    ctx: &DecodeContext,
    collected: &mut Collected,
) -> Result<(), Notification> {
    let type_code = attribute.type_code;
    if collected.seen.contains(type_code) {
        if matches!(type_code, MP_REACH_NLRI | MP_UNREACH_NLRI) {
            return Err(session_reset(subcode::MALFORMED_ATTRIBUTE_LIST, &[]));
        }
        // RFC 7606 §3 (g): later copies of any other attribute are dropped.
        collected.notes.push(format!(
            "discarded a repeated attribute of type {type_code}"
        ));
        return Ok(());
    }
    collected.seen.insert(type_code);

    let Some(spec) = spec(type_code) else {
        if attribute.flags & FLAG_OPTIONAL == 0 {
            return Err(session_reset(
                subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                attribute.bytes,
            ));
        }
        // Unrecognized optional attributes are not this speaker's business.
        return Ok(());
    };

    if ctx.ebgp && matches!(type_code, LOCAL_PREF | ORIGINATOR_ID | CLUSTER_LIST) {
        // Meaningful only inside an AS: from outside, discarded before its
        // flags or length are even looked at (RFC 7606 §7.5, §7.9, §7.10).
        collected
            .notes
            .push(format!("discarded {} from an external peer", spec.name));
        return Ok(());
    }
    let optional = attribute.flags & FLAG_OPTIONAL != 0;
    let transitive = attribute.flags & FLAG_TRANSITIVE != 0;
    let checked = if optional != spec.optional || transitive != spec.transitive {
        // RFC 7606 §3 (c): a flags conflict makes the attribute malformed.
        Err((
            subcode::ATTRIBUTE_FLAGS_ERROR,
            format!("{} has attribute flags {:#04x}", spec.name, attribute.flags),
        ))
    } else {
        check_value(attribute, &spec, ctx, collected)
    };
    match checked {
        Ok(()) => Ok(()),
        Err((subcode, reason)) => match spec.on_malformed {
            OnMalformed::SessionReset => Err(session_reset(subcode, attribute.bytes)),
            OnMalformed::TreatAsWithdraw => {
                collected.treat_as_withdraw(reason);
                Ok(())
            }
            OnMalformed::Discard => {
                collected.notes.push(format!("discarded {reason}"));
                Ok(())
            }
        },
    }
}

type Malformed = (u8, String);

fn check_value(
    attribute: &RawAttribute<'_>,
    spec: &AttributeSpec,
    ctx: &DecodeContext,
    collected: &mut Collected,
) -> Result<(), Malformed> {
    let length = attribute.value.len();
    let wrong_length = |subcode: u8| {
        Err((
            subcode,
            format!("{} with a length of {length} octet(s)", spec.name),
        ))
    };
    match attribute.type_code {
        ORIGIN => {
            decode_with_netgauze(attribute, ctx, spec, subcode::INVALID_ORIGIN)?;
        }
        AS_PATH => {
            let segments: Segments =
                match decode_with_netgauze(attribute, ctx, spec, subcode::MALFORMED_AS_PATH)? {
                    PathAttributeValue::AsPath(AsPath::As2PathSegments(segments)) => segments
                        .iter()
                        .map(|s| {
                            (
                                s.segment_type(),
                                s.as_numbers().iter().map(|&a| a as u32).collect(),
                            )
                        })
                        .collect(),
                    PathAttributeValue::AsPath(AsPath::As4PathSegments(segments)) => segments
                        .iter()
                        .map(|s| (s.segment_type(), s.as_numbers().to_vec()))
                        .collect(),
                    _ => return Err(unexpected_value(spec)),
                };
            check_no_as_zero(&segments, spec, subcode::MALFORMED_AS_PATH)?;
            collected.as_path = Some(segments);
        }
        NEXT_HOP => {
            let PathAttributeValue::NextHop(next_hop) =
                decode_with_netgauze(attribute, ctx, spec, subcode::INVALID_NEXT_HOP)?
            else {
                return Err(unexpected_value(spec));
            };
            let next_hop = next_hop.next_hop();
            if !is_valid_next_hop(next_hop) {
                return Err((
                    subcode::INVALID_NEXT_HOP,
                    format!("NEXT_HOP {next_hop} is not a host address"),
                ));
            }
            collected.next_hop = Some(next_hop);
        }
        MULTI_EXIT_DISC | ORIGINATOR_ID | LOCAL_PREF if length != 4 => {
            return wrong_length(subcode::ATTRIBUTE_LENGTH_ERROR);
        }
        ATOMIC_AGGREGATE if length != 0 => return wrong_length(subcode::ATTRIBUTE_LENGTH_ERROR),
        AGGREGATOR => {
            let expected = if ctx.four_octet_as { 8 } else { 6 };
            if length != expected {
                return wrong_length(subcode::ATTRIBUTE_LENGTH_ERROR);
            }
            let asn = match decode_with_netgauze(
                attribute,
                ctx,
                spec,
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
            )? {
                PathAttributeValue::Aggregator(Aggregator::As2Aggregator(a)) => *a.asn() as u32,
                PathAttributeValue::Aggregator(Aggregator::As4Aggregator(a)) => *a.asn(),
                _ => return Err(unexpected_value(spec)),
            };
            if asn == 0 {
                return Err((
                    subcode::OPTIONAL_ATTRIBUTE_ERROR,
                    "AGGREGATOR with AS 0".into(),
                ));
            }
            collected.aggregator_asn = Some(asn);
        }
        COMMUNITIES | CLUSTER_LIST if length == 0 || !length.is_multiple_of(4) => {
            return wrong_length(subcode::OPTIONAL_ATTRIBUTE_ERROR);
        }
        EXTENDED_COMMUNITIES if length == 0 || !length.is_multiple_of(8) => {
            return wrong_length(subcode::OPTIONAL_ATTRIBUTE_ERROR);
        }
        IPV6_EXTENDED_COMMUNITIES if length == 0 || !length.is_multiple_of(20) => {
            return wrong_length(subcode::OPTIONAL_ATTRIBUTE_ERROR);
        }
        LARGE_COMMUNITIES if length == 0 || !length.is_multiple_of(12) => {
            return wrong_length(subcode::OPTIONAL_ATTRIBUTE_ERROR);
        }
        AS4_PATH | AS4_AGGREGATOR if ctx.four_octet_as => {
            // Between two 4-octet speakers these must not appear (RFC 6793 §4.1).
            collected.notes.push(format!(
                "discarded {} from a 4-octet ASN speaker",
                spec.name
            ));
        }
        AS4_PATH => {
            // Decoded with the 4-octet AS_PATH rules: same format.
            let segments = decode_as4_path(attribute.value).ok_or((
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
                "malformed AS4_PATH".to_string(),
            ))?;
            check_no_as_zero(&segments, spec, subcode::OPTIONAL_ATTRIBUTE_ERROR)?;
            collected.as4_path = Some(segments);
        }
        AS4_AGGREGATOR => {
            if length != 8 {
                return wrong_length(subcode::OPTIONAL_ATTRIBUTE_ERROR);
            }
            let v = attribute.value;
            let asn = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            if asn == 0 {
                return Err((
                    subcode::OPTIONAL_ATTRIBUTE_ERROR,
                    "AS4_AGGREGATOR with AS 0".into(),
                ));
            }
            collected.as4_aggregator_asn = Some(asn);
        }
        MP_REACH_NLRI => read_mp_reach(attribute.value, collected)?,
        MP_UNREACH_NLRI => read_mp_unreach(attribute.value, collected)?,
        _ => {}
    }
    Ok(())
}

fn unexpected_value(spec: &AttributeSpec) -> Malformed {
    (
        subcode::UNSPECIFIC,
        format!("{} decoded to an unexpected value", spec.name),
    )
}

/// Decodes one attribute's value with netgauze; a refusal is a malformed
/// attribute.
fn decode_with_netgauze(
    attribute: &RawAttribute<'_>,
    ctx: &DecodeContext,
    spec: &AttributeSpec,
    subcode_if_malformed: u8,
) -> Result<PathAttributeValue, Malformed> {
    let mut parsing = BgpParsingContext::new(
        ctx.four_octet_as,
        Default::default(),
        Default::default(),
        true,
        true,
        true,
        true,
    );
    let mut bytes = attribute.bytes.to_vec();
    if spec.optional && spec.transitive {
        // A router that passed on an optional transitive attribute it did
        // not know sets the Partial bit (RFC 4271 §5); netgauze refuses it
        // on attributes it thinks cannot be partial.
        bytes[0] &= !FLAG_PARTIAL;
    }
    let mut reader = SliceReader::new(&bytes);
    match PathAttribute::parse(&mut reader, &mut parsing) {
        Ok(decoded) if reader.is_empty() => Ok(decoded.value().clone()),
        Ok(_) => Err((
            subcode_if_malformed,
            format!("{} longer than its value", spec.name),
        )),
        Err(error) => Err((
            subcode_if_malformed,
            format!("malformed {}: {error}", spec.name),
        )),
    }
}

fn check_no_as_zero(
    segments: &Segments,
    spec: &AttributeSpec,
    subcode: u8,
) -> Result<(), Malformed> {
    // RFC 7607: AS 0 in a path makes the attribute malformed.
    if segments.iter().any(|(_, asns)| asns.contains(&0)) {
        return Err((subcode, format!("{} contains AS 0", spec.name)));
    }
    Ok(())
}

/// AS4_PATH has AS_PATH's encoding with 4-octet ASNs (RFC 6793 §3); netgauze
/// reads it as an AS_PATH of a 4-octet session.
fn decode_as4_path(value: &[u8]) -> Option<Segments> {
    let mut as_path_bytes = Vec::with_capacity(value.len() + 4);
    as_path_bytes.extend_from_slice(&[FLAG_TRANSITIVE | FLAG_EXTENDED_LENGTH, AS_PATH]);
    as_path_bytes.extend_from_slice(&u16::try_from(value.len()).ok()?.to_be_bytes());
    as_path_bytes.extend_from_slice(value);
    let mut parsing = BgpParsingContext::new(
        true,
        Default::default(),
        Default::default(),
        true,
        true,
        true,
        true,
    );
    let mut reader = SliceReader::new(&as_path_bytes);
    match PathAttribute::parse(&mut reader, &mut parsing)
        .ok()?
        .value()
    {
        PathAttributeValue::AsPath(AsPath::As4PathSegments(segments)) if reader.is_empty() => Some(
            segments
                .iter()
                .map(|s| (s.segment_type(), s.as_numbers().to_vec()))
                .collect(),
        ),
        _ => None,
    }
}

fn read_mp_reach(value: &[u8], collected: &mut Collected) -> Result<(), Malformed> {
    let malformed = |why: &str| {
        (
            subcode::OPTIONAL_ATTRIBUTE_ERROR,
            format!("MP_REACH_NLRI {why}"),
        )
    };
    let (afi, safi) = match value {
        [a, b, s, ..] => (u16::from_be_bytes([*a, *b]), *s),
        _ => return Err(malformed("too short for its AFI/SAFI")),
    };
    if (afi, safi) != (AFI_IPV4, SAFI_UNICAST) {
        collected.notes.push(format!(
            "ignored MP_REACH_NLRI for AFI {afi} SAFI {safi}, which was not negotiated"
        ));
        return Ok(());
    }
    collected.mp_reach_present = true;
    let next_hop_len = *value
        .get(3)
        .ok_or_else(|| malformed("has no next hop length"))? as usize;
    // Only a 4-octet IPv4 next hop is expected: the extended next hop
    // capability (RFC 8950) is not advertised. With another length the NLRI
    // cannot be located reliably (RFC 7606 §7.11).
    if next_hop_len != 4 {
        return Err(malformed(&format!(
            "has a next hop of {next_hop_len} octets"
        )));
    }
    let next_hop_bytes = value.get(4..8).ok_or_else(|| malformed("is cut short"))?;
    // The octet after the next hop is reserved and ignored (RFC 4760 §3).
    let nlri_field = value.get(9..).ok_or_else(|| malformed("is cut short"))?;
    let prefixes = parse_prefixes(nlri_field).map_err(|_| malformed("has malformed NLRI"))?;
    let next_hop = Ipv4Addr::new(
        next_hop_bytes[0],
        next_hop_bytes[1],
        next_hop_bytes[2],
        next_hop_bytes[3],
    );
    if is_valid_next_hop(next_hop) {
        collected.mp_next_hop = Some(next_hop);
    } else {
        collected.treat_as_withdraw(format!(
            "MP_REACH_NLRI next hop {next_hop} is not a host address"
        ));
    }
    collected.mp_announced = prefixes;
    Ok(())
}

fn read_mp_unreach(value: &[u8], collected: &mut Collected) -> Result<(), Malformed> {
    let malformed = |why: &str| {
        (
            subcode::OPTIONAL_ATTRIBUTE_ERROR,
            format!("MP_UNREACH_NLRI {why}"),
        )
    };
    let (afi, safi, withdrawn) = match value {
        [a, b, s, rest @ ..] => (u16::from_be_bytes([*a, *b]), *s, rest),
        _ => return Err(malformed("too short for its AFI/SAFI")),
    };
    if (afi, safi) != (AFI_IPV4, SAFI_UNICAST) {
        collected.notes.push(format!(
            "ignored MP_UNREACH_NLRI for AFI {afi} SAFI {safi}, which was not negotiated"
        ));
        return Ok(());
    }
    collected.mp_withdrawn =
        parse_prefixes(withdrawn).map_err(|_| malformed("has malformed NLRI"))?;
    Ok(())
}

fn check_mandatory_attributes(nlri: &[Ipv4Net], collected: &mut Collected) {
    // RFC 7606 §3 (d); NEXT_HOP only matters for the classic NLRI field
    // (RFC 4760 §3). A malformed attribute already set treat-as-withdraw.
    let missing = if !collected.seen.contains(ORIGIN) {
        Some("ORIGIN")
    } else if !collected.seen.contains(AS_PATH) {
        Some("AS_PATH")
    } else if !nlri.is_empty() && !collected.seen.contains(NEXT_HOP) {
        Some("NEXT_HOP")
    } else {
        None
    };
    if let Some(missing) = missing {
        collected.treat_as_withdraw(format!("missing well-known attribute {missing}"));
    }
}

/// The AS path of the announced routes: the eBGP first-AS check (RFC 4271
/// §6.3, treat-as-withdraw per RFC 7606 §7.2), then, on a 2-octet session,
/// the AS4_PATH merge of RFC 6793 §4.2.3.
fn build_as_path(ctx: &DecodeContext, collected: &mut Collected) -> Vec<u32> {
    let Some(as_path) = collected.as_path.take() else {
        return Vec::new();
    };
    if ctx.ebgp {
        let expected_first = if ctx.four_octet_as {
            ctx.peer_asn
        } else {
            u32::from(u16::try_from(ctx.peer_asn).unwrap_or(AS_TRANS))
        };
        let first = match as_path.first() {
            Some((AsPathSegmentType::AsSequence, asns)) => asns.first().copied(),
            _ => None,
        };
        if first != Some(expected_first) {
            collected.treat_as_withdraw(format!(
                "AS_PATH does not start with the peer's AS {}",
                ctx.peer_asn
            ));
            return Vec::new();
        }
    }
    let mut merged = as_path;
    if !ctx.four_octet_as {
        if let Some(as4_path) = collected.as4_path.take() {
            merged = merge_as4_path(merged, as4_path, collected);
        }
    }
    merged.into_iter().flat_map(|(_, asns)| asns).collect()
}

fn path_length(segments: &Segments) -> usize {
    // An AS_SET counts as one AS (RFC 4271 §9.1.2.2, RFC 6793 §4.2.3).
    segments
        .iter()
        .map(|(kind, asns)| match kind {
            AsPathSegmentType::AsSet => 1,
            AsPathSegmentType::AsSequence => asns.len(),
        })
        .sum()
}

fn merge_as4_path(as_path: Segments, as4_path: Segments, collected: &mut Collected) -> Segments {
    if collected
        .aggregator_asn
        .is_some_and(|asn| asn != AS_TRANS as u32)
    {
        // An AGGREGATOR from a 4-octet speaker is not AS_TRANS; then the
        // AS4 attributes are stale (RFC 6793 §4.2.3).
        collected
            .notes
            .push("ignored AS4_PATH: AGGREGATOR is not AS_TRANS".into());
        return as_path;
    }
    let as_path_length = path_length(&as_path);
    let as4_path_length = path_length(&as4_path);
    if as_path_length < as4_path_length {
        collected
            .notes
            .push("ignored AS4_PATH: longer than AS_PATH".into());
        return as_path;
    }
    let mut needed = as_path_length - as4_path_length;
    let mut merged = Segments::new();
    for (kind, asns) in as_path {
        if needed == 0 {
            break;
        }
        match kind {
            AsPathSegmentType::AsSet => {
                merged.push((kind, asns));
                needed -= 1;
            }
            AsPathSegmentType::AsSequence => {
                let take = needed.min(asns.len());
                merged.push((kind, asns[..take].to_vec()));
                needed -= take;
            }
        }
    }
    merged.extend(as4_path);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const EBGP4: DecodeContext = DecodeContext {
        four_octet_as: true,
        peer_asn: 65001,
        ebgp: true,
    };
    const IBGP4: DecodeContext = DecodeContext {
        four_octet_as: true,
        peer_asn: 65000,
        ebgp: false,
    };
    const EBGP2: DecodeContext = DecodeContext {
        four_octet_as: false,
        peer_asn: 65001,
        ebgp: true,
    };

    fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![flags, type_code, value.len() as u8];
        out.extend_from_slice(value);
        out
    }

    fn origin() -> Vec<u8> {
        attr(0x40, ORIGIN, &[0])
    }

    fn as_path4(asns: &[u32]) -> Vec<u8> {
        let mut value = vec![2, asns.len() as u8];
        for asn in asns {
            value.extend_from_slice(&asn.to_be_bytes());
        }
        attr(0x40, AS_PATH, &value)
    }

    fn as_path2(asns: &[u16]) -> Vec<u8> {
        let mut value = vec![2, asns.len() as u8];
        for asn in asns {
            value.extend_from_slice(&asn.to_be_bytes());
        }
        attr(0x40, AS_PATH, &value)
    }

    fn next_hop(address: [u8; 4]) -> Vec<u8> {
        attr(0x40, NEXT_HOP, &address)
    }

    fn body(withdrawn: &[u8], attributes: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
        let attributes: Vec<u8> = attributes.concat();
        let mut out = (withdrawn.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(withdrawn);
        out.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        out.extend_from_slice(&attributes);
        out.extend_from_slice(nlri);
        out
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    const TEN_EIGHT: &[u8] = &[8, 10];
    const SUBSCRIBERS: &[u8] = &[22, 100, 64, 4];

    fn good_attributes() -> Vec<Vec<u8>> {
        vec![
            origin(),
            as_path4(&[65001, 4_200_000_000]),
            next_hop([192, 0, 2, 1]),
        ]
    }

    #[test]
    fn a_plain_announcement_is_accepted() {
        let outcome = decode_update(&body(&[], &good_attributes(), SUBSCRIBERS), &EBGP4).unwrap();
        assert_eq!(
            outcome.announced,
            vec![(net("100.64.4.0/22"), Ipv4Addr::new(192, 0, 2, 1))]
        );
        assert_eq!(outcome.as_path, vec![65001, 4_200_000_000]);
        assert_eq!(outcome.reachability(), Reachability::Accepted);
        assert!(outcome.withdrawn.is_empty());
    }

    #[test]
    fn withdrawals_come_first_and_host_bits_are_cleared() {
        // 10.1.2.3/8 on the wire is 10.0.0.0/8.
        let outcome = decode_update(
            &body(
                &[8, 10, 16, 172, 16],
                &good_attributes(),
                &[8, 10, 1, 2, 3][..2],
            ),
            &EBGP4,
        )
        .unwrap();
        assert_eq!(
            outcome.withdrawn,
            vec![net("10.0.0.0/8"), net("172.16.0.0/16")]
        );
        assert_eq!(outcome.announced[0].0, net("10.0.0.0/8"));
    }

    #[test]
    fn empty_update_is_end_of_rib_and_changes_nothing() {
        let outcome = decode_update(&body(&[], &[], &[]), &EBGP4).unwrap();
        assert_eq!(outcome, UpdateOutcome::default());
        assert_eq!(outcome.reachability(), Reachability::None);
    }

    #[test]
    fn lengths_past_the_message_reset_the_session() {
        let mut withdrawn_too_long = body(&[8, 10], &[], &[]);
        withdrawn_too_long[1] = 200;
        let mut attributes_too_long = body(&[], &good_attributes(), &[]);
        attributes_too_long[3] += 1;
        for broken in [
            withdrawn_too_long,
            attributes_too_long,
            vec![0],
            vec![0, 0, 0],
        ] {
            let err = decode_update(&broken, &EBGP4).unwrap_err();
            assert_eq!((err.code, err.subcode), (3, 1), "{broken:?}");
        }
    }

    #[test]
    fn bad_prefix_fields_reset_the_session_with_invalid_network_field() {
        for (withdrawn, nlri) in [
            (&[33u8, 1, 2, 3, 4, 5][..], &[][..]),
            (&[][..], &[24u8, 10, 0][..]),
        ] {
            let err =
                decode_update(&body(withdrawn, &good_attributes(), nlri), &EBGP4).unwrap_err();
            assert_eq!((err.code, err.subcode), (3, 10));
        }
    }

    #[test]
    fn attribute_overrunning_the_attribute_field_is_treated_as_withdraw() {
        let mut attributes = good_attributes();
        // NEXT_HOP claims 5 octets; the field ends after 4.
        attributes[2][2] = 5;
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP4).unwrap();
        assert_eq!(outcome.withdrawn, vec![net("10.0.0.0/8")]);
        assert!(outcome.announced.is_empty());
        assert!(outcome.treated_as_withdraw.unwrap().contains("claims 5"));

        let mut attributes = good_attributes();
        attributes.push(vec![0x40, 99]);
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP4).unwrap();
        assert_eq!(outcome.reachability(), Reachability::TreatedAsWithdraw);
    }

    #[test]
    fn malformed_well_known_attributes_are_treated_as_withdraw() {
        let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
            (
                vec![
                    attr(0x40, ORIGIN, &[7]),
                    as_path4(&[65001]),
                    next_hop([192, 0, 2, 1]),
                ],
                "ORIGIN",
            ),
            (
                vec![
                    attr(0x40, ORIGIN, &[0, 0]),
                    as_path4(&[65001]),
                    next_hop([192, 0, 2, 1]),
                ],
                "ORIGIN",
            ),
            (
                vec![
                    origin(),
                    attr(0x40, AS_PATH, &[2, 3, 0, 0, 0xfd, 0xe9]),
                    next_hop([192, 0, 2, 1]),
                ],
                "AS_PATH",
            ),
            (
                vec![
                    origin(),
                    attr(0x40, AS_PATH, &[2, 0]),
                    next_hop([192, 0, 2, 1]),
                ],
                "AS_PATH",
            ),
            (
                vec![
                    origin(),
                    attr(0x40, AS_PATH, &[9, 1, 0, 0, 0xfd, 0xe9]),
                    next_hop([192, 0, 2, 1]),
                ],
                "AS_PATH",
            ),
            (
                vec![
                    origin(),
                    attr(0x40, AS_PATH, &[2, 1, 0, 0, 0xfd, 0xe9, 2]),
                    next_hop([192, 0, 2, 1]),
                ],
                "AS_PATH",
            ),
            (
                vec![origin(), as_path4(&[65001, 0]), next_hop([192, 0, 2, 1])],
                "AS 0",
            ),
            (
                vec![
                    origin(),
                    as_path4(&[65001]),
                    attr(0x40, NEXT_HOP, &[1, 2, 3]),
                ],
                "NEXT_HOP",
            ),
            (
                vec![origin(), as_path4(&[65001]), next_hop([0, 0, 0, 0])],
                "NEXT_HOP",
            ),
            (
                vec![origin(), as_path4(&[65001]), next_hop([224, 0, 0, 5])],
                "NEXT_HOP",
            ),
            (
                vec![
                    attr(0xc0, ORIGIN, &[0]),
                    as_path4(&[65001]),
                    next_hop([192, 0, 2, 1]),
                ],
                "flags",
            ),
            (vec![origin(), as_path4(&[65001])], "NEXT_HOP"),
            (vec![as_path4(&[65001]), next_hop([192, 0, 2, 1])], "ORIGIN"),
            (vec![origin(), next_hop([192, 0, 2, 1])], "AS_PATH"),
            (vec![], "ORIGIN"),
            (
                vec![origin(), as_path4(&[65002]), next_hop([192, 0, 2, 1])],
                "peer's AS",
            ),
            (
                [good_attributes(), vec![attr(0xc0, COMMUNITIES, &[1, 2, 3])]].concat(),
                "COMMUNITIES",
            ),
            (
                [
                    good_attributes(),
                    vec![attr(0x80, MULTI_EXIT_DISC, &[1, 2])],
                ]
                .concat(),
                "MULTI_EXIT_DISC",
            ),
            (
                [
                    good_attributes(),
                    vec![attr(0xc0, LARGE_COMMUNITIES, &[0; 13])],
                ]
                .concat(),
                "LARGE_COMMUNITY",
            ),
        ];
        for (attributes, expected_reason) in cases {
            let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP4)
                .unwrap_or_else(|e| panic!("{expected_reason}: session reset {e}"));
            let reason = outcome
                .treated_as_withdraw
                .unwrap_or_else(|| panic!("{expected_reason}: accepted"));
            assert!(
                reason.contains(expected_reason),
                "{reason} lacks {expected_reason}"
            );
            assert_eq!(outcome.withdrawn, vec![net("10.0.0.0/8")]);
            assert!(outcome.announced.is_empty());
        }
    }

    #[test]
    fn discardable_attributes_are_dropped_and_the_route_kept() {
        let extra = vec![
            attr(0x40, ATOMIC_AGGREGATE, &[1]),
            attr(0xc0, AGGREGATOR, &[0, 0]),
            attr(0x40, LOCAL_PREF, &[0, 0, 0, 100]),
            attr(0xc0, AS4_PATH, &[2, 1, 0, 0, 0, 1]),
            attr(0x40, ORIGIN, &[1]),
            attr(0x80, 99, &[1, 2, 3]),
        ];
        let attributes = [good_attributes(), extra].concat();
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP4).unwrap();
        assert_eq!(outcome.reachability(), Reachability::Accepted);
        assert_eq!(outcome.notes.len(), 5, "{:?}", outcome.notes);
    }

    #[test]
    fn session_resets_where_rfc_7606_requires_them() {
        let mp_unreach = attr(0x80, MP_UNREACH_NLRI, &[0, 1, 1]);
        let cases: Vec<(Vec<Vec<u8>>, u8)> = vec![
            (
                [good_attributes(), vec![mp_unreach.clone(), mp_unreach]].concat(),
                subcode::MALFORMED_ATTRIBUTE_LIST,
            ),
            (
                [good_attributes(), vec![attr(0x40, 99, &[1])]].concat(),
                subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            ),
            (
                [
                    good_attributes(),
                    vec![attr(0x80, MP_REACH_NLRI, &[0, 1, 1, 16, 0])],
                ]
                .concat(),
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
            ),
            (
                [
                    good_attributes(),
                    vec![attr(
                        0x80,
                        MP_REACH_NLRI,
                        &[0, 1, 1, 4, 1, 2, 3, 4, 0, 40, 1],
                    )],
                ]
                .concat(),
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
            ),
            (
                [
                    good_attributes(),
                    vec![attr(0x80, MP_UNREACH_NLRI, &[0, 1])],
                ]
                .concat(),
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
            ),
            (
                [
                    good_attributes(),
                    vec![attr(0xc0, MP_UNREACH_NLRI, &[0, 1, 1])],
                ]
                .concat(),
                subcode::ATTRIBUTE_FLAGS_ERROR,
            ),
        ];
        for (attributes, expected) in cases {
            let err = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP4).unwrap_err();
            assert_eq!((err.code, err.subcode), (3, expected));
        }
    }

    #[test]
    fn multiprotocol_ipv4_unicast_announces_and_withdraws() {
        let reach = attr(
            0x80,
            MP_REACH_NLRI,
            &[0, 1, 1, 4, 192, 0, 2, 9, 0, 24, 198, 51, 100, 16, 10, 1],
        );
        let unreach = attr(0x80, MP_UNREACH_NLRI, &[0, 1, 1, 16, 172, 16]);
        let attributes = vec![reach, unreach, origin(), as_path4(&[65000])];
        let outcome = decode_update(&body(&[], &attributes, &[]), &IBGP4).unwrap();
        let hop = Ipv4Addr::new(192, 0, 2, 9);
        assert_eq!(
            outcome.announced,
            vec![(net("198.51.100.0/24"), hop), (net("10.1.0.0/16"), hop)]
        );
        assert_eq!(outcome.withdrawn, vec![net("172.16.0.0/16")]);
        assert_eq!(outcome.as_path, vec![65000]);

        let ipv6 = attr(0x80, MP_UNREACH_NLRI, &[0, 2, 1, 32, 0x20, 1, 0xd, 0xb8]);
        let outcome = decode_update(&body(&[], &[ipv6], &[]), &IBGP4).unwrap();
        assert!(outcome.withdrawn.is_empty());
        assert!(outcome.notes[0].contains("AFI 2"));
    }

    #[test]
    fn multicast_prefixes_are_ignored_not_fatal() {
        let outcome =
            decode_update(&body(&[], &good_attributes(), &[4, 224, 8, 10]), &EBGP4).unwrap();
        assert_eq!(outcome.announced.len(), 1);
        assert!(outcome.notes[0].contains("224.0.0.0/4"));
    }

    #[test]
    fn internal_only_attributes_from_an_external_peer_are_discarded_whatever_their_shape() {
        let extra = vec![
            attr(0xc0, LOCAL_PREF, &[1, 2]),
            attr(0x40, ORIGINATOR_ID, &[1]),
            attr(0x80, CLUSTER_LIST, &[1, 2, 3]),
        ];
        let attributes = [good_attributes(), extra].concat();
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP4).unwrap();
        assert_eq!(outcome.reachability(), Reachability::Accepted);
        assert_eq!(outcome.notes.len(), 3);
        // The same from an internal peer: malformed, treat-as-withdraw.
        let attributes = vec![
            origin(),
            attr(0x40, AS_PATH, &[]),
            next_hop([192, 0, 2, 1]),
            attr(0x40, LOCAL_PREF, &[1, 2]),
        ];
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &IBGP4).unwrap();
        assert!(outcome.treated_as_withdraw.unwrap().contains("LOCAL_PREF"));
    }

    #[test]
    fn ibgp_may_carry_an_empty_as_path_and_local_pref() {
        let attributes = vec![
            origin(),
            attr(0x40, AS_PATH, &[]),
            next_hop([192, 0, 2, 1]),
            attr(0x40, LOCAL_PREF, &[0, 0, 0, 100]),
        ];
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &IBGP4).unwrap();
        assert_eq!(outcome.reachability(), Reachability::Accepted);
        assert!(outcome.as_path.is_empty());
        assert!(outcome.notes.is_empty());
    }

    fn as4_path(asns: &[u32]) -> Vec<u8> {
        let mut value = vec![2, asns.len() as u8];
        for asn in asns {
            value.extend_from_slice(&asn.to_be_bytes());
        }
        attr(0xc0, AS4_PATH, &value)
    }

    #[test]
    fn two_octet_sessions_merge_as4_path() {
        let attributes = vec![
            origin(),
            as_path2(&[65001, AS_TRANS, AS_TRANS, 65010]),
            next_hop([192, 0, 2, 1]),
            as4_path(&[4_200_000_001, 4_200_000_002, 65010]),
        ];
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP2).unwrap();
        assert_eq!(
            outcome.as_path,
            vec![65001, 4_200_000_001, 4_200_000_002, 65010]
        );

        // Longer than AS_PATH: ignored.
        let attributes = vec![
            origin(),
            as_path2(&[65001]),
            next_hop([192, 0, 2, 1]),
            as4_path(&[4_200_000_001, 4_200_000_002]),
        ];
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP2).unwrap();
        assert_eq!(outcome.as_path, vec![65001]);

        // Malformed AS4_PATH: discarded, route kept with the AS_PATH.
        let attributes = vec![
            origin(),
            as_path2(&[65001, AS_TRANS]),
            next_hop([192, 0, 2, 1]),
            attr(0xc0, AS4_PATH, &[2, 2, 0, 0, 0, 1]),
        ];
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP2).unwrap();
        assert_eq!(outcome.as_path, vec![65001, AS_TRANS as u32]);
        assert!(outcome.notes[0].contains("AS4_PATH"));

        // An AGGREGATOR that is not AS_TRANS makes AS4_PATH stale.
        let attributes = vec![
            origin(),
            as_path2(&[65001, AS_TRANS]),
            next_hop([192, 0, 2, 1]),
            attr(0xc0, AGGREGATOR, &[0xfd, 0xe9, 10, 0, 0, 1]),
            as4_path(&[4_200_000_001]),
        ];
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP2).unwrap();
        assert_eq!(outcome.as_path, vec![65001, AS_TRANS as u32]);
    }

    #[test]
    fn merge_counts_an_as_set_as_one() {
        let as_path = vec![
            (AsPathSegmentType::AsSequence, vec![65001, AS_TRANS as u32]),
            (AsPathSegmentType::AsSet, vec![1, 2, 3]),
        ];
        let as4 = vec![(AsPathSegmentType::AsSequence, vec![4_200_000_001, 7])];
        let merged = merge_as4_path(as_path, as4, &mut Collected::default());
        assert_eq!(
            merged,
            vec![
                (AsPathSegmentType::AsSequence, vec![65001]),
                (AsPathSegmentType::AsSequence, vec![4_200_000_001, 7]),
            ]
        );
    }

    #[test]
    fn extended_length_attributes_are_read() {
        let mut as_path = vec![0x50, AS_PATH, 0, 6, 2, 1];
        as_path.extend_from_slice(&65001u32.to_be_bytes());
        let attributes = vec![origin(), as_path, next_hop([192, 0, 2, 1])];
        let outcome = decode_update(&body(&[], &attributes, TEN_EIGHT), &EBGP4).unwrap();
        assert_eq!(outcome.as_path, vec![65001]);
    }
}
