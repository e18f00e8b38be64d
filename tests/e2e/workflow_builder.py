"""Build UI-format workflows (what ComfyUI's frontend saves and loads) from /object_info.

Used to write the pack's example_workflows/ and test workflows: every widget value lands in the slot
the frontend expects (input_order, with the control_after_generate value after seed-like widgets),
sockets and links are filled in, and nodes are placed where the caller says.

    g = Graph(object_info)
    painter = g.add("NeuralPaintersLoadPainter", {"painter_name": "..."}, pos=(0, 0))
    render = g.add("NeuralPaintersRenderStrokes", pos=(400, 0))
    g.link(painter, "painter", render, "painter")
    workflow = g.to_ui()
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from .comfy import is_widget, widget_slots

NODE_WIDTH = 360
ROW = 24


@dataclass
class Node:
    id: int
    type: str
    pos: tuple[float, float]
    widgets: dict
    title: str | None = None
    size: tuple[float, float] | None = None
    inputs: list = field(default_factory=list)    # UI input dicts
    outputs: list = field(default_factory=list)   # UI output dicts
    widgets_values: list = field(default_factory=list)
    mode: int = 0
    color: str | None = None
    bgcolor: str | None = None


class Graph:
    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[Node] = []
        self.links: list[list] = []

    # -- nodes ---------------------------------------------------------------------------------
    def add(self, class_type: str, widgets: dict | None = None, pos=(0, 0), title: str | None = None,
            size=None, control: str = "fixed") -> Node:
        """A node with widget values by name (defaults for the rest). Seed-like widgets get the
        control_after_generate value `control` ("fixed" keeps example workflows reproducible)."""
        if class_type not in self.info:
            raise KeyError(f"{class_type!r} is not in /object_info")
        info = self.info[class_type]
        widgets = dict(widgets or {})
        node = Node(len(self.nodes) + 1, class_type, tuple(pos), widgets, title, size)
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        unknown = set(widgets) - set(specs)
        if unknown:
            raise KeyError(f"{class_type} has no inputs {sorted(unknown)}")
        order = info.get("input_order") or {s: list(info["input"].get(s, {})) for s in ("required", "optional")}
        for section in ("required", "optional"):
            for name in order.get(section, []):
                spec = info["input"][section][name]
                kind = "COMBO" if isinstance(spec[0], list) else spec[0]
                entry = {"localized_name": name, "name": name, "type": kind, "link": None}
                if is_widget(spec):
                    entry["widget"] = {"name": name}
                node.inputs.append(entry)
        for name, kind in widget_slots(info):
            spec = specs[name]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if kind == "value":
                if name in widgets:
                    value = widgets[name]
                elif "default" in opts:
                    value = opts["default"]
                elif isinstance(spec[0], list):
                    value = spec[0][0] if spec[0] else ""
                elif spec[0] == "COMBO":
                    value = (opts.get("options") or [""])[0]
                else:
                    value = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(spec[0])
                node.widgets_values.append(value)
            elif kind == "control":
                node.widgets_values.append(control)
            else:  # the upload button of LoadImage-like nodes
                node.widgets_values.append("image")
        names = info.get("output_name") or info.get("output", [])
        for i, (kind, name) in enumerate(zip(info.get("output", []), names)):
            node.outputs.append({"localized_name": name, "name": name, "type": kind, "links": [],
                                 "slot_index": i})
        self.nodes.append(node)
        return node

    def note(self, text: str, pos=(0, 0), size=(420, 160), title: str = "Note") -> Node:
        node = Node(len(self.nodes) + 1, "Note", tuple(pos), {}, title, tuple(size))
        node.widgets_values = [text]
        node.color, node.bgcolor = "#432", "#653"
        self.nodes.append(node)
        return node

    # -- links ---------------------------------------------------------------------------------
    def link(self, src: Node, output, dst: Node, input_name: str):
        """Connect src's output (name or index) to dst's input (a socket or a widget input)."""
        if isinstance(output, str):
            matches = [i for i, o in enumerate(src.outputs) if o["name"] == output]
            if not matches:
                raise KeyError(f"{src.type} has no output {output!r}: {[o['name'] for o in src.outputs]}")
            slot = matches[0]
        else:
            slot = int(output)
        targets = [i for i, inp in enumerate(dst.inputs) if inp["name"] == input_name]
        if not targets:
            raise KeyError(f"{dst.type} has no input {input_name!r}")
        t = targets[0]
        if dst.inputs[t]["link"] is not None:
            raise ValueError(f"{dst.type}.{input_name} is already linked")
        link_id = len(self.links) + 1
        kind = src.outputs[slot]["type"]
        self.links.append([link_id, src.id, slot, dst.id, t, kind])
        src.outputs[slot]["links"].append(link_id)
        dst.inputs[t]["link"] = link_id
        return link_id

    # -- export --------------------------------------------------------------------------------
    def _order(self) -> dict[int, int]:
        deps = {n.id: {l[1] for l in self.links if l[3] == n.id} for n in self.nodes}
        order, done = {}, set()
        while len(done) < len(self.nodes):
            ready = sorted(i for i, d in deps.items() if i not in done and d <= done)
            if not ready:
                raise ValueError("the graph has a cycle")
            for i in ready:
                order[i] = len(order)
                done.add(i)
        return order

    def _size(self, node: Node):
        if node.size:
            return list(node.size)
        widgets = sum(1 for i in node.inputs if "widget" in i)
        sockets = sum(1 for i in node.inputs if "widget" not in i)
        rows = max(sockets, len(node.outputs)) + widgets + sum(1 for v in node.widgets_values if v in ("fixed", "randomize"))
        if node.type in ("PreviewImage", "SaveImage", "SaveAnimatedWEBP", "LoadImage"):
            return [NODE_WIDTH, 360]
        return [NODE_WIDTH, 46 + ROW * rows]

    def to_ui(self, workflow_id: str | None = None) -> dict:
        order = self._order()
        nodes = []
        for n in self.nodes:
            d = {"id": n.id, "type": n.type, "pos": list(n.pos), "size": self._size(n), "flags": {},
                 "order": order[n.id], "mode": n.mode, "inputs": n.inputs, "outputs": n.outputs,
                 "properties": {"Node name for S&R": n.type} if n.type != "Note" else {},
                 "widgets_values": n.widgets_values}
            if n.title:
                d["title"] = n.title
            if n.color:
                d["color"], d["bgcolor"] = n.color, n.bgcolor
            nodes.append(d)
        return {"id": workflow_id or str(uuid.uuid4()), "revision": 0,
                "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": nodes, "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.75, "offset": [40, 40]}, "frontendVersion": "1.32.9"},
                "version": 0.4}
