"""The live page of ``trashseg serve --stream SOURCE``: a camera by the line, predicted as ``trashseg stream`` does,
watched from a phone or a monitor as an MJPEG preview with the overlay and the objects updating.

One thread runs the `Stream` (latest frame wins, reconnects, bounded memory) once the model has loaded and keeps
only its newest result: the overlay as a JPEG and the frame's JSON line. Every viewer reads that one frame, so the
cost of the stream does not grow with the viewers; their count is bounded (`MAX_VIEWERS`), since each holds a
connection open for as long as it watches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2

from trashseg.draw import blend, class_colors
from trashseg.infer.stream import Stream, StreamError
from trashseg.models.segmenter import InferenceModel

log = logging.getLogger(__name__)
MAX_VIEWERS = 8
BOUNDARY = "frame"
JPEG_QUALITY = 80


@dataclass(frozen=True)
class LiveFrame:
    number: int  # counts the frames shown, from 1
    jpeg: bytes  # the overlay
    line: dict[str, Any]  # the frame's JSON line (`FrameResult.to_dict`)


class LiveFeed:
    """The newest predicted frame of one stream, shared by every viewer."""

    def __init__(self, make_stream: Callable[[InferenceModel], Stream]):
        self.make_stream = make_stream
        self._changed = threading.Condition()
        self._latest: LiveFrame | None = None
        self._stream: Stream | None = None
        self._viewers = threading.BoundedSemaphore(MAX_VIEWERS)
        self.ended: str | None = None  # why the stream stopped, once it has

    def start(self, model: InferenceModel) -> None:
        """Run the stream over `model` in a thread of its own (called once the model has loaded)."""
        self._stream = self.make_stream(model)
        threading.Thread(target=self._run, args=(model,), name="trashseg-live", daemon=True).start()

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()

    def _run(self, model: InferenceModel) -> None:
        assert self._stream is not None
        colors = class_colors(len(model.classes))
        try:
            for number, result in enumerate(self._stream, start=1):
                overlay = cv2.cvtColor(blend(result.image, result.mask, colors), cv2.COLOR_RGB2BGR)
                jpeg = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
                with self._changed:
                    self._latest = LiveFrame(number, jpeg, result.to_dict())
                    self._changed.notify_all()
            why = "the source ended"
        except StreamError as exc:
            why = str(exc)
            log.error("live stream: %s", exc)
        with self._changed:
            self.ended = f"{why}; {self._stream.summary()}"
            self._changed.notify_all()

    def latest(self) -> dict[str, Any]:
        """The newest frame's JSON line, the stream's counts so far, and why it ended (when it has)."""
        frame = self._latest
        summary = self._stream.summary().to_dict() if self._stream is not None else None
        return {"frame": frame.line if frame else None, "summary": summary, "ended": self.ended}

    def viewer(self) -> bool:
        """Take a viewer's place; False when `MAX_VIEWERS` already watch."""
        return self._viewers.acquire(blocking=False)

    def frames(self, wait: float = 5.0) -> Iterator[bytes]:
        """The MJPEG body of one viewer (who holds a place from `viewer`): each new overlay as one part, until the
        stream ends or nothing new comes for `wait` seconds more than once in a row (a stalled source)."""
        shown, idle = 0, 0
        try:
            while idle < 2:
                frame = self._wait_after(shown, wait)
                if frame is not None and frame.number > shown:
                    shown, idle = frame.number, 0
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n"
                    yield head.encode() + frame.jpeg + b"\r\n"
                elif self.ended is not None:
                    return
                else:
                    idle += 1
        finally:
            self._viewers.release()

    def _wait_after(self, shown: int, wait: float) -> LiveFrame | None:
        """The newest frame once it is newer than frame `shown` (or the stream ended, or `wait` s passed)."""
        with self._changed:
            self._changed.wait_for(
                lambda: (self._latest is not None and self._latest.number > shown) or self.ended is not None,
                timeout=wait,
            )
            return self._latest


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>trashseg live</title>
<style>body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
img{width:100%;max-height:75vh;object-fit:contain;background:#000}main{padding:.5em 1em}
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{padding:2px 6px;border-bottom:1px solid #333;
text-align:left}</style></head>
<body><img id="video" src="stream.mjpg" alt="live overlay">
<main><p id="status">waiting for the first frame...</p><table><thead><tr><th>class</th><th>area</th>
<th>confidence</th><th>box</th></tr></thead><tbody id="objects"></tbody></table></main>
<script>
const $ = (id) => document.getElementById(id);
async function refresh() {
  try {
    const s = await (await fetch("stream/latest.json")).json();
    if (s.frame) {
      $("status").textContent = `frame ${s.frame.frame}, ${s.frame.latency_ms} ms, ` +
        `${s.summary.dropped} dropped` + (s.ended ? ` (ended: ${s.ended})` : "");
      $("objects").replaceChildren(...s.frame.objects.map((o) => {
        const row = document.createElement("tr");
        const confidence = o.confidence == null ? "" : o.confidence.toFixed(2);
        for (const v of [o.class_name, o.area, confidence, o.bbox.join(", ")]) {
          const cell = document.createElement("td"); cell.textContent = v; row.append(cell);
        }
        return row;
      }));
    } else if (s.ended) { $("status").textContent = `ended: ${s.ended}`; }
  } catch (e) { $("status").textContent = "server unreachable"; }
}
setInterval(refresh, 500); refresh();
</script></body></html>
"""
