#!/usr/bin/env python3
"""Scores mouth cues against an independent forced alignment of the audio they go with.

    lipsync_score.py JOB.json > SCORES.json

JOB.json: {"items": [{"name", "audio" (a file ffmpeg reads), "align_text" (the words
spoken, each in pocketsphinx's US-English dictionary), "cues": {set: [{t_ms, viseme}]}}]}.

The aligner is pocketsphinx 5.1.1 (PyPI) with its bundled US-English acoustic model: given the
words, it finds each phone's span in the audio (10 ms frames; good to a few tens of ms). For
every viseme set, each viseme is mapped to open, closed or rest; then, per text:

  open    vowels of 50 ms or more whose midpoint shows an open mouth
  closed  p, b and m whose aligned span, widened by 40 ms each side, shows closed lips at
          some point
  rest    pauses (aligned silence) of 200 ms or more whose midpoint shows the mouth at rest
  onset   median of (cue onset - aligned phone onset) for each cue change, against the
          nearest aligned phone onset (signed, ms)
  rate    cue changes per second of speech; hold: median time between cue changes (ms)

A test-only tool: it runs from a venv made by scripts/setup_test_tools.sh, never at run time.
"""

import json
import os
import statistics
import subprocess
import sys

from pocketsphinx import Decoder

VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
BILABIALS = {"P", "B", "M"}
DEBUG = bool(os.environ.get("LIPSYNC_DEBUG"))

# Lips together, and the mouth at rest, per set; every other viseme is an open mouth.
CLOSED = {"basic": {"REST"}, "rhubarb": {"A", "X"}, "oculus": {"PP", "sil"}}
REST = {"basic": {"REST"}, "rhubarb": {"X"}, "oculus": {"sil"}}


def align(audio, text):
    """[(phone, start_ms, end_ms)] of the whole utterance, silences as SIL."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", audio, "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        capture_output=True, check=True).stdout
    decoder = Decoder(samprate=16000, bestpath=False, loglevel="FATAL")
    unknown = sorted({w for w in text.split() if decoder.lookup_word(w) is None})
    if unknown:
        sys.exit(f"align_text has words the aligner's dictionary lacks: {' '.join(unknown)}")
    decoder.set_align_text(text)
    # Two passes: the words, then the phones within them.
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    phones = []
    for word in decoder.get_alignment():
        for phone in word:
            phones.append((phone.name, phone.start * 10, (phone.start + phone.duration) * 10))
    return phones


def viseme_at(cues, t):
    current = cues[0]["viseme"]
    for cue in cues:
        if cue["t_ms"] > t:
            break
        current = cue["viseme"]
    return current


def score(cues, phones, viseme_set, name=""):
    closed, rest = CLOSED[viseme_set], REST[viseme_set]
    vowels = [(s, e) for p, s, e in phones if p in VOWELS and e - s >= 50]
    open_ok = sum(viseme_at(cues, (s + e) / 2) not in closed for s, e in vowels)
    bilabials = [(s, e) for p, s, e in phones if p in BILABIALS]

    def shut_within(s, e):
        lo, hi = s - 40, e + 40
        if viseme_at(cues, lo) in closed:
            return True
        return any(lo <= c["t_ms"] <= hi and c["viseme"] in closed for c in cues)

    closed_ok = sum(shut_within(s, e) for s, e in bilabials)
    pauses = [(s, e) for p, s, e in phones if p == "SIL" and e - s >= 200]
    rest_ok = sum(viseme_at(cues, (s + e) / 2) in rest for s, e in pauses)
    if DEBUG:
        def near(t):
            cues_near = [(c["t_ms"], c["viseme"]) for c in cues if abs(c["t_ms"] - t) < 150]
            phones_near = [(p, s, e) for p, s, e in phones if e > t - 250 and s < t + 250]
            return f"cues {cues_near} phones {phones_near}"
        for s, e in vowels:
            if viseme_at(cues, (s + e) / 2) in closed:
                print(f"{name} {viseme_set}: vowel [{s}-{e}] shut: {near(s)}", file=sys.stderr)
        for s, e in bilabials:
            if not shut_within(s, e):
                print(f"{name} {viseme_set}: bilabial [{s}-{e}] open: {near(s)}", file=sys.stderr)
        for s, e in pauses:
            if viseme_at(cues, (s + e) / 2) not in rest:
                print(f"{name} {viseme_set}: pause [{s}-{e}] not at rest: {near((s + e) / 2)}", file=sys.stderr)
    onsets = sorted(s for p, s, e in phones if p != "SIL")
    changes = [c["t_ms"] for c in cues[1:]]
    offsets = [min((t - o for o in onsets), key=abs) for t in changes] if onsets else []
    speech = [(s, e) for p, s, e in phones if p != "SIL"]
    speech_s = sum(e - s for s, e in speech) / 1000 or 1
    holds = [b - a for a, b in zip(changes, changes[1:])]
    return {
        "open": [open_ok, len(vowels)],
        "closed": [closed_ok, len(bilabials)],
        "rest": [rest_ok, len(pauses)],
        "onset_median_ms": statistics.median(offsets) if offsets else None,
        "cues_per_s": round(len(changes) / speech_s, 2),
        "median_hold_ms": statistics.median(holds) if holds else None,
    }


def main():
    job = json.load(open(sys.argv[1]))
    out = []
    for item in job["items"]:
        phones = align(item["audio"], item["align_text"])
        out.append({
            "name": item["name"],
            "phones": len(phones),
            "sets": {s: score(c, phones, s, item["name"]) for s, c in item["cues"].items()},
        })
    json.dump({"items": out}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
