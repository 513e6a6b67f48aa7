//! What the mouth does for each symbol Piper's espeak voices emit.
//!
//! Every code point in Piper's espeak phoneme map (the 151 symbols of `phoneme_id_map`:
//! IPA letters, diacritics, stress and length marks, punctuation, markers) has a class
//! here; a test walks a real voice's map to keep it that way.

/// How a symbol shapes the mouth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sound {
    /// Markers and punctuation: the mouth rests.
    Silence,
    /// A space between words: no shape of its own; a long one is a pause.
    WordBreak,
    /// `ˈ` / `ˌ`: stress of the next vowel.
    Stress(Stress),
    /// Length marks, diacritics, tone digits: lengthen or colour the previous sound.
    Modifier,
    Vowel(Vowel),
    Consonant(Consonant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stress {
    Primary,
    Secondary,
}

/// Vowels grouped by what the lips and jaw do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vowel {
    /// a ɑ ɒ: jaw wide open ("father").
    OpenBack,
    /// æ ɶ: open and spread ("bat").
    OpenFront,
    /// ʌ ɐ: open, relaxed ("cup").
    OpenCentral,
    /// ə ɘ ɵ ɤ ɞ: the relaxed, half-open schwa.
    Schwa,
    /// ɚ ɜ: r-coloured, lips slightly rounded ("bird").
    Rhotic,
    /// e ɛ ε: half-open, spread ("bed").
    MidFront,
    /// i ɪ ɨ ᵻ ɯ: nearly closed, spread ("bee").
    CloseFront,
    /// ɔ: open-mid, rounded ("off").
    OpenMidBack,
    /// o ø œ: close-mid, rounded ("show").
    CloseMidBack,
    /// u ʊ ʉ y ʏ: close, tightly rounded ("you").
    CloseBack,
}

/// Consonants grouped by where the lips, teeth and tongue meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consonant {
    /// p b m: lips closed.
    Bilabial,
    /// f v: upper teeth on the lower lip.
    Labiodental,
    /// θ ð: tongue between the teeth.
    Dental,
    /// t d ɾ and clicks: tongue on the ridge, teeth nearly closed.
    Alveolar,
    /// n ɲ ɳ: like `Alveolar`, voiced through the nose.
    Nasal,
    /// s z: teeth closed, lips spread.
    Sibilant,
    /// ʃ ʒ: lips pushed forward.
    Postalveolar,
    /// l ɫ ʎ: tongue tip visible behind the upper teeth.
    Lateral,
    /// ɹ r ɻ: lips slightly rounded.
    Rhotic,
    /// w ʍ ɥ: lips rounded.
    Labiovelar,
    /// j: spread, like a short "ee".
    Palatal,
    /// k g ŋ x: made at the back; the lips take the neighbouring vowel's shape.
    Velar,
    /// h ʔ ħ: made in the throat; the lips take the neighbouring vowel's shape.
    Glottal,
}

/// The class of one phoneme symbol, or `None` for a symbol no Piper voice emits.
pub fn classify(symbol: char) -> Option<Sound> {
    use Consonant as C;
    use Sound::{Consonant as Cons, Vowel as V};
    use Vowel as Vw;
    if avatar_domain::timeline::is_silence_symbol(symbol) {
        return Some(Sound::Silence);
    }
    Some(match symbol {
        ' ' => Sound::WordBreak,
        'ˈ' => Sound::Stress(Stress::Primary),
        'ˌ' => Sound::Stress(Stress::Secondary),
        c if avatar_domain::timeline::is_mark(c) => Sound::Modifier,

        'a' | 'ɑ' | 'ɒ' => V(Vw::OpenBack),
        'æ' | 'ɶ' => V(Vw::OpenFront),
        'ʌ' | 'ɐ' => V(Vw::OpenCentral),
        'ə' | 'ɘ' | 'ɵ' | 'ɤ' | 'ɞ' => V(Vw::Schwa),
        'ɚ' | 'ɜ' => V(Vw::Rhotic),
        'e' | 'ɛ' | 'ε' => V(Vw::MidFront),
        'i' | 'ɪ' | 'ɨ' | 'ᵻ' | 'ɯ' => V(Vw::CloseFront),
        'ɔ' => V(Vw::OpenMidBack),
        'o' | 'ø' | 'œ' => V(Vw::CloseMidBack),
        'u' | 'ʊ' | 'ʉ' | 'y' | 'ʏ' => V(Vw::CloseBack),

        'p' | 'b' | 'm' | 'ʙ' | 'ɓ' | 'ʘ' | 'ɸ' | 'β' => Cons(C::Bilabial),
        'f' | 'v' | 'ɱ' | 'ʋ' | 'ⱱ' => Cons(C::Labiodental),
        'θ' | 'ð' => Cons(C::Dental),
        't' | 'd' | 'ɾ' | 'ɖ' | 'ɗ' | 'ʈ' | 'ǀ' | 'ǁ' | 'ǂ' | 'ǃ' => Cons(C::Alveolar),
        'n' | 'ɲ' | 'ɳ' => Cons(C::Nasal),
        's' | 'z' => Cons(C::Sibilant),
        'ʃ' | 'ʒ' | 'ɕ' | 'ʑ' | 'ʂ' | 'ʐ' | 'ɧ' => Cons(C::Postalveolar),
        'l' | 'ɫ' | 'ɬ' | 'ɭ' | 'ɮ' | 'ʟ' | 'ʎ' | 'ɺ' => Cons(C::Lateral),
        'ɹ' | 'r' | 'ɻ' | 'ɽ' | 'ʀ' => Cons(C::Rhotic),
        'w' | 'ʍ' | 'ɥ' => Cons(C::Labiovelar),
        'j' => Cons(C::Palatal),
        'k' | 'g' | 'ɡ' | 'ŋ' | 'x' | 'ɣ' | 'q' | 'ɢ' | 'χ' | 'ɰ' | 'c' | 'ɟ' | 'ç' | 'ʝ' | 'ɠ'
        | 'ʛ' | 'ʄ' | 'ɴ' | 'ʁ' => Cons(C::Velar),
        'h' | 'ɦ' | 'ʔ' | 'ħ' | 'ʕ' | 'ʜ' | 'ʢ' | 'ʡ' => Cons(C::Glottal),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_examples() {
        assert_eq!(classify('m'), Some(Sound::Consonant(Consonant::Bilabial)));
        assert_eq!(classify('ɑ'), Some(Sound::Vowel(Vowel::OpenBack)));
        assert_eq!(classify('.'), Some(Sound::Silence));
        assert_eq!(classify('ˈ'), Some(Sound::Stress(Stress::Primary)));
        assert_eq!(classify('ː'), Some(Sound::Modifier));
        assert_eq!(classify('€'), None);
    }
}
