"""ComfyUI's own frontend in a real browser (headless Chromium driven by Selenium), as a user meets the pack:
load a workflow into the page, see what the page shows (missing node types, error dialogs, console errors,
widget values), take screenshots, queue a prompt from the page and wait for the image it shows.

Debian's `chromium` and `chromium-driver` are the browser (Selenium's own browser downloads are never used);
NP_CHROMIUM / NP_CHROMEDRIVER name other executables.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")
WINDOW = (1600, 900)
# What a returning user has already dismissed: the first-run template browser, the minimap, the banner
# advertising the new node renderer, the canvas statistics. They would cover the graph in every screenshot.
# Nodes keep their text when zoomed out (the frontend draws bare boxes below a font size by default).
USER_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasInfo": False,
                 "LiteGraph.Canvas.MinFontSizeForLOD": 0}
LOCAL_STORAGE = {"vueNodesBannerDismissed": "true"}
APT_HINT = "apt-get install -y --no-install-recommends chromium chromium-driver"


class BrowserUnavailable(RuntimeError):
    """No browser to drive here: the message says what is missing and how to install it."""


def executables() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or BrowserUnavailable saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError as e:
        raise BrowserUnavailable(f"selenium is not installed ({e}): pip install -e '.[test]'") from e
    chromium = os.environ.get("NP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("NP_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    if missing:
        raise BrowserUnavailable(f"no {' and no '.join(missing)} on PATH: {APT_HINT}")
    return chromium, driver


def is_offline_registry_lookup(message: str) -> bool:
    """The frontend asks ComfyUI's online registry (api.comfy.org) which pack each node of a loaded workflow
    comes from; with no internet (CI, this machine) the page's content security policy blocks the request and
    logs it as an error. That is the test machine being offline, not anything the pack does."""
    return "https://api.comfy.org/" in message and "Content Security Policy" in message


@dataclass
class LoadReport:
    """What the page shows after a workflow is loaded."""
    node_types: list[str]
    missing_types: list[str]              # node types the frontend has no definition for
    dialogs: list[str]                    # the text of every open dialog (missing nodes, errors, ...)
    console_errors: list[str]             # SEVERE console messages while loading (offline lookups left out)
    bad_widgets: list[str]                # widget values the widget cannot hold (a value saved in the wrong slot)
    widgets_values: dict = field(default_factory=dict)  # {node id: widgets_values} as the page saves them

    @property
    def clean(self) -> bool:
        return not (self.missing_types or self.dialogs or self.console_errors or self.bad_widgets)


class ComfyPage:
    """One browser tab on a ComfyUI server's frontend."""

    def __init__(self, server_url: str, profile_dir: str | None = None, window=WINDOW, pixel_ratio: float = 1.0):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        chromium, driver = executables()
        self.url, self.window, self.pixel_ratio = server_url, window, pixel_ratio
        self._profile = profile_dir or tempfile.mkdtemp(prefix="np_chromium_")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in CHROMIUM_FLAGS + (f"--user-data-dir={self._profile}", f"--window-size={window[0]},{window[1]}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        for key, value in USER_SETTINGS.items():
            requests.post(f"{server_url}/api/settings/{key}", json=value, timeout=30).raise_for_status()
        self.driver = webdriver.Chrome(options=options, service=Service(driver))
        try:
            # the viewport itself (a headless window's size includes no toolbar, but be exact)
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": window[0], "height": window[1], "deviceScaleFactor": pixel_ratio, "mobile": False})
            script = "".join(f"localStorage.setItem({k!r}, {v!r});" for k, v in LOCAL_STORAGE.items())
            self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
            self.open()
        except Exception:
            self.close()
            raise

    # -- the page --------------------------------------------------------------------------------
    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def open(self, timeout: float = 120.0):
        """Load the frontend and wait until the app and its node definitions are ready."""
        self.driver.get(self.url)
        self.wait_for("!!(window.app && window.app.graph && window.app.vueAppReady && window.LiteGraph)",
                      timeout, "the ComfyUI frontend never became ready")
        self.startup_errors = self.console_errors()  # logged while the page starts, before any workflow

    def wait_for(self, condition: str, timeout: float, what: str, poll: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(f"try {{ return ({condition}); }} catch (e) {{ return null; }}")
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f"{what} (waited {timeout:.0f} s)")

    def console_errors(self) -> list[str]:
        """SEVERE console messages since the last call, the offline registry lookups left out."""
        entries = self.driver.get_log("browser")
        return [e["message"] for e in entries if e["level"] == "SEVERE" and not is_offline_registry_lookup(e["message"])]

    def dialogs(self) -> list[str]:
        return self.js("return [...document.querySelectorAll('.p-dialog, .comfy-modal')]"
                       ".filter(e => e.offsetParent !== null).map(e => e.innerText.trim())")

    def close_dialogs(self):
        self.js("document.querySelectorAll('.p-dialog .p-dialog-close-button').forEach(b => b.click())")

    # -- workflows -------------------------------------------------------------------------------
    def load_workflow(self, workflow: dict, settle: float = 1.0) -> LoadReport:
        """app.loadGraphData(workflow), as dropping the file on the page does, and what the page shows then."""
        self.close_dialogs()
        self.console_errors()
        self.js("return window.app.loadGraphData(arguments[0])", workflow)
        time.sleep(settle)  # dialogs and lookups happen after the graph is configured
        state = self.js("""
            const nodes = window.app.graph.serialize().nodes;
            const bad = [];
            for (const node of window.app.graph.nodes) {
                for (const w of node.widgets ?? []) {
                    const v = w.value, o = w.options ?? {}, where = `${node.type} #${node.id} ${w.name} = ${JSON.stringify(v)}`;
                    if (w.type === 'number' && (typeof v !== 'number' || !Number.isFinite(v) ||
                                                (o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max)))
                        bad.push(`${where}: not a number in ${o.min}..${o.max}`);
                    else if (w.type === 'combo' && Array.isArray(o.values) && !o.values.includes(v))
                        bad.push(`${where}: not one of its ${o.values.length} choices`);
                    else if (w.type === 'toggle' && typeof v !== 'boolean')
                        bad.push(`${where}: not true/false`);
                    else if (['text', 'customtext'].includes(w.type) && typeof v !== 'string')
                        bad.push(`${where}: not text`);
                }
            }
            return {types: nodes.map(n => n.type),
                    missing: nodes.map(n => n.type).filter(t => !(t in LiteGraph.registered_node_types)),
                    bad, widgets: Object.fromEntries(nodes.map(n => [String(n.id), n.widgets_values ?? null]))};""")
        return LoadReport(state["types"], state["missing"], self.dialogs(), self.console_errors(), state["bad"],
                          state["widgets"])

    def set_widgets(self, node_id: int, values: dict):
        """Change widget values on the canvas, as a user typing into them does."""
        missing = self.js("""
            const node = window.app.graph.getNodeById(arguments[0]);
            const missing = [];
            for (const [name, value] of Object.entries(arguments[1])) {
                const w = node.widgets.find(w => w.name === name);
                if (!w) { missing.push(name); continue; }
                w.value = value;
                if (w.callback) w.callback(value);
            }
            window.app.graph.setDirtyCanvas(true, true);
            return missing;""", node_id, values)
        if missing:
            raise KeyError(f"node {node_id} has no widgets {missing}")

    def queue(self) -> None:
        """Queue the loaded workflow from the page, as the Run button does."""
        self.js("return window.app.queuePrompt(0)")

    def wait_for_output_image(self, node_id: int, timeout: float) -> dict:
        """Wait until the page shows an image in `node_id` (an output node) and the browser has loaded it;
        returns the output's {filename, subfolder, type}. Raises with the page's dialogs if a dialog opens
        (an execution error) before."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.js("""
                const out = window.app.nodeOutputs?.[String(arguments[0])];
                const node = window.app.graph.getNodeById(arguments[0]);
                const loaded = (node?.imgs ?? []).some(i => i.complete && i.naturalWidth > 0);
                return {images: out?.images ?? [], loaded};""", node_id)
            if state["images"] and state["loaded"]:
                return state["images"][0]
            dialogs = self.dialogs()
            if dialogs:
                raise RuntimeError(f"the page shows a dialog instead of an image: {dialogs}")
            time.sleep(0.5)
        raise TimeoutError(f"no image shown in node {node_id} after {timeout:.0f} s")

    def wait_for_dialog(self, timeout: float) -> list[str]:
        """Wait until the page opens a dialog (e.g. an execution error); returns the open dialogs' text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dialogs = self.dialogs()
            if dialogs:
                return dialogs
            time.sleep(0.5)
        raise TimeoutError(f"no dialog opened within {timeout:.0f} s")

    # -- pictures --------------------------------------------------------------------------------
    def screenshot(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    def frame_graph(self, clear=(80, 110, 30, 80)) -> tuple[int, int, int, int]:
        """Zoom and pan so the whole graph fills the canvas inside the menus and buttons (`clear`: left, top,
        right, bottom margins in CSS px); returns the graph's box on the screenshot (left, top, right, bottom)."""
        w, h = self.window
        area = [clear[0], clear[1], w - clear[2], h - clear[3]]
        box = self.js("""
            const canvas = window.app.canvas, ds = canvas.ds, title = LiteGraph.NODE_TITLE_HEIGHT;
            const [L, T, R, B] = arguments[0];
            let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
            for (const n of window.app.graph.nodes) {
                x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title);
                x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
            }
            const scale = Math.min((R - L) / (x1 - x0), (B - T) / (y1 - y0));
            ds.scale = scale;
            ds.offset[0] = (L + R) / 2 / scale - (x0 + x1) / 2;
            ds.offset[1] = (T + B) / 2 / scale - (y0 + y1) / 2;
            canvas.setDirty(true, true);
            return [x0, y0, x1, y1].map((v, i) => (v + ds.offset[i % 2]) * scale);""", area)
        time.sleep(0.5)  # the canvas redraws on the next frame
        return tuple(round(v * self.pixel_ratio) for v in box)

    def close(self):
        driver, self.driver = getattr(self, "driver", None), None
        if driver is not None:
            driver.quit()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
