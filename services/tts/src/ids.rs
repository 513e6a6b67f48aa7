//! Phonemes to Piper ids: `^ _`, then each phoneme's ids followed by `_`, then `$`, as
//! piper-phonemize's `phonemes_to_ids` does with `interspersePad` and BOS/EOS.

use std::collections::HashMap;

/// Sentence start, sentence end and pad symbols of Piper's phoneme maps.
pub const BOS: &str = "^";
pub const EOS: &str = "$";
pub const PAD: &str = "_";

/// A phoneme and the ids it owns: its own ids plus the pad after it, as Piper counts them
/// for alignments (`^` and its pad start a sentence, `$` alone ends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhonemeGroup {
    pub phoneme: String,
    pub ids: Vec<i64>,
    /// How many of `ids` are the trailing pad (`_`) Piper puts after every phoneme.
    pub pad_ids: usize,
    /// The written word the phoneme speaks (an index the caller's tags give).
    pub word: Option<usize>,
}

/// The groups of one sentence, each phoneme with its tag from `words` (the same length as
/// `phonemes`, or empty for none). Phonemes the map lacks are skipped, as Piper skips them.
/// The map must hold `^`, `_` and `$` (checked when a voice config is read).
pub fn phoneme_groups(
    map: &HashMap<String, Vec<i64>>,
    phonemes: &[char],
    words: &[Option<usize>],
) -> Vec<PhonemeGroup> {
    let pad = &map[PAD];
    let with_pad = |phoneme: String, ids: &Vec<i64>, word: Option<usize>| PhonemeGroup {
        phoneme,
        ids: ids.iter().chain(pad).copied().collect(),
        pad_ids: pad.len(),
        word,
    };
    let mut groups = Vec::with_capacity(phonemes.len() + 2);
    groups.push(with_pad(BOS.into(), &map[BOS], None));
    let mut buf = [0u8; 4];
    for (i, &p) in phonemes.iter().enumerate() {
        if let Some(ids) = map.get(p.encode_utf8(&mut buf) as &str) {
            groups.push(with_pad(
                p.to_string(),
                ids,
                words.get(i).copied().flatten(),
            ));
        }
    }
    groups.push(PhonemeGroup {
        phoneme: EOS.into(),
        ids: map[EOS].clone(),
        pad_ids: 0,
        word: None,
    });
    groups
}

/// The model's input ids for one sentence.
pub fn phoneme_ids(map: &HashMap<String, Vec<i64>>, phonemes: &[char]) -> Vec<i64> {
    phoneme_groups(map, phonemes, &[])
        .into_iter()
        .flat_map(|g| g.ids)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_markers() {
        let map: HashMap<String, Vec<i64>> = [("_", 0), ("^", 1), ("$", 2), ("a", 14), ("b", 15)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), vec![v]))
            .collect();
        // "x" is not in the map and is skipped.
        assert_eq!(phoneme_ids(&map, &['a', 'x', 'b']), [1, 0, 14, 0, 15, 0, 2]);
        let groups = phoneme_groups(&map, &['a'], &[]);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].ids, [1, 0]);
        assert_eq!(groups[2].ids, [2]);
        // Tags follow their phonemes past a skipped one.
        let groups = phoneme_groups(&map, &['x', 'a', 'b'], &[Some(0), Some(1), None]);
        let words: Vec<_> = groups.iter().map(|g| g.word).collect();
        assert_eq!(words, [None, Some(1), None, None]);
    }
}
