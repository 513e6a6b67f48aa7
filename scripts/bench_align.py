#!/usr/bin/env python3
"""Lip-sync of a recording next to synthesis, same build, same paragraph (`make bench`).

Renders the paragraph with the joe voice (the synth path), then lip-syncs that audio with
`avatar-render --audio`, with its transcript (forced alignment) and without (recognition).
Prints, per path, the median over runs of: processing time (render.json's
processing_time_ms: alignment, cues, eyes; no decoding, process start or model load), its
real-time factor (target <= 0.05 with a transcript), the whole command's wall time, and the
process's peak RSS (target < 150 MB for the align path).

usage: bench_align.py AVATAR_RENDER VOICES_DIR VOICE [RUNS]
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

render, voices, voice = sys.argv[1:4]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
PARAGRAPH = (
    "The old lighthouse keeper climbed the spiral stairs every evening. He polished the great "
    "lens until it shone, and he watched the fishing boats come home across the bay. Some "
    "nights the fog rolled in so thick that he could barely see his own hands; still, he kept "
    "the lamp burning."
)
env = dict(os.environ, VOICES_DIR=voices, DEFAULT_VOICE=voice)


def run(args):
    """(wall s, peak RSS MB, render.json) of one avatar-render process."""
    out = tempfile.mkdtemp()
    started = time.monotonic()
    proc = subprocess.Popen([render, *args, "--out", out], env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        sys.exit(f"bench_align: {args} failed: {proc.stderr.read().decode()}")
    with open(os.path.join(out, "render.json")) as f:
        result = json.load(f)
    return wall, usage.ru_maxrss / 1024, result, out


_, _, spoken, spoken_dir = run(["--text", PARAGRAPH, "--format", "wav"])
wav = os.path.join(spoken_dir, "audio.wav")
seconds = spoken["duration_ms"] / 1000
paths = {
    "synthesis (text in)": ["--text", PARAGRAPH, "--format", "wav"],
    "align, with transcript": ["--audio", wav, "--transcript", PARAGRAPH],
    "align, no transcript": ["--audio", wav],
}
print(f"\nLip-sync of a recording next to synthesis ({seconds:.1f} s paragraph, median of {runs} runs)")
print(f"{'path':26} {'processing ms':>13} {'RTF':>7} {'wall s':>7} {'peak MB':>8}")
for name, args in paths.items():
    samples = [run(args) for _ in range(runs)]
    ms = statistics.median(s[2]["processing_time_ms"] for s in samples)
    wall = statistics.median(s[0] for s in samples)
    rss = statistics.median(s[1] for s in samples)
    print(f"{name:26} {ms:13.0f} {ms / 1000 / seconds:7.3f} {wall:7.2f} {rss:8.0f}")

# A long recording (the paragraph twelve times, about three minutes): aligned in pieces of at
# most 20 s, so time and memory grow linearly (one phone pass over it all took 2 GB).
LONG = " ".join([PARAGRAPH] * 12)
_, _, spoken, spoken_dir = run(["--text", LONG, "--format", "wav"])
long_seconds = spoken["duration_ms"] / 1000
wall, rss, result, _ = run(["--audio", os.path.join(spoken_dir, "audio.wav"), "--transcript", LONG])
ms = result["processing_time_ms"]
print(f"{f'align, {long_seconds:.0f} s recording':26} {ms:13.0f} {ms / 1000 / long_seconds:7.3f} {wall:7.2f} {rss:8.0f}")
