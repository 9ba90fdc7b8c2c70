"""Live streams: ``trashseg stream MODEL SOURCE`` predicts a camera, an RTSP/HTTP(S) stream, a video file or a
watched folder frame by frame, and hands out each frame's objects as soon as they are found.

A camera does not wait for the model. Frames are read in their own thread into a queue of one place: when the
model falls behind, the frame waiting there is replaced by the newer one (counted as dropped), so what comes out
describes the scene now rather than a backlog, and memory holds at most one waiting frame however long it runs.
With ``every_frame`` (a video file predicted whole; a watched folder always) the reader waits instead and nothing
is dropped; a file without it is played at its own frame rate, as a camera would deliver it.
A live source (camera, URL) that breaks off is reopened with exponential backoff, a bounded number of times, each
attempt logged. Latency percentiles come from a fixed-size reservoir sample, so memory stays the same over weeks.
OpenCV (its FFmpeg build) reads cameras, streams (RTSP, HTTP MJPEG, HLS...) and files.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from trashseg.config import InferConfig
from trashseg.data.images import ImageError, read_image
from trashseg.draw import overlay_panel
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_open
from trashseg.infer.image_folder import SUFFIXES, visible
from trashseg.infer.objects import SegmentObject, find_objects
from trashseg.infer.predictor import Predictor
from trashseg.models.segmenter import InferenceModel

log = logging.getLogger(__name__)
READ_TIMEOUT_MS = 5000  # a network stream that sends nothing for this long counts as lost


class StreamError(TrashsegError):
    """A stream source that cannot be opened, or that was lost and could not be reconnected."""


@dataclass(frozen=True)
class Captured:
    """One frame as read: its number from the source (from 0; gaps are frames dropped), when it was read."""

    index: int
    captured: float  # time.time() at reading: when, on the wall clock
    tick: float  # time.perf_counter() at reading: what latency is measured from
    image: np.ndarray  # RGB
    file: str | None = None  # watched folder: the image's path relative to it
    position: float | None = None  # video file: seconds into the video


class FrameSource(Protocol):
    """Where frames come from. `realtime`: frames come whether read or not (a camera, a URL, a file played at its
    frame rate), so stale ones may be dropped; otherwise the reader may wait (a file, a folder). `live`: a break
    is a lost connection, reconnected (a camera, a URL), not the end."""

    realtime: bool
    live: bool
    name: str

    def open(self) -> None: ...  # StreamError when it cannot be

    def read(self, stop: threading.Event) -> Captured | None: ...  # None: the end, or the stream broke off

    def close(self) -> None: ...


class CaptureSource:
    """A camera index, a URL or a video file, through OpenCV. `pace`: a file is read at its own frame rate."""

    def __init__(self, spec: str | int, max_pixels: int, pace: bool = False):
        self.spec, self.max_pixels = spec, max_pixels
        self.name = re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", str(spec))  # a URL's password stays out of logs
        self.live = isinstance(spec, int) or bool(re.match(r"^[a-z][a-z0-9+.-]*://", str(spec), re.I))
        self.pace = pace and not self.live
        self.realtime = self.live or pace
        self._capture: cv2.VideoCapture | None = None
        self._index = 0  # frames read, over every reconnection
        self._fps = 0.0
        self._started = 0.0

    def open(self) -> None:
        self.close()
        if isinstance(self.spec, str) and not self.live and not Path(self.spec).is_file():
            raise StreamError(f"{self.spec}: no such video file, camera index or URL (rtsp://, http://...)")
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, READ_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        capture = (
            cv2.VideoCapture(self.spec)
            if isinstance(self.spec, int)
            else cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, params)
        )
        if not capture.isOpened():
            capture.release()
            raise StreamError(f"{self.name}: cannot be opened (no such camera, stream unreachable, or not a video)")
        w, h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > self.max_pixels:
            capture.release()
            raise StreamError(
                f"{self.name}: frames of {w}×{h} are over the limit of {self.max_pixels / 1e6:.1f} MP (data.max_pixels)"
            )
        self._capture, self._fps, self._started = capture, capture.get(cv2.CAP_PROP_FPS), time.perf_counter()

    def read(self, stop: threading.Event) -> Captured | None:
        if self._capture is None:
            return None
        if self.pace and self._fps > 0:  # a file played as a camera: frame i is due i/fps after the start
            due = self._started + self._index / self._fps - time.perf_counter()
            if due > 0 and stop.wait(due):
                return None
        ok, frame = self._capture.read()
        if not ok:
            return None
        tick, index = time.perf_counter(), self._index
        self._index += 1
        position = index / self._fps if not self.live and self._fps > 0 else None
        image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return Captured(index, time.time(), tick, image, position=position)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FolderSource:
    """A folder watched for new images (recursively; hidden files, such as a writer's temporary, skipped). Images
    already there when it opens are not predicted; a new one is taken once its size and time have stayed the same
    for one poll (write it elsewhere and move it in to have it taken at once), and predicted once. A file that
    cannot be read is logged and skipped. Memory: the names seen are pruned to those still in the folder."""

    live = realtime = False

    def __init__(self, folder: Path, max_pixels: int, poll: float = 0.2):
        self.folder, self.max_pixels, self.poll = folder, max_pixels, poll
        self.name = str(folder)
        self._seen: set[Path] = set()
        self._growing: dict[Path, tuple[int, int]] = {}  # new files not yet stable: (size, mtime) at the last poll
        self._ready: list[Path] = []
        self._index = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise StreamError(f"{self.folder}: no such folder to watch")
        self._seen = set(self._listing())

    def _listing(self) -> dict[Path, tuple[int, int]]:
        found = {}
        for path in self.folder.rglob("*"):
            if path.suffix.lower() in SUFFIXES and visible(path, self.folder):
                try:
                    st = path.stat()
                except OSError:  # gone since it was listed
                    continue
                if st.st_size and path.is_file():
                    found[path] = (st.st_size, st.st_mtime_ns)
        return found

    def _scan(self) -> None:
        present = self._listing()
        self._seen &= present.keys()
        for path, state in sorted(present.items()):
            if path in self._seen:
                continue
            if self._growing.get(path) == state:
                self._ready.append(path)
                self._seen.add(path)
                del self._growing[path]
            else:
                self._growing[path] = state
        self._growing = {p: s for p, s in self._growing.items() if p in present}

    def read(self, stop: threading.Event) -> Captured | None:
        while not stop.is_set():
            while self._ready:
                path = self._ready.pop(0)
                tick, captured = time.perf_counter(), time.time()
                try:
                    image = read_image(path, self.max_pixels, exif=True)
                except ImageError as exc:
                    log.warning("%s (skipped)", exc)
                    continue
                self._index += 1
                file = path.relative_to(self.folder).as_posix()
                return Captured(self._index - 1, captured, tick, image, file=file)
            self._scan()
            if not self._ready:
                stop.wait(self.poll)
        return None

    def close(self) -> None:
        pass


def open_source(spec: str, max_pixels: int, every_frame: bool = False) -> FrameSource:
    """A digit string is a camera index, a folder is watched, anything else is a URL or a video file."""
    if spec.isdigit():
        return CaptureSource(int(spec), max_pixels)
    if Path(spec).is_dir():
        return FolderSource(Path(spec), max_pixels)
    return CaptureSource(spec, max_pixels, pace=not every_frame)


@dataclass(frozen=True)
class Retry:
    """Reconnection of a lost live source: `attempts` tries, waiting `first` s, then twice as long each time, at
    most `longest` s. A success starts the count again."""

    attempts: int = 10
    first: float = 0.5
    longest: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.first * 2 ** (attempt - 1), self.longest)


class Reservoir:
    """A uniform sample of at most `size` values of an unbounded series (Vitter's algorithm R): percentiles of a
    run of any length in fixed memory. Hand-written: ten lines, where a streaming-quantile package would be a new
    dependency for one summary line."""

    def __init__(self, size: int = 4096, seed: int = 0):
        self.size, self.count = size, 0
        self.values: list[float] = []
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        if len(self.values) < self.size:
            self.values.append(value)
        elif (slot := self._random.randrange(self.count)) < self.size:
            self.values[slot] = value

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.values, q)) if self.values else None


@dataclass(frozen=True)
class FrameResult:
    """One predicted frame: what goes out as a JSON line (``to_dict``), plus its image and mask for callers that
    draw it."""

    index: int
    captured: float
    latency_ms: float
    objects: list[SegmentObject]
    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    file: str | None = None
    position: float | None = None

    def to_dict(self) -> dict[str, Any]:
        line: dict[str, Any] = {"frame": self.index, "captured": round(self.captured, 3)}
        if self.file is not None:
            line["file"] = self.file
        if self.position is not None:
            line["video_time"] = round(self.position, 3)
        return {
            **line,
            "latency_ms": round(self.latency_ms, 1),
            "height": int(self.mask.shape[0]),
            "width": int(self.mask.shape[1]),
            "objects": [o.to_dict() for o in self.objects],
        }


@dataclass(frozen=True)
class StreamSummary:
    source: str
    read: int  # frames read from the source
    predicted: int
    dropped: int  # read but never predicted: replaced by a newer frame, or waiting when the stream stopped
    reconnects: int
    seconds: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    @property
    def fps(self) -> float | None:
        """Frames predicted per second of the run."""
        return self.predicted / self.seconds if self.predicted and self.seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": self.fps}

    def __str__(self) -> str:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f} ms"

        return (
            f"{self.source}: {self.read} frames read, {self.predicted} predicted, {self.dropped} dropped, "
            f"{self.reconnects} reconnects in {self.seconds:.1f} s; {self.fps or 0:.2f} fps; latency p50 "
            f"{ms(self.latency_p50_ms)}, p95 {ms(self.latency_p95_ms)}"
        )


class Stream:
    """Iterate over it for one `FrameResult` per predicted frame; `stop()` (from a signal handler or another
    thread) ends the iteration after the frame in progress; `summary()` at any time. A live source lost for good
    raises `StreamError` at the end of the iteration, after the frames before it."""

    def __init__(
        self,
        model: InferenceModel,
        source: FrameSource,
        *,
        infer: InferConfig,
        device: str = "cpu",
        every_frame: bool = False,
        min_area: int = 0,
        max_frames: int | None = None,
        save_every: int | None = None,
        save_dir: Path | None = None,
        retry: Retry | None = None,
    ):
        if (save_every is None) != (save_dir is None) or (save_every is not None and save_every < 1):
            raise StreamError("--save-every N (N ≥ 1) and --save-dir DIR go together")
        self.model, self.source, self.retry = model, source, retry or Retry()
        self.predictor = Predictor(model, model.image_size, infer, device=device)
        self.drop = source.realtime and not every_frame
        self.min_area, self.max_frames = min_area, max_frames
        self.save_every, self.save_dir = save_every, save_dir
        self._queue: queue.Queue[Captured] = queue.Queue(maxsize=1)
        self._stop, self._reader_done = threading.Event(), threading.Event()
        self._failure: BaseException | None = None
        self._read = self._dropped = self._predicted = self._reconnects = 0
        self._latency = Reservoir()
        self._started: float | None = None
        self._ended: float | None = None

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> StreamSummary:
        start = self._started or time.perf_counter()
        return StreamSummary(
            source=self.source.name,
            read=self._read,
            predicted=self._predicted,
            dropped=self._dropped,
            reconnects=self._reconnects,
            seconds=(self._ended or time.perf_counter()) - start,
            latency_p50_ms=self._latency.percentile(50),
            latency_p95_ms=self._latency.percentile(95),
        )

    def __iter__(self) -> Iterator[FrameResult]:
        self.source.open()
        self._started = time.perf_counter()
        reader = threading.Thread(target=self._reader, name=f"read {self.source.name}", daemon=True)
        reader.start()
        try:
            while (self.max_frames is None or self._predicted < self.max_frames) and (item := self._next()):
                yield self._predict(item)
        finally:
            self._stop.set()
            reader.join(timeout=READ_TIMEOUT_MS / 1000 + 1)  # a read in progress ends by its own timeout at worst
            self._dropped += self._queue.qsize()  # read, never predicted
            self._ended = time.perf_counter()
        if self._failure is not None:
            raise self._failure

    # -- the reader thread ------------------------------------------------------------------------------------------
    def _reader(self) -> None:
        try:
            while not self._stop.is_set():
                item = self.source.read(self._stop)
                if item is None:
                    if self._stop.is_set() or not self.source.live or not self._reconnect():
                        break
                    continue
                self._read += 1
                self._offer(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._failure = exc
        finally:
            self.source.close()
            self._reader_done.set()

    def _offer(self, item: Captured) -> None:
        """Latest wins when dropping (only this thread puts, so after taking the stale frame out the put succeeds);
        otherwise wait for the room, or for the stop."""
        while not self._stop.is_set():
            try:
                if self.drop:
                    self._queue.put_nowait(item)
                else:
                    self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.drop:
                    try:
                        self._queue.get_nowait()
                        self._dropped += 1
                    except queue.Empty:  # the model took it meanwhile
                        pass
        self._dropped += 1  # stopped before it found room: read, never predicted

    def _reconnect(self) -> bool:
        """Reopen a lost live source with backoff; False when stopped or out of attempts (``_failure`` says why)."""
        last = "the stream ended"
        for attempt in range(1, self.retry.attempts + 1):
            delay = self.retry.delay(attempt)
            log.warning(
                "%s: stream lost (%s); reconnecting in %.1f s (attempt %d of %d)",
                self.source.name,
                last,
                delay,
                attempt,
                self.retry.attempts,
            )
            if self._stop.wait(delay):
                return False
            try:
                self.source.open()
            except StreamError as exc:
                last = str(exc)
                continue
            self._reconnects += 1
            log.warning("%s: reconnected", self.source.name)
            return True
        self._failure = StreamError(
            f"{self.source.name}: stream lost and not back after {self.retry.attempts} reconnection attempts ({last})"
        )
        return False

    # -- the model's side -----------------------------------------------------------------------------------------
    def _next(self) -> Captured | None:
        """The next frame to predict; None when stopped, or when the reader has ended and nothing waits."""
        while not self._stop.is_set():
            try:
                return self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._reader_done.is_set():  # it may have put its last frame just before
                    try:
                        return self._queue.get_nowait()
                    except queue.Empty:
                        return None
        return None

    def _predict(self, item: Captured) -> FrameResult:
        probs = self.predictor.predict([item.image])[0]  # probabilities: objects' confidences need them
        mask = probs.argmax(0).astype(np.uint8)
        found = find_objects(mask, self.model.classes, probs, min_area=self.min_area)
        latency = (time.perf_counter() - item.tick) * 1000
        self._latency.add(latency)
        self._predicted += 1
        result = FrameResult(
            item.index, item.captured, latency, found, item.image, mask, file=item.file, position=item.position
        )
        if self.save_every and self.save_dir is not None and (self._predicted - 1) % self.save_every == 0:
            save_frame(self.save_dir, result, self.model.classes)
        return result


def save_frame(folder: Path, result: FrameResult, classes: list[str]) -> None:
    """``masks/<frame>.png`` (class ids) and ``overlays/<frame>.jpg`` (the prediction drawn over the frame)."""
    stem = f"{result.index:08d}"
    _write(folder / "masks" / f"{stem}.png", cv2.imencode(".png", result.mask)[1])
    panel = cv2.cvtColor(overlay_panel(result.image, result.mask, classes), cv2.COLOR_RGB2BGR)
    _write(folder / "overlays" / f"{stem}.jpg", cv2.imencode(".jpg", panel, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])


def _write(path: Path, data: np.ndarray) -> None:
    with atomic_open(path, "wb", durable=False) as fh:
        fh.write(data.tobytes())


@contextmanager
def stopped_by_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call `stop` (the stream ends cleanly, its summary written) instead of killing the process;
    the handlers before are restored after. From the main thread only, as Python's signal handlers are."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
