#!/usr/bin/env python3
"""The distributed pipeline's part of `make bench`:

1. pipeline overhead: sync render latency through gateway + NATS + three workers minus the
   offline renderer's time for the same texts (p50, target <= 3 ms on an idle machine);
2. cache hits: wrk against POST /v1/avatar/render for a cached render (target >= 20,000
   requests/s, p50 < 1 ms), wrk sharing the machine's 2 cores with the gateway and NATS;
3. scaling: 20 distinct short renders with 2 tts workers against 1;
4. streaming: time from the end of the first sentence's text to its first audio at the client
   (the segment message, then its audio fetched), p50 and p95, for texts sent whole and fed word
   by word over the WebSocket (targets: p50 <= 150 ms for a ten-word first sentence); and for a
   1,000-character text, first audio against the sync render's full answer (target <= 10 %).

    bench_pipeline.py BIN_DIR RUST_BENCH SERVERS_BIN VOICES_DIR VOICE [PARTS]

PARTS: a comma-separated subset of overhead,cache_hits,scaling,streaming (all by default).
Run with the bench venv's Python (`websockets` for the streaming part).
"""
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

bin_dir, rust_bench, servers_bin, voices_dir, voice = sys.argv[1:6]
here = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, tts_workers=1, tts_threads=2, extra=None):
        self.dir = tempfile.mkdtemp(prefix="avatar-bench-")
        self.port, nats_port = free_port(), free_port()
        self.env = dict(os.environ)
        self.env.update({
            "NATS_URL": f"nats://127.0.0.1:{nats_port}", "PORT": str(self.port), "HOST": "127.0.0.1",
            "DATA_DIR": os.path.join(self.dir, "data"), "VOICES_DIR": voices_dir, "DEFAULT_VOICE": voice,
            "AUDIO_BASE_URL": f"http://127.0.0.1:{self.port}/audio", "TTS_THREADS": str(tts_threads),
            "METRICS_PORT": "0", "LOG_LEVEL": "warn", "MAX_CONCURRENT_REQUESTS": "64",
        })
        self.env.update(extra or {})
        self.procs = []
        self.spawn(os.path.join(servers_bin, "nats-server"),
                   ["-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", os.path.join(self.dir, "js")])
        for _ in range(tts_workers):
            self.spawn(os.path.join(bin_dir, "avatar-tts"))
        for name in ("avatar-lipsync", "avatar-eyes", "avatar-gateway"):
            self.spawn(os.path.join(bin_dir, name))
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status, voices = self.request("GET", "/v1/voices")
                if status == 200 and voices["voices"]:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the stack did not start")

    def spawn(self, program, args=()):
        log = open(os.path.join(self.dir, os.path.basename(program) + f"-{len(self.procs)}.log"), "w")
        self.procs.append(subprocess.Popen([program, *args], env=self.env, stdout=log, stderr=log))

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def request(self, method, path, body=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        data = json.loads(response.read() or b"null")
        if own:
            conn.close()
        return response.status, data

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            p.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def per_render(stack, prefix, fields):
    """{render_id: {field: value}} from the `prefix` processes' logs (one line per job)."""
    found = {}
    for name in os.listdir(stack.dir):
        if name.startswith(prefix) and name.endswith(".log"):
            with open(os.path.join(stack.dir, name)) as f:
                for line in f:
                    rid = re.search(r"render_id=([0-9a-f]{64})", line)
                    values = {k: re.search(rf"\b{k}=([\d.]+)", line) for k in fields}
                    if rid and all(values.values()):
                        found[rid.group(1)] = {k: float(v.group(1)) for k, v in values.items()}
    return found


def overhead():
    # The overhead is a few milliseconds on top of a synthesis whose time varies with Piper's
    # random durations and with the machine's noise (minute-scale drifts of several ms here).
    # So each text is rendered by a resident offline renderer and through the pipeline right
    # after one another, in random order, and the p50 is taken of the per-text differences.
    # The services' logs also time each render's hops: latency minus the tts worker's own
    # work on that very render is the overhead measured directly, free of synthesis noise.
    import random
    order = random.Random(7)
    texts = [f"Item {i}." for i in range(150)]
    offline = subprocess.Popen([rust_bench, "lines", voices_dir, voice, "2", "0", "-"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    class Client:
        """A minimal keep-alive HTTP/1.1 client: the latency measured is the gateway's and the
        pipeline's, not http.client's header parsing (about 0.1-0.3 ms a response here)."""

        def __init__(self, port):
            self.sock = socket.create_connection(("127.0.0.1", port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def post(self, path, body):
            body = json.dumps(body).encode()
            request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            started = time.perf_counter()
            self.sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += self.sock.recv(65536)
            head, data = data.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            while len(data) < length:
                data += self.sock.recv(65536)
            elapsed = (time.perf_counter() - started) * 1000
            return int(head[9:12]), json.loads(data), elapsed

    def render_offline(text):
        offline.stdin.write(text + "\n")
        offline.stdin.flush()
        return json.loads(offline.stdout.readline())["total_ms"]

    pairs, sync = [], {}
    stack = Stack(tts_threads=2, extra={"LOG_LEVEL": "info,avatar_gateway=debug"})
    try:
        client = Client(stack.port)

        def render_sync(text):
            status, body, elapsed = client.post("/v1/avatar/render", {"text": text})
            assert status == 200 and body["status"] == "completed", body
            sync[body["render_id"]] = elapsed
            return elapsed

        render_sync("Warm up the workers.")
        render_offline("Warm up the workers.")
        for text in texts:
            if order.random() < 0.5:
                off = render_offline(text)
                pipe = render_sync(text)
            else:
                pipe = render_sync(text)
                off = render_offline(text)
            pairs.append((pipe, off))
        time.sleep(0.5)
        gateway = per_render(stack, "avatar-gateway", ["submit_ms", "total_ms", "handler_ms"])
        tts = per_render(stack, "avatar-tts", ["work_ms", "total_ms"])
        lipsync = per_render(stack, "avatar-lipsync", ["total_ms"])
        eyes = per_render(stack, "avatar-eyes", ["total_ms"])
    finally:
        stack.stop()
        offline.stdin.close()
        offline.wait()
    ids = [i for i in sync if i in gateway and i in tts and i in lipsync and i in eyes]
    med = lambda f: statistics.median(f(i) for i in ids)
    paired = statistics.median(p - o for p, o in pairs)
    direct = med(lambda i: sync[i] - tts[i]["work_ms"])
    print(f"pipeline overhead ({len(texts)} very short renders, sync through gateway + NATS + 3 workers, "
          f"p50 {statistics.median(p for p, _ in pairs):.1f} ms each):")
    print(f"  sync latency minus the offline renderer's time for the same text, rendered one after the "
          f"other: p50 {paired:.2f} ms (target <= 3 ms)")
    print(f"  per render, latency minus its own synthesis in the tts worker: p50 {direct:.2f} ms")
    print(f"  where it goes, per render (p50): HTTP and request handling {med(lambda i: sync[i] - gateway[i]['handler_ms']):.2f}, "
          f"submission (KV create + publish) {med(lambda i: gateway[i]['submit_ms']):.2f}, three stage hops and the "
          f"KV watch besides synthesis {med(lambda i: gateway[i]['total_ms'] - gateway[i]['submit_ms'] - tts[i]['work_ms']):.2f} ms "
          f"(of which the lipsync job {med(lambda i: lipsync[i]['total_ms']):.2f} and the eyes job {med(lambda i: eyes[i]['total_ms']):.2f})")


def cache_hits():
    stack = Stack()
    try:
        body = {"text": "This render is served from the cache."}
        stack.request("POST", "/v1/avatar/render", body)
        script = os.path.join(stack.dir, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\n'
                    f"wrk.body = '{json.dumps(body)}'\n"
                    'wrk.headers["Content-Type"] = "application/json"\n')
        url = f"http://127.0.0.1:{stack.port}/v1/avatar/render"
        runs = []
        for _ in range(3):
            out = subprocess.run(["wrk", "-t2", "-c32", "-d8s", "--latency", "-s", script, url],
                                 check=True, capture_output=True, text=True).stdout
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
            p50_ms = float(p50.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p50.group(2)]
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            assert errors is None, out
            runs.append((rps, p50_ms))
    finally:
        stack.stop()
    rps = statistics.median(r for r, _ in runs)
    p50 = statistics.median(p for _, p in runs)
    print(f"cache hits, POST /v1/avatar/render (wrk -t2 -c32, 3 x 8 s, wrk on the same 2 cores as gateway and NATS):")
    print(f"  {rps:,.0f} requests/s, p50 {p50:.2f} ms (targets: >= 20,000/s, p50 < 1 ms)")


def scaling():
    def run(workers):
        stack = Stack(tts_workers=workers, tts_threads=1)
        try:
            texts = [f"Render {i} of twenty, {workers} worker run, a short sentence." for i in range(20)]
            stack.request("POST", "/v1/avatar/render", {"text": f"warm up {workers}"})
            started = time.perf_counter()
            ids = [stack.request("POST", "/v1/avatar/render_async", {"text": t})[1]["render_id"] for t in texts]
            pending = set(ids)
            while pending:
                for rid in list(pending):
                    status, body = stack.request("GET", f"/v1/avatar/render/{rid}")
                    if body.get("status") == "completed":
                        pending.discard(rid)
                    assert body.get("status") != "failed", body
                time.sleep(0.02)
            return time.perf_counter() - started
        finally:
            stack.stop()
    one, two = run(1), run(2)
    print("scaling, 20 distinct short renders, tts workers with 1 thread each:")
    print(f"  1 worker {one:.2f} s, 2 workers {two:.2f} s: {one / two:.2f}x faster")


def streaming():
    import threading
    from websockets.sync.client import connect

    stack = Stack(tts_workers=1, tts_threads=2)
    ws_url = f"ws://127.0.0.1:{stack.port}/v1/avatar/stream"

    def fetch(url):
        path = url.split(str(stack.port), 1)[1]
        conn = stack.connection()
        conn.request("GET", path)
        body = conn.getresponse().read()
        conn.close()
        return body

    def first_audio(text, first_end, word_by_word):
        """Seconds from the moment the first sentence's text (up to `first_end`) has been sent
        to the moment the first segment's audio is at the client."""
        with connect(ws_url, max_size=None) as ws:
            ws.send(json.dumps({"type": "start"}))
            json.loads(ws.recv())
            pieces = re.findall(r"\S+\s*", text) if word_by_word else [text]
            sent_first = {}

            def feed():
                sent = 0
                for piece in pieces:
                    ws.send(json.dumps({"type": "text", "text": piece}))
                    sent += len(piece)
                    if sent >= first_end and "t" not in sent_first:
                        sent_first["t"] = time.perf_counter()
                    if word_by_word:
                        time.sleep(0.03)  # about 30 tokens a second, as a chat model streams
                ws.send(json.dumps({"type": "end"}))

            feeder = threading.Thread(target=feed)
            feeder.start()
            while True:
                message = json.loads(ws.recv())
                if message["type"] == "segment":
                    fetch(message["audio_url"])
                    arrived = time.perf_counter()
                    break
                assert message["type"] != "error", message
            feeder.join()
            for _ in ws:  # the rest, until done
                pass
            return arrived - sent_first["t"]

    try:
        stack.request("POST", "/v1/avatar/render", {"text": "Warm up the voice."})
        # Distinct first sentences of the same shape (each segment is cached by its text).
        words = ("red blue green gold gray pink black white brown tan jade rose lime teal navy "
                 "plum sand rust mint sky sea oak elm ash fir bay fig ink jet ivy").split()
        rows = {}
        for m, mode in enumerate(("sent whole", "word by word")):
            times = []
            for n in range(15):
                first = f"Take {words[15 * m + n]} of the bench checks how fast speech starts. "
                text = first + "The second sentence follows while the first one plays. The third one ends it."
                times.append(first_audio(text, len(first), mode == "word by word") * 1000)
            times.sort()
            rows[mode] = (statistics.median(times), times[int(round(0.95 * (len(times) - 1)))])
        print("streaming, WebSocket, first sentence of ten words (end of its text -> its audio at the client):")
        for mode, (p50, p95) in rows.items():
            print(f"  {mode:13} p50 {p50:6.0f} ms  p95 {p95:6.0f} ms   (target p50 <= 150 ms)")
        with open(os.path.join(here, "..", "bench", "paragraph.txt")) as f:
            paragraph = " ".join(f.read().split())
        long_text = (paragraph * (1000 // len(paragraph) + 1))[:990].rsplit(" ", 1)[0] + "."
        # Its first sentence made distinct per run: "On night N, the old lighthouse keeper ...
        # every evening, ..." (the first segment is that clause).
        first_sentence = long_text.split(". ", 1)[0] + ". "
        sync_s, stream_s = [], []
        for n in range(3):
            started = time.perf_counter()
            text = f"On night {words[n]}, t" + long_text[1:]
            status, body = stack.request("POST", "/v1/avatar/render", {"text": text})
            assert status == 200, body
            sync_s.append(time.perf_counter() - started)
            text = f"On night {words[10 + n]}, t" + long_text[1:]
            stream_s.append(first_audio(text, len(first_sentence) + 10, False))
        sync_ms, stream_ms = statistics.median(sync_s) * 1000, statistics.median(stream_s) * 1000
        print(f"  1,000 characters: first audio {stream_ms:.0f} ms, sync render's full answer {sync_ms:.0f} ms: "
              f"{100 * stream_ms / sync_ms:.1f} % (target <= 10 %; medians of 3)")
    finally:
        stack.stop()


parts = sys.argv[6].split(",") if len(sys.argv) > 6 else ["overhead", "cache_hits", "scaling", "streaming"]
print()
for part in parts:
    {"overhead": overhead, "cache_hits": cache_hits, "scaling": scaling, "streaming": streaming}[part]()
