"""Thumbnails for example_workflows/: a drawing of the workflow graph, with its result beside it when one
is given (ComfyUI's template browser shows <name>.jpg next to <name>.json).

    python -m tests.e2e.thumbnails [--run]

draws every example from its JSON file. With --run, each workflow is also run as shipped in a real
ComfyUI (needs the shipped painters, and CLIP weights for the text workflows; slow on a CPU) and its
output image is placed beside the graph.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap

from PIL import Image, ImageDraw, ImageFont

from .comfy import REPO, ComfyNotSetUp, PromptFailed, checkout_server
from .examples import EXAMPLES, EXAMPLES_DIR

BACKGROUND = (32, 32, 36)
NODE = (53, 53, 58)
TITLE = (42, 42, 46)
OURS = (58, 78, 104)          # title bar of the pack's nodes
NOTE = (102, 85, 51)
MUTED = (70, 70, 70)
TEXT = (225, 225, 225)
DIM = (160, 160, 160)
TYPE_COLOURS = {"IMAGE": (100, 181, 246), "MASK": (129, 199, 132), "NEURAL_PAINTER": (255, 183, 77),
                "STROKES": (240, 98, 146), "PAINT_LOSS": (186, 104, 200), "CLIP_MODEL": (255, 213, 79),
                "STRING": (161, 136, 127)}
ROW, TITLE_H = 22, 28


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _display_name(node: dict, info: dict | None) -> str:
    if node.get("title"):
        return node["title"]
    if info and node["type"] in info:
        return info[node["type"]].get("display_name") or node["type"]
    return node["type"]


def _rows(node: dict):
    """(sockets, widgets) rows of a node as the frontend shows them."""
    sockets = [i for i in node.get("inputs") or [] if "widget" not in i or i.get("link") is not None]
    widget_names = [i["name"] for i in node.get("inputs") or [] if "widget" in i and i.get("link") is None]
    values = [v for v in node.get("widgets_values") or [] if v not in ("fixed", "randomize", "increment",
                                                                         "decrement", "image")]
    rows = []
    for name, value in zip(widget_names, values):
        if name in ("background", "color") and isinstance(value, int) and not isinstance(value, bool):
            value = f"#{value:06x}"  # colour widgets
        rows.append((name, value))
    return sockets, rows


def _short(value, n: int = 26) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def draw_workflow(workflow: dict, object_info: dict | None = None, scale: float = 1.0) -> Image.Image:
    """The workflow's nodes and links, drawn the way ComfyUI's canvas lays them out."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    boxes = {}
    for n in workflow["nodes"]:
        x, y = n["pos"]
        w, h = n.get("size", [320, 120])
        if n["type"] not in ("Note", "MarkdownNote"):
            sockets, widgets = _rows(n)
            h = TITLE_H + ROW * (max(len(sockets), len(n.get("outputs") or [])) + len(widgets)) + 10
        boxes[n["id"]] = (x, y, x + w, y + h)
    x0 = min(b[0] for b in boxes.values()) - 30
    y0 = min(b[1] for b in boxes.values()) - 30
    x1 = max(b[2] for b in boxes.values()) + 30
    y1 = max(b[3] for b in boxes.values()) + 30
    img = Image.new("RGB", (math.ceil((x1 - x0) * scale), math.ceil((y1 - y0) * scale)), BACKGROUND)
    d = ImageDraw.Draw(img)
    f_title, f_row = _font(round(15 * scale)), _font(round(13 * scale))

    def p(x, y):
        return ((x - x0) * scale, (y - y0) * scale)

    def out_pos(nid, slot):
        b = boxes[nid]
        return b[2], b[1] + TITLE_H + ROW * slot + ROW / 2

    def in_pos(nid, name):
        b = boxes[nid]
        sockets, _ = _rows(nodes[nid])
        k = [i for i, s in enumerate(sockets) if s["name"] == name]
        return b[0], b[1] + TITLE_H + ROW * (k[0] if k else 0) + ROW / 2

    # links under the nodes
    for link in workflow.get("links", []):
        _, src, slot, dst, tslot, kind = link[:6]
        if src not in nodes or dst not in nodes:
            continue
        name = (nodes[dst].get("inputs") or [{}] * (tslot + 1))[tslot].get("name", "")
        (ax, ay), (bx, by) = out_pos(src, slot), in_pos(dst, name)
        colour = TYPE_COLOURS.get(kind, (180, 180, 180))
        dx = max(40, abs(bx - ax) / 2)
        pts = []
        for t in [i / 24 for i in range(25)]:
            u = 1 - t
            x = u ** 3 * ax + 3 * u * u * t * (ax + dx) + 3 * u * t * t * (bx - dx) + t ** 3 * bx
            y = u ** 3 * ay + 3 * u * u * t * ay + 3 * u * t * t * by + t ** 3 * by
            pts.append(p(x, y))
        d.line(pts, fill=colour, width=max(2, round(3 * scale)))

    for nid, n in nodes.items():
        bx0, by0, bx1, by1 = boxes[nid]
        muted = n.get("mode") in (2, 4)
        if n["type"] in ("Note", "MarkdownNote"):
            d.rounded_rectangle([p(bx0, by0), p(bx1, by1)], radius=8 * scale, fill=NOTE)
            d.text(p(bx0 + 10, by0 + 6), _display_name(n, object_info), font=f_title, fill=TEXT)
            chars = max(20, int((bx1 - bx0) / 7.2))
            lines = []
            for para in (n.get("widgets_values") or [""])[0].split("\n"):
                lines += textwrap.wrap(para, chars) or [""]
            max_lines = int((by1 - by0 - TITLE_H - 6) / 16)
            for i, line in enumerate(lines[:max_lines]):
                d.text(p(bx0 + 10, by0 + TITLE_H + 2 + 16 * i), line, font=f_row, fill=TEXT)
            continue
        ours = n["type"].startswith("NeuralPainters")
        d.rounded_rectangle([p(bx0, by0), p(bx1, by1)], radius=8 * scale, fill=MUTED if muted else NODE)
        d.rounded_rectangle([p(bx0, by0), p(bx1, by0 + TITLE_H)], radius=8 * scale,
                            fill=MUTED if muted else (OURS if ours else TITLE))
        d.text(p(bx0 + 10, by0 + 6), _display_name(n, object_info) + (" (muted)" if muted else ""),
               font=f_title, fill=TEXT)
        sockets, widgets = _rows(n)
        for i, s in enumerate(sockets):
            y = by0 + TITLE_H + ROW * i + ROW / 2
            colour = TYPE_COLOURS.get(s.get("type"), (180, 180, 180))
            r = 5 * scale
            cx, cy = p(bx0, y)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            d.text(p(bx0 + 12, y - 8), s["name"], font=f_row, fill=DIM)
        for i, o in enumerate(n.get("outputs") or []):
            y = by0 + TITLE_H + ROW * i + ROW / 2
            colour = TYPE_COLOURS.get(o.get("type"), (180, 180, 180))
            r = 5 * scale
            cx, cy = p(bx1, y)
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            label = o.get("name", "")
            width = d.textlength(label, font=f_row)
            d.text((cx - width - 12 * scale, cy - 8 * scale), label, font=f_row, fill=DIM)
        first = TITLE_H + ROW * max(len(sockets), len(n.get("outputs") or []))
        for i, (name, value) in enumerate(widgets):
            y = by0 + first + ROW * i + 3
            d.rounded_rectangle([p(bx0 + 8, y), p(bx1 - 8, y + ROW - 4)], radius=6 * scale, fill=(40, 40, 44))
            d.text(p(bx0 + 16, y + 2), name, font=f_row, fill=DIM)
            text = _short(value)
            width = d.textlength(text, font=f_row)
            d.text((p(bx1 - 16, y)[0] - width, p(0, y + 2)[1]), text, font=f_row, fill=TEXT)
    return img


def thumbnail(graph: Image.Image, result: Image.Image | None = None, size=(768, 480)) -> Image.Image:
    """The graph fitted into `size`; with a result, the graph on the left and the result on the right."""
    w, h = size
    canvas = Image.new("RGB", size, BACKGROUND)
    graph_box = (w - h, h) if result is not None else (w, h)
    g = graph.copy()
    g.thumbnail(graph_box, Image.LANCZOS)
    canvas.paste(g, ((graph_box[0] - g.width) // 2, (h - g.height) // 2))
    if result is not None:
        r = result.convert("RGB")
        r.thumbnail((h, h), Image.LANCZOS)
        canvas.paste(r, (w - h + (h - r.width) // 2, (h - r.height) // 2))
    return canvas


def write_thumbnails(client, run: bool):
    """Draw every example's <name>.jpg; with `run`, run it through `client` and put its output beside it."""
    object_info = client.object_info()
    for name in EXAMPLES:
        workflow = json.loads((EXAMPLES_DIR / f"{name}.json").read_text())
        result = None
        if run:
            try:
                images = client.images(client.run_workflow(workflow, timeout=3600))
                result = next(iter(images.values()))[-1] if images else None
            except PromptFailed as e:
                print(f"{name}: not run ({str(e)[:300]})", file=sys.stderr)
        path = EXAMPLES_DIR / f"{name}.jpg"
        thumbnail(draw_workflow(workflow, object_info, scale=1.0), result).save(path, quality=90)
        print("wrote", path.relative_to(REPO), "(with output)" if result is not None else "(graph only)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="store_true", help="run each workflow and show its output beside the graph")
    args = ap.parse_args(argv)
    try:
        with checkout_server("np_thumbs_") as server:
            write_thumbnails(server.client(), args.run)
    except ComfyNotSetUp as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
