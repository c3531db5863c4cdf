//! Checks on what operators type: node names, IPv4 addresses, CIDR blocks,
//! drives, ASNs and BGP neighbors. Each error names the entry it is about,
//! and a batch is refused whole when any entry is wrong, with every wrong
//! entry listed, so nothing is half-saved.

use ipnet::Ipv4Net;
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::AppError;

pub const IPV6_NOT_SUPPORTED: &str = "IPv6 is not supported yet: enter an IPv4";

/// Node names: 1 to 63 letters and digits (they end up in host names and
/// file names), fixed once the node exists.
pub fn node_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::invalid("Enter a name for the node."));
    }
    if name.len() > 63 {
        return Err(AppError::invalid(
            "Node names are at most 63 characters long.",
        ));
    }
    if let Some(bad) = name.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(AppError::invalid(format!(
            "Node names may contain only letters and digits, not {bad:?}."
        )));
    }
    Ok(name.to_string())
}

fn looks_like_ipv6(entry: &str) -> bool {
    let address = entry.split('/').next().unwrap_or(entry);
    address.parse::<Ipv6Addr>().is_ok() || address.contains(':')
}

/// A unicast IPv4 address, for `field` (named in the error).
pub fn ipv4_address(raw: &str, field: &str) -> Result<Ipv4Addr, AppError> {
    let entry = raw.trim();
    if entry.is_empty() {
        return Err(AppError::invalid(format!("Enter the {field}.")));
    }
    if looks_like_ipv6(entry) {
        return Err(AppError::invalid(format!(
            "The {field} \"{entry}\" is IPv6. {IPV6_NOT_SUPPORTED} address."
        )));
    }
    let address: Ipv4Addr = entry.parse().map_err(|_| {
        AppError::invalid(format!(
            "The {field} \"{entry}\" is not an IPv4 address like 203.0.113.10."
        ))
    })?;
    if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
        return Err(AppError::invalid(format!(
            "The {field} {address} cannot be used: it is not a host address."
        )));
    }
    Ok(address)
}

pub const MAX_EGRESS_MBPS: i64 = 1_000_000;

pub fn egress_mbps(raw: &str) -> Result<i64, AppError> {
    let entry = raw.trim();
    let mbps: i64 = entry.parse().map_err(|_| {
        AppError::invalid(format!(
            "Maximum egress \"{entry}\" is not a whole number of Mbps."
        ))
    })?;
    if !(1..=MAX_EGRESS_MBPS).contains(&mbps) {
        return Err(AppError::invalid(format!(
            "Maximum egress must be between 1 and {MAX_EGRESS_MBPS} Mbps."
        )));
    }
    Ok(mbps)
}

/// Splits a pasted list into entries: one a line, or separated by commas.
/// Returns `(line number, entry)` pairs, skipping blank ones.
fn entries(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .flat_map(|(i, line)| {
            line.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(move |e| (i + 1, e.to_string()))
        })
        .collect()
}

/// Turns a list of problems into one error that names each entry.
fn refuse(what: &str, problems: Vec<String>) -> Result<(), AppError> {
    match problems.len() {
        0 => Ok(()),
        1 => Err(AppError::Invalid(format!(
            "Nothing was saved. {}",
            problems[0]
        ))),
        n => Err(AppError::Invalid(format!(
            "Nothing was saved: {n} {what} need fixing.\n{}",
            problems.join("\n")
        ))),
    }
}

/// A pasted list of IPv4 CIDR blocks, normalized, in the order given.
pub fn cidr_list(text: &str) -> Result<Vec<Ipv4Net>, AppError> {
    let mut blocks = Vec::new();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for (line, entry) in entries(text) {
        let problem = if looks_like_ipv6(&entry) {
            Some(format!("{IPV6_NOT_SUPPORTED} block."))
        } else if !entry.contains('/') {
            Some(match entry.parse::<Ipv4Addr>() {
                Ok(a) => format!("a CIDR block needs a prefix length, such as {a}/32."),
                Err(_) => "not a CIDR block like 203.0.113.0/24.".to_string(),
            })
        } else {
            match entry.parse::<Ipv4Net>() {
                Err(_) => Some("not a CIDR block like 203.0.113.0/24.".to_string()),
                Ok(net) if net != net.trunc() => {
                    Some(format!("host bits are set; the block is {}.", net.trunc()))
                }
                Ok(net) if !seen.insert(net) => Some("listed twice.".to_string()),
                Ok(net) => {
                    blocks.push(net);
                    None
                }
            }
        };
        if let Some(problem) = problem {
            problems.push(format!("Line {line}, \"{entry}\": {problem}"));
        }
    }
    refuse("entries", problems)?;
    Ok(blocks)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveSpec {
    pub path: String,
    pub size_gb: i64,
}

pub const MAX_DRIVE_GB: i64 = 1_000_000;

/// Cache drives, one a line: an absolute folder path and a size in GB,
/// e.g. `/var/cache/lastmile 500`.
pub fn drives(text: &str) -> Result<Vec<DriveSpec>, AppError> {
    let mut drives = Vec::new();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let problem = match line.rsplit_once(char::is_whitespace) {
            None => {
                Some("give a folder and a size in GB, like /var/cache/lastmile 500.".to_string())
            }
            Some((path, size)) => {
                let path = path.trim();
                let size = size.trim().trim_end_matches(['G', 'g', 'B', 'b']);
                if !path.starts_with('/') {
                    Some("the folder must be an absolute path, starting with /.".to_string())
                } else if path.split('/').any(|part| part == ".." || part == ".") {
                    Some("the folder path cannot contain . or .. parts.".to_string())
                } else if path.chars().any(char::is_control) {
                    Some("the folder path cannot contain control characters.".to_string())
                } else {
                    match size.parse::<i64>() {
                        Err(_) => Some(format!("the size \"{size}\" is not a whole number of GB.")),
                        Ok(gb) if !(1..=MAX_DRIVE_GB).contains(&gb) => {
                            Some(format!("the size must be between 1 and {MAX_DRIVE_GB} GB."))
                        }
                        Ok(_) if !seen.insert(path.trim_end_matches('/').to_string()) => {
                            Some("this folder is listed twice.".to_string())
                        }
                        Ok(gb) => {
                            let path = match path.trim_end_matches('/') {
                                "" => "/".to_string(),
                                p => p.to_string(),
                            };
                            drives.push(DriveSpec { path, size_gb: gb });
                            None
                        }
                    }
                }
            }
        };
        if let Some(problem) = problem {
            problems.push(format!("Drive line {}, \"{line}\": {problem}", i + 1));
        }
    }
    refuse("drives", problems)?;
    if drives.is_empty() {
        return Err(AppError::invalid(
            "Give at least one cache drive: a folder and a size in GB, like /var/cache/lastmile 500.",
        ));
    }
    Ok(drives)
}

/// Content hosts an operator adds to a node's allow-list: one a line or
/// comma-separated, each a host name or `*.domain`. Normalized, duplicates
/// dropped silently (they mean the same), every bad entry named.
pub fn extra_hosts(text: &str) -> Result<Vec<String>, AppError> {
    let mut hosts = Vec::new();
    let mut problems = Vec::new();
    for (line, entry) in entries(text) {
        match lastmile_wire::hosts::validate_host_pattern(&entry) {
            Ok(host) if hosts.contains(&host) => {}
            Ok(host) => hosts.push(host),
            Err(problem) => problems.push(format!("Host line {line}, \"{entry}\": {problem}.")),
        }
    }
    refuse("hosts", problems)?;
    if hosts.len() > 100 {
        return Err(AppError::invalid(
            "A node takes at most 100 added content hosts.",
        ));
    }
    Ok(hosts)
}

/// An autonomous system number: 1 to 4294967294, 2-byte or 4-byte, but not
/// AS_TRANS (23456) or the reserved 65535.
pub fn asn(raw: &str, field: &str) -> Result<u32, AppError> {
    let entry = raw.trim().trim_start_matches("AS").trim_start_matches("as");
    let asn: u32 = entry.parse().map_err(|_| {
        AppError::invalid(format!(
            "The {field} \"{}\" is not an AS number (1 to 4294967294).",
            raw.trim()
        ))
    })?;
    if asn == 0 || asn == 23456 || asn == 65535 || asn == u32::MAX {
        return Err(AppError::invalid(format!(
            "The {field} {asn} is reserved and cannot be used."
        )));
    }
    Ok(asn)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborSpec {
    pub address: Ipv4Addr,
    pub asn: u32,
}

/// BGP neighbors, one a line: the router's IPv4 address and its ASN,
/// e.g. `192.0.2.1 64512`.
pub fn neighbors(text: &str) -> Result<Vec<NeighborSpec>, AppError> {
    let mut neighbors = Vec::new();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|p| !p.is_empty())
            .collect();
        let problem = match parts.as_slice() {
            [address, asn_text] => match (
                ipv4_address(address, "router address"),
                asn(asn_text, "router ASN"),
            ) {
                (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
                (Ok(address), Ok(_)) if !seen.insert(address) => {
                    Some("this router is listed twice.".to_string())
                }
                (Ok(address), Ok(asn)) => {
                    neighbors.push(NeighborSpec { address, asn });
                    None
                }
            },
            _ => Some(
                "give the router's IPv4 address and its ASN, like 192.0.2.1 64512.".to_string(),
            ),
        };
        if let Some(problem) = problem {
            problems.push(format!("Neighbor line {}, \"{line}\": {problem}", i + 1));
        }
    }
    refuse("neighbors", problems)?;
    if neighbors.is_empty() {
        return Err(AppError::invalid(
            "Give at least one BGP neighbor: the router's IPv4 address and ASN, like 192.0.2.1 64512.",
        ));
    }
    Ok(neighbors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: AppError) -> String {
        e.to_string()
    }

    #[test]
    fn node_names_are_letters_and_digits() {
        assert_eq!(node_name(" edge01 ").unwrap(), "edge01");
        assert!(message(node_name("edge-01").unwrap_err()).contains("'-'"));
        assert!(node_name("").is_err());
        assert!(node_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn addresses_must_be_ipv4() {
        assert_eq!(
            ipv4_address("203.0.113.10", "address").unwrap(),
            Ipv4Addr::new(203, 0, 113, 10)
        );
        let v6 = message(ipv4_address("2001:db8::1", "public address").unwrap_err());
        assert!(v6.contains("IPv6 is not supported yet"), "{v6}");
        assert!(message(ipv4_address("203.0.113", "address").unwrap_err())
            .contains("not an IPv4 address"));
        assert!(ipv4_address("0.0.0.0", "address").is_err());
        assert!(ipv4_address("224.0.0.1", "address").is_err());
    }

    #[test]
    fn cidr_lists_are_normalized_and_every_bad_entry_is_named() {
        let ok = cidr_list("203.0.113.0/24\n198.51.100.0/25, 192.0.2.0/24\n\n").unwrap();
        assert_eq!(
            ok.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["203.0.113.0/24", "198.51.100.0/25", "192.0.2.0/24"]
        );
        let err = message(
            cidr_list(
                "203.0.113.0/24\n10.0.0.1/8\n2001:db8::/32\nbanana\n203.0.113.0/24\n192.0.2.7",
            )
            .unwrap_err(),
        );
        assert!(
            err.starts_with("Nothing was saved: 5 entries need fixing."),
            "{err}"
        );
        assert!(
            err.contains("Line 2, \"10.0.0.1/8\": host bits are set; the block is 10.0.0.0/8."),
            "{err}"
        );
        assert!(
            err.contains("Line 3, \"2001:db8::/32\": IPv6 is not supported yet"),
            "{err}"
        );
        assert!(
            err.contains("Line 4, \"banana\": not a CIDR block"),
            "{err}"
        );
        assert!(
            err.contains("Line 5, \"203.0.113.0/24\": listed twice."),
            "{err}"
        );
        assert!(
            err.contains(
                "Line 6, \"192.0.2.7\": a CIDR block needs a prefix length, such as 192.0.2.7/32."
            ),
            "{err}"
        );
        assert!(cidr_list("10.0.0.0/33").is_err());
        assert_eq!(cidr_list("").unwrap(), vec![]);
    }

    #[test]
    fn drives_need_absolute_paths_and_sane_sizes() {
        let d = drives("/var/cache/a 500\n/mnt/ssd2/ 2000GB\n").unwrap();
        assert_eq!(
            d[0],
            DriveSpec {
                path: "/var/cache/a".into(),
                size_gb: 500
            }
        );
        assert_eq!(
            d[1],
            DriveSpec {
                path: "/mnt/ssd2".into(),
                size_gb: 2000
            }
        );
        assert!(message(drives("").unwrap_err()).contains("at least one"));
        let err =
            message(drives("relative 10\n/a/../b 10\n/x 0\n/y lots\n/z\n/x 5\n/x 6").unwrap_err());
        for expected in [
            "absolute path",
            ". or ..",
            "between 1 and",
            "not a whole number",
            "give a folder",
            "listed twice",
        ] {
            assert!(err.contains(expected), "{expected} in {err}");
        }
    }

    #[test]
    fn extra_hosts_are_host_names_or_wildcards() {
        assert_eq!(
            extra_hosts("Origin.Test\n*.cdn.example.net, origin.test").unwrap(),
            ["origin.test", "*.cdn.example.net"]
        );
        let err = message(extra_hosts("ok.example\n10.0.0.1\nbad host").unwrap_err());
        assert!(err.contains("Host line 2, \"10.0.0.1\""), "{err}");
        assert!(err.contains("Host line 3, \"bad host\""), "{err}");
    }

    #[test]
    fn asns_allow_four_bytes_but_not_reserved_ones() {
        assert_eq!(asn("64512", "ASN").unwrap(), 64512);
        assert_eq!(asn("AS4200000000", "ASN").unwrap(), 4_200_000_000);
        for bad in ["0", "23456", "65535", "4294967295", "4294967296", "-1", "x"] {
            assert!(asn(bad, "ASN").is_err(), "{bad}");
        }
    }

    #[test]
    fn neighbors_are_address_and_asn() {
        let n = neighbors("192.0.2.1 64512\n198.51.100.1, 4200000001").unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[1].asn, 4_200_000_001);
        let err = message(
            neighbors("2001:db8::1 64512\n192.0.2.1\n192.0.2.2 64512\n192.0.2.2 64513")
                .unwrap_err(),
        );
        assert!(err.contains("IPv6 is not supported yet"), "{err}");
        assert!(
            err.contains("give the router's IPv4 address and its ASN"),
            "{err}"
        );
        assert!(err.contains("listed twice"), "{err}");
    }
}
