"""Helpers to drive a real ComfyUI server from tests: start/stop it, convert UI-format workflows to
API format with /object_info, queue prompts, wait for results, fetch images, interrupt.

Only the standard library plus `requests` and Pillow; nothing here imports ComfyUI itself.
"""
from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-neural-painters"
DEFAULT_CACHE = REPO / ".cache"
SETUP_HINT = "bash tests/e2e/setup_comfyui.sh"

# Node types that exist only in the frontend: they never reach the server.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "Group"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
MODE_MUTED, MODE_BYPASS = 2, 4


class ComfyError(RuntimeError):
    """Something went wrong talking to ComfyUI; the message carries the server's own words."""


class ComfyNotSetUp(ComfyError):
    """No ComfyUI copy to start: the message says how to make one."""


class PromptRefused(ComfyError):
    """POST /prompt answered 400: the prompt failed validation (bad link, bad value, missing input)."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        self.node_errors = body.get("node_errors", {}) if isinstance(body, dict) else {}
        super().__init__(f"ComfyUI refused the prompt (HTTP {status}): {json.dumps(body)[:2000]}")


class PromptFailed(ComfyError):
    """The prompt ran and ended with an execution error or an interruption."""

    def __init__(self, entry: dict):
        self.entry = entry
        self.status = entry.get("status", {})
        messages = self.status.get("messages", [])
        details = [m for m in messages if m and m[0] in ("execution_error", "execution_interrupted")]
        super().__init__(f"prompt ended with status {self.status.get('status_str')!r}: {json.dumps(details)[:4000]}")

    @property
    def interrupted(self) -> bool:
        return any(m[0] == "execution_interrupted" for m in self.status.get("messages", []))


# ----------------------------------------------------------------------------------------------
# UI format -> API format
# ----------------------------------------------------------------------------------------------
def is_widget(spec) -> bool:
    """Whether an /object_info input spec is shown as a widget (so it has a slot in widgets_values)."""
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_slots(info: dict) -> list[tuple[str, str]]:
    """The positional layout of a node's widgets_values, as the frontend saves it:
    [(input name, "value" | "control" | "upload")]. Seed-like INT widgets (named seed / noise_seed, or
    with control_after_generate) are followed by the control_after_generate value; upload combos by the
    upload button's value."""
    slots = []
    order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = info["input"].get(section, {}).get(name)
            if spec is None or not is_widget(spec):
                continue
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            slots.append((name, "value"))
            control = opts.get("control_after_generate")
            if control is None:
                control = spec[0] == "INT" and name in ("seed", "noise_seed")
            if control:
                slots.append((name, "control"))
            if any(opts.get(k) for k in UPLOAD_OPTIONS):
                slots.append((name, "upload"))
    return slots


def map_widgets(node: dict, info: dict, strict: bool = True) -> dict:
    """{input name: value} from a UI node's widgets_values (a positional list, or a dict by name).

    Not `strict`: extra trailing values (display-only widgets some core nodes add in the frontend,
    e.g. SaveGLB's 3D preview or GetImageSize's text) are ignored."""
    values = node.get("widgets_values")
    if values is None:
        return {}
    if isinstance(values, dict):
        return {k: v for k, v in values.items() if k in info["input"].get("required", {})
                or k in info["input"].get("optional", {})}
    slots = widget_slots(info)
    for candidate in (slots, [s for s in slots if s[1] != "upload"], [s for s in slots if s[1] == "value"]):
        if len(candidate) == len(values):
            return {name: v for (name, kind), v in zip(candidate, values) if kind == "value"}
    if not strict and len(values) > len(slots):
        return {name: v for (name, kind), v in zip(slots, values) if kind == "value"}
    raise ComfyError(f"node {node.get('id')} ({node.get('type')}): {len(values)} widgets_values {values!r} do "
                     f"not fit its widgets {slots} in /object_info: was the workflow saved for another version?")


def ui_to_api(workflow: dict, object_info: dict, strict: bool = True) -> dict:
    """Convert a workflow in UI format (what the frontend saves and loads: nodes, links, widgets_values)
    into API format ({id: {"class_type", "inputs"}}, links as [node_id, slot]) that POST /prompt takes.

    Frontend-only nodes (notes, reroutes, primitives) are resolved away; muted nodes are dropped;
    bypassed nodes pass their matching-type input straight through. `strict` (the default, for our
    own workflows) refuses widgets_values that do not fit the node's widgets exactly."""
    nodes = {str(n["id"]): n for n in workflow["nodes"]}
    links = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):  # the 1.x schema stores links as objects
            link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                    link.get("type")]
        links[link[0]] = (str(link[1]), int(link[2]), str(link[3]), int(link[4]), link[5])
    if workflow.get("definitions", {}).get("subgraphs"):
        raise ComfyError("workflows with subgraphs are not supported by this converter")

    def source(link_id, seen=()):
        """The (node id, output slot) feeding a link, followed through reroutes and bypassed nodes;
        None when it ends at a frontend-only value (a primitive) or nothing."""
        if link_id is None or link_id not in links:
            return None
        origin, slot, _, _, ltype = links[link_id]
        if origin in seen:
            raise ComfyError(f"link cycle through node {origin}")
        node = nodes.get(origin)
        if node is None:
            raise ComfyError(f"link {link_id} comes from missing node {origin}")
        if node["type"] == "Reroute":
            ins = node.get("inputs") or []
            return source(ins[0].get("link") if ins else None, seen + (origin,))
        if node["type"] == "PrimitiveNode":
            return None
        if node.get("mode") == MODE_BYPASS:
            out_type = (node.get("outputs") or [{}])[slot].get("type", ltype)
            for inp in node.get("inputs") or []:
                if inp.get("link") is not None and inp.get("type") == out_type:
                    return source(inp["link"], seen + (origin,))
            return None
        return origin, slot

    prompt = {}
    for nid, node in nodes.items():
        ntype = node["type"]
        if ntype in FRONTEND_ONLY or node.get("mode") in (MODE_MUTED, MODE_BYPASS):
            continue
        if ntype not in object_info:
            raise ComfyError(f"node {nid} has type {ntype!r}, which this ComfyUI does not know "
                             f"(a missing or failed custom node pack?)")
        info = object_info[ntype]
        inputs = map_widgets(node, info, strict)
        for inp in node.get("inputs") or []:
            src = source(inp.get("link"))
            if src is not None:
                inputs[inp["name"]] = [src[0], src[1]]
            elif inp.get("link") is not None and inp["name"] not in inputs:
                # a primitive feeding a widget: the value lives in the primitive's own widgets_values
                origin = nodes[links[inp["link"]][0]]
                if origin["type"] == "PrimitiveNode" and origin.get("widgets_values"):
                    inputs[inp["name"]] = origin["widgets_values"][0]
        prompt[nid] = {"class_type": ntype, "inputs": inputs, "_meta": {"title": node.get("title") or ntype}}
    return prompt


# ----------------------------------------------------------------------------------------------
# HTTP client
# ----------------------------------------------------------------------------------------------
@dataclass
class ComfyClient:
    base_url: str
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timeout: float = 30.0
    _object_info: dict | None = None

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.base_url + path, timeout=kw.pop("timeout", self.timeout), **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.base_url + path, timeout=kw.pop("timeout", self.timeout), **kw)

    def object_info(self, refresh: bool = False) -> dict:
        if self._object_info is None or refresh:
            r = self.get("/object_info", timeout=120)
            r.raise_for_status()
            self._object_info = r.json()
        return self._object_info

    def convert(self, workflow: dict) -> dict:
        return ui_to_api(workflow, self.object_info())

    def queue(self, prompt: dict) -> str:
        """POST /prompt; returns the prompt id, or raises PromptRefused with the server's node_errors."""
        r = self.post("/prompt", json={"prompt": prompt, "client_id": self.client_id})
        if r.status_code != 200:
            try:
                body = r.json()
            except ValueError:
                body = {"error": r.text}
            raise PromptRefused(r.status_code, body)
        return r.json()["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        r = self.get(f"/history/{prompt_id}")
        r.raise_for_status()
        return r.json().get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300.0, poll: float = 0.25, check: bool = True) -> dict:
        """Poll /history until the prompt is done; raise PromptFailed if it errored (when `check`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)  # present once the prompt has finished (or failed)
            status = (entry or {}).get("status", {}).get("status_str")
            if status in ("success", "error"):
                if check and status != "success":
                    raise PromptFailed(entry)
                return entry
            time.sleep(poll)
        raise ComfyError(f"prompt {prompt_id} not finished after {timeout:.0f} s; queue: {self.get('/queue').text[:1000]}")

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def run_workflow(self, workflow: dict, timeout: float = 300.0) -> dict:
        return self.run(self.convert(workflow), timeout)

    def run_with_events(self, prompt: dict, timeout: float = 300.0) -> tuple[dict, list[dict], list[bytes]]:
        """Queue `prompt` while listening on the websocket, as the frontend does.

        Returns (history entry, JSON messages, preview images as encoded bytes). Needs aiohttp
        (a ComfyUI requirement)."""
        import asyncio
        import struct

        import aiohttp

        messages, previews = [], []

        async def listen():
            ws_url = self.base_url.replace("http://", "ws://") + f"/ws?clientId={self.client_id}"
            async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
                prompt_id = await asyncio.get_running_loop().run_in_executor(None, self.queue, prompt)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    msg = await ws.receive(timeout=max(1.0, deadline - time.monotonic()))
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        m = json.loads(msg.data)
                        messages.append(m)
                        data = m.get("data", {})
                        done = m["type"] in ("execution_success", "execution_error", "execution_interrupted") or (
                            m["type"] == "executing" and data.get("node") is None)
                        if done and data.get("prompt_id") == prompt_id:
                            return prompt_id
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        event, = struct.unpack(">I", msg.data[:4])
                        if event == 1:  # PREVIEW_IMAGE: 4-byte image type, then the encoded image
                            previews.append(bytes(msg.data[8:]))
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                raise ComfyError(f"no end of prompt {prompt_id} on the websocket within {timeout:.0f} s")

        prompt_id = asyncio.run(listen())
        return self.wait(prompt_id, timeout=30), messages, previews

    def interrupt(self, prompt_id: str | None = None):
        r = self.post("/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})
        r.raise_for_status()

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        r = self.get("/view", params={"filename": filename, "subfolder": subfolder, "type": kind})
        r.raise_for_status()
        return r.content

    def images(self, entry: dict) -> dict[str, list]:
        """{node id: [PIL images]} for every image an executed prompt's output nodes reported."""
        from PIL import Image
        out = {}
        for nid, ui in entry.get("outputs", {}).items():
            for im in ui.get("images", []):
                data = self.view(im["filename"], im.get("subfolder", ""), im.get("type", "output"))
                img = Image.open(io.BytesIO(data))
                img.load()
                out.setdefault(nid, []).append(img)
        return out


# ----------------------------------------------------------------------------------------------
# Server process
# ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_info(cache: Path = DEFAULT_CACHE) -> dict | None:
    """The stamp written by setup_comfyui.py, or None when ComfyUI is not set up."""
    stamp = Path(cache) / "comfyui" / ".np-setup.json"
    if not stamp.is_file() or not (stamp.parent / "main.py").is_file():
        return None
    info = json.loads(stamp.read_text())
    if not Path(info.get("python", "")).exists():
        return None
    return info


# The pack's own code: what a traceback frame must point into to be the pack's fault. ComfyUI itself
# lives in .cache/ inside the checkout, so the folder name alone would also match ComfyUI's frames.
PACK_CODE = ("__init__.py", "nodes", "painter_models", "training")


def pack_frame(filename: str, repo: Path = REPO, link_name: str = PACK_NAME) -> bool:
    """Whether a traceback frame's file is the pack's own code, reached through the checkout or through
    ComfyUI's custom_nodes/<pack> link (not ComfyUI or a library that happens to sit inside the checkout)."""
    parts = Path(filename).parts
    for root in (Path(repo).parts, ("custom_nodes", link_name)):
        for i in range(len(parts) - len(root)):
            if parts[i:i + len(root)] == tuple(root) and parts[i + len(root)] in PACK_CODE:
                return True
    return False


def link_pack(comfy_dir: Path, repo: Path = REPO, name: str = PACK_NAME) -> Path:
    """Symlink the repository into ComfyUI's custom_nodes (replacing a stale link, never a real folder)."""
    link = Path(comfy_dir) / "custom_nodes" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if Path(os.readlink(link)) == repo:
            return link
        link.unlink()
    elif link.exists():
        raise ComfyError(f"{link} exists and is not a symlink: remove it so the tests load this checkout")
    link.symlink_to(repo, target_is_directory=True)
    return link


class ComfyServer:
    """A ComfyUI server process on 127.0.0.1 with its own output/input/temp/user folders."""

    def __init__(self, comfy_dir: Path, python: str, workdir: Path, port: int | None = None,
                 extra_model_paths: list[Path] | None = None, extra_args: list[str] | None = None):
        self.comfy_dir, self.python, self.workdir = Path(comfy_dir), python, Path(workdir)
        self.port = port or free_port()
        self.extra_model_paths = extra_model_paths or []
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "comfyui.log"
        self.dirs = {k: self.workdir / k for k in ("output", "input", "temp", "user")}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def command(self) -> list[str]:
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
               "--output-directory", str(self.dirs["output"]), "--input-directory", str(self.dirs["input"]),
               "--temp-directory", str(self.dirs["temp"]), "--user-directory", str(self.dirs["user"])]
        for p in self.extra_model_paths:
            cmd += ["--extra-model-paths-config", str(p)]
        return cmd + self.extra_args

    def start(self, timeout: float = 240.0) -> "ComfyServer":
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
        # one torch thread: the tests check behaviour, not speed, and on a busy CI machine (or a shared
        # one) OpenMP threads spinning against other processes make every step many times slower
        env.setdefault("OMP_NUM_THREADS", "1")
        env.pop("PYTHONPATH", None)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), cwd=self.comfy_dir, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ComfyError(f"ComfyUI exited with code {self.proc.returncode} before serving; its log:\n"
                                 f"{self.log_tail(120)}")
            try:
                if requests.get(self.url + "/object_info", timeout=30).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        raise ComfyError(f"ComfyUI did not answer /object_info within {timeout:.0f} s; its log:\n{self.log_tail(120)}")

    def stop(self, timeout: float = 15.0):
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def client(self) -> ComfyClient:
        return ComfyClient(self.url)

    def pack_tracebacks(self) -> list[str]:
        """The pack's faults in the server log (see pack_faults)."""
        return pack_faults(self.log())

    def pack_import_line(self, name: str = PACK_NAME) -> str | None:
        """The 'Import times for custom nodes' line of our pack (None when it was not even tried)."""
        for line in self.log().splitlines():
            if "seconds" in line and line.rstrip().endswith(os.sep + name):
                return line.strip()
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def pack_faults(log: str) -> list[str]:
    """Tracebacks in a server log with a frame in the pack's own code (see pack_frame), except the pack's
    NodeError: ComfyUI logs a traceback for every failed node, and a NodeError is the message the pack
    meant the user to read (bad input, a test asking for it), not a fault."""
    blocks = [b.split("\n\n")[0].rstrip() for b in log.split("Traceback (most recent call last):")[1:]]
    return [b for b in blocks if any(pack_frame(f) for f in re.findall(r'File "([^"]+)"', b))
            and not re.search(r"^NodeError: ", b, re.M)]


@contextmanager
def checkout_server(prefix: str = "np_comfyui_", cache: Path = DEFAULT_CACHE):
    """A ComfyUI server (the set-up copy in `cache`) with this checkout linked as its pack, working in a
    fresh temporary folder (kept afterwards, for its comfyui.log). For the developer scripts; the tests
    use the session fixture in conftest.py. Raises ComfyNotSetUp when ComfyUI is not set up."""
    info = setup_info(cache)
    if info is None:
        raise ComfyNotSetUp(f"no ComfyUI copy in {Path(cache) / 'comfyui'}: run `{SETUP_HINT}` first")
    comfy_dir = Path(cache) / "comfyui"
    link_pack(comfy_dir)
    with ComfyServer(comfy_dir, info["python"], Path(tempfile.mkdtemp(prefix=prefix))) as server:
        yield server
