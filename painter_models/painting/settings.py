"""Every setting of a painting in one place: its default, its bounds, its check, and the words the CLI
and the Optimize Actions node show for it.

    settings = PaintSettings(strokes=500, steps=300)      # checked here: a SettingError names the setting
    paint(painter, objective, canvas_size, settings)      # or paint(painter, objective, size, strokes=500)

`neural-painters paint` (cli/paint.py) builds its flags and Optimize Actions (nodes/nodes_optimize.py) its
widgets from these fields, so a default or a bound is written once, here; both then make their settings
with `PaintSettings(...)`, so the checks run once, in the core, with one message everywhere.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..limits import MAX_BOX_SIDE, MAX_CANVAS, MAX_NEW_STROKES, SEED_MAX
from .palette import PaletteError, parse_hex, parse_palette_spec

MAX_STEPS = 100_000
MIN_CANVAS_SIDE = 16         # px: below it a canvas holds no stroke worth painting


class SettingError(ValueError):
    """A setting out of its bounds; the message names the setting and what it accepts."""


def setting(default, help: str, *, lo=None, hi=None, choices=None, parse=None, step=None, flags=(), widget=None,
            clip=False):
    """A PaintSettings field. parse: checks a text setting (raises ValueError); flags: the CLI's option strings
    (none: not a CLI flag); widget: the node's widget type when it is not the field's own ("INT" for a float
    counted in whole pixels), False for none; clip: a clip's own (`paint-video` and Paint Video have it, `paint`
    and Optimize Actions not)."""
    return field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "choices": choices, "parse": parse,
                                            "step": step, "flags": tuple(flags), "widget": widget, "clip": clip})


@dataclass(frozen=True)
class PaintSettings:
    size: int = setting(256, "The canvas's long side in px; the canvas takes the photograph's aspect ratio "
                             "(square without one). width / height force another.",
                        lo=MIN_CANVAS_SIDE, hi=MAX_CANVAS, step=8, flags=("--size", "-s"))
    strokes: int = setting(300, "New strokes to paint (on top of any init strokes).", lo=0, hi=MAX_NEW_STROKES,
                           flags=("--strokes", "-n"))
    rounds: int = setting(3, "Coarse-to-fine rounds: the stroke size falls from the largest to the smallest "
                             "over them.", lo=1, hi=64, flags=("--rounds",))
    steps: int = setting(200, "Optimisation steps in all, split over the rounds.", lo=0, hi=MAX_STEPS,
                         flags=("--steps",))
    learning_rate: float = setting(0.2, "Adam learning rate of the stroke actions (cosine schedule per round).",
                                   lo=1e-4, hi=10.0, step=0.001, flags=("--learning-rate", "--lr"))
    min_stroke_size: float = setting(0.0, "Smallest stroke box side in px (0: from the canvas and the stroke "
                                          "count, or the init strokes' own when only they are refined).",
                                     lo=0.0, hi=MAX_BOX_SIDE * MAX_CANVAS, step=1,
                                     flags=("--min-stroke-size", "--min-size"), widget="INT")
    max_stroke_size: float = setting(0.0, "Largest stroke box side in px (0: from the canvas and the stroke "
                                          "count, or the init strokes' own when only they are refined).",
                                     lo=0.0, hi=MAX_BOX_SIDE * MAX_CANVAS, step=1,
                                     flags=("--max-stroke-size", "--max-size"), widget="INT")
    seed: int = setting(0, "Everything random derives from it: same seed, same painting.", lo=0, hi=SEED_MAX,
                        flags=("--seed",))
    blend: str = setting("alpha", "alpha: the painter's own alpha; linear: Nakano's darkness mask with the "
                                  "action's colour.", choices=("alpha", "linear"), flags=("--blend",))
    keep_training: bool = setting(False, "Keep optimising earlier rounds' strokes in later rounds (slower, a "
                                         "little better); off: each round's strokes freeze when the next starts.",
                                  flags=("--keep-training",))
    palette: str = setting("", "A fixed palette '#rrggbb, #rrggbb, ...', or a number k: a k-means palette of "
                               "the photograph; empty: any colour.", parse=parse_palette_spec,
                           flags=("--palette",))
    greyscale: bool = setting(False, "Grey strokes only.", flags=("--greyscale", "--grayscale"))
    opaque: bool = setting(False, "Full pressure: the brush's most opaque strokes.", flags=("--opaque",))
    background: str = setting("#ffffff", "Canvas colour under the strokes, #rrggbb or #rgb (not used over a "
                                         "background image or init strokes' own backdrop).",
                              parse=parse_hex, flags=("--background",))
    snapshot_every: int = setting(0, "Keep a snapshot of the canvas every this many steps and at the end of each "
                                     "round (0: none).", lo=0, hi=MAX_STEPS, flags=("--snapshot-every",))
    polish_steps: int = setting(0, "Extra steps after the rounds in which every stroke (earlier rounds and init "
                                   "strokes too) trains again, smoothing the seams between rounds; 0: none.",
                                lo=0, hi=MAX_STEPS, flags=("--polish-steps",))
    real_brush: bool = setting(True, "Paint with the real MyPaint brush in the loop where libmypaint is installed: "
                                     "the loss sees MyPaint's own strokes and the painting is MyPaint's. Off, or "
                                     "without libmypaint: the neural painter's canvas (the report says which).",
                               flags=("--real-brush",))
    width: int = setting(0, "Force the canvas width in px (0: from size and the photograph's aspect ratio); a "
                            "ratio other than the photograph's crops it.", lo=0, hi=MAX_CANVAS, step=8,
                         flags=("--width",))
    height: int = setting(0, "Force the canvas height in px (0: from size and the photograph's aspect ratio).",
                          lo=0, hi=MAX_CANVAS, step=8, flags=("--height",))
    time_limit: float = setting(0.0, "Stop after this many seconds with the best painting so far (later rounds' "
                                     "strokes may be missing); 0: no limit.", lo=0.0, hi=86400.0, step=1.0,
                                flags=("--time-limit",))
    brush_seed: int = setting(0, "The real brush's random texture (as a re-render's brush seed).", lo=0, hi=1000,
                              flags=("--brush-seed",))
    init: str = setting("seed", "Where the strokes start. seed: round by round where the error is largest, then "
                                "optimised; predict: a stroke predictor trained for the painter proposes them all "
                                "from the photograph in about a second, and the steps refine them all (steps 0: the "
                                "prediction alone; a learning rate of 0.1 suits the refinement). The shipped predictor "
                                "does not yet beat the optimiser: alone it paints about 6 dB below it, refined it "
                                "needs about twice the optimiser's time to come near it.", choices=("seed", "predict"),
                        flags=("--init",))
    # a clip (painting/video.py): each frame after the first starts from the previous frame's strokes
    refine_steps: int = setting(12, "Video: steps per frame after the first, refining the strokes carried over "
                                    "from the previous frame where the picture changed (the first frame takes "
                                    "steps, as a still).", lo=0, hi=MAX_STEPS, flags=("--refine-steps",),
                                clip=True)
    refine_learning_rate: float = setting(0.1, "Video: the learning rate of the strokes carried over from the "
                                               "previous frame where the picture under them changed (those under an "
                                               "unchanged picture stay as they are); new strokes take "
                                               "learning_rate.", lo=1e-4, hi=10.0, step=0.001,
                                          flags=("--refine-learning-rate", "--refine-lr"), clip=True)
    # the engine's own tuning: neither a flag nor a widget
    optimize_boxes: bool = setting(True, "Optimise the strokes' positions and scales too.", widget=False)
    box_lr_scale: float = setting(0.3, "Learning rate of the boxes relative to the actions'.", lo=0.0, hi=10.0,
                                  widget=False)
    min_lr_ratio: float = setting(0.05, "Where each round's cosine schedule ends, relative to learning_rate.",
                                  lo=0.0, hi=1.0, widget=False)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, check_value(f, getattr(self, f.name)))
        if self.min_stroke_size and self.max_stroke_size and self.min_stroke_size > self.max_stroke_size:
            raise SettingError(f"min_stroke_size {self.min_stroke_size:g} is larger than max_stroke_size "
                               f"{self.max_stroke_size:g}")

    def replace(self, **changes) -> "PaintSettings":
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise TypeError(f"unknown painting settings {unknown}; the settings are: {', '.join(FIELDS)}")
        return dataclasses.replace(self, **changes)

    @property
    def palette_value(self):
        """None (any colour), an int k (a k-means palette of the target) or a [K, 3] tensor."""
        return parse_palette_spec(self.palette)

    @property
    def background_colour(self) -> tuple[float, float, float]:
        return parse_hex(self.background)


def check_value(f: dataclasses.Field, value):
    """`value` as field f's type, or a SettingError naming the field and what it accepts."""
    m, name = f.metadata, f.name
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if kind == "bool":
        if not isinstance(value, bool):
            raise SettingError(f"{name} must be true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise SettingError(f"{name} must be text, got {value!r}")
        if m["choices"] and value not in m["choices"]:
            raise SettingError(f"{name} must be one of {', '.join(m['choices'])}, got {value!r}")
        if m["parse"]:
            try:
                m["parse"](value)
            except PaletteError as e:
                message = str(e)
                raise SettingError(message if message.startswith(name) else f"{name}: {message}") from None
        return value
    number = _number(value, whole=kind == "int")
    lo, hi = m["lo"], m["hi"]
    if number is None or not (lo <= number <= hi):
        what = "a whole number" if kind == "int" else "a number"
        raise SettingError(f"{name} must be {what} in {lo:g}..{hi:g}, got {value!r}")
    return number


def _number(value, whole: bool):
    """int or float from a number or its text (the CLI's); None when it is not one (NaN, 2.5 for a count)."""
    if isinstance(value, bool):
        return None
    if whole and isinstance(value, int):
        return value          # exact: a 64-bit seed would lose its last digits as a float
    if whole and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    if whole:
        return int(v) if v == int(v) else None
    return v


FIELDS = {f.name: f for f in dataclasses.fields(PaintSettings)}
CLIP_SETTINGS = tuple(name for name, f in FIELDS.items() if f.metadata["clip"])
DEFAULTS = PaintSettings()


def plan_canvas(settings: PaintSettings, photo_size: tuple[int, int] | None) -> tuple[tuple[int, int], str]:
    """((height, width) of the canvas, what became of the photograph's frame): `size` is the long side at the
    photograph's aspect ratio (square without a photograph); width and/or height, when set, override it."""
    ph, pw = photo_size if photo_size is not None else (None, None)
    ratio = ph / pw if photo_size is not None else 1.0                       # height / width
    size, width, height = settings.size, settings.width, settings.height
    if width and height:
        h, w = height, width
    elif width:
        w, h = width, max(MIN_CANVAS_SIDE, round(width * ratio))
    elif height:
        h, w = height, max(MIN_CANVAS_SIDE, round(height / ratio))
    elif ratio <= 1:
        w, h = size, max(MIN_CANVAS_SIDE, round(size * ratio))
    else:
        h, w = size, max(MIN_CANVAS_SIDE, round(size / ratio))
    if h > MAX_CANVAS or w > MAX_CANVAS:
        raise SettingError(f"a {w}x{h} canvas is more than {MAX_CANVAS} px a side: lower size, width or height")
    if photo_size is None:
        return (h, w), "no photograph: the canvas is as asked"
    if abs(h / w - ratio) <= 0.01 * ratio:
        return (h, w), f"the {pw}x{ph} photograph fills the {w}x{h} canvas"
    if h / w < ratio:
        cut = ph - round(pw * h / w)
        return (h, w), (f"the {pw}x{ph} photograph was cropped to the {w}x{h} canvas: {cut} px of its height cut "
                        f"off (half at the top, half at the bottom); set width and height to 0 to keep it whole")
    cut = pw - round(ph * w / h)
    return (h, w), (f"the {pw}x{ph} photograph was cropped to the {w}x{h} canvas: {cut} px of its width cut off "
                    f"(half each side); set width and height to 0 to keep it whole")


# ----------------------------------------------------------------------------------------------
# the plan of a painting: stroke sizes, rounds and steps


def stroke_sizes(settings: PaintSettings, canvas_size, n_strokes: int, init_sides=None) -> tuple[float, float]:
    """(min, max) stroke box side in px: the settings' where set, else `default_sizes`, or where no new strokes
    are painted the range of the init strokes' sides (`init_sides`, in px of this canvas: they are refined as
    they are); refused when they do not fit the canvas."""
    h, w = canvas_size
    if n_strokes == 0 and init_sides is not None and len(init_sides):
        lo, hi = max(1.0, float(min(init_sides))), max(1.0, float(max(init_sides)))
    else:
        lo, hi = default_sizes(canvas_size, max(1, n_strokes))
    min_size = settings.min_stroke_size or lo
    max_size = settings.max_stroke_size or max(hi, min_size)
    if not 1 <= min_size <= max_size:
        raise SettingError(f"stroke sizes must satisfy 1 <= min_stroke_size <= max_stroke_size, got {min_size:g}, "
                           f"{max_size:g}")
    if max_size > MAX_BOX_SIDE * max(h, w):
        raise SettingError(f"max_stroke_size {max_size:g} px is more than {MAX_BOX_SIDE:g}x the {w}x{h} canvas; "
                           f"use at most {MAX_BOX_SIDE * max(h, w):g}")
    return float(min_size), float(max_size)


def default_sizes(canvas_size, n_strokes: int) -> tuple[float, float]:
    """(min_size, max_size) of stroke boxes in px for n strokes: a stroke covers about a tenth of
    its box, so boxes are a few times sqrt(area / n) across."""
    h, w = canvas_size
    natural = math.sqrt(h * w / max(1, n_strokes))
    lo = max(4.0, min(1.0 * natural, min(h, w)))
    hi = max(lo, min(5.0 * natural, 0.6 * min(h, w)))
    return lo, hi


def round_plan(n_strokes: int, rounds: int, min_size: float, max_size: float) -> list[tuple[int, float]]:
    """[(count, side)] per round: sides geometric from max_size to min_size, counts ~ 1 / side."""
    rounds = max(1, min(int(rounds), n_strokes)) if n_strokes > 0 else 0
    if rounds == 0:
        return []
    if rounds == 1:
        sides = [math.sqrt(min_size * max_size)]
    else:
        sides = [max_size * (min_size / max_size) ** (r / (rounds - 1)) for r in range(rounds)]
    weights = [1.0 / s for s in sides]
    total = sum(weights)
    counts = [max(1, int(n_strokes * wt / total)) for wt in weights]
    counts[-1] += n_strokes - sum(counts)
    while counts[-1] < 1:  # rounding took too many from the last round
        i = max(range(rounds - 1), key=lambda k: counts[k])
        counts[i] -= 1
        counts[-1] += 1
    return list(zip(counts, sides))


def split_steps(steps: int, rounds: int) -> list[int]:
    """`steps` split over `rounds` as evenly as possible, the remainder going to the last rounds."""
    per_round = [steps // rounds] * rounds
    for i in range(steps - sum(per_round)):
        per_round[-1 - i] += 1
    return per_round
