#!/usr/bin/env python3
"""Scores mouth cues against an independent forced alignment of the audio they go with.

    lipsync_score.py JOB.json > SCORES.json

JOB.json: {"items": [{"name", "audio" (a file ffmpeg reads), "align_text" (the words
spoken, each in pocketsphinx's US-English dictionary), "cues": {set: [{t_ms, viseme}]},
"words": [{t_ms, end_ms, text}] (the render's word marks)}]}.

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

Word marks are matched to the aligned words by their text (a difflib alignment of the
marks' words with align_text's; a mark written as one word and spoken as several, `250` as
"two hundred fifty", takes the aligned words between its matched neighbours), then scored:

  words   marks matched / marks; onset and end: median and 90th percentile of
          |mark - aligned word boundary| (ms)

A test-only tool: it runs from a venv made by scripts/setup_test_tools.sh, never at run time.
"""

import difflib
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
    """[(phone, start_ms, end_ms)] of the whole utterance, silences as SIL, and
    [(word, start_ms, end_ms)] of its words (no silences)."""
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
    phones, words = [], []
    for word in decoder.get_alignment():
        name = word.name.split("(")[0].lower()
        if not name.startswith("<") and name not in ("sil", "[noise]"):
            words.append((name, word.start * 10, (word.start + word.duration) * 10))
        for phone in word:
            phones.append((phone.name, phone.start * 10, (phone.start + phone.duration) * 10))
    return phones, words


def plain(text):
    """A mark's words as the aligner spells them: lower case, no punctuation but apostrophes."""
    cleaned = "".join(c if c.isalnum() or c in "'’" else " " for c in text.lower())
    return cleaned.replace("’", "'").split()


def score_words(marks, aligned):
    """Matches marks to aligned words by text and scores their onsets and ends."""
    tokens, owner = [], []
    for i, mark in enumerate(marks):
        for token in plain(mark["text"]):
            tokens.append(token)
            owner.append(i)
    spans = {}  # mark index -> (first aligned word, last aligned word)
    matched, replaced = {}, set()
    matcher = difflib.SequenceMatcher(a=tokens, b=[w for w, _, _ in aligned], autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            for k in range(a1 - a0):
                i = owner[a0 + k]
                first, _ = spans.get(i, (b0 + k, b0 + k))
                spans[i] = (first, b0 + k)
                matched[i] = matched.get(i, 0) + 1
        elif op == "replace" and len(set(owner[a0:a1])) == 1:
            # One written mark spoken as other words ("250", "Dr."): all of them.
            spans[owner[a0]] = (b0, b1 - 1)
            replaced.add(owner[a0])
    # A mark only partly matched (one of its words missing) is not scored.
    complete = {i for i in spans if i in replaced or matched.get(i, 0) == owner.count(i)}
    onsets, ends, signed = [], [], []
    for i in sorted(complete):
        first, last = spans[i]
        signed.append(marks[i]["t_ms"] - aligned[first][1])
        onsets.append(abs(signed[-1]))
        ends.append(abs(marks[i]["end_ms"] - aligned[last][2]))
        if DEBUG and max(onsets[-1], ends[-1]) > 100:
            print(f"word {marks[i]['text']!r} [{marks[i]['t_ms']}-{marks[i]['end_ms']}] vs "
                  f"{aligned[first:last + 1]}", file=sys.stderr)

    def pct(values, q):
        if not values:
            return None
        values = sorted(values)
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    return {
        "matched": [len(onsets), len(marks)],
        "onset_median_ms": pct(onsets, 0.5),
        "onset_p90_ms": pct(onsets, 0.9),
        "end_median_ms": pct(ends, 0.5),
        "end_p90_ms": pct(ends, 0.9),
        "onset_bias_ms": pct(signed, 0.5),
    }


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
        phones, words = align(item["audio"], item["align_text"])
        out.append({
            "name": item["name"],
            "phones": len(phones),
            "sets": {s: score(c, phones, s, item["name"]) for s, c in item["cues"].items()},
            "words": score_words(item.get("words", []), words),
        })
    json.dump({"items": out}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
