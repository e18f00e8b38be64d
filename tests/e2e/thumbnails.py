"""Thumbnails of the example workflows and the README's workflow picture: screenshots of ComfyUI's own
frontend (headless Chromium, see browser.py) with each example loaded.

    python -m tests.e2e.thumbnails [--run NAME ...] [--only NAME ...]   (from the repository root; e2e setup)

writes example_workflows/<name>.jpg (ComfyUI's template browser shows it beside <name>.json) and
docs/images/workflow_image_to_painting.png. With --run, the named examples are first run as shipped from the
page (its Run button) so that their output nodes show the result; on a CPU that takes minutes each, and the
text examples need CLIP weights.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time

from PIL import Image

from .browser import BrowserUnavailable, ComfyPage
from .comfy import REPO, ComfyNotSetUp, checkout_server
from .examples import EXAMPLES, EXAMPLES_DIR

README_PICTURE = REPO / "docs" / "images" / "workflow_image_to_painting.png"
README_EXAMPLE = "image_to_painting"
THUMBNAIL_SIZE = (1200, 720)       # the largest a thumbnail gets; the graph keeps its proportions
OUTPUT_TYPES = ("SaveImage", "PreviewImage", "SaveAnimatedWEBP", "SaveAnimatedPNG")


def output_node(workflow: dict) -> int:
    """The first unmuted node that shows an image."""
    return next(n["id"] for n in workflow["nodes"] if n["type"] in OUTPUT_TYPES and n.get("mode", 0) == 0)


def write_pictures(page: ComfyPage, run: set[str], run_timeout: float, only=None) -> list[str]:
    written = []
    for name in only or EXAMPLES:
        workflow = json.loads((EXAMPLES_DIR / f"{name}.json").read_text())
        report = page.load_workflow(workflow)
        if not report.clean:
            raise RuntimeError(f"{name} does not load cleanly in the browser: {report}")
        if name in run:
            start = time.monotonic()
            page.queue()
            page.wait_for_output_image(output_node(workflow), timeout=run_timeout)
            print(f"{name}: ran as shipped in {time.monotonic() - start:.0f} s", flush=True)
        box = page.frame_graph()
        shot = Image.open(io.BytesIO(page.driver.get_screenshot_as_png())).convert("RGB")
        if name == README_EXAMPLE:  # the whole window, at the size a reader's screen shows it
            README_PICTURE.parent.mkdir(parents=True, exist_ok=True)
            shot.resize(page.window, Image.LANCZOS).save(README_PICTURE, optimize=True)
            written.append(str(README_PICTURE.relative_to(REPO)))
        margin = round(12 * page.pixel_ratio)
        thumb = shot.crop((max(0, box[0] - margin), max(0, box[1] - margin),
                           min(shot.width, box[2] + margin), min(shot.height, box[3] + margin)))
        thumb.thumbnail(THUMBNAIL_SIZE, Image.LANCZOS)
        path = EXAMPLES_DIR / f"{name}.jpg"
        thumb.save(path, quality=88, optimize=True)
        written.append(str(path.relative_to(REPO)))
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", nargs="*", default=[], choices=list(EXAMPLES), metavar="NAME",
                    help="run these examples as shipped first, so that the pictures show their results")
    ap.add_argument("--only", nargs="*", default=None, choices=list(EXAMPLES), metavar="NAME",
                    help="picture only these examples (the others' pictures stay as they are)")
    ap.add_argument("--run-timeout", type=float, default=3 * 3600, help="seconds a run may take (default 3 h)")
    args = ap.parse_args(argv)
    try:
        with checkout_server("np_thumbs_") as server, ComfyPage(server.url, pixel_ratio=2) as page:
            for path in write_pictures(page, set(args.run), args.run_timeout, args.only):
                print("wrote", path)
    except (ComfyNotSetUp, BrowserUnavailable) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
