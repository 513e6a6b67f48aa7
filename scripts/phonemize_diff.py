#!/usr/bin/env python3
"""Differential check of the Rust phonemizer against piper-phonemize 1.1.0 on random texts.

    python3 -m venv /tmp/phon && /tmp/phon/bin/pip install piper-phonemize==1.1.0
    cargo build --example phonemize -p tts
    /tmp/phon/bin/python scripts/phonemize_diff.py $CARGO_TARGET_DIR/debug/examples/phonemize [N]

Prints every text whose phonemes differ; exits non-zero if any do.
"""
import json
import random
import subprocess
import sys

from piper_phonemize import phonemize_espeak

WORDS = ["hello", "Dr.", "Mr.", "a.m.", "e.g.", "U.S.", "It's", "don't", "1,234", "3.5", "10:30",
         "world", "Smith", "okay", "the", "cat", "42", "1st", "$5", "50%", "café", "naïve", "and",
         "NASA", "x", "I", "Yes", "no", "https://a.b/c?d=1", "bob@x.org", "😀", "Москва", "東京",
         "co-op", "—", "--", "-", "(aside)", "[note]", "\"quoted\"", "'single'", "“curly”", "‘x’"]
PUNCT = ["", "", "", ".", ",", "?", "!", ";", ":", "...", "…", "?!", "!!!", ".\"", ",\"", ".)",
         "!'", " -", " .", "'", "\u201d", "."]
SPACE = [" ", " ", " ", "  ", "\n", "\n\n", "\t", " \n "]


def random_text(rng):
    parts = []
    for _ in range(rng.randint(1, 14)):
        parts.append(rng.choice(WORDS) + rng.choice(PUNCT))
        parts.append(rng.choice(SPACE))
    return "".join(parts[:-1] if rng.random() < 0.7 else parts)


def main():
    exe = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rng = random.Random(7)
    texts = [random_text(rng) for _ in range(n)]
    out = subprocess.run([exe], input="\n".join(json.dumps(t) for t in texts) + "\n",
                         capture_output=True, text=True, check=True).stdout.splitlines()
    bad = 0
    for text, line in zip(texts, out):
        ours = json.loads(line)
        ref = ["".join(s) for s in phonemize_espeak(text, "en-us")]
        if ours != ref:
            bad += 1
            if bad <= 25:
                print(json.dumps(text, ensure_ascii=False))
                print("  ref :", ref)
                print("  ours:", ours)
    print(f"{bad} of {n} differ")
    sys.exit(1 if bad else 0)


main()
