//! `--backend-opt` routed to the backends that have each option, checked before anything is measured.
//!
//! `KEY=VALUE` goes to every backend of the run that has option KEY; `BACKEND:KEY=VALUE` to that backend only.
//! A key that no backend of the run has, or a value a backend refuses, is an error naming the flag and the options
//! each backend knows. A backend that is not compiled in takes its scoped options unchecked: its cells are skipped.

use std::collections::BTreeMap;

use anyhow::bail;
use edgebench_core::BackendError;

use crate::backends;

/// Options by backend name, for each backend in `names`.
pub type Routed = BTreeMap<String, BTreeMap<String, String>>;

/// Splits `--backend-opt` values and routes them to `names`.
pub fn route(flags: &[String], names: &[String]) -> anyhow::Result<Routed> {
    let mut out: Routed = names.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
    for flag in flags {
        let Some((target, value)) = flag.split_once('=') else {
            bail!("--backend-opt {flag:?}: expected KEY=VALUE or BACKEND:KEY=VALUE");
        };
        let (scope, key) = match target.split_once(':') {
            Some((b, k)) => (Some(b), k),
            None => (None, target),
        };
        if key.is_empty() {
            bail!("--backend-opt {flag:?}: expected KEY=VALUE or BACKEND:KEY=VALUE");
        }
        let one = BTreeMap::from([(key.to_string(), value.to_string())]);
        match scope {
            Some(b) => {
                let Some(opts) = out.get_mut(b) else {
                    bail!("--backend-opt {flag:?}: backend {b:?} is not in this run (it runs {})", names.join(", "));
                };
                match backends::get(b)?.check_options(&one) {
                    Ok(()) | Err(BackendError::NotCompiled { .. }) => {}
                    Err(e) => bail!("--backend-opt {flag:?}: {e}"),
                }
                opts.insert(key.to_string(), value.to_string());
            }
            None => {
                let mut takers = Vec::new();
                let mut refusals = Vec::new();
                for b in names {
                    match backends::get(b)?.check_options(&one) {
                        Ok(()) => takers.push(b.clone()),
                        Err(BackendError::NotCompiled { .. }) => {}
                        Err(e) if e.to_string().contains("unknown field") => refusals.push(format!("  {e}")),
                        Err(e) => bail!("--backend-opt {flag:?}: {e}"),
                    }
                }
                if takers.is_empty() {
                    bail!(
                        "--backend-opt {flag:?}: no backend of this run ({}) has option {key:?}:\n{}",
                        names.join(", "),
                        refusals.join("\n")
                    );
                }
                for b in takers {
                    out.get_mut(&b).expect("routed to a backend of the run").insert(key.to_string(), value.to_string());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_go_to_the_backends_that_have_them_and_unknown_ones_are_refused() {
        let run = names(&["mock", "native"]);
        let r = route(&["mock:prefill_us=5".into()], &run).unwrap();
        assert_eq!(r["mock"].len(), 1);
        assert!(r["native"].is_empty());
        let e = route(&["bogus=1".into()], &run).unwrap_err().to_string();
        assert!(e.contains("no backend of this run (mock, native) has option \"bogus\""), "{e}");
        assert!(e.contains("unknown field `bogus`, expected"), "the known keys are listed: {e}");
        let e = route(&["mock:bogus=1".into()], &run).unwrap_err().to_string();
        assert!(e.contains("mock options bogus=1"), "{e}");
        let e = route(&["tract:x=1".into()], &run).unwrap_err().to_string();
        assert!(e.contains("not in this run"), "{e}");
        for bad in ["novalue", "=1", "mock:=1"] {
            assert!(route(&[bad.into()], &run).is_err(), "{bad}");
        }
    }
}
