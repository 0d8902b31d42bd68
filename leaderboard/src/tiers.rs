//! Trust tiers and `tiers.json`, the tiers last recorded for the leaderboard's submissions (committed with them, so
//! a later `verify` can tell when a submission no longer reaches the tier it was published at).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{invalid, io_err, LeaderboardError};

/// How far a submission is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// Hostile or broken: listed with the reason, never shown as a result.
    #[serde(rename = "rejected")]
    Rejected,
    /// Received: parses, schema valid, signed; listed as unverified, never ranked.
    T0,
    /// Consistent and signed by an accepted key.
    T1,
    /// Corroborated by other keys on the same device model.
    T2,
    /// Reproduced by a maintainer.
    T3,
}

impl Tier {
    /// `T2`, `rejected`.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Rejected => "rejected",
            Tier::T0 => "T0",
            Tier::T1 => "T1",
            Tier::T2 => "T2",
            Tier::T3 => "T3",
        }
    }

    /// What the tier means, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            Tier::Rejected => "rejected",
            Tier::T0 => "received, unverified",
            Tier::T1 => "consistent and signed",
            Tier::T2 => "corroborated",
            Tier::T3 => "reproduced",
        }
    }

    /// Parses a label.
    pub fn parse(s: &str) -> Option<Tier> {
        [Tier::Rejected, Tier::T0, Tier::T1, Tier::T2, Tier::T3].into_iter().find(|t| t.label() == s)
    }
}

/// `tiers.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// Submission path (`submissions/dev/run.json`) → its tier when last recorded.
    pub tiers: BTreeMap<String, Tier>,
}

impl Recorded {
    /// Reads `DIR/tiers.json` (none yet: empty).
    pub fn read(dir: &Path) -> Result<Recorded, LeaderboardError> {
        let path = dir.join("tiers.json");
        if !path.exists() {
            return Ok(Recorded::default());
        }
        let text = crate::read_small(&path, crate::CONFIG_FILE_LIMIT, "tiers file")?;
        serde_json::from_str(&text).map_err(|e| invalid(&path, e.to_string()))
    }

    /// Writes `DIR/tiers.json`.
    pub fn write(&self, dir: &Path) -> Result<(), LeaderboardError> {
        let path = dir.join("tiers.json");
        std::fs::write(&path, serde_json::to_string_pretty(self).expect("json") + "\n").map_err(io_err(&path))
    }
}
