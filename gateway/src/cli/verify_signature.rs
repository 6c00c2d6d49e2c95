//! `gateway verify-signature`: check one signature offline, as the access checks would, before any configuration
//! is required (only a Hive account name needs a node: `--hive-api`, else the configuration's `hive_api_url`).

use std::path::Path;
use std::process::ExitCode;

use super::VerifySignatureArgs;
use crate::configuration::Settings;

pub async fn verify_signature(args: &VerifySignatureArgs, config: Option<&Path>) -> ExitCode {
    // Only a Hive account name needs a node: the flag, else the configuration (file and environment).
    let hive_api = match (&args.hive_api, args.chain) {
        (Some(url), _) => url.clone(),
        (None, chains::Chain::Hive) => match Settings::load(config) {
            Ok(settings) => settings.hive_api_url,
            Err(err) => {
                eprintln!("error: {err:#}");
                return ExitCode::from(2);
            }
        },
        (None, _) => Settings::default().hive_api_url,
    };
    crate::auth::access::verify_signature_command(args, &hive_api).await
}
