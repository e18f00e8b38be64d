"""Quality against CPU time: the optimiser alone, the stroke predictor alone, the predictor refined by N steps,
and (when its binary is given) primitive's triangles, on the same photographs in the same run (issue 21).

    python bench/bench_predict.py                                      # 4 photographs x 200/1000 strokes
    python bench/bench_predict.py --primitive /path/to/primitive --jobs 2 --write

Every painting case runs paint() in its own process on one torch thread, as `neural-painters paint PHOTO
--strokes N --init seed|predict --steps S` paints (pixel L2, the real brush in the loop, its other defaults;
the refinement of predicted strokes at learning rate --refine-lr) and reports the PSNR of the painting
delivered (MyPaint's) against the photograph and the CPU seconds of paint() (prediction, steps, MyPaint).
A "cli" case times the whole CLI for the predictor alone (start-up and the PNG included: issue 21's 15 CPU s
bar), a "primitive" case primitive's triangles (one worker; PSNR of the PNG it writes). astronaut and coffee
are the bench's photographs; chelsea (scikit-image) and grace_hopper (matplotlib) were kept out of all tuning,
the predictor's training included. --write puts the table into BENCHMARKS.md and the plot into
bench/results/predict_quality_time.png (the README shows it).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_feature_colour import load_any_photo  # noqa: E402
from bench_paint import save_png  # noqa: E402

BENCHMARKS = os.path.join(ROOT, "BENCHMARKS.md")
PLOT = os.path.join(ROOT, "bench", "results", "predict_quality_time.png")
TITLE = "Quality against CPU time: optimiser, stroke predictor, both (bench/bench_predict.py)"
HELD_OUT = ("chelsea", "grace_hopper")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_paint_case(case: dict) -> dict:
    from painter_models import load_painter
    from painter_models.metrics import psnr
    from painter_models.objectives.objective import photo_objective
    from painter_models.painting.optimize import paint
    torch.set_num_threads(1)
    img = load_any_photo(case["image"], case["size"])
    painter = load_painter(case["painter"])
    objective = photo_objective(img, pixel=1.0, pixel_kind="l2")
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    changes = dict(learning_rate=case["lr"]) if case["lr"] else {}
    res = paint(painter, objective, case["size"], strokes=case["strokes"], steps=case["steps"], init=case["init"],
                seed=0, target_for_seeding=img, **changes)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    save_png(case["png"], res.canvas)
    return {**case, "psnr": float(psnr(res.canvas.float(), img)), "painted_by": res.renderer,
            "cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), "strokes_painted": len(res.strokes)}


def photo_file(name: str, size: int, folder: str) -> tuple[str, torch.Tensor]:
    img = load_any_photo(name, size)
    path = os.path.join(folder, f"{name}_{size}.png")
    save_png(path, img)
    return path, img


def run_external(cmd: list[str], png: str, img: torch.Tensor) -> dict:
    """PSNR of the PNG an external command writes and the CPU seconds of the command (its whole process tree:
    it is waited for, so RUSAGE_CHILDREN holds it)."""
    from PIL import Image
    from painter_models.metrics import psnr
    before = children_cpu()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    cpu = children_cpu() - before
    out = torch.from_numpy(np.asarray(Image.open(png).convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
    return {"psnr": float(psnr(out, img)), "cpu_s": cpu}


def run_cli_case(case: dict) -> dict:
    path, img = photo_file(case["image"], case["size"], case["folder"])
    cmd = [sys.executable, "-m", "painter_models.cli.paint", "paint", path, "--init", "predict", "--steps", "0",
           "--strokes", str(case["strokes"]), "--size", str(case["size"]), "--threads", "1", "--out", case["png"],
           "--quiet"]
    return {**case, **run_external(cmd, case["png"], img), "painted_by": "the whole CLI"}


def run_primitive_case(case: dict) -> dict:
    path, img = photo_file(case["image"], case["size"], case["folder"])
    cmd = [case["binary"], "-i", path, "-o", case["png"], "-n", str(case["strokes"]), "-m", "1",
           "-r", str(case["size"]), "-s", str(case["size"]), "-j", "1"]
    return {**case, **run_external(cmd, case["png"], img), "painted_by": "primitive (triangles)"}


CHILDREN = {"paint": run_paint_case, "cli": run_cli_case, "primitive": run_primitive_case}


def spawn(case: dict, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GOMAXPROCS": "1"}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(case)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        return {**case, "error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def plan_cases(args, painter: str) -> list[dict]:
    cases = []
    for image in args.images.split(","):
        for n in (int(s) for s in args.strokes.split(",")):
            base = dict(image=image, size=args.size, strokes=n, folder=args.out)
            png = lambda tag: os.path.join(args.out, f"{image}_{n}_{tag}.png")  # noqa: E731
            for steps in (int(s) for s in args.seed_steps.split(",")):
                cases.append({**base, "kind": "paint", "init": "seed", "steps": steps, "lr": 0.0,
                              "painter": painter, "png": png(f"seed{steps}")})
            for steps in (int(s) for s in args.refine_steps.split(",")):
                if n >= 1000 and steps > args.max_refine_1000:
                    continue
                cases.append({**base, "kind": "paint", "init": "predict", "steps": steps,
                              "lr": args.refine_lr if steps else 0.0, "painter": painter,
                              "png": png(f"predict{steps}")})
            cases.append({**base, "kind": "cli", "png": png("cli")})
            if args.primitive:
                cases.append({**base, "kind": "primitive", "binary": args.primitive, "png": png("primitive")})
    return cases


def label(r: dict) -> str:
    if r["kind"] == "paint" and r["init"] == "seed":
        return f"optimiser alone, {r['steps']} steps"
    if r["kind"] == "paint":
        return "predictor alone" if not r["steps"] else f"predictor + {r['steps']} steps (lr {r['lr']:g})"
    return {"cli": "predictor alone, the whole CLI (start-up and PNG)", "primitive": "primitive, triangles"}[r["kind"]]


def plot(results: list[dict], path: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    images = list(dict.fromkeys(r["image"] for r in results))
    counts = sorted({r["strokes"] for r in results})
    fig, axes = plt.subplots(len(counts), len(images), figsize=(4 * len(images), 3.4 * len(counts)), squeeze=False)
    styles = {"seed": ("optimiser alone", "o-", "tab:blue"), "predict": ("predictor (+ N steps)", "s-", "tab:red"),
              "primitive": ("primitive triangles", "^", "black")}
    for i, n in enumerate(counts):
        for j, image in enumerate(images):
            ax = axes[i][j]
            rows = [r for r in results if r["image"] == image and r["strokes"] == n and "error" not in r]
            for key, (name, style, colour) in styles.items():
                pts = sorted((r["cpu_s"], r["psnr"]) for r in rows
                             if (r["kind"] == "paint" and r["init"] == key) or r["kind"] == key)
                if pts:
                    ax.plot(*zip(*pts), style, color=colour, label=name)
            ax.set_xscale("log")
            ax.set_title(f"{image}{' (held out)' if image in HELD_OUT else ''}, {n} strokes", fontsize=10)
            ax.set_xlabel("CPU seconds (one thread)")
            ax.set_ylabel("PSNR dB")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def section(results: list[dict], command: str, started, load, machine: str, plot_path: str | None) -> str:
    lines = [f"## {TITLE} on {machine}", "",
             f"- Date: {started:%Y-%m-%d %H:%M}-{datetime.datetime.utcnow():%H:%M} UTC; load average at start "
             f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; torch {torch.__version__}",
             f"- Command: `{command}`",
             "- 256 px unless said; PSNR of the painting delivered (MyPaint's, or the PNG primitive writes) against the "
             "photograph; CPU s of one process on one thread (paint() for the paintings; the whole process for the CLI "
             "and primitive)", "",
             "| image | strokes | what | PSNR dB | CPU s |", "|---|---:|---|---:|---:|"]
    for r in results:
        held = " (held out)" if r["image"] in HELD_OUT else ""
        if "error" in r:
            lines.append(f"| {r['image']}{held} | {r['strokes']} | {label(r)} | error: {r['error'][:80]} | |")
            continue
        lines.append(f"| {r['image']}{held} | {r['strokes']} | {label(r)} | {r['psnr']:.2f} | {r['cpu_s']:.1f} |")
    if plot_path:
        lines += ["", f"Plot: `{os.path.relpath(plot_path, ROOT)}`."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--images", default="astronaut,coffee,chelsea,grace_hopper")
    p.add_argument("--strokes", default="200,1000")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed-steps", default="67,200", help="the optimiser alone: these step counts")
    p.add_argument("--refine-steps", default="0,33,100", help="the predictor, then these steps (0: alone)")
    p.add_argument("--max-refine-1000", type=int, default=33, help="refinement steps at most, at 1000+ strokes")
    p.add_argument("--refine-lr", type=float, default=0.1, help="the refinement's learning rate")
    p.add_argument("--primitive", default=None, help="primitive's binary (fogleman/primitive): adds its triangles")
    p.add_argument("--jobs", type=int, default=1, help="cases at once (each on one thread)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--out", default=os.path.join(ROOT, "out", "bench_predict"))
    p.add_argument("--write", action="store_true", help="replace this section in BENCHMARKS.md, write the plot")
    args = p.parse_args(argv)
    if args.child:
        case = json.loads(args.child)
        print(json.dumps(CHILDREN[case["kind"]](case)))
        return 0
    from bench_core import cpu_count, cpu_model, write_section
    from painter_models.painter.shipped import find_painter
    os.makedirs(args.out, exist_ok=True)
    command = "python bench/bench_predict.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started, load = datetime.datetime.utcnow(), os.getloadavg()
    cases = plan_cases(args, os.path.abspath(find_painter(None)))
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: spawn(c, args.timeout), cases))
    for r in results:
        print(json.dumps({k: v for k, v in r.items() if k not in ("painter", "png", "folder", "binary")}),
              file=sys.stderr)
    plot_path = plot(results, PLOT if args.write else os.path.join(args.out, "quality_time.png"))
    text = section(results, command, started, load, f"{cpu_model()}, {cpu_count()} cores", plot_path)
    print(text)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=args.out, delete=False) as f:
        json.dump(results, f)
    if args.write:
        write_section(text, BENCHMARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
