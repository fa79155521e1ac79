//! `--key value` arguments and `RESULT name value` output: the protocol
//! between the compare harness and every contender process written in
//! Rust outside the bench binary (`benches/peer-*`, which include this
//! file by path).

use std::collections::HashMap;

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Prints one figure for the harness.
pub(crate) fn result(name: &str, value: impl std::fmt::Display) {
    println!("RESULT {name} {value}");
}

/// `SCENARIO --key value ...`, parsed.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) scenario: String,
    map: HashMap<String, String>,
}

impl Args {
    pub(crate) fn from_env() -> Args {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let scenario = argv.first().cloned().unwrap_or_default();
        let map = argv
            .get(1..)
            .unwrap_or_default()
            .chunks(2)
            .filter_map(|p| match p {
                [k, v] => Some((k.trim_start_matches("--").to_string(), v.clone())),
                _ => None,
            })
            .collect();
        Args { scenario, map }
    }

    pub(crate) fn get(&self, k: &str) -> Res<&str> {
        self.map
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{k}").into())
    }

    pub(crate) fn num(&self, k: &str) -> Res<u64> {
        Ok(self.get(k)?.parse()?)
    }

    pub(crate) fn ports(&self) -> Res<Vec<u16>> {
        self.get("ports")?
            .split(',')
            .map(|p| Ok(p.parse()?))
            .collect()
    }
}
