"""The Segmenter stands without the trainer: inference imports no Lightning, and checkpoints of either key layout
(before and after the Segmenter) load into the same model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trashseg.config import load_config
from trashseg.errors import TrashsegError
from trashseg.infer.predictor import Predictor
from trashseg.models.segmenter import Segmenter, load_model, network_state

CLASSES = ["bg", "a", "b"]


def _segmenter() -> Segmenter:
    cfg = load_config(
        None,
        [
            "model.arch=Unet",
            "model.encoder=resnet18",
            "model.weights=null",
            "augment.image_size=32",
            f"data.classes={CLASSES}",
        ],
    )
    torch.manual_seed(0)
    return Segmenter.from_config(cfg).eval()


def _save(segmenter: Segmenter, path: Path, prefix: str) -> Path:
    """A checkpoint as training writes it, with the network's tensors under `prefix`."""
    state = {f"{prefix}{key}": value for key, value in segmenter.net.state_dict().items()}
    state["criterion.terms.ce.weight"] = torch.ones(len(CLASSES))  # other module state: not the network's
    torch.save({"state_dict": state, "hyper_parameters": {"config": segmenter.config.model_dump(mode="json")}}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Segmenter, Path]:
    segmenter = _segmenter()
    return segmenter, _save(segmenter, tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", "segmenter.net.")


def test_inference_imports_the_api_and_loading_leave_lightning_out(tiny: tuple[Segmenter, Path]) -> None:
    code = (
        "import sys\n"
        "import trashseg\n"
        "assert 'torch' not in sys.modules, 'import trashseg must stay cheap (the API is imported on first use)'\n"
        "import numpy as np, torch\n"
        "import trashseg.infer, trashseg.serve\n"
        "import trashseg.infer.predict, trashseg.infer.export, trashseg.serve.app, trashseg.ensemble.kfold\n"
        "from trashseg.models.segmenter import load_model\n"
        f"model = load_model({str(tiny[1])!r})\n"
        "assert model(torch.zeros(1, 32, 32, 3, dtype=torch.uint8)).shape == (1, 3, 32, 32)\n"
        f"result = trashseg.load({str(tiny[1])!r}, device='cpu').predict(np.zeros((40, 56, 3), np.uint8))\n"
        "assert result.mask.shape == (40, 56) and result.overlay().size == (56, 40)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_old_checkpoint_layout_loads_and_predicts_the_same(tiny: tuple[Segmenter, Path], tmp_path: Path) -> None:
    segmenter, new = tiny
    old = _save(segmenter, tmp_path / "old.ckpt", "model.")  # before the Segmenter: the network as `model`
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    cfg = segmenter.config.infer
    expected = Predictor(segmenter, 32, cfg).predict([image])[0]
    for path in (new, old):
        loaded = load_model(path)
        assert loaded.classes == CLASSES and loaded.image_size == 32
        assert loaded.info["source"] == str(path.resolve()) and loaded.info["runtime"] == "torch"
        np.testing.assert_allclose(Predictor(loaded, 32, cfg).predict([image])[0], expected, atol=1e-6)


def test_network_state_takes_the_networks_tensors_of_either_layout() -> None:
    weight = torch.zeros(1)
    state = {"segmenter.net.head.w": weight, "model.encoder.w": weight, "criterion.terms.ce.weight": weight}
    assert set(network_state(state)) == {"head.w", "encoder.w"}


def test_missing_model_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(TrashsegError, match="nowhere: no such run folder, checkpoint or ONNX file"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "run").mkdir()
    with pytest.raises(TrashsegError, match="no checkpoints/best.ckpt or last.ckpt"):
        load_model(tmp_path / "run")
