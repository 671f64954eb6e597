//! The plugin executable's entry point: environment and stdin in, one JSON document on
//! stdout (the result, or an error object with a non-zero exit), as CNI 1.0.0 says.
//! Diagnostics go to stderr.

use std::{
    io::{IsTerminal as _, Read as _, Write as _},
    process::ExitCode,
};

use serde_json::Value;

use crate::{
    config::NetConf,
    spec::{CniError, Command, Env, SPEC_VERSION, SUPPORTED_VERSIONS, code, version_json},
};

/// What a run printed and how it exits.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub stdout: Option<Value>,
    pub success: bool,
}

/// One plugin run: `var` reads the environment, `stdin` is the configuration.
pub fn serve(var: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let version = NetConf::version_of(stdin)
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| SPEC_VERSION.to_owned());
    let fail = |e: CniError| Outcome {
        stdout: Some(e.to_json(&version)),
        success: false,
    };
    let env = match Env::read(var) {
        Ok(env) => env,
        Err(e) => return fail(e),
    };
    if env.command == Command::Version {
        // Offline and without a configuration: runtimes ask at load time.
        return Outcome {
            stdout: Some(version_json(&version)),
            success: true,
        };
    }
    let conf = match NetConf::parse(stdin) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(CniError::new(code::IO_FAILURE, "tokio runtime").with_details(e)),
    };
    let result = runtime.block_on(async {
        match env.command {
            Command::Add => crate::add::add(&env, &conf).await.map(Some),
            Command::Del => crate::del::del(&env, &conf).await.map(|_| None),
            Command::Check => crate::check::check(&env, &conf).await.map(|_| None),
            Command::Gc => {
                if conf.valid_attachments.is_none() {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        "GC needs cni.dev/valid-attachments",
                    ));
                }
                crate::gc::gc(&conf, crate::gc::grace(&conf))
                    .await
                    .map(|_| None)
            }
            Command::Version => Ok(None),
        }
    });
    match result {
        Ok(stdout) => Outcome {
            stdout,
            success: true,
        },
        Err(e) => fail(e),
    }
}

/// `main` of the plugin executable (`ovnest-cni`, or `ovnest` called by that name).
pub fn main() -> ExitCode {
    let mut stdin = Vec::new();
    // VERSION may come from a terminal with nothing on stdin.
    let interactive = std::io::stdin().is_terminal();
    if !interactive && let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        eprintln!("ovnest-cni: reading stdin: {e}");
    }
    if std::env::var_os(crate::refill::REFILL_ENV).is_some() {
        return refill(&stdin);
    }
    let outcome = serve(|k| std::env::var(k).ok(), &stdin);
    if let Some(v) = &outcome.stdout {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }
    if let (false, Some(v)) = (outcome.success, &outcome.stdout) {
        eprintln!(
            "ovnest-cni: {} ({})",
            v["msg"].as_str().unwrap_or(""),
            v["details"].as_str().unwrap_or("")
        );
    }
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn refill(stdin: &[u8]) -> ExitCode {
    let Ok(conf) = NetConf::parse(stdin) else {
        return ExitCode::FAILURE;
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(crate::refill::fill(&conf)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovnest-cni refill: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn run(vars: &[(&str, &str)], stdin: &str) -> Outcome {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        serve(|k| map.get(k).cloned(), stdin.as_bytes())
    }

    #[test]
    fn version_needs_nothing_else() {
        let o = run(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        assert!(o.success);
        let v = o.stdout.unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"][3], "1.0.0");
        assert!(run(&[("CNI_COMMAND", "VERSION")], "").success);
    }

    #[test]
    fn errors_are_json_with_the_spec_codes() {
        let o = run(&[], "{}");
        assert!(!o.success);
        assert_eq!(o.stdout.unwrap()["code"], code::INVALID_ENVIRONMENT);
        let add = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/nonexistent"),
            ("CNI_IFNAME", "eth0"),
        ];
        let o = run(&add, "{garbage");
        assert_eq!(o.stdout.unwrap()["code"], code::DECODE);
        let o = run(
            &add,
            r#"{"cniVersion":"1.0.0","name":"n","type":"ovnest-cni"}"#,
        );
        let v = o.stdout.unwrap();
        assert_eq!(v["code"], code::INVALID_CONFIG);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert!(v["msg"].as_str().unwrap().contains("\"nb\""));
    }
}
