//! Local identity provider for the dev stack.
//!
//! `devtoken init DIR` creates `DIR/dev-key.p8` (kept if it exists) and `DIR/jwks.json`.
//! `devtoken mint DIR SUB [TTL_SECONDS]` prints a token for SUB signed by that key.
//! `devtoken mint-many DIR PREFIX COUNT` prints `SUB TOKEN` lines for `PREFIX-0` ... (load tests).
//! Issuer and audience come from `AUTH_ISSUER` / `AUTH_AUDIENCE` (defaults: the dev stack's).

use std::path::Path;
use std::process::ExitCode;

use matbakh_api::dev_keys::DevKey;

const DEFAULT_ISSUER: &str = "https://auth.matbakh.local";
const DEFAULT_AUDIENCE: &str = "matbakh-files";
const DEFAULT_TTL_SECONDS: i64 = 12 * 60 * 60;

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: devtoken init DIR | devtoken mint DIR SUB [TTL_SECONDS] | devtoken mint-many DIR PREFIX COUNT";
    let dir = Path::new(args.get(1).ok_or(usage)?);
    let key_path = dir.join("dev-key.p8");
    match args.first().map(String::as_str) {
        Some("init") => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let key = match std::fs::read(&key_path) {
                Ok(der) => DevKey::from_pkcs8(&der)?,
                Err(_) => {
                    let key = DevKey::generate()?;
                    std::fs::write(&key_path, key.pkcs8()).map_err(|e| format!("{}: {e}", key_path.display()))?;
                    key
                }
            };
            std::fs::write(dir.join("jwks.json"), key.jwks()).map_err(|e| format!("jwks.json: {e}"))?;
            Ok(())
        }
        Some("mint-many") => {
            let prefix = args.get(2).ok_or(usage)?;
            let count: usize = args.get(3).ok_or(usage)?.parse().map_err(|_| "COUNT is not a number".to_owned())?;
            let key = read_key(&key_path)?;
            let (issuer, audience) = issuer_and_audience();
            for i in 0..count {
                let sub = format!("{prefix}-{i}");
                println!("{sub} {}", key.mint(&sub, &issuer, &audience, DEFAULT_TTL_SECONDS)?);
            }
            Ok(())
        }
        Some("mint") => {
            let sub = args.get(2).ok_or(usage)?;
            let ttl = match args.get(3) {
                Some(t) => t.parse().map_err(|_| format!("TTL_SECONDS {t:?} is not a number"))?,
                None => DEFAULT_TTL_SECONDS,
            };
            let (issuer, audience) = issuer_and_audience();
            println!("{}", read_key(&key_path)?.mint(sub, &issuer, &audience, ttl)?);
            Ok(())
        }
        _ => Err(usage.to_owned()),
    }
}

fn read_key(path: &Path) -> Result<DevKey, String> {
    let der = std::fs::read(path).map_err(|e| format!("{}: {e} (run `devtoken init` first)", path.display()))?;
    DevKey::from_pkcs8(&der)
}

fn issuer_and_audience() -> (String, String) {
    let issuer = std::env::var("AUTH_ISSUER").unwrap_or_else(|_| DEFAULT_ISSUER.to_owned());
    let audience = std::env::var("AUTH_AUDIENCE").unwrap_or_else(|_| DEFAULT_AUDIENCE.to_owned());
    (issuer, audience)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devtoken: {e}");
            ExitCode::from(2)
        }
    }
}
