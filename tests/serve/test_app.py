"""The web service through FastAPI's test client: a really trained (tiny) model for answers, a deliberately slow fake
model for the pool's limits."""

import base64
import io
import json
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from tests.helpers import write_bomb, write_two_faced_tiff
from trashseg.config import InferConfig, ServeConfig
from trashseg.infer.predictor import Predictor
from trashseg.models.segmenter import load_model
from trashseg.serve.app import create_app


def ready(client: TestClient, seconds: float = 60) -> TestClient:
    """The client once /ready says the model (loaded in the background) answers."""
    deadline = time.monotonic() + seconds
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.05)
    return client


@pytest.fixture(scope="module")
def model(trained_run):
    return load_model(trained_run)


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(lambda: model, infer=InferConfig(hflip=True))) as c:
        yield ready(c)


class SlowModel:
    """Two classes, logits of zeros, once `gate` opens: a request that holds a worker as long as a test wants."""

    classes = ["Background", "thing"]
    image_size = 32
    info: dict = {}
    infer = InferConfig()

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.started.set()
        self.gate.wait(30)
        return torch.zeros(images.shape[0], 2, images.shape[1], images.shape[2])


def _png_bytes(h: int = 40, w: int = 48) -> bytes:
    return cv2.imencode(".png", np.full((h, w, 3), 120, np.uint8))[1].tobytes()


def _header_only_png(w: int, h: int) -> bytes:
    """A PNG whose header declares w×h pixels, with one empty data chunk: a few dozen bytes, never decodable."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def _upload(sample_data):
    name = json.loads((sample_data / "val.json").read_text())["images"][0]["file_name"]
    return name, (sample_data / name).read_bytes()


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and 'fetch("predict"' in page.text
    for part in ('name="viewport"', 'id="opacity" type="range"', 'id="legend"', "download", "<canvas"):
        assert part in page.text
    assert "http://" not in page.text and "https://" not in page.text  # one self-contained file, no CDN
    info = client.get("/info").json()
    assert info["classes"][0] == "Background" and len(info["classes"]) == 11 and info["tta"]["hflip"] is True
    assert len(info["colors"]) == 11 and info["colors"][0] == "#000000"
    assert info["tta"]["name"] == "hflip" and info["limits"]["tta"] == ["hflip", "none"]
    assert info["engine"] == "torch"  # which engine runs the network (infer.engine)


def test_the_models_own_infer_section_is_the_default_and_what_the_server_states_wins():
    class OwnTTA(SlowModel):
        infer = InferConfig(vflip=True, scales=[1.0, 1.5])

    with TestClient(create_app(OwnTTA, infer=InferConfig(scales=[1.0]))) as client:
        tta = ready(client).get("/info").json()["tta"]
    assert (tta["name"], tta["scales"]) == ("vflip", [1.0])


def test_health_and_ready_while_the_model_loads_and_after():
    gate = threading.Event()

    def load():
        gate.wait(30)
        return SlowModel()

    with TestClient(create_app(load, infer=InferConfig())) as client:
        assert client.get("/health").json() == {"status": "alive"}
        not_yet = client.get("/ready")
        assert not_yet.status_code == 503 and not_yet.json()["detail"] == "the model is still loading"
        early = client.post("/predict", files={"file": ("a.png", _png_bytes(), "image/png")})
        assert early.status_code == 503 and early.json()["detail"].startswith("the model is still loading")
        assert early.headers["retry-after"] == "5" and client.get("/info").status_code == 503
        gate.set()
        assert ready(client).get("/ready").json() == {"ready": True, "busy": 0, "capacity": 9}
        assert client.get("/health").status_code == 200


def test_a_model_that_fails_to_load_keeps_ready_at_503_with_the_reason():
    def load():
        raise FileNotFoundError("x.ckpt")

    with TestClient(create_app(load, infer=InferConfig())) as client:
        deadline = time.monotonic() + 10
        while "failed" not in client.get("/ready").json()["detail"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.get("/ready").status_code == 503 and client.get("/health").status_code == 200
        assert client.get("/info").json()["detail"] == "the model failed to load: x.ckpt"


def test_info_names_the_model_without_its_folders(client, trained_run):
    """Issue 16.9: visitors learn which model answers, not where the server keeps its files (a run's model file:
    the run's name)."""
    info = client.get("/info")
    assert info.json()["source"] == trained_run.name and str(trained_run.parent) not in info.text


def test_predict_returns_shares_overlay_and_mask_of_the_uploaded_image(client, sample_data):
    name, data = _upload(sample_data)
    out = client.post("/predict", files={"file": (name, data, "image/jpeg")})
    assert out.status_code == 200, out.text
    body = out.json()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (body["height"], body["width"]) == image.shape[:2] and body["file"] == name
    assert body["tta"] == {"name": "hflip", "scales": [1.0]}
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(body["mask_png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == image.shape[:2]
    shares = {c["name"]: c for c in body["classes"]}
    assert sum(c["pixels"] for c in body["classes"]) == mask.size
    assert all(shares[body["classes"][0]["name"]]["pixels"] >= c["pixels"] for c in body["classes"])
    for c in body["classes"]:
        assert c["pixels"] == int((mask == c["id"]).sum())
    objects = body["objects"]  # the regions of the returned mask, one per connected region of each class
    assert objects and all(o["class_id"] > 0 and 0 < o["confidence"] <= 1 for o in objects)
    for c in (c for c in body["classes"] if c["id"] > 0):
        assert sum(o["area"] for o in objects if o["class_id"] == c["id"]) == c["pixels"]
    x, y, w, h = objects[0]["bbox"]
    assert (mask[y : y + h, x : x + w] == objects[0]["class_id"]).sum() >= objects[0]["area"]
    big = client.post(f"/predict?min_area={objects[0]['area']}", files={"file": (name, data, "image/jpeg")}).json()
    assert [o["area"] for o in big["objects"]] == [o["area"] for o in objects if o["area"] >= objects[0]["area"]]
    png = client.post("/predict?format=overlay", files={"file": (name, data, "image/jpeg")})
    assert png.headers["content-type"] == "image/png"
    overlay = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape[1] == image.shape[1] and overlay.shape[0] > image.shape[0]  # title (and legend)


def test_a_phone_photo_with_an_orientation_tag_is_predicted_upright(client, model):
    """Phones store a portrait photo sideways and tag it "rotate 90°": the mask must line up with the photo as the
    browser shows it, i.e. the photo turned upright as `predict --images` reads it."""
    stored = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)  # 48 wide, 32 high
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "JPEG", exif=exif)
    out = client.post("/predict", files={"file": ("portrait.jpg", buffer.getvalue(), "image/jpeg")})
    assert out.status_code == 200, out.text
    body = out.json()
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(body["mask_png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert (body["height"], body["width"]) == mask.shape == (48, 32)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(buffer)).convert("RGB"))
    expected = Predictor(model, model.image_size, InferConfig(hflip=True)).predict_masks([upright])[0]
    assert np.array_equal(mask, expected)


def test_each_request_may_choose_its_tta_within_the_servers_limits(client, model, sample_data):
    name, data = _upload(sample_data)
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def mask(query: str) -> np.ndarray:
        out = client.post(f"/predict?format=mask&{query}", files={"file": (name, data, "image/jpeg")})
        assert out.status_code == 200, out.text
        return cv2.imdecode(np.frombuffer(out.content, np.uint8), cv2.IMREAD_UNCHANGED)

    from trashseg.infer.predictor import Predictor

    for query, cfg in (
        ("tta=none", InferConfig()),
        ("tta=flip&scales=1,1.25", InferConfig(hflip=True, scales=[1, 1.25])),
    ):
        expected = Predictor(model, model.image_size, cfg).predict_masks([image])[0]
        assert np.array_equal(mask(query), expected), query
    refused = {
        "tta=hvflip": "tta=hvflip: not allowed on this server (allowed: hflip, none; serve.tta)",
        "tta=rot90": "tta='rot90': unknown; one of none, hflip, vflip, hvflip (flip = hflip)",
        "scales=1,1.25,1.5": "scales=1,1.25,1.5: 3 scales, over this server's limit of 2 (serve.max_scales)",
        "scales=3": "scales=3: each must be > 0 and at most 1.5 (serve.max_scale)",
        "scales=nan": "scales=nan: each must be > 0 and at most 1.5 (serve.max_scale)",
        "scales=big": "scales='big': expected comma-separated numbers, e.g. 1,1.25",
    }
    for query, detail in refused.items():
        out = client.post(f"/predict?{query}", files={"file": (name, data, "image/jpeg")})
        assert out.status_code == 400 and out.json()["detail"] == detail, (query, out.text)


def test_the_servers_own_tta_is_always_allowed(model, sample_data):
    limits = ServeConfig(tta=["none"], max_scales=1)
    name, data = _upload(sample_data)
    with TestClient(create_app(lambda: model, infer=InferConfig(vflip=True, scales=[1.0, 1.25]), serve=limits)) as c:
        out = ready(c).post("/predict?tta=vflip&scales=1,1.25", files={"file": (name, data, "image/jpeg")})
        assert out.status_code == 200 and out.json()["tta"] == {"name": "vflip", "scales": [1.0, 1.25]}
        assert c.post("/predict?tta=flip", files={"file": (name, data, "image/jpeg")}).status_code == 400  # = hflip


def test_bad_uploads_get_a_named_error(client):
    out = client.post("/predict", files={"file": ("notes.txt", b"not an image", "text/plain")})
    assert out.status_code == 400 and out.json()["detail"].startswith("notes.txt: cannot be decoded")
    renamed = client.post("/predict", files={"file": ("photo.jpg", b"shopping list\nmilk\n", "image/jpeg")})
    assert renamed.status_code == 400
    assert renamed.json()["detail"].startswith("photo.jpg: cannot be decoded: not an image")
    empty = client.post("/predict", files={"file": ("empty.jpg", b"", "image/jpeg")})
    assert empty.status_code == 400 and empty.json()["detail"] == "empty.jpg: cannot be decoded (empty)"
    assert client.post("/predict?format=gif", files={"file": ("a.png", b"x", "image/png")}).status_code == 422
    assert client.post("/predict").status_code == 422  # no file at all


def test_a_20k_by_20k_header_is_refused_undecoded(client):
    huge = _header_only_png(20_000, 20_000)
    assert len(huge) < 100
    out = client.post("/predict", files={"file": ("huge.png", huge, "image/png")})
    assert out.status_code == 413 and out.json()["detail"].startswith("huge.png: more than")


def test_too_many_pixels_are_refused_before_decoding(client, model, sample_data, tmp_path):
    """Issue 16.3: the same header check as data check, training and predict, with the configured limit."""
    bomb = write_bomb(tmp_path / "bomb.png").read_bytes()
    out = client.post("/predict", files={"file": ("bomb.png", bomb, "image/png")})
    assert out.status_code == 413 and out.json()["detail"].startswith(
        "bomb.png: 7000×7000 is 49.0 MP, over the limit of 40.0 MP"
    )
    hdr = tmp_path / "x.hdr"  # OpenCV decodes it, but its size cannot be read before decoding: refused
    cv2.imwrite(str(hdr), np.ones((8, 8, 3), np.float32))
    out = client.post("/predict", files={"file": ("x.hdr", hdr.read_bytes(), "image/vnd.radiance")})
    assert out.status_code == 400 and "format whose size cannot be checked" in out.json()["detail"]
    with TestClient(create_app(lambda: model, infer=InferConfig(), max_pixels=1000)) as small:
        name, data = _upload(sample_data)
        out = ready(small).post("/predict", files={"file": (name, data, "image/jpeg")})
        assert out.status_code == 413 and "128×128 is 0.0 MP, over the limit of 0.0 MP" in out.json()["detail"]
        tiff = write_two_faced_tiff(tmp_path / "two_faced.tif", 3000, 2000).read_bytes()  # header 8×8: 64 pixels
        out = ready(small).post("/predict", files={"file": ("two_faced.tif", tiff, "image/tiff")})
        assert out.status_code == 413 and "decodes to 3000×2000, 6.0 MP, over the limit" in out.json()["detail"]
    out = client.post("/predict", files={"file": ("two_faced.tif", tiff, "image/tiff")})
    assert out.status_code == 400 and "decodes to 3000×2000; its header says 8×8" in out.json()["detail"]


def test_bodies_over_the_byte_limit_are_refused_declared_or_streamed():
    limits = ServeConfig(max_upload_mb=1)
    with TestClient(create_app(SlowModel, infer=InferConfig(), serve=limits)) as client:
        out = client.post("/predict", files={"file": ("big.jpg", b"\xff" * (2**20 + 1), "image/jpeg")})
        assert out.status_code == 413
        assert out.json()["detail"] == "request body larger than 1 MiB (serve.max_upload_mb)"
        chunks = iter([b"x" * 2**19] * 3)  # no Content-Length: counted as it arrives
        out = client.post("/predict", content=chunks, headers={"content-type": "multipart/form-data; boundary=b"})
        assert out.status_code == 413 and out.json()["detail"].startswith("request body larger than 1 MiB")
        assert client.get("/health").status_code == 200


def _post_in_background(client: TestClient, results: list) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: results.append(client.post("/predict", files={"file": ("slow.png", _png_bytes(), "image/png")}))
    )
    thread.start()
    return thread


def test_a_full_pool_answers_503_with_retry_after_and_recovers():
    slow = SlowModel()
    with TestClient(create_app(lambda: slow, infer=InferConfig(), serve=ServeConfig(workers=1, queue=1))) as client:
        ready(client)
        results: list = []
        threads = [_post_in_background(client, results)]
        assert slow.started.wait(10)  # one running
        threads.append(_post_in_background(client, results))  # one waiting
        deadline = time.monotonic() + 10
        while client.get("/ready").json()["busy"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        full = client.post("/predict", files={"file": ("third.png", _png_bytes(), "image/png")})
        assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
        assert full.json()["detail"].startswith(
            "server busy: 2 requests running or queued (serve.workers + serve.queue); retry in "
        )
        slow.gate.set()
        for thread in threads:
            thread.join(30)
        assert [r.status_code for r in results] == [200, 200]
        assert client.post("/predict", files={"file": ("later.png", _png_bytes(), "image/png")}).status_code == 200


def test_a_request_past_the_timeout_gets_504_and_its_slot_back_when_the_work_ends():
    slow = SlowModel()
    with TestClient(create_app(lambda: slow, infer=InferConfig(), serve=ServeConfig(timeout=0.3))) as client:
        out = ready(client).post("/predict", files={"file": ("slow.png", _png_bytes(), "image/png")})
        assert out.status_code == 504 and out.json()["detail"] == "slow.png: no answer within 0.3 s (serve.timeout)"
        assert client.get("/ready").json()["busy"] == 1  # still running: it cannot be interrupted
        slow.gate.set()
        deadline = time.monotonic() + 10
        while client.get("/ready").json()["busy"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_cli_serve_builds_the_app_with_its_options(trained_run, monkeypatch, cli):
    import uvicorn

    started = {}
    monkeypatch.setattr(
        uvicorn.Server,
        "run",
        lambda self: started.update(app=self.config.app, host=self.config.host, port=self.config.port),
    )
    code, text = cli(
        [
            "serve",
            trained_run,
            "--port",
            "8123",
            "--hflip",
            "--scales",
            "1,1.5",
            "--workers",
            "2",
            "--queue",
            "3",
            "--timeout",
            "9",
        ]
    )
    assert code == 0 and "http://127.0.0.1:8123/" in text, text
    with TestClient(started["app"]) as client:
        assert ready(client).get("/ready").json()["capacity"] == 5
        info = client.get("/info").json()
    assert info["tta"]["hflip"] and info["tta"]["scales"] == [1.0, 1.5] and started["port"] == 8123


def test_cli_serve_without_a_model_serves_the_demos_best_run(trained_run, tmp_path, monkeypatch, cli):
    import shutil

    import uvicorn

    monkeypatch.chdir(tmp_path)
    code, text = cli(["serve"])
    assert code == 2 and "no trained demo run under demo_out/runs: run `trashseg demo` first" in text, text
    for name, miou in (("unet", 0.2), ("fpn", 0.4), ("never_validated", None)):
        run = shutil.copytree(trained_run, tmp_path / "demo_out" / "runs" / name)
        (run / "metrics.json").unlink(missing_ok=True)
        if miou is not None:
            (run / "metrics.json").write_text(json.dumps({"best": {"miou": miou}}))
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: None)
    code, text = cli(["serve"])
    assert code == 0 and "serving demo_out/runs/fpn on" in text, text
    code, text = cli(["serve", "missing_run"])
    assert code == 2 and "missing_run: no such run folder, checkpoint or ONNX file" in text


def test_a_model_that_cannot_allocate_answers_a_named_503_and_the_next_request_is_served(caplog):
    """Issue 27.3: ONNX Runtime's allocation failure at session.run was a 500 with a traceback in the log."""
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    class Starved(SlowModel):
        failures = 1

        def __call__(self, images: torch.Tensor) -> torch.Tensor:
            if self.failures:
                self.failures -= 1
                raise RuntimeException(
                    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv "
                    "node. Status Message: bfc_arena.cc:376 Failed to allocate memory for requested buffer of size "
                    "13271040000"
                )
            self.gate.set()
            return super().__call__(images)

    with TestClient(create_app(Starved, infer=InferConfig())) as client:
        ready(client)
        out = client.post("/predict", files={"file": ("big.png", _png_bytes(), "image/png")})
        assert out.status_code == 503 and out.headers["Retry-After"] == "5"
        assert out.json()["detail"] == (
            "big.png: the model could not allocate memory for this image; retry later, or send a smaller image"
        )
        assert "Traceback" not in caplog.text and "big.png: the model could not allocate memory" in caplog.text
        out = client.post("/predict", files={"file": ("next.png", _png_bytes(), "image/png")})
        assert out.status_code == 200 and out.json()["file"] == "next.png"


def test_slow_headers_are_dropped_and_connections_beyond_the_limit_get_503():
    """Issue 27.3, on a real loopback server: a client that sends half a header line and waits is disconnected
    after serve.header_timeout; past serve.max_connections requests get 503; once the slow ones are dropped a
    normal request is answered again."""
    import socket

    import uvicorn

    from trashseg.serve.limits import server_config

    limits = ServeConfig(header_timeout=1.0, max_connections=4)
    server = uvicorn.Server(server_config(create_app(SlowModel, infer=InferConfig()), "127.0.0.1", 0, limits))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]

        def connect() -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            return sock

        def get(path: str) -> bytes:
            with connect() as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                return b"".join(iter(lambda: sock.recv(65536), b""))

        assert get("/health").startswith(b"HTTP/1.1 200")
        slow = [connect() for _ in range(4)]
        for sock in slow:
            sock.sendall(b"GET /health HTTP/1.1\r\nHos")  # half a header line, then nothing
        time.sleep(0.2)
        assert get("/health").startswith(b"HTTP/1.1 503")  # over the connection limit: refused, not queued
        start = time.monotonic()
        for sock in slow:
            assert sock.recv(1) == b""  # closed by the server (the socket's own 10 s timeout would raise)
        assert time.monotonic() - start < 5
        for sock in slow:
            sock.close()
        time.sleep(0.2)
        assert get("/health").startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()
