"""Painting a clip (painting/video.py): strokes follow the picture's motion, the clip flickers far less than
the same frames painted one by one, a still stretch stays still, strokes keep their ids; the clip's stroke file,
video files, `neural-painters paint-video` and the Paint Video node."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import MYPAINT_MISSING
from painter_models import load_painter
from painter_models.brush.strokes import StrokeSet
from painter_models.export.stroke_clip import load_clip, save_clip
from painter_models.export.stroke_file import StrokeFileError
from painter_models.export.video_files import read_frames, write_frames
from painter_models.objectives.objective import photo_objective
from painter_models.painter.shipped import find_painter
from painter_models.painting.optimize import paint
from painter_models.painting.video import frame_flow, move_strokes, paint_video

pytestmark = pytest.mark.usefixtures("one_thread")
SIDE, SHIFT, STROKES, STEPS = 96, 3, 40, 60


@pytest.fixture(scope="module")
def soft_brush():
    return load_painter(find_painter("soft_brush"))


def pan(frames: int, shift: int = SHIFT, side: int = SIDE) -> torch.Tensor:
    """A camera panning right over scikit-image's astronaut, `shift` px a frame: [T, 3, side, side]."""
    from skimage import data
    picture = torch.from_numpy(data.astronaut()[100:100 + 2 * side, 60:60 + 2 * side + 2 * shift * frames])
    picture = picture.permute(2, 0, 1)[None].float() / 255
    picture = torch.nn.functional.interpolate(picture, scale_factor=0.5, mode="area")
    return torch.cat([picture[..., t * shift:t * shift + side] for t in range(frames)])


def flicker(canvases, shift: int = SHIFT) -> float:
    """Mean absolute change from frame to frame once the camera's known motion is undone."""
    return float(np.mean([(canvases[t][..., :-shift] - canvases[t - 1][..., shift:]).abs().mean()
                          for t in range(1, len(canvases))]))


def grid_strokes(n=4, side=10.0, size=(32, 48)) -> StrokeSet:
    boxes = torch.tensor([[8.0 + 10 * i, 16.0, side] for i in range(n)])
    return StrokeSet(torch.full((n, 12), 0.5), boxes, size)


# -- moving strokes ---------------------------------------------------------------------------------------

def test_strokes_follow_a_translation_and_leave_when_off_the_canvas():
    strokes = grid_strokes()
    flow = torch.zeros(2, 32, 48)
    flow[0], flow[1] = 1.5, -14.0                        # down 1.5 px, left 14 px
    moved, keep = move_strokes(strokes, flow)
    assert keep.tolist() == [False, True, True, True]    # the first box (centre 8 -> -6, side 10) is wholly off
    np.testing.assert_allclose(moved.boxes.numpy(), (strokes.boxes[1:] + torch.tensor([-14.0, 1.5, 0])).numpy(),
                               atol=1e-4)


def test_strokes_grow_with_a_zoom():
    strokes = grid_strokes(size=(40, 48))
    y, x = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
    flow = torch.stack([(y - 20) * 0.1, (x - 24) * 0.1])      # a 1.1x zoom about the centre
    moved, keep = move_strokes(strokes, flow)
    assert keep.all()
    np.testing.assert_allclose(moved.boxes[:, 2].numpy(), 11.0, rtol=1e-3)
    np.testing.assert_allclose(moved.boxes[:, 0].numpy(), (24 + (strokes.boxes[:, 0] - 24) * 1.1).numpy(), atol=1e-3)


def test_the_flow_between_frames_is_the_cameras_motion():
    frames = pan(2)
    flow = frame_flow(frames[:1], frames[1:])
    inner = flow[:, 8:-8, 8:-8]
    assert abs(float(inner[1].median()) + SHIFT) < 0.1 and abs(float(inner[0].median())) < 0.1


# -- the clip ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_and_stills(soft_brush):
    torch.set_num_threads(1)
    frames = pan(3)
    clip = paint_video(soft_brush, frames, size=SIDE, strokes=STROKES, steps=STEPS, refine_steps=8, seed=0)
    stills = [paint(soft_brush, photo_objective(frames[t:t + 1], pixel=1.0, pixel_kind="l2"), SIDE, strokes=STROKES,
                    steps=STEPS, seed=0, target_for_seeding=frames[t:t + 1]).canvas for t in range(3)]
    return frames, clip, stills


@pytest.mark.skipif(MYPAINT_MISSING is not None, reason="the real brush paints the clip")
def test_the_clip_flickers_far_less_than_frames_painted_one_by_one(clip_and_stills):
    """Goes red when every frame is painted from scratch (the strokes jump) or when the strokes are not moved
    with the picture (they slide against it)."""
    frames, clip, stills = clip_and_stills
    coherent, one_by_one = flicker([f.canvas for f in clip.frames]), flicker(stills)
    assert coherent <= one_by_one / 3, (coherent, one_by_one)


def test_every_frame_is_about_as_good_as_a_still(clip_and_stills):
    from painter_models.metrics import psnr
    frames, clip, stills = clip_and_stills
    for t in range(3):
        assert float(psnr(clip.frames[t].canvas, frames[t:t + 1])) >= float(psnr(stills[t], frames[t:t + 1])) - 1.0


def test_strokes_keep_their_ids_and_new_ones_take_new_ids(clip_and_stills):
    _, clip, _ = clip_and_stills
    first, second = clip.frames[0], clip.frames[1]
    assert first.ids == list(range(STROKES)) and len(set(second.ids)) == len(second.ids)
    assert second.moved == sum(i < STROKES for i in second.ids) and second.moved >= STROKES - 5
    assert all(i >= STROKES for i in second.ids[second.moved:])
    kept = [first.ids.index(i) for i in second.ids[:second.moved]]
    shift = second.strokes.boxes[:second.moved, 0] - first.strokes.boxes[kept, 0]
    assert abs(float(shift.median()) + SHIFT) < 0.5      # they moved with the picture (and were refined a little)


def test_a_still_stretch_stays_still(soft_brush):
    frames = pan(1).repeat(3, 1, 1, 1)
    clip = paint_video(soft_brush, frames, size=SIDE, strokes=STROKES, steps=STEPS, refine_steps=8, seed=0)
    change = [float((clip.frames[t].canvas - clip.frames[t - 1].canvas).abs().mean()) for t in (1, 2)]
    assert max(change) < 0.004, change


# -- files ---------------------------------------------------------------------------------------------------

def test_the_clip_stroke_file_round_trips_and_refuses_what_it_is_not(tmp_path):
    a, b = grid_strokes(), grid_strokes(3)
    path = save_clip(str(tmp_path / "clip.json"), [(a, [0, 1, 2, 3], "f0.png"), (b, [1, 2, 7], "f1.png")], 12.0)
    clip = load_clip(path)
    assert clip.fps == 12.0 and [ids for _, ids, _ in clip.frames] == [[0, 1, 2, 3], [1, 2, 7]]
    assert torch.equal(clip.frames[1][0].boxes, b.boxes) and clip.frames[1][2] == "f1.png"
    doc = json.loads(open(path).read())
    doc["frames"][1]["ids"] = [1, 1, 7]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(StrokeFileError, match="frame 1: 'ids' must be 3 distinct"):
        load_clip(str(tmp_path / "bad.json"))
    with pytest.raises(StrokeFileError, match="not a clip stroke file"):
        (tmp_path / "one.json").write_text(json.dumps({"format": "neural-painters-strokes"}))
        load_clip(str(tmp_path / "one.json"))
    (tmp_path / "cut.json").write_text(open(path).read()[:300])          # a file cut short
    with pytest.raises(StrokeFileError, match="cut.json' is not valid JSON .* truncated"):
        load_clip(str(tmp_path / "cut.json"))
    (tmp_path / "nan.json").write_text(open(path).read().replace("12.0", "NaN", 1))
    with pytest.raises(StrokeFileError, match="nan.json': the file contains NaN"):
        load_clip(str(tmp_path / "nan.json"))


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm", "clip.gif", "frames"])
def test_clips_are_written_and_read_back(tmp_path, name):
    frames = pan(4, side=40)
    path = write_frames(str(tmp_path / name), frames, [f"a{t}.jpg" for t in range(4)], fps=8)
    clip = read_frames(path)
    assert clip.frames.shape == frames.shape
    assert float((clip.frames - frames).abs().mean()) < 0.06        # lossy codecs: close, not equal
    if name == "frames":
        assert clip.names == [f"a{t}.png" for t in range(4)]


def test_frames_of_different_sizes_are_refused(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (20, 24)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="differ in size"):
        read_frames(str(tmp_path))


# -- the CLI and the node --------------------------------------------------------------------------------------

def test_paint_video_cli_from_a_folder_to_a_folder(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for t, frame in enumerate(pan(3, side=48)):
        Image.fromarray((frame.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(src / f"shot_{t:02d}.png")
    from painter_models.cli.paint import main
    rc = main(["paint-video", str(src), "--out", str(tmp_path / "out"), "--strokes", "12", "--size", "48",
               "--steps", "6", "--refine-steps", "2", "--json", str(tmp_path / "clip.json"), "--quiet",
               "--rerender", str(tmp_path / "big"), "--rerender-scale", "2"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shot_00.png", "shot_01.png", "shot_02.png"]
    assert [Image.open(tmp_path / "big" / f"shot_0{t}.png").size for t in range(3)] == [(96, 96)] * 3
    clip = load_clip(str(tmp_path / "clip.json"))
    assert len(clip.frames) == 3 and all(len(s) == 12 for s, _, _ in clip.frames)


def test_an_interrupted_clip_resumes_where_it_stopped(tmp_path, capsys):
    """The stroke file is written after every frame; --resume paints only the frames it lacks, and they come out
    as the uninterrupted run painted them."""
    src = tmp_path / "in"
    src.mkdir()
    for t, frame in enumerate(pan(3, side=48)):
        Image.fromarray((frame.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(src / f"f{t}.png")
    from painter_models.cli.paint import main
    base = [str(src), "--strokes", "12", "--size", "48", "--steps", "6", "--refine-steps", "2", "--quiet"]
    assert main(["paint-video", *base, "--out", str(tmp_path / "whole"), "--json", str(tmp_path / "a.json")]) == 0
    whole = load_clip(str(tmp_path / "a.json"))
    save_clip(str(tmp_path / "b.json"), whole.frames[:2], whole.fps)          # as if stopped after two frames
    rc = main(["paint-video", *base, "--out", str(tmp_path / "resumed"), "--json", str(tmp_path / "b.json"),
               "--resume"])
    err = capsys.readouterr().err
    assert rc == 0, err
    resumed = load_clip(str(tmp_path / "b.json"))
    assert torch.equal(resumed.frames[2][0].boxes, whole.frames[2][0].boxes) and resumed.frames[2][1] == whole.frames[2][1]
    for t in range(3):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "whole" / f"f{t}.png")),
                              np.asarray(Image.open(tmp_path / "resumed" / f"f{t}.png")))
    # the frames the file holds are not painted again: a file from another seed's run sets the first two frames
    assert main(["paint-video", *base, "--seed", "1", "--out", str(tmp_path / "other"), "--json",
                 str(tmp_path / "o.json")]) == 0
    other = load_clip(str(tmp_path / "o.json"))
    save_clip(str(tmp_path / "o.json"), other.frames[:2], other.fps)
    assert main(["paint-video", *base, "--out", str(tmp_path / "mixed"), "--json", str(tmp_path / "o.json"),
                 "--resume"]) == 0
    for t in range(2):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "other" / f"f{t}.png")),
                              np.asarray(Image.open(tmp_path / "mixed" / f"f{t}.png")))
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "whole" / "f0.png")),
                              np.asarray(Image.open(tmp_path / "mixed" / "f0.png")))
    capsys.readouterr()
    save_clip(str(tmp_path / "c.json"), [(s, i, "other.png") for s, i, _ in whole.frames[:1]], whole.fps)
    rc = main(["paint-video", *base, "--out", str(tmp_path / "x"), "--json", str(tmp_path / "c.json"), "--resume"])
    assert rc == 2 and "not the first frames" in capsys.readouterr().err


def test_paint_video_cli_refuses_an_unknown_output(tmp_path, capsys):
    from painter_models.cli.paint import main
    rc = main(["paint-video", str(tmp_path), "--out", str(tmp_path / "clip.avi")])
    assert rc == 2 and "--out" in capsys.readouterr().err


def test_only_paint_video_has_the_video_flags(capsys):
    from painter_models.cli.paint import main
    shown = {}
    for command in ("paint", "paint-video"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown[command] = capsys.readouterr().out
    assert "--refine-steps" not in shown["paint"] and "--refine-steps" in shown["paint-video"]



def test_a_clips_objectives_build_the_feature_network_once(monkeypatch):
    from painter_models.objectives import backbones
    from painter_models.objectives.objective import photo_objectives
    built = []
    real = backbones.build_backbone
    monkeypatch.setattr(backbones, "build_backbone", lambda *a, **k: built.append(a) or real(*a, **k))
    objective_for = photo_objectives(feature=0.5)
    frames = pan(2, side=64)
    losses = [objective_for(frames[t:t + 1]) for t in range(2)]
    assert len(built) == 1 and all(loss.names == ["pixel", "feature"] for loss in losses)
    assert float(losses[0](frames[:1])) < float(losses[0](frames[1:]))     # each frame's own target


def test_the_time_limit_bounds_the_whole_clip(soft_brush):
    """Past the limit every frame is still delivered: the strokes carried along the motion, unrefined."""
    frames = pan(4, side=48)
    clip = paint_video(soft_brush, frames, size=48, strokes=12, steps=400, refine_steps=50, time_limit=0.5)
    assert len(clip.frames) == 4 and "time limit reached" in clip.note
    assert all(len(f.strokes) == len(clip.frames[0].strokes) for f in clip.frames)
    assert sum(f.seconds for f in clip.frames[1:]) < 3.0          # 3 x 50 steps would take far longer


def test_the_flow_of_a_large_frame_is_estimated_small_and_scaled_up():
    from painter_models.painting import video
    big = torch.nn.functional.interpolate(pan(2, shift=3, side=96), scale_factor=5, mode="bilinear")   # 480 px
    flow = frame_flow(big[:1], big[1:])
    assert flow.shape == (2, 480, 480) and video.FLOW_SIDE < 480
    assert abs(float(flow[1, 40:-40, 40:-40].median()) + 15) < 0.5        # 3 px a frame at 96 px: 15 px at 480


def test_with_every_stroke_out_of_view_new_ones_come_at_the_settings_sizes(soft_brush):
    """A frame whose strokes all left the picture (a whip pan): the new ones are the settings' usual sizes, not
    1 px (the empty carried set has no sizes to lend them)."""
    from painter_models.painting import video
    from painter_models.painting.settings import PaintSettings, default_sizes
    frame = pan(1, side=48)
    empty = StrokeSet(torch.zeros(0, 12), torch.zeros(0, 3), (48, 48), brush="mypaint:deevad/brush")
    painted = video._refine(soft_brush, photo_objective(frame, pixel=1.0), (48, 48),
                            PaintSettings(strokes=10, refine_steps=2), empty, torch.zeros(0), frame, None)
    assert len(painted.strokes) == 10
    assert float(painted.strokes.boxes[:, 2].min()) >= 0.5 * default_sizes((48, 48), 10)[0]


def test_what_is_not_a_clip_is_refused_with_what_to_give(tmp_path):
    (tmp_path / "x.mp4").write_text("not a video")
    with pytest.raises(ValueError, match="cannot read .*x.mp4.* as a video"):
        read_frames(str(tmp_path / "x.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no frames"):
        read_frames(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="does not exist: give a video file or a folder of frames"):
        read_frames(str(tmp_path / "missing.mp4"))


def test_steps_are_counted_over_the_whole_clip(soft_brush):
    """on_step gets the step in the clip (what one progress bar over all frames shows), rising to clip_steps."""
    from painter_models.painting.settings import PaintSettings
    from painter_models.painting.video import clip_steps
    settings = PaintSettings(size=48, strokes=12, steps=6, refine_steps=3)
    seen = []
    paint_video(soft_brush, pan(3, side=48), settings, on_step=lambda index, step, info: seen.append((index, step)))
    steps = [step for _, step in seen]
    assert steps == sorted(set(steps)) and steps[-1] == clip_steps(settings, 3) == 12
    assert [step for index, step in seen if index == 2] == [10, 11, 12]
