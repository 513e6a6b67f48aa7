//! The viseme sets a render's mouth cues can be expressed in.

use serde::{Deserialize, Serialize};

/// The mouth-shape vocabulary the cues are expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum VisemeSet {
    /// The original product's seven visemes: REST, AA, EE, OH, OO, FF, TH.
    #[default]
    Basic,
    /// Rhubarb Lip Sync's mouth shapes A-H and X.
    Rhubarb,
    /// The 15 Oculus/Meta visemes: sil, PP, FF, TH, DD, kk, CH, SS, nn, RR, aa, E, ih, oh, ou.
    Oculus,
}

impl VisemeSet {
    pub const ALL: [VisemeSet; 3] = [VisemeSet::Basic, VisemeSet::Rhubarb, VisemeSet::Oculus];

    /// The name used on the wire (`basic`, `rhubarb`, `oculus`).
    pub fn as_str(self) -> &'static str {
        match self {
            VisemeSet::Basic => "basic",
            VisemeSet::Rhubarb => "rhubarb",
            VisemeSet::Oculus => "oculus",
        }
    }
}

impl std::fmt::Display for VisemeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
