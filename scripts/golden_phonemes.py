#!/usr/bin/env python3
"""Regenerate the golden phoneme-id sequences the Rust phonemizer is checked against.

The reference is piper-phonemize 1.1.0, the phonemizer Piper's voices were trained with:
    python3 -m venv /tmp/phon && /tmp/phon/bin/pip install piper-phonemize==1.1.0
    /tmp/phon/bin/python scripts/golden_phonemes.py VOICE.onnx.json \
        services/tts/tests/data/phoneme_texts.json > services/tts/tests/data/phonemes_golden.json

Ids follow Piper's rule: BOS, PAD, then every phoneme's ids followed by PAD, then EOS.
"""
import json
import sys

from piper_phonemize import phonemize_espeak

config = json.load(open(sys.argv[1], encoding="utf-8"))
texts = json.load(open(sys.argv[2], encoding="utf-8"))
id_map = config["phoneme_id_map"]
voice = config["espeak"]["voice"]

out = {"espeak_voice": voice, "texts": {}}
for name, text in texts.items():
    sentences = []
    for phonemes in phonemize_espeak(text, voice):
        ids = list(id_map["^"]) + list(id_map["_"])
        for p in phonemes:
            if p in id_map:
                ids.extend(id_map[p])
                ids.extend(id_map["_"])
        ids.extend(id_map["$"])
        sentences.append({"phonemes": "".join(phonemes), "ids": ids})
    out["texts"][name] = {"text": text, "sentences": sentences}
json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
print()
