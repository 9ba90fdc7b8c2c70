"""One TTA vocabulary: the Python API, `trashseg predict --tta` and the web service's `?tta=` read a word the same
way, and give the same mask for it."""

from __future__ import annotations

import time
import warnings

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

import trashseg
from tests.helpers import run_cli
from trashseg.config import TTA_FLIPS, InferConfig, ServeConfig
from trashseg.infer.folder import PredictionFolder
from trashseg.models.segmenter import load_model
from trashseg.serve.app import create_app


@pytest.mark.parametrize("word", ["hflip", "hvflip", "flip"])
def test_the_api_the_cli_and_the_service_give_one_mask_for_one_word(word, trained_run, tmp_path, capsys):
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8), (0, 0), 4)  # not flip-symmetric
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), image[:, :, ::-1])  # PNG: every decoder reads the same pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "flip": the old spelling warns in the API
        by_api = trashseg.load(trained_run).predict(photos / "a.png", tta=word).mask
    args = ["predict", trained_run, "--images", photos, "--out", tmp_path / "pred", "--tta", word]
    code, text = run_cli(args, capsys)
    assert code == 0, text
    by_cli = PredictionFolder(tmp_path / "pred").mask("a.png")
    limits = ServeConfig(tta=list(TTA_FLIPS))
    with TestClient(create_app(lambda: load_model(trained_run), infer=InferConfig(), serve=limits)) as client:
        for _ in range(600):
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.1)
        files = {"file": ("a.png", (photos / "a.png").read_bytes(), "image/png")}
        answer = client.post(f"/predict?format=mask&tta={word}", files=files)
    assert answer.status_code == 200, answer.text
    by_service = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(by_api, by_cli) and np.array_equal(by_api, by_service)
    plain = trashseg.load(trained_run).predict(photos / "a.png", tta="none").mask
    assert not np.array_equal(by_api, plain)  # the word did something: a flip changes this model's answer here


def test_an_unknown_word_is_named_by_every_door(trained_run, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    args = ["predict", trained_run, "--images", tmp_path, "--out", tmp_path / "p", "--tta", "spin"]
    code, text = run_cli(args, capsys)
    assert code == 2 and "--tta='spin': unknown; one of none, hflip, vflip, hvflip (flip = hflip)" in text
    with pytest.raises(trashseg.TrashsegError, match="tta='spin': unknown"):
        trashseg.load(trained_run).predict(np.zeros((8, 8, 3), np.uint8), tta="spin")
    with pytest.raises(ValueError, match="tta='spin': unknown"):
        ServeConfig(tta=["none", "spin"])
