//! How a wallet is asked to pay a quote: Hive memos, and payment URIs per chain (BIP-21, EIP-681 with token
//! `transfer` calls, Solana Pay with `spl-token`, Monero), shown as links and QR codes.

use super::*;

/// A payment memo: `event:{id}:wallet:{address}` (the seed's form) with an optional `:quote:{quote id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memo {
    pub event_id: i64,
    pub wallet: String,
    pub quote_id: Option<String>,
}

pub fn parse_memo(memo: &str) -> Option<Memo> {
    let rest = memo.trim().strip_prefix("event:")?;
    let (event, rest) = rest.split_once(":wallet:")?;
    let event_id = event.parse::<i64>().ok().filter(|id| *id > 0)?;
    let (wallet, quote_id) = match rest.split_once(":quote:") {
        Some((w, q)) => (w, Some(q.to_owned())),
        None => (rest, None),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if !valid(wallet) || quote_id.as_deref().is_some_and(|q| !valid(q)) {
        return None;
    }
    Some(Memo { event_id, wallet: wallet.to_owned(), quote_id })
}

/// The payment URI a wallet or QR code understands.
pub fn payment_uri(quote: &QuoteRow, settings: &PaymentSettings) -> Option<String> {
    if quote.currency().ok()?.is_token() {
        return token_payment_uri(quote, settings);
    }
    let amount = quote.amount().ok()?;
    let chain = quote.chain().ok()?;
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace(' ', "%20")
            .replace(':', "%3A")
            .replace('&', "%26")
            .replace('?', "%3F")
            .replace('=', "%3D")
    };
    Some(match chain {
        Chain::Btc => format!("bitcoin:{}?amount={}", quote.payment_address, amount),
        Chain::Eth | Chain::Pol | Chain::Bnb => {
            let chain_id = settings.chain_ids.get(&chain).copied().unwrap_or(1);
            format!("ethereum:{}@{}?value={}", quote.payment_address, chain_id, amount.units)
        }
        Chain::Sol => format!(
            "solana:{}?amount={}&reference={}&label=Ticket&memo={}",
            quote.payment_address,
            amount,
            quote.reference.as_deref().unwrap_or_default(),
            enc(&quote.id)
        ),
        Chain::Xmr => format!("monero:{}?tx_amount={}", quote.payment_address, amount),
        Chain::Hive => format!(
            "https://hivesigner.com/sign/transfer?to={}&amount={}%20{}&memo={}",
            quote.payment_address,
            format_hive(amount),
            amount.currency.symbol(),
            enc(quote.memo.as_deref().unwrap_or_default())
        ),
    })
}

/// Hive amounts always carry three decimals (`25.000`).
pub fn format_hive(amount: Amount) -> String {
    format!("{}.{:03}", amount.units / 1000, amount.units % 1000)
}

/// The payment URI of a token quote: EIP-681 `transfer` on the token contract, or Solana Pay with `spl-token`
/// ([`payment_uri`] gives every quote's, this one's included). `None` for a token not configured.
pub fn token_payment_uri(quote: &QuoteRow, settings: &PaymentSettings) -> Option<String> {
    let currency = quote.currency().ok()?;
    let contract = settings.tokens.contract(currency)?;
    let amount = quote.amount().ok()?;
    Some(match currency.chain()? {
        chain @ (Chain::Eth | Chain::Pol | Chain::Bnb) => {
            let chain_id = settings.chain_ids.get(&chain).copied().unwrap_or(1);
            format!(
                "ethereum:{contract}@{chain_id}/transfer?address={}&uint256={}",
                quote.payment_address, amount.units
            )
        }
        Chain::Sol => format!(
            "solana:{}?amount={}&spl-token={contract}&reference={}&label=Ticket&memo={}",
            quote.payment_address,
            amount,
            quote.reference.as_deref().unwrap_or_default(),
            query_escape(&quote.id)
        ),
        Chain::Btc | Chain::Hive | Chain::Xmr => return None,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenContracts;

    const USDC_ETH: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
    const USDC_SOL: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";

    fn quote(currency: Currency, units: &str, address: &str, reference: Option<&str>) -> QuoteRow {
        QuoteRow {
            id: "q_0123abcd".into(),
            event_id: 1,
            currency: currency.symbol().into(),
            chain: currency.chain().unwrap().as_str().into(),
            wallet_address: "buyer".into(),
            amount_units: units.into(),
            usd_rate: Some("1.00".into()),
            payment_address: address.into(),
            memo: None,
            reference: reference.map(Into::into),
            derivation_index: Some(0),
            status: QuoteStatus::AwaitingPayment,
            holds_seat: 1,
            received_units: "0".into(),
            confirmations: 0,
            confirmations_required: 12,
            created_at: 0,
            expires_at: 1,
        }
    }

    fn contracts() -> TokenContracts {
        let mut tokens = TokenContracts::new();
        tokens.insert(Currency::UsdcEth, USDC_ETH).unwrap();
        tokens.insert(Currency::UsdtBnb, "0x55d398326f99059ff775485246999027b3197955").unwrap();
        tokens.insert(Currency::UsdcSol, USDC_SOL).unwrap();
        tokens
    }

    #[test]
    fn memos() {
        assert_eq!(
            parse_memo("event:123:wallet:bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"),
            Some(Memo { event_id: 123, wallet: "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh".into(), quote_id: None })
        );
        assert_eq!(parse_memo("event:7:wallet:alice:quote:q_ab12").unwrap().quote_id.as_deref(), Some("q_ab12"));
        for bad in [
            "",
            "event:x:wallet:a",
            "event:0:wallet:a",
            "event:1:wallet:",
            "hello",
            "event:1:wallet:a b",
            "event:-1:wallet:a",
        ] {
            assert_eq!(parse_memo(bad), None, "{bad}");
        }
    }

    #[test]
    fn hive_amounts_have_three_decimals() {
        assert_eq!(format_hive(Amount::new(Currency::Hive, 25_000)), "25.000");
        assert_eq!(format_hive(Amount::new(Currency::Hbd, 10_005)), "10.005");
    }

    #[test]
    fn erc20_quotes_get_an_eip681_transfer_call() {
        let mut settings = PaymentSettings::new("dlux-tickets");
        settings.tokens = contracts();
        let to = "0x9858effd232b4033e47d90003d41ec34ecaeda94";
        let q = quote(Currency::UsdcEth, "25000000", to, None);
        assert_eq!(
            payment_uri(&q, &settings).unwrap(),
            format!("ethereum:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48@1/transfer?address={to}&uint256=25000000")
        );
        let q = quote(Currency::UsdtBnb, "25000000000000000000", to, None);
        assert_eq!(
            payment_uri(&q, &settings).unwrap(),
            format!("ethereum:0x55d398326f99059ff775485246999027b3197955@56/transfer?address={to}&uint256=25000000000000000000")
        );
        // Without its contract there is nothing to ask a wallet for.
        assert_eq!(payment_uri(&quote(Currency::UsdcPol, "1", to, None), &settings), None);
        // Native quotes keep their URI.
        let eth = quote(Currency::Eth, "5", to, None);
        assert_eq!(payment_uri(&eth, &settings).unwrap(), format!("ethereum:{to}@1?value=5"));
    }

    #[test]
    fn spl_quotes_get_a_solana_pay_transfer_request() {
        let mut settings = PaymentSettings::new("dlux-tickets");
        settings.tokens = contracts();
        let recipient = "4vrde3cq8yD6cB9qJV7jRXocpa1KDNd9MJPMX3R891xV";
        let reference = "7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2";
        let q = quote(Currency::UsdcSol, "12500000", recipient, Some(reference));
        assert_eq!(
            payment_uri(&q, &settings).unwrap(),
            format!("solana:{recipient}?amount=12.5&spl-token={USDC_SOL}&reference={reference}&label=Ticket&memo=q_0123abcd")
        );
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("q_a-b.c~d"), "q_a-b.c~d");
        assert_eq!(query_escape("a b&c=d?"), "a%20b%26c%3Dd%3F");
    }
}
