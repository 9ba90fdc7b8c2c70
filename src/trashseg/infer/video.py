"""Video in: ``trashseg predict MODEL --images clip.mp4 --every N`` keeps every Nth frame of a video as a photo.

The kept frames are written as JPEGs (quality 95) under ``OUT/frames/<video stem>/<frame index>.jpg`` and then
predicted as a folder of photos (``trashseg.infer.image_folder``), so the prediction folder keeps its contract
(``masks/clip/000120.jpg.png``, ``images.json`` listing the frames with their index and time) and ``overlay``,
``crf`` and ``ensemble`` work on it as on any other. Files rather than frames in memory: those steps read the
images again, and a rerun resumes without predicting a frame twice (frames already on disk are not rewritten).
JPEG rather than PNG: a 1080p frame is ~0.3 MB instead of ~3 MB, and the masks describe the stored frames.
OpenCV (its FFmpeg build) decodes; it turns a phone video upright by its rotation tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2

from trashseg.data.images import ImageTooLarge, check_decoded
from trashseg.errors import TrashsegError, VideoError
from trashseg.fileio import atomic_open
from trashseg.progress import progress_bar

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
FRAMES = "frames"  # the kept frames' folder inside the prediction folder
JPEG_QUALITY = 95


def is_video(spec: str | Path) -> bool:
    """A video suffix, not a folder: ``--images`` otherwise takes a folder or a pattern of photos."""
    return Path(spec).suffix.lower() in VIDEO_SUFFIXES and not Path(spec).is_dir()


@dataclass(frozen=True)
class Frame:
    index: int  # in the video, from 0
    path: Path
    seconds: float | None  # None when the video declares no frame rate


@dataclass(frozen=True)
class FrameStride:
    """Which frames to keep: every `every`-th from the first, at most `limit` of them (None: all)."""

    every: int = 1
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1 or (self.limit is not None and self.limit < 1):
            raise TrashsegError(f"--every and --max-frames must be at least 1 (got {self.every}, {self.limit})")

    def expected(self, declared: int) -> int | None:
        """How many frames a video that declares `declared` frames yields (None: it declares none)."""
        if declared <= 0:
            return self.limit
        kept = -(-declared // self.every)
        return min(kept, self.limit) if self.limit else kept


@contextmanager
def open_video(path: Path, max_pixels: int | None) -> Iterator[cv2.VideoCapture]:
    """An opened capture, checked: a file OpenCV cannot open, or whose frames declare more than `max_pixels`
    (data.max_pixels, as for photos; None: not checked), raises a named error before any frame is decoded."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            why = (
                "file not found"
                if not path.exists()
                else "cannot be opened as a video (corrupt, truncated, or a codec this OpenCV build lacks)"
            )
            raise VideoError(f"{path}: {why}")
        w, h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if max_pixels is not None and w * h > max_pixels:
            raise ImageTooLarge.named(
                str(path), f"frames of {w}×{h} are over the limit of {max_pixels / 1e6:.1f} MP (data.max_pixels)"
            )
        yield capture
    finally:
        capture.release()


def check_video(path: Path) -> None:
    """The named error of a video that cannot be opened, before a model (and its config's pixel limit) is loaded."""
    with open_video(path, None):
        pass


def frame_name(video: Path, index: int) -> str:
    """The kept frame's file name, relative to the frames folder: ``clip/000120.jpg``."""
    return f"{video.stem}/{index:06d}.jpg"


@dataclass(frozen=True)
class VideoFrames:
    frames: list[Frame]  # kept, in order, on disk
    problem: str | None  # why the stream ended early (truncated or corrupt), None when it was read to its end


def extract_frames(video: Path, frames_root: Path, stride: FrameStride, max_pixels: int) -> VideoFrames:
    """Write the kept frames of `video` under `frames_root` (those already there from an earlier run are kept as
    they are). A stream that breaks off (a frame that cannot be decoded, or an end well before the frame count its
    header declares) keeps the frames read until then and says why in ``problem``; ``VideoError`` when not one
    frame can be read."""
    with open_video(video, max_pixels) as capture:
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        kept: list[Frame] = []
        index, problem = 0, None
        with progress_bar() as bar:
            task = bar.add_task(f"frames of {video.name}", total=stride.expected(declared), rate="-")
            while (stride.limit is None or len(kept) < stride.limit) and capture.grab():
                if index % stride.every == 0:  # grab only: a skipped frame, or one already on disk, is not converted
                    path = frames_root / frame_name(video, index)
                    if not path.exists() and not _write_frame(capture, path, f"{video} frame {index}", max_pixels):
                        problem = f"frame {index} cannot be decoded"
                        break
                    kept.append(Frame(index, path, index / fps if fps > 0 else None))
                    bar.update(task, advance=1)
                index += 1
    to_the_end = problem is None and (stride.limit is None or len(kept) < stride.limit)
    if to_the_end and declared > 0 and index < declared - max(1, declared // 100):  # counts of some containers are
        problem = f"the stream ends after {index} of the {declared} frames it declares"  # estimates: a little slack
    if not kept:
        raise VideoError(f"{video}: no frame could be decoded ({problem or 'an empty stream'})")
    return VideoFrames(kept, f"{video}: {problem} (truncated or corrupt)" if problem else None)


def _write_frame(capture: cv2.VideoCapture, path: Path, name: str, max_pixels: int) -> bool:
    """Decode the grabbed frame and store it; False when it cannot be decoded. A frame whose size is not the
    declared one that `open_video` checked (a stream may change size midway; either way round, for a rotation
    tag) or is over the limit is refused before it is stored or predicted."""
    ok, frame = capture.retrieve()
    if not ok:
        return False
    w, h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    check_decoded(frame, name, max_pixels, (w, h), (h, w))
    with atomic_open(path, "wb") as fh:
        fh.write(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())
    return True
