"""predict --images clip.mp4: a video's kept frames predicted into a prediction folder like a folder of photos."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trashseg.data.images import ImageSizeMismatch, ImageTooLarge
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.infer.video import FrameReader, FrameStride


def write_video(path: Path, frames: int = 12, w: int = 48, h: int = 32, fourcc: str = "mp4v") -> Path:
    """Frame i is grey level 12·i plus a fixed texture (at 10 fps), so a kept frame tells which one it was; the
    texture makes frames, rather than the container's header and index, most of the file."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    texture = np.random.default_rng(0).integers(-10, 11, (h, w, 3))
    for i in range(frames):
        writer.write(np.clip(12 * i + texture, 0, 255).astype(np.uint8))
    writer.release()
    return path


def test_every_nth_frame_is_predicted_and_overlay_works(trained_run, tmp_path, cli):
    video, out = write_video(tmp_path / "clip.mp4"), tmp_path / "pred"
    code, text = cli(
        ["predict", trained_run, "--images", video, "--out", out, "--every", "5", "--objects", "--workers", "0"]
    )
    assert code == 0, text
    folder = PredictionFolder(out)
    assert folder.names() == ["clip/000000.jpg", "clip/000005.jpg", "clip/000010.jpg"]
    assert all(folder.mask(name).shape == (32, 48) for name in folder.names())
    assert (out / "objects" / "clip" / "000005.jpg.json").is_file()
    listed = json.loads((out / "images.json").read_text())
    assert [(i["frame_index"], i["time"]) for i in listed["images"]] == [(0, 0.0), (5, 0.5), (10, 1.0)]
    assert listed["info"]["video"] == {"file": str(video.resolve()), "every": 5, "max_frames": None}
    frame = cv2.imread(str(out / "frames" / "clip" / "000010.jpg"))
    assert abs(float(frame.mean()) - 120) < 3  # the 11th frame (grey 120), not another one
    code, text = cli(["overlay", out])
    assert code == 0 and (out / "overlays" / "clip" / "000010.jpg").is_file(), text


def test_a_rerun_resumes_and_a_frame_limit_stops_early(trained_run, tmp_path, cli):
    # a long output path: the summary line stays one line that scripts can grep, whatever the terminal's width
    video, out = write_video(tmp_path / "clip.avi", frames=20, fourcc="MJPG"), tmp_path / ("pred_" + "x" * 100)
    args = [
        "predict",
        trained_run,
        "--images",
        video,
        "--out",
        out,
        "--every",
        "3",
        "--max-frames",
        "4",
        "--workers",
        "0",
    ]
    code, text = cli(args)
    assert code == 0 and PredictionFolder(out).names() == [f"clip/{i:06d}.jpg" for i in (0, 3, 6, 9)], text
    first = (out / "masks" / "clip" / "000003.jpg.png").stat().st_mtime_ns
    code, text = cli(args)
    assert code == 0 and "'predicted': 0, 'skipped': 4" in text, text
    summary = [line for line in text.splitlines() if line.startswith(f"{out}: {{")]
    assert len(summary) == 1 and summary[0].endswith("}"), text
    assert (out / "masks" / "clip" / "000003.jpg.png").stat().st_mtime_ns == first
    code, text = cli(args[:-4] + ["--every", "2", "--workers", "0"])  # another stride into the same folder
    assert code == 2 and "already holds predictions of" in text and "--every 3, --max-frames 4" in text, text


def test_unreadable_videos_get_a_named_error_and_leave_nothing(trained_run, tmp_path, cli):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    whole = write_video(tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # the index (moov) is at the end: lost
    for name in ("notes.mp4", "cut.mp4", "missing.mp4"):
        out = tmp_path / f"pred_{name}"
        code, text = cli(["predict", trained_run, "--images", tmp_path / name, "--out", out])
        assert (
            code == 2 and f"{name}: " in text and ("cannot be opened as a video" in text or "file not found" in text)
        ), text
        assert not out.exists()


def test_a_video_that_breaks_off_keeps_the_frames_before_and_says_so(trained_run, tmp_path, cli):
    """An AVI cut in the middle still opens and declares all its frames: those read are predicted, the break named."""
    whole = write_video(tmp_path / "whole.avi", frames=20, fourcc="MJPG").read_bytes()
    (tmp_path / "cut.avi").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "pred"
    code, text = cli(["predict", trained_run, "--images", tmp_path / "cut.avi", "--out", out, "--workers", "0"])
    flat = " ".join(text.split())
    assert (
        code == 2
        and "cut.avi: the stream ends after" in flat
        and f"of the 20 frames it declares (truncated or corrupt); the frames before it are predicted in {out}" in flat
    ), text
    names = PredictionFolder(out).names()
    assert 0 < len(names) < 20 and names == [f"cut/{i:06d}.jpg" for i in range(len(names))]


def test_frames_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    with pytest.raises(ImageTooLarge, match=r"clip.mp4: frames of 48×32 are over the limit"):
        list(FrameReader(video, tmp_path / "frames", FrameStride(), max_pixels=1000))
    assert not (tmp_path / "frames").exists()


@pytest.mark.parametrize("scale", [2, 30])
def test_a_frame_larger_than_its_stream_declares_is_refused_before_it_is_stored(tmp_path, monkeypatch, scale):
    """Issue 27.1: OpenCV 5's FFmpeg backend scales every frame to the size it declared first (a crafted MJPEG AVI
    whose later frames are larger came out at the declared size), so a backend that would not is simulated: from
    frame 3 on, each frame comes out `scale` times larger in both directions than the stream says."""

    opencv_capture = cv2.VideoCapture

    class Growing:  # a wrapper, not a subclass: subclasses of cv2.VideoCapture crash the garbage collector
        def __init__(self, path):
            self.capture = opencv_capture(path)

        def __getattr__(self, name):
            return getattr(self.capture, name)

        def retrieve(self):
            ok, frame = self.capture.retrieve()
            grown = self.capture.get(cv2.CAP_PROP_POS_FRAMES) > 3
            return ok, cv2.resize(frame, None, fx=scale, fy=scale) if grown else frame

    monkeypatch.setattr(cv2, "VideoCapture", Growing)
    video = write_video(tmp_path / "clip.mp4")
    error, said = (ImageSizeMismatch, "96×64") if scale == 2 else (ImageTooLarge, "1440×960, 1.4 MP, over the limit")
    with pytest.raises(error, match=rf"clip.mp4 frame 3: decodes to {said}"):
        list(FrameReader(video, tmp_path / "frames", FrameStride(), max_pixels=1_000_000))
    stored = sorted(p.name for p in (tmp_path / "frames" / "clip").iterdir())
    assert stored == ["000000.jpg", "000001.jpg", "000002.jpg"]


def test_stride_options_are_only_for_videos(trained_run, tmp_path, cli):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), np.zeros((16, 16, 3), np.uint8))
    code, text = cli(["predict", trained_run, "--images", photos, "--out", tmp_path / "pred", "--every", "2"])
    assert code == 2 and "--every and --max-frames are for a video file" in text, text
    with pytest.raises(TrashsegError, match="at least 1"):
        FrameStride(every=0)


def test_the_first_masks_come_out_while_the_video_still_decodes(trained_run, tmp_path, cli, monkeypatch):
    """Frames are predicted as they are decoded: when the first mask is written, the decoder is at most a chunk
    and the read-ahead bound into an 80-frame video, not at its end."""
    from trashseg.infer import folder as folder_mod
    from trashseg.infer.video import READ_AHEAD

    video, out = write_video(tmp_path / "clip.mp4", frames=80), tmp_path / "pred"
    on_disk_at_each_mask: list[int] = []
    real_write = folder_mod.PredictionFolder.write

    def write(self, *args, **kwargs):
        on_disk_at_each_mask.append(len(list((out / "frames" / "clip").glob("*.jpg"))))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(folder_mod.PredictionFolder, "write", write)
    code, text = cli(["predict", trained_run, "--images", video, "--out", out, "--workers", "0", "--no-hflip"])
    assert code == 0 and len(on_disk_at_each_mask) == 80, text
    assert on_disk_at_each_mask[0] <= 8 + READ_AHEAD + 2 < 80, on_disk_at_each_mask
    listed = json.loads((out / "images.json").read_text())["images"]
    assert [i["frame_index"] for i in listed] == list(range(80))


def test_a_video_stops_at_its_disk_budget_says_how_to_go_on_and_goes_on(trained_run, tmp_path, cli):
    video, out = write_video(tmp_path / "clip.mp4", frames=20), tmp_path / "pred"
    first = cv2.VideoCapture(str(video)).read()[1]
    size = len(cv2.imencode(".jpg", first, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
    args = ["predict", trained_run, "--images", video, "--out", out, "--workers", "0"]
    code, text = cli([*args, "--max-disk", str(5.5 * size / 1e9)])  # about 5 frames
    flat = " ".join(text.split())
    assert code == 0 and "note: " in flat and "clip.mp4: stopped before frame" in flat, text
    assert "budget of a video's frames (--max-disk); rerun with a larger --max-disk (0: no limit) to go on" in flat
    kept = PredictionFolder(out).names()
    assert 3 <= len(kept) <= 7 and kept == [f"clip/{i:06d}.jpg" for i in range(len(kept))]
    on_disk = sum(p.stat().st_size for p in (out / "frames").rglob("*.jpg"))
    assert on_disk <= 5.5 * size
    code, text = cli([*args, "--max-disk", "0"])
    flat = "".join(text.split())
    assert code == 0 and f"'predicted':{20 - len(kept)},'skipped':{len(kept)}" in flat and "note:" not in text, text
    assert len(PredictionFolder(out).names()) == 20
