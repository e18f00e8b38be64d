"""The painting as SVG: every stroke a filled outline that swells and thins with its pressure, as the
brush paints it.

A stroke is drawn where MyPaint paints it (StrokeSet.geometry: its sampled path in canvas pixels, its
pressure along the path, its radius) as one closed path: the path offset on either side by half the
width the brush paints at that radius and pressure, with round ends, filled with the stroke's colour
at the brush's opacity. Width and opacity come from the brush's profile (BrushProfile): what MyPaint
paints across a straight stroke, by radius and pressure (mypaint.brush_profile, measured once per
brush). Without libmypaint a stored profile of classic/dry_brush stands in; the torch rasteriser
('raster' brushes) is drawn exactly as it renders. Background: a rect of the background colour and,
when the painting has one, the background image embedded as a PNG.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from ..files import atomic_write
from ..images import hex_colour, to_uint8
from ..brush.rerender import mypaint_brush_name
from ..brush.strokes import StrokeSet

PATH_POINTS = 24        # samples of a stroke's path in its outline (MyPaint paints 100)
CAP_POINTS = 7          # points on each round end


@dataclass(frozen=True)
class BrushProfile:
    """Paint across a stroke by radius (px) and physical pressure: width in units of 2 * radius (the
    width carrying the same paint at the peak opacity) and opacity (peak alpha), each [R][P]."""
    radius: tuple
    pressure: tuple
    width: tuple
    opacity: tuple

    @classmethod
    def from_dict(cls, d: dict) -> "BrushProfile":
        return cls(tuple(d["radius"]), tuple(d["pressure"]), tuple(map(tuple, d["width"])),
                   tuple(map(tuple, d["opacity"])))

    def lookup(self, radius, pressure):
        """(width factor, opacity) at each (radius px, physical pressure), bilinear in (log radius, pressure)."""
        r = np.log(np.clip(np.asarray(radius, np.float64), self.radius[0], self.radius[-1]))
        p = np.clip(np.asarray(pressure, np.float64), self.pressure[0], self.pressure[-1])
        out = []
        for table in (np.asarray(self.width), np.asarray(self.opacity)):
            by_radius = np.stack([np.interp(p, self.pressure, row) for row in table], -1)     # [..., R]
            logs = np.log(self.radius)
            i = np.clip(np.searchsorted(logs, r, side="right") - 1, 0, len(logs) - 2)
            f = np.clip((r - logs[i]) / (logs[i + 1] - logs[i]), 0, 1)
            lo = np.take_along_axis(by_radius, i[..., None], -1)[..., 0]
            hi = np.take_along_axis(by_radius, (i + 1)[..., None], -1)[..., 0]
            out.append(lo + f * (hi - lo))
        return out[0], out[1]


# classic/dry_brush by mypaint.brush_profile (libmypaint 1.5): the stand-in where libmypaint is missing
DRY_BRUSH_PROFILE = BrushProfile(
    radius=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
    pressure=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    width=((0.0, 1.0, 1.0, 1.0, 1.12, 1.31, 1.53, 1.72, 1.93),
           (0.0, 0.66, 0.79, 0.95, 1.12, 1.36, 1.59, 1.77, 2.01),
           (0.0, 0.53, 0.7, 0.9, 1.11, 1.33, 1.57, 1.79, 2.01),
           (0.0, 0.52, 0.65, 0.83, 1.03, 1.26, 1.47, 1.71, 1.89),
           (0.0, 0.5, 0.64, 0.82, 1.02, 1.24, 1.47, 1.7, 1.88),
           (0.0, 0.49, 0.63, 0.81, 1.01, 1.23, 1.45, 1.68, 1.85)),
    opacity=((0.0, 0.27, 0.47, 0.62, 0.69, 0.74, 0.77, 0.81, 0.82),
             (0.0, 0.31, 0.52, 0.63, 0.69, 0.73, 0.75, 0.77, 0.78),
             (0.0, 0.55, 0.74, 0.82, 0.86, 0.88, 0.89, 0.91, 0.93),
             (0.0, 0.49, 0.7, 0.78, 0.83, 0.84, 0.87, 0.88, 0.91),
             (0.0, 0.5, 0.7, 0.78, 0.83, 0.84, 0.86, 0.87, 0.91),
             (0.0, 0.5, 0.69, 0.78, 0.82, 0.83, 0.85, 0.87, 0.9)))

# the torch rasteriser (painter_models.brush.raster): a band 2 r (0.35 + p) wide at opacity 0.25 + 0.75 p / 0.8
RASTER_PROFILE = BrushProfile(
    radius=(1.0, 2.0), pressure=(0.0, 0.8),
    width=((0.35, 1.15), (0.35, 1.15)), opacity=((0.25, 1.0), (0.25, 1.0)))


def brush_profile(brush: str) -> BrushProfile:
    """The profile of the brush a StrokeSet names: measured with MyPaint, the rasteriser's own, or the
    stored dry-brush profile where libmypaint is not installed."""
    preset = mypaint_brush_name(brush)
    if preset is None:
        return RASTER_PROFILE
    from ..brush.mypaint import MyPaintUnavailable, brush_profile as measure
    try:
        return BrushProfile.from_dict(measure(preset))
    except MyPaintUnavailable:
        return DRY_BRUSH_PROFILE


def _num(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def stroke_outlines(strokes: StrokeSet, profile: BrushProfile):
    """(outline [N, K, 2] in canvas px, opacity [N]) of every stroke: the path offset by half the brush's
    width on each side, joined by round ends."""
    geo = strokes.geometry(PATH_POINTS)
    path = np.concatenate([geo["start"].numpy()[:, None], geo["path"].numpy()], 1)          # [N, P + 1, 2]
    pressure = geo["pressure"].numpy()
    pressure = np.concatenate([pressure[:, :1], pressure], 1)
    radius = np.exp(geo["log_radius"].numpy())[:, None]
    factor, opacity = profile.lookup(np.broadcast_to(radius, pressure.shape), pressure)
    half = radius * factor                                                                 # [N, P + 1]
    tangent = np.gradient(path, axis=1)
    tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True).clip(1e-9)
    normal = np.stack([-tangent[..., 1], tangent[..., 0]], -1)
    left, right = path + normal * half[..., None], path - normal * half[..., None]
    theta = np.linspace(0, math.pi, CAP_POINTS + 2)[1:-1][None, :, None]
    end = path[:, -1:] + half[:, -1:, None] * (np.cos(theta) * normal[:, -1:] + np.sin(theta) * tangent[:, -1:])
    start = path[:, :1] - half[:, :1, None] * (np.cos(theta) * normal[:, :1] + np.sin(theta) * tangent[:, :1])
    outline = np.concatenate([left, end, right[:, ::-1], start], 1)
    return outline, opacity.mean(1)


def strokes_to_svg(strokes: StrokeSet, profile: BrushProfile | None = None, title: str | None = None) -> str:
    """The painting as SVG 1.1: the background (colour, then the background image if any), then one
    filled outline per stroke in painting order. `profile`: default the strokes' brush's."""
    h, w = strokes.canvas_size
    s = strokes.cpu()
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1" '
           f'width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
           f"<title>{escape(title or f'{len(s)} brushstrokes')}</title>",
           f"<desc>{escape(f'neural-painters strokes: brush {s.brush}, blend {s.blend}, {len(s)} strokes')}</desc>",
           f'<rect x="0" y="0" width="{w}" height="{h}" fill="{hex_colour(s.background)}"/>']
    if s.background_image is not None:
        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(to_uint8(s.background_image.permute(1, 2, 0).numpy())).save(buf, format="PNG")
        out.append(f'<image x="0" y="0" width="{w}" height="{h}" preserveAspectRatio="none" '
                   f'xlink:href="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}"/>')
    out.append('<g stroke="none" fill-rule="nonzero">')
    if len(s):
        outlines, opacities = stroke_outlines(s, profile or brush_profile(s.brush))
        colours = s.actions[:, s.layout.indices("red", "green", "blue")].numpy()
        for outline, opacity, colour in zip(outlines, opacities, colours):
            d = "M" + " L".join(f"{_num(x)} {_num(y)}" for x, y in outline) + " Z"
            out.append(f'<path d="{d}" fill="{hex_colour(colour)}" fill-opacity="{opacity:.3f}"/>')
    out += ["</g>", "</svg>", ""]
    return "\n".join(out)


def write_svg(path: str, text: str) -> str:
    """Write an SVG document to `path` (atomically)."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)
    return path


def save_svg(path: str, strokes: StrokeSet, **kwargs) -> str:
    """Write strokes_to_svg(strokes, **kwargs) to `path` (atomically)."""
    return write_svg(path, strokes_to_svg(strokes, **kwargs))
