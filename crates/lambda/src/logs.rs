//! Log lines as Lambda's advanced logging controls ask for them: what
//! `lambda_runtime::tracing::init_default_subscriber` set up (JSON with `AWS_LAMBDA_LOG_FORMAT=JSON`,
//! as deployed, else text; no target, no time: Lambda stamps each line), without its
//! `EnvFilter`, whose regex engine was 0.3 MB of every bootstrap. The level is one level for all
//! targets: `AWS_LAMBDA_LOG_LEVEL` (the function's `ApplicationLogLevel`), else `RUST_LOG`, else
//! INFO. A `RUST_LOG` with per-target directives (`info,aws_smithy_runtime=debug`) gives its
//! level without a target (`info`), or INFO if it has none. Release builds compile TRACE events
//! out (the root `Cargo.toml`'s `release_max_level_debug`): deployed, TRACE logs what DEBUG logs.

use std::str::FromStr;

use tracing_subscriber::filter::LevelFilter;

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    let env = |k: &str| std::env::var(k).ok();
    let fmt = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level(env))
        .with_writer(std::io::stdout);
    if env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")) {
        fmt.json().init()
    } else {
        fmt.init()
    }
}

/// The level of `AWS_LAMBDA_LOG_LEVEL`, else of `RUST_LOG`, else INFO.
pub fn level(lookup: impl Fn(&str) -> Option<String>) -> LevelFilter {
    let parse =
        |v: &str| v.split(',').map(str::trim).filter(|d| !d.contains('=')).find_map(|d| LevelFilter::from_str(d).ok());
    lookup("AWS_LAMBDA_LOG_LEVEL")
        .as_deref()
        .and_then(parse)
        .or_else(|| lookup("RUST_LOG").as_deref().and_then(parse))
        .unwrap_or(LevelFilter::INFO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_functions_log_level_wins_then_rust_log_then_info() {
        assert_eq!(level(lookup(&[])), LevelFilter::INFO);
        assert_eq!(level(lookup(&[("RUST_LOG", "debug")])), LevelFilter::DEBUG);
        assert_eq!(level(lookup(&[("AWS_LAMBDA_LOG_LEVEL", "WARN"), ("RUST_LOG", "debug")])), LevelFilter::WARN);
        assert_eq!(level(lookup(&[("AWS_LAMBDA_LOG_LEVEL", "nonsense"), ("RUST_LOG", "error")])), LevelFilter::ERROR);
    }

    #[test]
    fn per_target_directives_give_their_plain_level() {
        assert_eq!(level(lookup(&[("RUST_LOG", "aws_smithy_runtime=debug,trace")])), LevelFilter::TRACE);
        assert_eq!(level(lookup(&[("RUST_LOG", "aws_smithy_runtime=debug")])), LevelFilter::INFO);
        assert_eq!(level(lookup(&[("RUST_LOG", "off")])), LevelFilter::OFF);
    }
}
