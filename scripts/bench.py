#!/usr/bin/env python3
"""`make bench`: speed and memory of the Rust pipeline next to Python piper-tts 1.8 on the
same machine, voice, text and onnxruntime, in one run. The machine is shared and noisy, so
Rust and Python runs alternate and the figures are medians and ratios.

    bench.py RUST_BENCH AVATAR_RENDER PYTHON VOICES_DIR VOICE
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

rust_bench, avatar_render, python, voices_dir, voice = sys.argv[1:6]
here = os.path.dirname(os.path.abspath(__file__))
bench_dir = os.path.join(here, "..", "bench")
paragraph = os.path.join(bench_dir, "paragraph.txt")
long_text = os.path.join(bench_dir, "long.txt")
model = os.path.join(voices_dir, voice + ".onnx")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_rtf(report):
    return statistics.median(r["total_ms"] / r["audio_ms"] for r in report["runs"])


def rss_of(cmd):
    """Peak resident set of one child process, in MB."""
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, cmd
    return usage.ru_maxrss / 1024


print(f"bench: voice {voice}, text {len(open(paragraph, encoding='utf-8').read().strip())} characters, "
      f"{ROUNDS} alternating rounds x {RUNS} runs (medians)\n")

rows = []
encode_times = []
for threads in (1, 2):
    ours, theirs, ratios = [], [], []
    for _ in range(ROUNDS):
        report = run_json([rust_bench, "synth", voices_dir, voice, str(threads), str(RUNS), paragraph])
        encode_times += [x["encode_ms"] for x in report["runs"]]
        r = median_rtf(report)
        p = median_rtf(run_json([python, os.path.join(here, "bench_piper.py"), model, str(threads), str(RUNS), paragraph]))
        ours.append(r)
        theirs.append(p)
        ratios.append(r / p)
    rows.append((f"synthesis RTF, {threads} thread{'s' if threads > 1 else ''}",
                 statistics.median(ours), statistics.median(theirs), statistics.median(ratios)))

print(f"{'':34}{'Rust':>10}{'Python piper-tts':>18}{'ratio':>8}  (target: ratio <= 1.05)")
for name, r, p, ratio in rows:
    print(f"{name:34}{r:10.4f}{p:18.4f}{ratio:8.3f}")

encode_alone = statistics.median(encode_times)
render = run_json([rust_bench, "render", voices_dir, voice, "2", str(RUNS * ROUNDS), paragraph])
runs = render["runs"]
total = statistics.median(x["total_ms"] for x in runs)
audio = statistics.median(x["audio_ms"] for x in runs)
stage = lambda k: statistics.median(x[k] for x in runs)
print(f"\nwhole offline render, 2 threads: {total:.0f} ms for {audio:.0f} ms of audio = "
      f"{100 * total / audio:.2f} % of the audio's duration (target < 6 %)")
print(f"  speech {stage('speech_ms'):.0f} ms (phonemes {stage('phonemize_ms'):.1f} ms, Piper, and Opus encoding "
      f"overlapped: {encode_alone:.0f} ms on its own), mouth cues {stage('mouth_cues_ms'):.2f} ms, "
      f"eye events {stage('eye_events_ms'):.2f} ms; Ogg Opus {stage('audio_bytes') / audio:.2f} KB/s")
print(f"  model load (excluded): {render['load_ms']:.0f} ms")

with tempfile.TemporaryDirectory() as out:
    env_cmd = [avatar_render, "--voice", voice, "--threads", "2", "--out", out, "--text-file"]
    rss_paragraph = rss_of(env_cmd + [paragraph])
    rss_long = rss_of(env_cmd + [long_text])
python_rss = run_json([python, os.path.join(here, "bench_piper.py"), model, "2", "1", paragraph])["peak_rss_kb"] / 1024
print(f"\npeak memory of a render process (avatar-render, one medium voice; target < 300 MB):")
print(f"  {len(open(paragraph, encoding='utf-8').read().strip())} characters: {rss_paragraph:.0f} MB   "
      f"5000 characters: {rss_long:.0f} MB   (Python piper-tts, {len(open(paragraph).read().strip())} characters: {python_rss:.0f} MB)")
