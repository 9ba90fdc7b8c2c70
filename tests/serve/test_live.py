"""`trashseg serve --stream`: the live page, its MJPEG preview and the newest frame's objects."""

from __future__ import annotations

import time

import cv2
import numpy as np
from fastapi.testclient import TestClient

from tests.infer.test_video import write_video
from trashseg.config import InferConfig
from trashseg.infer.stream import Stream, open_source
from trashseg.models.segmenter import load_model
from trashseg.serve.app import create_app
from trashseg.serve.live import BOUNDARY, MAX_VIEWERS, LiveFeed


def test_the_live_page_shows_the_streams_overlays_and_objects(trained_run, tmp_path):
    video = write_video(tmp_path / "line.mp4", frames=12, w=96, h=64)  # played at its own 10 fps, as a camera
    live = LiveFeed(lambda model: Stream(model, open_source(str(video), 10**7), infer=InferConfig()))
    app = create_app(lambda: load_model(trained_run), infer=InferConfig(), live=live)
    with TestClient(app) as client:
        page = client.get("/stream")
        assert page.status_code == 200 and 'src="stream.mjpg"' in page.text and "stream/latest.json" in page.text
        body = client.get("/stream.mjpg")  # ends with the file; a camera's would go on
        assert body.headers["content-type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        parts = [p for p in body.content.split(f"--{BOUNDARY}\r\n".encode()) if p]
        assert parts, "no frame was sent"
        jpeg = parts[-1].split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")
        overlay = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert overlay.shape == (64, 96, 3)
        for _ in range(100):  # the summary is final once the reader has seen the end
            latest = client.get("/stream/latest.json").json()
            if latest["ended"]:
                break
            time.sleep(0.1)
        assert latest["ended"].startswith("the source ended") and latest["summary"]["read"] == 12
        frame = latest["frame"]
        assert (frame["height"], frame["width"]) == (64, 96) and isinstance(frame["objects"], list)
        assert latest["summary"]["predicted"] + latest["summary"]["dropped"] == 12


def test_viewers_beyond_the_limit_are_refused(trained_run, tmp_path):
    video = write_video(tmp_path / "line.mp4", frames=3)
    live = LiveFeed(lambda model: Stream(model, open_source(str(video), 10**7), infer=InferConfig()))
    for _ in range(MAX_VIEWERS):
        assert live.viewer()
    app = create_app(lambda: load_model(trained_run), infer=InferConfig(), live=live)
    with TestClient(app) as client:
        answer = client.get("/stream.mjpg")
        assert answer.status_code == 503 and "viewers already watch" in answer.json()["detail"]
