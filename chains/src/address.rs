//! Checking that a wallet address belongs to a chain, before a quote or a ticket is bound to it.

use std::str::FromStr;

use crate::signature::{eip55_checksum, BtcNetwork, MoneroAddress};
use crate::Chain;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{address}` is not a valid {chain} address: {reason}")]
pub struct InvalidAddress {
    pub chain: Chain,
    pub address: String,
    pub reason: &'static str,
}

/// Validates `address` for `chain` and returns its canonical form: EVM addresses lower-cased (they compare
/// case-insensitively), everything else as given.
pub fn canonical_address(chain: Chain, address: &str, btc_network: BtcNetwork) -> Result<String, InvalidAddress> {
    let address = address.trim();
    let bad = |reason| InvalidAddress { chain, address: address.to_owned(), reason };
    match chain {
        Chain::Eth | Chain::Pol | Chain::Bnb => {
            let hex_part = address.strip_prefix("0x").ok_or_else(|| bad("missing 0x prefix"))?;
            let bytes: [u8; 20] = hex::decode(hex_part)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("expected 20 hex bytes"))?;
            let mixed =
                hex_part.chars().any(|c| c.is_ascii_uppercase()) && hex_part.chars().any(|c| c.is_ascii_lowercase());
            if mixed && eip55_checksum(&bytes) != address {
                return Err(bad("EIP-55 checksum mismatch"));
            }
            Ok(format!("0x{}", hex::encode(bytes)))
        }
        Chain::Btc => {
            let network = match btc_network {
                BtcNetwork::Mainnet => bitcoin::Network::Bitcoin,
                BtcNetwork::Testnet => bitcoin::Network::Testnet,
                BtcNetwork::Signet => bitcoin::Network::Signet,
                BtcNetwork::Regtest => bitcoin::Network::Regtest,
            };
            bitcoin::Address::from_str(address)
                .map_err(|_| bad("not a Bitcoin address"))?
                .require_network(network)
                .map_err(|_| bad("wrong network"))?;
            Ok(address.to_owned())
        }
        Chain::Sol => {
            let bytes = bitcoin::base58::decode(address).map_err(|_| bad("not base58"))?;
            if bytes.len() != 32 {
                return Err(bad("expected a 32-byte public key"));
            }
            Ok(address.to_owned())
        }
        Chain::Hive => {
            // A Hive wallet is an account name.
            let ok = crate::hive_account::is_valid_account_name(address);
            if ok {
                Ok(address.to_owned())
            } else {
                Err(bad("not a Hive account name"))
            }
        }
        Chain::Xmr => {
            MoneroAddress::parse(address).map_err(|_| bad("not a Monero address"))?;
            Ok(address.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_per_chain() {
        let ok = [
            (Chain::Eth, "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"),
            (Chain::Bnb, "0x9858effd232b4033e47d90003d41ec34ecaeda94"),
            (Chain::Btc, "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"),
            (Chain::Sol, "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"),
            (Chain::Hive, "dlux-io"),
        ];
        for (chain, a) in ok {
            assert!(canonical_address(chain, a, BtcNetwork::Mainnet).is_ok(), "{chain} {a}");
        }
        assert_eq!(
            canonical_address(Chain::Eth, "0x9858EfFD232B4033E47d90003D41EC34EcaEda94", BtcNetwork::Mainnet).unwrap(),
            "0x9858effd232b4033e47d90003d41ec34ecaeda94"
        );
        let bad = [
            (Chain::Eth, "0x9858EFFD232B4033E47d90003D41EC34EcaEda94"),
            (Chain::Eth, "9858effd232b4033e47d90003d41ec34ecaeda94"),
            (Chain::Btc, "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyv"),
            (Chain::Btc, "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"),
            (Chain::Sol, "0OIl"),
            (Chain::Hive, "Bad"),
            (Chain::Xmr, "4notmonero"),
        ];
        for (chain, a) in bad {
            assert!(canonical_address(chain, a, BtcNetwork::Mainnet).is_err(), "{chain} {a}");
        }
    }
}
