"""Video in: ``trashseg predict MODEL --images clip.mp4 --every N`` keeps every Nth frame of a video as a photo.

The kept frames are written as JPEGs (quality 95) under ``OUT/frames/<video stem>/<frame index>.jpg`` and
predicted as a folder of photos (``trashseg.infer.image_folder``) while the next ones decode (``read_ahead``: a
bounded number ahead, so the first masks come out at once, not after the whole video), so the prediction folder
keeps its contract
(``masks/clip/000120.jpg.png``, ``images.json`` listing the frames with their index and time) and ``overlay``,
``crf`` and ``ensemble`` work on it as on any other. Files rather than frames in memory: those steps read the
images again, and a rerun resumes without predicting a frame twice (frames already on disk are not rewritten).
JPEG rather than PNG: a 1080p frame is ~0.3 MB instead of ~3 MB, and the masks describe the stored frames.
OpenCV (its FFmpeg build) decodes; it turns a phone video upright by its rotation tag. A disk budget per video
(``MAX_DISK_GB`` by default) stops a long video before it fills the disk, and says how to go on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2

from trashseg.data.images import ImageTooLarge, check_decoded
from trashseg.errors import TrashsegError, VideoError
from trashseg.fileio import atomic_open

MAX_DISK_GB = 2.0  # default budget of one video's kept frames: an hour of 1080p at every frame would be ~32 GB
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
FRAMES = "frames"  # the kept frames' folder inside the prediction folder
READ_AHEAD = 32  # frames decoded (and written) at most ahead of prediction
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


class FrameReader:
    """Iterate for the kept frames of `video`, each written under `frames_root` as it is decoded (one already there
    from an earlier run is kept as it is), so prediction can start on the first while the rest decode.

    After the iteration, ``problem`` says why the stream broke off early (a frame that cannot be decoded, or an end
    well before the frame count its header declares; None when read to its end), and ``stopped`` why it stopped at
    the disk budget (`max_bytes` of this video's frames: a new frame is not written past it; frames already on disk
    are always taken). ``VideoError`` when not one frame can be read."""

    def __init__(
        self, video: Path, frames_root: Path, stride: FrameStride, max_pixels: int, max_bytes: int | None = None
    ):
        self.video, self.frames_root, self.stride = video, frames_root, stride
        self.max_pixels, self.max_bytes = max_pixels, max_bytes
        self.problem: str | None = None
        self.stopped: str | None = None

    def __iter__(self) -> Iterator[Frame]:
        with open_video(self.video, self.max_pixels) as capture:
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = capture.get(cv2.CAP_PROP_FPS)
            kept, index, used, problem = 0, 0, 0, None
            while (self.stride.limit is None or kept < self.stride.limit) and capture.grab():
                if index % self.stride.every == 0:  # grab only: a skipped frame, or one already on disk, is not
                    path = self.frames_root / frame_name(self.video, index)  # converted
                    if path.exists():
                        used += path.stat().st_size
                    else:
                        jpeg = _encoded(capture, f"{self.video} frame {index}", self.max_pixels)
                        if jpeg is None:
                            problem = f"frame {index} cannot be decoded"
                            break
                        if self.max_bytes is not None and used + len(jpeg) > self.max_bytes:
                            self.stopped = self._budget_message(index, fps, kept)
                            break
                        with atomic_open(path, "wb") as fh:
                            fh.write(jpeg)
                        used += len(jpeg)
                    kept += 1
                    yield Frame(index, path, index / fps if fps > 0 else None)
                index += 1
        limited = self.stride.limit is not None and kept >= self.stride.limit
        to_the_end = problem is None and self.stopped is None and not limited
        if to_the_end and declared > 0 and index < declared - max(1, declared // 100):  # counts of some containers
            problem = f"the stream ends after {index} of the {declared} frames it declares"  # are estimates: slack
        if not kept:
            raise VideoError(f"{self.video}: no frame could be decoded ({problem or 'an empty stream'})")
        self.problem = f"{self.video}: {problem} (truncated or corrupt)" if problem else None

    def _budget_message(self, index: int, fps: float, kept: int) -> str:
        when = f" ({index / fps:.1f} s into the video)" if fps > 0 else ""
        budget = (self.max_bytes or 0) / 1e9
        return (
            f"{self.video}: stopped before frame {index}{when} after {kept} frames, whose JPEGs reached the "
            f"{budget:g} GB budget of a video's frames (--max-disk); rerun with a larger --max-disk (0: no limit) "
            "to go on where it stopped (the frames predicted so far are kept), or keep fewer frames with --every N "
            "into another --out"
        )


Item = TypeVar("Item")


@dataclass(frozen=True)
class _Raised:
    error: BaseException


_END = object()


def read_ahead(items: Iterable[Item], ahead: int) -> Iterator[Item]:
    """`items` produced in a thread at most `ahead` in front of the consumer: decoding (and writing) the next
    frames overlaps predicting these, while memory and disk run ahead by `ahead` frames at most. An error of the
    producer is raised in the consumer; a consumer that stops early stops the producer."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer's thread
            put(_Raised(exc))
        finally:
            getattr(iterator, "close", lambda: None)()  # a generator's own cleanup (the capture's release) runs here

    thread = threading.Thread(target=produce, name="read ahead", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _encoded(capture: cv2.VideoCapture, name: str, max_pixels: int) -> bytes | None:
    """The grabbed frame as a JPEG; None when it cannot be decoded. A frame whose size is not the declared one that
    `open_video` checked (a stream may change size midway; either way round, for a rotation tag) or is over the
    limit is refused before it is stored or predicted."""
    ok, frame = capture.retrieve()
    if not ok:
        return None
    w, h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    check_decoded(frame, name, max_pixels, (w, h), (h, w))
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
