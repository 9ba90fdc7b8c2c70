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
from trashseg.errors import ModelNotFoundError, TrashsegError
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


def test_a_model_folder_of_two_files_predicts_serves_and_exports_without_lightning(
    tiny: tuple[Segmenter, Path], tmp_path: Path
) -> None:
    """The model file is the model layer's own: a folder with only model.safetensors + model.yaml is a model."""
    segmenter, _ = tiny
    folder = segmenter.save_pretrained(tmp_path / "handed_on", val_miou=0.5)
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "model.yaml"]
    card = (folder / "model.yaml").read_text()
    assert str(Path.home()) not in card and "/tmp" not in card  # no paths of the machine it was trained on
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    expected = Predictor(segmenter, 32, segmenter.config.infer).predict([image])[0]
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "expected.npy", expected)
    code = (
        "import sys\n"
        "sys.modules['lightning'] = sys.modules['pytorch_lightning'] = None  # importing either fails\n"
        "import io, numpy as np, torch\n"
        "from PIL import Image\n"
        "from fastapi.testclient import TestClient\n"
        "from trashseg.config import InferConfig\n"
        "from trashseg.infer.export import export_run\n"
        "from trashseg.infer.predictor import Predictor\n"
        "from trashseg.models.segmenter import load_model\n"
        "from trashseg.serve.app import create_app\n"
        f"folder, tmp = {str(folder)!r}, {str(tmp_path)!r}\n"
        "model = load_model(folder)\n"
        "image = np.load(tmp + '/image.npy')\n"
        "probs = Predictor(model, model.image_size, model.infer).predict([image])[0]\n"
        "assert np.allclose(probs, np.load(tmp + '/expected.npy'), atol=1e-5)\n"
        "assert model.info['val_miou'] == 0.5 and model.classes == ['bg', 'a', 'b']\n"
        "print('onnx', export_run(folder, tmp + '/m.onnx')['max_abs_prob_diff'] < 1e-4)\n"
        "buf = io.BytesIO(); Image.fromarray(image).save(buf, format='PNG')\n"
        "with TestClient(create_app(lambda: load_model(folder), infer=InferConfig())) as client:\n"
        "    import time\n"
        "    for _ in range(300):\n"
        "        if client.get('/ready').status_code == 200: break\n"
        "        time.sleep(0.1)\n"
        "    answer = client.post('/predict?format=json', files={'file': ('x.png', buf.getvalue(), 'image/png')})\n"
        "print('serve', answer.status_code, sorted(c['name'] for c in answer.json()['classes']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "onnx True" in result.stdout and "serve 200 ['a', 'b', 'bg']" in result.stdout, result.stdout


def test_a_bad_model_folder_is_named(tiny: tuple[Segmenter, Path], tmp_path: Path) -> None:
    segmenter, _ = tiny
    folder = segmenter.save_pretrained(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match=r"model.safetensors: the weights of .*model.yaml are missing"):
        load_model(folder)
    other = _segmenter()
    other.config.data.classes = ["bg", "a", "b", "c"]
    Segmenter.from_config(other.config).save_pretrained(tmp_path / "four")
    (tmp_path / "four" / "model.safetensors").replace(folder / "model.safetensors")  # weights of another model
    with pytest.raises(TrashsegError, match=r"model.safetensors: does not fit .*model.yaml"):
        load_model(folder)
    (folder / "model.yaml").write_text("trashseg: 0.1.0\n")
    with pytest.raises(TrashsegError, match=r"model.yaml: not a trashseg model card"):
        load_model(folder)


def test_training_writes_the_model_file_and_predict_prefers_it(trained_run: Path, tmp_path: Path) -> None:
    assert (trained_run / "model.yaml").is_file() and (trained_run / "model.safetensors").is_file()
    from_file, from_ckpt = load_model(trained_run), Segmenter.load(trained_run)
    assert from_file.info["source"] == str(trained_run.resolve())
    assert from_file.info["val_miou"] == from_ckpt.info["val_miou"]
    image = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    cfg = from_ckpt.infer
    same = [Predictor(m, m.image_size, cfg).predict([image])[0] for m in (from_file, from_ckpt)]
    assert np.allclose(*same, atol=1e-6)


def test_export_writes_the_model_file_of_an_older_run(tiny: tuple[Segmenter, Path], tmp_path: Path, capsys) -> None:
    from tests.helpers import run_cli

    run = tmp_path / "old_run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(tiny[1].read_bytes())
    code, text = run_cli(["export", run, "--format", "safetensors"], capsys)
    assert code == 0, text
    assert load_model(run).info["source"] == str(run.resolve())  # the model file now, not the checkpoint
