//! ARPAbet (cmudict's and the acoustic model's phone set) to and from the IPA the rest of the
//! pipeline speaks: espeak-ng's pronunciations become dictionary entries, and aligned phones
//! become the single-code-point phonemes of a [`avatar_domain::PhonemeTimeline`].

use avatar_domain::timeline::is_mark;

/// The IPA phonemes an aligned ARPAbet phone is heard as, in order: diphthongs and
/// affricates are two (as espeak-ng writes them), each other phone one. `None` for a phone the
/// model does not have.
pub fn to_ipa(phone: &str) -> Option<&'static [char]> {
    // Stress digits, if a dictionary carries them, do not change the mouth.
    let base = phone.trim_end_matches(|c: char| c.is_ascii_digit());
    Some(match base {
        "AA" => &['ɑ'],
        "AE" => &['æ'],
        "AH" => &['ʌ'],
        "AO" => &['ɔ'],
        "AW" => &['a', 'ʊ'],
        "AY" => &['a', 'ɪ'],
        "EH" => &['ɛ'],
        "ER" => &['ɚ'],
        "EY" => &['e', 'ɪ'],
        "IH" => &['ɪ'],
        "IY" => &['i'],
        "OW" => &['o', 'ʊ'],
        "OY" => &['ɔ', 'ɪ'],
        "UH" => &['ʊ'],
        "UW" => &['u'],
        "B" => &['b'],
        "CH" => &['t', 'ʃ'],
        "D" => &['d'],
        "DH" => &['ð'],
        "F" => &['f'],
        "G" => &['ɡ'],
        "HH" => &['h'],
        "JH" => &['d', 'ʒ'],
        "K" => &['k'],
        "L" => &['l'],
        "M" => &['m'],
        "N" => &['n'],
        "NG" => &['ŋ'],
        "P" => &['p'],
        "R" => &['ɹ'],
        "S" => &['s'],
        "SH" => &['ʃ'],
        "T" => &['t'],
        "TH" => &['θ'],
        "V" => &['v'],
        "W" => &['w'],
        "Y" => &['j'],
        "Z" => &['z'],
        "ZH" => &['ʒ'],
        _ => return None,
    })
}

/// True for the ARPAbet vowels (stress digits allowed).
/// Whether `phone` is a stop (or affricate), whose closure is silent.
pub fn is_stop(phone: &str) -> bool {
    matches!(phone, "B" | "P" | "D" | "T" | "G" | "K" | "CH" | "JH")
}

pub fn is_vowel(phone: &str) -> bool {
    matches!(
        phone.trim_end_matches(|c: char| c.is_ascii_digit()),
        "AA" | "AE"
            | "AH"
            | "AO"
            | "AW"
            | "AY"
            | "EH"
            | "ER"
            | "EY"
            | "IH"
            | "IY"
            | "OW"
            | "OY"
            | "UH"
            | "UW"
    )
}

/// Two-symbol IPA sequences that are one ARPAbet phone, tried before single symbols.
const PAIRS: &[(char, char, &str)] = &[
    ('t', 'ʃ', "CH"),
    ('d', 'ʒ', "JH"),
    ('e', 'ɪ', "EY"),
    ('a', 'ɪ', "AY"),
    ('a', 'ʊ', "AW"),
    ('o', 'ʊ', "OW"),
    ('ɔ', 'ɪ', "OY"),
    ('ə', 'ʊ', "OW"),
    ('ɜ', 'ɹ', "ER"),
    ('ə', 'ɹ', "ER"),
    ('i', 'ə', "IY AH"),
];

fn single(c: char) -> Option<&'static str> {
    Some(match c {
        'ɑ' | 'ɒ' | 'a' => "AA",
        'æ' => "AE",
        'ʌ' | 'ə' | 'ɐ' => "AH",
        'ɔ' => "AO",
        'ɛ' | 'e' => "EH",
        'ɜ' | 'ɚ' | 'ɝ' => "ER",
        'ɪ' | 'ᵻ' | 'ɨ' => "IH",
        'i' | 'y' => "IY",
        'o' => "OW",
        'ʊ' => "UH",
        'u' | 'ʉ' => "UW",
        'b' => "B",
        'd' => "D",
        'ð' => "DH",
        'f' => "F",
        'ɡ' | 'g' => "G",
        'h' | 'ɦ' | 'ç' | 'x' => "HH",
        'k' => "K",
        'l' | 'ɫ' | 'ɬ' => "L",
        'm' | 'ɱ' => "M",
        'n' => "N",
        'ŋ' => "NG",
        'p' => "P",
        'ɹ' | 'r' => "R",
        // A flap is a quick t or d; cmudict writes T.
        'ɾ' | 't' | 'ʔ' => "T",
        's' => "S",
        'ʃ' => "SH",
        'θ' => "TH",
        'v' => "V",
        'w' | 'ʍ' => "W",
        'j' => "Y",
        'z' => "Z",
        'ʒ' => "ZH",
        _ => return None,
    })
}

/// An espeak-ng IPA pronunciation (stress and length marks allowed) as space-separated
/// ARPAbet, skipping symbols with no English counterpart. Empty when nothing is left.
pub fn from_ipa(ipa: &[char]) -> String {
    let symbols: Vec<char> = ipa.iter().copied().filter(|&c| !is_mark(c)).collect();
    let mut phones: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < symbols.len() {
        if let Some(next) = symbols.get(i + 1)
            && let Some(&(_, _, phone)) = PAIRS
                .iter()
                .find(|&&(a, b, _)| a == symbols[i] && b == *next)
        {
            phones.push(phone);
            i += 2;
            continue;
        }
        if let Some(phone) = single(symbols[i]) {
            phones.push(phone);
        }
        i += 1;
    }
    phones.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn espeak_pronunciations_become_cmudict_phones() {
        let ipa = |s: &str| from_ipa(&s.chars().collect::<Vec<_>>());
        // espeak-ng en-us: "hello world", "judge", "thousand", "bird", "butter".
        assert_eq!(ipa("həlˈoʊ wˈɜːld"), "HH AH L OW W ER L D");
        assert_eq!(ipa("dʒˈʌdʒ"), "JH AH JH");
        assert_eq!(ipa("θˈaʊzənd"), "TH AW Z AH N D");
        assert_eq!(ipa("bˈɜːd"), "B ER D");
        assert_eq!(ipa("bˈʌɾɚ"), "B AH T ER");
        assert_eq!(ipa("ˈ,"), "");
    }

    #[test]
    fn every_model_phone_maps_to_timeline_phonemes() {
        for phone in [
            "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
            "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
            "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
        ] {
            let ipa = to_ipa(phone).unwrap_or_else(|| panic!("{phone}"));
            // And back: the round trip is the identity.
            assert_eq!(from_ipa(ipa), phone, "{phone} -> {ipa:?}");
        }
        assert_eq!(to_ipa("SIL"), None);
    }
}
