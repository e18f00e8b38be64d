"""What the console scripts share: user errors, a parser whose errors fit in three lines, number flags,
the painting settings as flags, the device and the thread count."""
from __future__ import annotations

import argparse
import dataclasses
import os

from ..painting.settings import FIELDS, PaintSettings, SettingError, check_value


class CliError(Exception):
    """A user error: printed as 'error: ...' with exit status 2, never a traceback."""


class ShortErrorParser(argparse.ArgumentParser):
    """An argparse parser whose errors take three lines: a one-line usage, the error, where the options are
    (argparse's own prints the whole usage first, 22 lines for `paint`, and the error is lost under it)."""

    def short_usage(self) -> str:
        positionals = [a for a in self._actions if not a.option_strings]
        names = [f"[{a.metavar or a.dest}]" if a.nargs in ("?", "*") else (a.metavar or a.dest) for a in positionals]
        return " ".join(["usage:", self.prog, "[options]", *names])

    def error(self, message):
        self.exit(2, f"{self.short_usage()}\n{self.prog}: error: {message}\n(all options: {self.prog} --help)\n")


def int_range(lo: int, hi: int, what: str):
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be {lo}..{hi}, got {v}")
        return v
    return parse


def float_range(lo: float, hi: float, what: str):
    def parse(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in {lo:g}..{hi:g}, got {v:g}")
        return v
    return parse


def add_setting_flags(parser: argparse.ArgumentParser, title: str = "painting settings", exclude=()):
    """A flag for every PaintSettings field that has one (but those in `exclude`), with the field's default,
    bounds and help."""
    group = parser.add_argument_group(title)
    for f in FIELDS.values():
        flags, help_text = f.metadata["flags"], f.metadata["help"].replace("%", "%%")
        if not flags or f.name in exclude:
            continue
        if f.type == "bool":
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                               help=f"{help_text} (default: {'on' if f.default else 'off'})")
            continue
        shown = f"'{f.default}'" if f.type == "str" else f"{f.default:g}"
        group.add_argument(*flags, dest=f.name, type=_setting_parser(f), default=f.default,
                           choices=f.metadata["choices"], help=f"{help_text} (default: {shown})")


def _setting_parser(f: dataclasses.Field):
    def parse(text):
        try:
            return check_value(f, text)
        except SettingError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = f.name       # argparse names a failed conversion by it
    return parse


def settings_from_args(args) -> PaintSettings:
    """The painting settings the flags asked for (checked once more as a whole: min <= max, ...)."""
    return PaintSettings(**{name: getattr(args, name) for name, f in FIELDS.items()
                            if f.metadata["flags"] and hasattr(args, name)})


def pick_device(spec: str):
    import torch
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise CliError(f"unknown device {spec!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
    return dev


def default_threads() -> int:
    """torch's thread count, reduced to the cores other jobs leave idle (1-minute load average):
    painting runs many small operations, and a thread that the OS parks makes every one of them
    wait (on 2 busy cores, 2 threads measured 5x slower than 1)."""
    import torch
    n = torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
        idle = cores - os.getloadavg()[0]
    except (AttributeError, OSError):
        return n
    return max(1, min(n, int(idle + 0.5)))


def check_output_path(path: str | None, exts: tuple[str, ...], what: str):
    """Refuse an output file name before any work: wrong extension, or a folder that does not exist."""
    if path is None:
        return
    ext = os.path.splitext(path)[1].lower()
    if ext not in exts:
        raise CliError(f"{what} {path!r}: the file name must end in {' or '.join(exts)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"{what} {path!r}: folder {folder} does not exist")
