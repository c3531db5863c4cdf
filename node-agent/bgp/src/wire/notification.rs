//! NOTIFICATION messages: the codes this speaker sends and the words an
//! operator reads in `last_error`.

use std::fmt;

use netgauze_bgp_pkt::notification::{
    BgpNotificationMessage, CeaseError, FiniteStateMachineError, HoldTimerExpiredError,
    MessageHeaderError, OpenMessageError, RouteRefreshError, UpdateMessageError,
};

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 for ROUTE-REFRESH).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update {
    pub const UNSPECIFIC: u8 = 0;
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease {
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313).
pub mod route_refresh {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// The largest data field that still fits a NOTIFICATION in 4096 octets.
const MAX_DATA_LEN: usize = super::MAX_MESSAGE_LEN - super::HEADER_LEN - 2;

/// A NOTIFICATION, received or about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> Self {
        let mut data = data.into();
        data.truncate(MAX_DATA_LEN);
        Notification {
            code,
            subcode,
            data,
        }
    }

    pub fn cease(subcode: u8) -> Self {
        Notification::new(code::CEASE, subcode, Vec::new())
    }

    /// The name of the error, e.g. "OPEN message error: bad peer AS".
    pub fn name(&self) -> String {
        let code_name = match self.code {
            code::MESSAGE_HEADER => "message header error",
            code::OPEN => "OPEN message error",
            code::UPDATE => "UPDATE message error",
            code::HOLD_TIMER_EXPIRED => "hold timer expired",
            code::FSM => "finite state machine error",
            code::CEASE => "cease",
            code::ROUTE_REFRESH => "ROUTE-REFRESH message error",
            _ => "unknown error code",
        };
        let subcode_name = match (self.code, self.subcode) {
            (code::MESSAGE_HEADER, header::CONNECTION_NOT_SYNCHRONIZED) => {
                Some("connection not synchronized")
            }
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_LENGTH) => Some("bad message length"),
            (code::MESSAGE_HEADER, header::BAD_MESSAGE_TYPE) => Some("bad message type"),
            (code::OPEN, open::UNSUPPORTED_VERSION) => Some("unsupported version number"),
            (code::OPEN, open::BAD_PEER_AS) => Some("bad peer AS"),
            (code::OPEN, open::BAD_BGP_IDENTIFIER) => Some("bad BGP identifier"),
            (code::OPEN, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                Some("unsupported optional parameter")
            }
            (code::OPEN, open::UNACCEPTABLE_HOLD_TIME) => Some("unacceptable hold time"),
            (code::OPEN, open::UNSUPPORTED_CAPABILITY) => Some("unsupported capability"),
            (code::OPEN, open::ROLE_MISMATCH) => Some("role mismatch"),
            (code::UPDATE, update::MALFORMED_ATTRIBUTE_LIST) => Some("malformed attribute list"),
            (code::UPDATE, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                Some("unrecognized well-known attribute")
            }
            (code::UPDATE, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                Some("missing well-known attribute")
            }
            (code::UPDATE, update::ATTRIBUTE_FLAGS_ERROR) => Some("attribute flags error"),
            (code::UPDATE, update::ATTRIBUTE_LENGTH_ERROR) => Some("attribute length error"),
            (code::UPDATE, update::INVALID_ORIGIN) => Some("invalid ORIGIN attribute"),
            (code::UPDATE, update::INVALID_NEXT_HOP) => Some("invalid NEXT_HOP attribute"),
            (code::UPDATE, update::OPTIONAL_ATTRIBUTE_ERROR) => Some("optional attribute error"),
            (code::UPDATE, update::INVALID_NETWORK_FIELD) => Some("invalid network field"),
            (code::UPDATE, update::MALFORMED_AS_PATH) => Some("malformed AS_PATH"),
            (code::FSM, fsm::UNEXPECTED_IN_OPEN_SENT) => {
                Some("unexpected message in OpenSent state")
            }
            (code::FSM, fsm::UNEXPECTED_IN_OPEN_CONFIRM) => {
                Some("unexpected message in OpenConfirm state")
            }
            (code::FSM, fsm::UNEXPECTED_IN_ESTABLISHED) => {
                Some("unexpected message in Established state")
            }
            (code::CEASE, cease::MAXIMUM_PREFIXES_REACHED) => {
                Some("maximum number of prefixes reached")
            }
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => Some("administrative shutdown"),
            (code::CEASE, cease::PEER_DECONFIGURED) => Some("peer de-configured"),
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => Some("administrative reset"),
            (code::CEASE, cease::CONNECTION_REJECTED) => Some("connection rejected"),
            (code::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => Some("other configuration change"),
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                Some("connection collision resolution")
            }
            (code::CEASE, cease::OUT_OF_RESOURCES) => Some("out of resources"),
            (code::CEASE, cease::HARD_RESET) => Some("hard reset"),
            (code::CEASE, cease::BFD_DOWN) => Some("BFD down"),
            (code::ROUTE_REFRESH, route_refresh::INVALID_MESSAGE_LENGTH) => {
                Some("invalid message length")
            }
            _ => None,
        };
        match subcode_name {
            Some(subcode_name) => format!("{code_name}: {subcode_name}"),
            None => code_name.to_string(),
        }
    }

    /// The shutdown communication (RFC 9003) a Cease for administrative
    /// shutdown or reset may carry: a length octet, then UTF-8 text.
    pub fn shutdown_communication(&self) -> Option<String> {
        let carries_text = self.code == code::CEASE
            && matches!(
                self.subcode,
                cease::ADMINISTRATIVE_SHUTDOWN | cease::ADMINISTRATIVE_RESET
            );
        let (&len, rest) = self.data.split_first()?;
        if !carries_text || len == 0 || rest.len() < len as usize {
            return None;
        }
        let text = String::from_utf8_lossy(&rest[..len as usize]);
        Some(text.chars().filter(|c| !c.is_control()).collect())
    }

    /// The same notification in netgauze's model, for encoding; `None` for a
    /// code/subcode pair netgauze has no variant for (this speaker never
    /// sends one, but the encoder stays total).
    pub(crate) fn to_netgauze(&self) -> Option<BgpNotificationMessage> {
        let value: Box<[u8]> = self.data.clone().into_boxed_slice();
        let message = match self.code {
            code::MESSAGE_HEADER => {
                BgpNotificationMessage::MessageHeaderError(match self.subcode {
                    0 => MessageHeaderError::Unspecific { value },
                    header::CONNECTION_NOT_SYNCHRONIZED => {
                        MessageHeaderError::ConnectionNotSynchronized { value }
                    }
                    header::BAD_MESSAGE_LENGTH => MessageHeaderError::BadMessageLength { value },
                    header::BAD_MESSAGE_TYPE => MessageHeaderError::BadMessageType { value },
                    _ => return None,
                })
            }
            code::OPEN => BgpNotificationMessage::OpenMessageError(match self.subcode {
                open::UNSPECIFIC => OpenMessageError::Unspecific { value },
                open::UNSUPPORTED_VERSION => OpenMessageError::UnsupportedVersionNumber { value },
                open::BAD_PEER_AS => OpenMessageError::BadPeerAs { value },
                open::BAD_BGP_IDENTIFIER => OpenMessageError::BadBgpIdentifier { value },
                open::UNSUPPORTED_OPTIONAL_PARAMETER => {
                    OpenMessageError::UnsupportedOptionalParameter { value }
                }
                open::UNACCEPTABLE_HOLD_TIME => OpenMessageError::UnacceptableHoldTime { value },
                open::UNSUPPORTED_CAPABILITY => OpenMessageError::UnsupportedCapability { value },
                open::ROLE_MISMATCH => OpenMessageError::RoleMismatch { value },
                _ => return None,
            }),
            code::UPDATE => BgpNotificationMessage::UpdateMessageError(match self.subcode {
                update::UNSPECIFIC => UpdateMessageError::Unspecific { value },
                update::MALFORMED_ATTRIBUTE_LIST => {
                    UpdateMessageError::MalformedAttributeList { value }
                }
                update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE => {
                    UpdateMessageError::UnrecognizedWellKnownAttribute { value }
                }
                update::MISSING_WELL_KNOWN_ATTRIBUTE => {
                    UpdateMessageError::MissingWellKnownAttribute { value }
                }
                update::ATTRIBUTE_FLAGS_ERROR => UpdateMessageError::AttributeFlagsError { value },
                update::ATTRIBUTE_LENGTH_ERROR => {
                    UpdateMessageError::AttributeLengthError { value }
                }
                update::INVALID_ORIGIN => UpdateMessageError::InvalidOriginAttribute { value },
                update::INVALID_NEXT_HOP => UpdateMessageError::InvalidNextHopAttribute { value },
                update::OPTIONAL_ATTRIBUTE_ERROR => {
                    UpdateMessageError::OptionalAttributeError { value }
                }
                update::INVALID_NETWORK_FIELD => UpdateMessageError::InvalidNetworkField { value },
                update::MALFORMED_AS_PATH => UpdateMessageError::MalformedAsPath { value },
                _ => return None,
            }),
            code::HOLD_TIMER_EXPIRED => {
                BgpNotificationMessage::HoldTimerExpiredError(HoldTimerExpiredError::Unspecific {
                    sub_code: self.subcode,
                    value,
                })
            }
            code::FSM => BgpNotificationMessage::FiniteStateMachineError(match self.subcode {
                fsm::UNSPECIFIED => FiniteStateMachineError::Unspecific { value },
                fsm::UNEXPECTED_IN_OPEN_SENT => {
                    FiniteStateMachineError::ReceiveUnexpectedMessageInOpenSentState { value }
                }
                fsm::UNEXPECTED_IN_OPEN_CONFIRM => {
                    FiniteStateMachineError::ReceiveUnexpectedMessageInOpenConfirmState { value }
                }
                fsm::UNEXPECTED_IN_ESTABLISHED => {
                    FiniteStateMachineError::ReceiveUnexpectedMessageInEstablishedState { value }
                }
                _ => return None,
            }),
            code::CEASE => BgpNotificationMessage::CeaseError(match self.subcode {
                cease::MAXIMUM_PREFIXES_REACHED => {
                    CeaseError::MaximumNumberOfPrefixesReached { value }
                }
                cease::ADMINISTRATIVE_SHUTDOWN => CeaseError::AdministrativeShutdown { value },
                cease::PEER_DECONFIGURED => CeaseError::PeerDeConfigured { value },
                cease::ADMINISTRATIVE_RESET => CeaseError::AdministrativeReset { value },
                cease::CONNECTION_REJECTED => CeaseError::ConnectionRejected { value },
                cease::OTHER_CONFIGURATION_CHANGE => CeaseError::OtherConfigurationChange { value },
                cease::CONNECTION_COLLISION_RESOLUTION => {
                    CeaseError::ConnectionCollisionResolution { value }
                }
                cease::OUT_OF_RESOURCES => CeaseError::OutOfResources { value },
                cease::HARD_RESET => CeaseError::HardReset { value },
                cease::BFD_DOWN => CeaseError::BfdDown { value },
                _ => return None,
            }),
            code::ROUTE_REFRESH => BgpNotificationMessage::RouteRefreshError(match self.subcode {
                route_refresh::INVALID_MESSAGE_LENGTH => {
                    RouteRefreshError::InvalidMessageLength { value }
                }
                _ => return None,
            }),
            _ => return None,
        };
        Some(message)
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NOTIFICATION {}/{} ({})",
            self.code,
            self.subcode,
            self.name()
        )?;
        if let Some(text) = self.shutdown_communication() {
            write!(f, " \"{text}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_like_the_rfc() {
        let bad_peer_as = Notification::new(code::OPEN, open::BAD_PEER_AS, Vec::new());
        assert_eq!(
            bad_peer_as.to_string(),
            "NOTIFICATION 2/2 (OPEN message error: bad peer AS)"
        );
        let unknown = Notification::new(42, 7, Vec::new());
        assert_eq!(
            unknown.to_string(),
            "NOTIFICATION 42/7 (unknown error code)"
        );
    }

    #[test]
    fn shutdown_communication_is_shown_without_control_characters() {
        let mut data = vec![12];
        data.extend_from_slice(b"maint\nenance");
        let cease = Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN, data);
        assert_eq!(
            cease.shutdown_communication().as_deref(),
            Some("maintenance")
        );
        let truncated =
            Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN, vec![200, b'x']);
        assert_eq!(truncated.shutdown_communication(), None);
    }

    #[test]
    fn oversized_data_is_truncated_to_fit_one_message() {
        let n = Notification::new(
            code::UPDATE,
            update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            vec![0; 10_000],
        );
        assert_eq!(
            n.data.len() + 2 + crate::wire::HEADER_LEN,
            crate::wire::MAX_MESSAGE_LEN
        );
    }
}
