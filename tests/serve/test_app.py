"""The web demo through FastAPI's test client, on a really trained (tiny) model."""

import base64
import json

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import write_bomb
from trashseg.config import InferConfig
from trashseg.models.segmenter import load_model
from trashseg.serve.app import create_app


@pytest.fixture(scope="module")
def client(trained_run):
    return TestClient(create_app(load_model(trained_run), InferConfig(hflip=True)))


def _upload(sample_data):
    name = json.loads((sample_data / "val.json").read_text())["images"][0]["file_name"]
    return name, (sample_data / name).read_bytes()


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and "fetch(\"predict\"" in page.text
    info = client.get("/info").json()
    assert info["classes"][0] == "Background" and len(info["classes"]) == 11 and info["tta"]["hflip"] is True


def test_info_names_the_checkpoint_without_its_folders(client, trained_run):
    """Issue 16.9: visitors learn which model answers, not where the server keeps its files."""
    info = client.get("/info")
    assert info.json()["source"] == "best.ckpt" and str(trained_run) not in info.text


def test_predict_returns_shares_overlay_and_mask_of_the_uploaded_image(client, sample_data):
    name, data = _upload(sample_data)
    out = client.post("/predict", files={"file": (name, data, "image/jpeg")})
    assert out.status_code == 200, out.text
    body = out.json()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (body["height"], body["width"]) == image.shape[:2] and body["file"] == name
    mask = cv2.imdecode(np.frombuffer(base64.b64decode(body["mask_png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == image.shape[:2]
    shares = {c["name"]: c for c in body["classes"]}
    assert sum(c["pixels"] for c in body["classes"]) == mask.size
    assert all(shares[body["classes"][0]["name"]]["pixels"] >= c["pixels"] for c in body["classes"])
    for c in body["classes"]:
        assert c["pixels"] == int((mask == c["id"]).sum())
    png = client.post("/predict?format=overlay", files={"file": (name, data, "image/jpeg")})
    assert png.headers["content-type"] == "image/png"
    overlay = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape[1] == image.shape[1] and overlay.shape[0] > image.shape[0]  # title (and legend)


def test_bad_uploads_get_a_named_error(client):
    out = client.post("/predict", files={"file": ("notes.txt", b"not an image", "text/plain")})
    assert out.status_code == 400 and out.json()["detail"].startswith("notes.txt: cannot be decoded")
    assert client.post("/predict?format=gif", files={"file": ("a.png", b"x", "image/png")}).status_code == 422


def test_cli_serve_builds_the_app_with_its_options(trained_run, monkeypatch, capsys):
    import uvicorn

    from tests.conftest import run_cli

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: started.update(app=app, host=host, port=port))
    code, text = run_cli(["serve", trained_run, "--port", "8123", "--hflip", "--scales", "1,1.5"], capsys)
    assert code == 0 and "http://127.0.0.1:8123/" in text, text
    info = TestClient(started["app"]).get("/info").json()
    assert info["tta"]["hflip"] and info["tta"]["scales"] == [1.0, 1.5] and started["port"] == 8123


def test_too_many_pixels_are_refused_before_decoding(client, trained_run, sample_data, tmp_path):
    """Issue 16.3: the same header check as data check, training and predict, with the configured limit."""
    bomb = write_bomb(tmp_path / "bomb.png").read_bytes()
    out = client.post("/predict", files={"file": ("bomb.png", bomb, "image/png")})
    assert out.status_code == 413 and out.json()["detail"].startswith("bomb.png: 7000×7000 is 49.0 MP, over the "
                                                                       "limit of 40.0 MP")
    hdr = tmp_path / "x.hdr"  # OpenCV decodes it, but its size cannot be read before decoding: refused
    cv2.imwrite(str(hdr), np.ones((8, 8, 3), np.float32))
    out = client.post("/predict", files={"file": ("x.hdr", hdr.read_bytes(), "image/vnd.radiance")})
    assert out.status_code == 400 and "format whose size cannot be checked" in out.json()["detail"]
    small = TestClient(create_app(load_model(trained_run), InferConfig(), max_pixels=1000))
    name, data = _upload(sample_data)
    out = small.post("/predict", files={"file": (name, data, "image/jpeg")})
    assert out.status_code == 413 and "128×128 is 0.0 MP, over the limit of 0.0 MP" in out.json()["detail"]


def test_uploads_over_the_byte_limit_are_refused(client, monkeypatch):
    from trashseg.serve import app as serve_app

    monkeypatch.setattr(serve_app, "MAX_UPLOAD_BYTES", 2**20)
    out = client.post("/predict", files={"file": ("big.jpg", b"\xff" * (2**20 + 1), "image/jpeg")})
    assert out.status_code == 413 and out.json()["detail"] == "big.jpg: larger than 1 MiB"
