#!/usr/bin/env python3
"""The Python reference for `make bench`: piper-tts 1.8 synthesising the same text with the
same voice and the same onnxruntime, on a given number of threads.

    bench_piper.py MODEL.onnx THREADS RUNS TEXT_FILE

Prints one JSON object in the shape of the Rust bench: load time, per-run times, peak RSS.
"""
import json
import resource
import sys
import time

import onnxruntime
from piper.config import PiperConfig
from piper.voice import PiperVoice

model, threads, runs, text_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
text = open(text_file, encoding="utf-8").read()

started = time.perf_counter()
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
with open(model + ".json", encoding="utf-8") as f:
    config = PiperConfig.from_dict(json.load(f))
session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
voice = PiperVoice(session=session, config=config)
load_ms = (time.perf_counter() - started) * 1000

results = []
for run in range(runs + 1):  # one warm-up run
    started = time.perf_counter()
    chunks = list(voice.synthesize(text))
    total_ms = (time.perf_counter() - started) * 1000
    samples = sum(len(c.audio_float_array) for c in chunks)
    if run > 0:
        results.append({"total_ms": total_ms, "audio_ms": samples * 1000 / config.sample_rate})

print(json.dumps({
    "load_ms": load_ms,
    "runs": results,
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "onnxruntime": onnxruntime.__version__,
}))
