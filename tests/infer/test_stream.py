"""trashseg stream: frames of a video file, a live HTTP MJPEG stream and a watched folder predicted as they come,
one JSON line each; stale frames dropped when the model is slower than the source; a lost stream reconnected."""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.infer.test_video import write_video
from trashseg.config import InferConfig
from trashseg.infer.objects import find_objects
from trashseg.infer.predictor import Predictor
from trashseg.infer.stream import (
    CaptureSource,
    FolderSource,
    Reservoir,
    Retry,
    Stream,
    StreamError,
)
from trashseg.models.segmenter import load_model

ROOT = Path(__file__).resolve().parents[2]


def scene(i: int, h: int = 64, w: int = 96) -> np.ndarray:
    """A frame with a bright disc that moves with `i` (BGR), so that frames differ and the model has shapes."""
    image = np.full((h, w, 3), 40, np.uint8)
    cv2.circle(image, (10 + (3 * i) % (w - 20), h // 2), 12, (30, 200, 240), -1)
    return image


class MJPEGServer:
    """A camera stand-in on 127.0.0.1: the first GET gets `frames` JPEGs as multipart/x-mixed-replace at `fps`,
    then the connection ends (later GETs: 503). Bounded: it stops sending by itself, and `close` takes it away."""

    def __init__(self, frames: int, fps: float = 30, port: int = 0):
        self.served, self.started, self.finished = 0, threading.Event(), threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if server.started.is_set():
                    self.send_error(503)
                    return
                server.started.set()
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                start = time.perf_counter()
                for i in range(frames):
                    time.sleep(max(0.0, start + i / fps - time.perf_counter()))
                    jpeg = cv2.imencode(".jpg", scene(i))[1].tobytes()
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    try:
                        self.wfile.write(head + jpeg + b"\r\n")
                    except OSError:  # the client went away
                        break
                    server.served += 1
                server.finished.set()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def mjpeg_server(frames: int, fps: float = 30, port: int = 0) -> Iterator[MJPEGServer]:
    server = MJPEGServer(frames, fps, port)
    try:
        yield server
    finally:
        server.close()


class Slow:
    """A model that takes at least `seconds` per call: slower than a 30 fps source on any machine."""

    def __init__(self, model, seconds: float):
        self.model, self.seconds = model, seconds
        self.info, self.classes, self.image_size, self.infer = model.info, model.classes, model.image_size, model.infer

    def __call__(self, images):
        time.sleep(self.seconds)
        return self.model(images)


def test_a_video_file_with_every_frame_is_predicted_frame_by_frame(trained_run, tmp_path, cli):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(9):
        writer.write(scene(i))
    writer.release()
    lines, saved = tmp_path / "frames.jsonl", tmp_path / "saved"
    args = ["stream", trained_run, video, "--every-frame", "--out", lines, "--no-hflip"]
    code, text = cli([*args, "--save-every", "4", "--save-dir", saved])
    assert code == 0, text
    assert "9 frames read, 9 predicted, 0 dropped" in " ".join(text.split()), text
    frames = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(9))
    assert [f["video_time"] for f in frames] == [i / 10 for i in range(9)]
    assert all(f["latency_ms"] > 0 and f["captured"] > 1e9 and (f["height"], f["width"]) == (64, 96) for f in frames)
    # the objects are the model's own on each decoded frame
    model = load_model(trained_run)
    predictor = Predictor(model, model.image_size, model.infer.model_copy(update={"hflip": False}))
    capture = cv2.VideoCapture(str(video))
    for line in frames:
        probs = predictor.predict([cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB)])[0]
        expected = find_objects(probs.argmax(0).astype(np.uint8), model.classes, probs)
        assert line["objects"] == json.loads(json.dumps([o.to_dict() for o in expected]))
    assert sorted(p.name for p in (saved / "masks").iterdir()) == [f"{i:08d}.png" for i in (0, 4, 8)]
    assert cv2.imread(str(saved / "masks" / "00000004.png"), cv2.IMREAD_UNCHANGED).shape == (64, 96)
    assert cv2.imread(str(saved / "overlays" / "00000008.jpg")) is not None


def test_a_live_stream_drops_stale_frames_when_the_model_is_slower(trained_run):
    model = Slow(load_model(trained_run), 0.15)
    with mjpeg_server(frames=45) as server:
        stream = Stream(model, CaptureSource(server.url, 10**6), infer=InferConfig(), retry=Retry(1, 0.05))
        indices = []
        with pytest.raises(StreamError, match=r"stream lost and not back after 1 reconnection attempts"):
            for result in stream:
                indices.append(result.index)
                if result.index == 0:
                    server.close()  # it finishes the stream in progress, then is gone: no reconnection
    summary = stream.summary()
    assert summary.read == server.served == 45 and summary.dropped > 0, summary
    assert summary.read == summary.predicted + summary.dropped and summary.predicted == len(indices) < 45
    assert indices == sorted(set(indices)) and indices[-1] >= 40  # the latest frames win: the last one comes out
    assert summary.latency_p50_ms is not None and summary.latency_p50_ms >= 150
    assert "45 frames read" in str(summary) and "dropped" in str(summary)


def test_a_stream_that_goes_away_and_comes_back_is_reconnected(trained_run, caplog):
    caplog.set_level(logging.WARNING, logger="trashseg.infer.stream")
    first = MJPEGServer(frames=10)
    port, url = first.port, first.url

    def go_away_and_come_back() -> None:  # generous waits: the second stream starts when the model is through
        first.finished.wait(300)  # the first one's frames, which may take a while on a loaded machine
        first.close()
        time.sleep(0.5)  # down: the first reconnection attempts are refused
        with mjpeg_server(frames=10, port=port) as second:
            second.finished.wait(300)

    scenario = threading.Thread(target=go_away_and_come_back)
    scenario.start()
    stream = Stream(
        load_model(trained_run),
        CaptureSource(url, 10**6),
        infer=InferConfig(),
        every_frame=True,
        retry=Retry(attempts=6, first=0.2, longest=1.0),
    )
    indices = []
    with pytest.raises(StreamError, match="not back after 6 reconnection attempts"):
        for result in stream:
            indices.append(result.index)
    scenario.join()
    summary = stream.summary()
    assert summary.reconnects == 1 and summary.read == summary.predicted == 20 and summary.dropped == 0, summary
    assert indices == list(range(20))
    logged = [r.getMessage() for r in caplog.records]
    assert any("stream lost" in m and "attempt 1 of 6" in m for m in logged), logged
    assert any(m.endswith("reconnected") for m in logged), logged


def test_a_watched_folder_predicts_each_new_image_once(trained_run, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    cv2.imwrite(str(folder / "old.jpg"), scene(0))  # there before: not predicted
    stream = Stream(load_model(trained_run), FolderSource(folder, 10**6, poll=0.05), infer=InferConfig())
    all_three = threading.Event()

    def photographer() -> None:
        for i in range(3):
            time.sleep(0.2)
            cv2.imwrite(str(folder / f".new{i}.jpg"), scene(i))  # written hidden, then moved in
            os.replace(folder / f".new{i}.jpg", folder / "sub" / f"new{i}.jpg" if i == 2 else folder / f"new{i}.jpg")
        all_three.wait(120)
        time.sleep(1.0)  # many polls: nothing is taken twice
        stream.stop()

    (folder / "sub").mkdir()
    threading.Thread(target=photographer).start()
    files = []
    for result in stream:
        files.append(result.file)
        if len(files) == 3:
            all_three.set()
    assert files == ["new0.jpg", "new1.jpg", "sub/new2.jpg"]
    summary = stream.summary()
    assert summary.read == summary.predicted == 3 and summary.dropped == 0


def test_sigint_ends_a_stream_cleanly_with_its_summary(trained_run, tmp_path):
    folder, lines = tmp_path / "drop", tmp_path / "lines.jsonl"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "trashseg", "stream", str(trained_run), str(folder), "--out", str(lines)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, i = time.monotonic() + 180, 0
        while not (lines.exists() and lines.read_text()) and time.monotonic() < deadline and proc.poll() is None:
            cv2.imwrite(str(folder / f"{i:04d}.png"), scene(i))  # until one is taken: the model loads meanwhile
            i += 1
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    counts = re.search(r"(\d+) frames read, (\d+) predicted, (\d+) dropped, 0 reconnects in .* latency p50", err)
    assert counts, err
    read, predicted, dropped = map(int, counts.groups())
    assert predicted >= 1 and read == predicted + dropped, err  # dropped: read, waiting when it stopped
    written = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(written) == predicted and written[0]["file"].endswith(".png")


def test_sources_that_cannot_be_opened_are_named(trained_run, tmp_path, cli):
    code, text = cli(["stream", trained_run, tmp_path / "missing.mp4"])
    assert code == 2 and "missing.mp4: no such video file, camera index or URL" in text, text
    code, text = cli(["stream", trained_run, "http://127.0.0.1:9/none.mjpg", "--retries", "0"])
    assert code == 2 and "none.mjpg: cannot be opened" in text, text
    video = write_video(tmp_path / "clip.mp4")
    code, text = cli(["stream", trained_run, video, "--out", tmp_path])  # a folder given for the JSON lines
    assert code == 2 and "it is a folder; give a file path" in text, text
    with pytest.raises(StreamError, match=r"clip.mp4: frames of 48×32 are over the limit"):
        CaptureSource(str(video), max_pixels=1000).open()
    with pytest.raises(StreamError) as raised:
        CaptureSource("rtsp://bob:s3cret@127.0.0.1:9/cam", max_pixels=1000).open()
    assert "rtsp://bob:***@127.0.0.1:9/cam: cannot be opened" in str(raised.value) and "s3cret" not in str(raised.value)


def test_latency_percentiles_keep_a_bounded_sample():
    reservoir = Reservoir(size=500)
    for value in range(100_000):
        reservoir.add(float(value % 1000))
    assert len(reservoir.values) == 500 and reservoir.count == 100_000
    assert abs((reservoir.percentile(50) or 0) - 500) < 60 and abs((reservoir.percentile(95) or 0) - 950) < 30
