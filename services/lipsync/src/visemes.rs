//! The three viseme sets and how each sound class maps into them.

use avatar_domain::VisemeSet;

use crate::phonetics::{Consonant, Vowel};

/// Every viseme a set can produce, rest first.
pub fn vocabulary(set: VisemeSet) -> &'static [&'static str] {
    match set {
        VisemeSet::Basic => &["REST", "AA", "EE", "OH", "OO", "FF", "TH"],
        VisemeSet::Rhubarb => &["X", "A", "B", "C", "D", "E", "F", "G", "H"],
        VisemeSet::Oculus => &[
            "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh",
            "ou",
        ],
    }
}

/// The mouth at rest: silence, pauses, start and end.
pub fn rest(set: VisemeSet) -> &'static str {
    vocabulary(set)[0]
}

pub fn vowel(set: VisemeSet, v: Vowel) -> &'static str {
    use Vowel::*;
    match set {
        VisemeSet::Basic => match v {
            OpenBack | OpenFront | OpenCentral | Schwa => "AA",
            MidFront | CloseFront => "EE",
            Rhotic | OpenMidBack | CloseMidBack => "OH",
            CloseBack => "OO",
        },
        // Rhubarb's shapes: B clenched teeth ("ee"), C open ("eh", "ae"), D wide open ("aa"),
        // E slightly rounded ("ao", "er"), F puckered ("uw", "ow").
        VisemeSet::Rhubarb => match v {
            OpenBack => "D",
            OpenFront | OpenCentral | Schwa | MidFront => "C",
            CloseFront => "B",
            Rhotic | OpenMidBack => "E",
            CloseMidBack | CloseBack => "F",
        },
        VisemeSet::Oculus => match v {
            OpenBack | OpenFront | OpenCentral => "aa",
            Schwa | Rhotic | MidFront => "E",
            CloseFront => "ih",
            OpenMidBack | CloseMidBack => "oh",
            CloseBack => "ou",
        },
    }
}

/// The consonant's own viseme, or `None` when the lips simply take the shape of the
/// neighbouring vowel (coarticulation: "key" and "coo" start with different mouths).
pub fn consonant(set: VisemeSet, c: Consonant) -> Option<&'static str> {
    use Consonant::*;
    Some(match set {
        VisemeSet::Basic => match c {
            // The original set has no closed-lips shape besides REST: "neutral/closed".
            Bilabial => "REST",
            Labiodental => "FF",
            Dental | Lateral => "TH",
            Alveolar | Nasal | Sibilant | Palatal => "EE",
            Postalveolar | Rhotic | Labiovelar => "OO",
            Velar | Glottal => return None,
        },
        // A closed (M B P), B clenched teeth (most consonants), E rounded (R), F puckered
        // (W), G teeth on lip (F V), H tongue up (L).
        VisemeSet::Rhubarb => match c {
            Bilabial => "A",
            Labiodental => "G",
            Lateral => "H",
            Rhotic => "E",
            Labiovelar => "F",
            Dental | Alveolar | Nasal | Sibilant | Postalveolar | Palatal | Velar => "B",
            Glottal => return None,
        },
        VisemeSet::Oculus => match c {
            Bilabial => "PP",
            Labiodental => "FF",
            Dental => "TH",
            Alveolar => "DD",
            Velar => "kk",
            Postalveolar => "CH",
            Sibilant => "SS",
            Nasal | Lateral => "nn",
            Rhotic => "RR",
            Labiovelar => "ou",
            Palatal => "ih",
            Glottal => return None,
        },
    })
}

/// What a coarticulated consonant shows when its word has no vowel to borrow from.
pub fn neutral_consonant(set: VisemeSet) -> &'static str {
    match set {
        VisemeSet::Basic => "AA",
        VisemeSet::Rhubarb => "B",
        VisemeSet::Oculus => "kk",
    }
}

/// How open the vowel is at full stress and normal length.
pub fn vowel_weight(v: Vowel) -> f32 {
    use Vowel::*;
    match v {
        OpenBack => 0.9,
        OpenFront | OpenMidBack => 0.85,
        CloseMidBack | CloseBack => 0.8,
        OpenCentral | MidFront => 0.75,
        CloseFront => 0.65,
        Rhotic => 0.6,
        Schwa => 0.5,
    }
}

/// How strongly the consonant's shape is formed.
pub fn consonant_weight(c: Consonant) -> f32 {
    use Consonant::*;
    match c {
        Bilabial => 1.0,
        Labiodental => 0.85,
        Dental | Labiovelar => 0.75,
        Postalveolar | Lateral => 0.6,
        Sibilant | Rhotic | Palatal => 0.5,
        Alveolar | Velar => 0.4,
        Nasal | Glottal => 0.35,
    }
}
