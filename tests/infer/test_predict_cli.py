"""predict / evaluate / submit / export on a really trained model, through the CLI."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import fill_disk, predict_val, run_cli, write_bomb, write_image
from trashseg.infer.export import export_run
from trashseg.infer.folder import PredictionFolder
from trashseg.models.onnx import OnnxSegmenter
from trashseg.models.segmenter import checkpoint_of


def test_predict_writes_folder_and_evaluate_scores_it(trained_run, sample_data, tmp_path, capsys):
    out = tmp_path / "pred"
    args = predict_val(trained_run, sample_data, out, "--save-probs", "--hflip", "--scales", "0.75,1.0")
    code, text = run_cli(args, capsys)
    assert code == 0, text
    folder = PredictionFolder(out)
    meta = folder.meta()
    assert meta.tta == {"hflip": True, "vflip": False, "scales": [0.75, 1.0], "mode": "resize"}
    names = [i["file_name"] for i in json.loads((sample_data / "val.json").read_text())["images"]]
    probs = folder.probs(names[0])
    assert probs.shape == (11, 128, 128) and probs.dtype == np.float32
    assert (folder.mask(names[0]) == probs.argmax(0)).mean() > 0.99  # probs are stored as float16
    code, text = run_cli(
        ["evaluate", out, "--data", sample_data, "--split", "val", "--out", tmp_path / "s.json"], capsys
    )
    assert code == 0, text
    scores = json.loads((tmp_path / "s.json").read_text())
    assert 0 < scores["miou"] <= 1 and "per_class" in scores
    # crf finds the images from the folder's own meta (dataset root and split)...
    code, text = run_cli(["crf", out, "--out", tmp_path / "crf", "--set", "crf.iterations=1"], capsys)
    assert code == 0 and PredictionFolder(tmp_path / "crf").names() == sorted(names), text
    # ...and refuses a split other than the one predicted
    code, text = run_cli(["crf", out, "--out", tmp_path / "crf2", "--split", "test"], capsys)
    assert code == 2 and "give that split (--split val.json)" in " ".join(text.split()), text
    code, text = run_cli(["overlay", tmp_path / "crf", "--limit", "2"], capsys)
    jpgs = sorted((tmp_path / "crf" / "overlays").rglob("*.jpg"))
    assert code == 0 and [p.relative_to(tmp_path / "crf" / "overlays").as_posix() for p in jpgs] == sorted(names[:2]), (
        text
    )  # the first two of the split; its file names are .jpg already
    assert cv2.imread(str(jpgs[0])).shape[1] == 2 * 128 + 6  # prediction beside ground truth (val is annotated)


def test_killed_predict_resumes_where_it_stopped(trained_run, sample_data, tmp_path, monkeypatch, capsys):
    from trashseg.infer import folder as folder_mod

    real_write, calls = folder_mod.PredictionFolder.write, []

    def dying_write(self, *args, **kwargs):
        if len(calls) == 3:
            raise RuntimeError("machine died")  # after three images
        calls.append(args[0])
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(folder_mod.PredictionFolder, "write", dying_write)
    out = tmp_path / "pred"
    args = ["predict", trained_run, "--data", sample_data, "--split", "test", "--out", out, "--workers", "0"]
    with pytest.raises(RuntimeError, match="machine died"):
        run_cli(args, capsys)
    monkeypatch.undo()
    assert len(list((out / "masks").rglob("*.png"))) == 3
    assert not list(out.rglob("*.tmp*"))  # nothing half-written
    code, text = run_cli(args, capsys)
    flat = "".join(text.split())  # rich may wrap the printed dict anywhere
    assert code == 0 and "'predicted':5" in flat and "'skipped':3" in flat, text
    code, text = run_cli([*args, "--hflip"], capsys)  # another job into the same folder would mix outputs
    assert code == 2 and "made with tta=" in text and "Use another --out" in " ".join(text.split()), text


def test_a_full_disk_stops_predict_with_a_named_error_and_a_rerun_resumes(
    trained_run, sample_data, tmp_path, monkeypatch, capsys
):
    """Issue 27.2: no Errno 28 traceback: the folder that is full, that what was finished is kept, that a rerun
    resumes; nothing half-written, and the rerun ends with the masks of a run that had room."""
    ref, out = tmp_path / "ref", tmp_path / "pred"
    args = ["predict", trained_run, "--data", sample_data, "--split", "test", "--workers", "0", "--save-probs"]
    assert run_cli([*args, "--out", ref], capsys)[0] == 0
    written = sum(p.stat().st_size for p in ref.rglob("*") if p.is_file())
    fill_disk(monkeypatch, out, free=written // 2)
    code, text = run_cli([*args, "--out", out], capsys)
    flat = " ".join(text.split())
    assert code == 2 and "Traceback" not in text and "Errno" not in text, text
    assert f"error: {out}/" in flat and " is full (no space left on its disk): cannot write " in flat, text
    assert "the outputs finished before it are kept" in flat and "rerun the same command to resume" in flat
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary, no half-written file
    kept = len(list((out / "masks").rglob("*.png")))
    assert 0 < kept < 8, kept
    monkeypatch.undo()
    code, text = run_cli([*args, "--out", out], capsys)
    assert code == 0 and f"'skipped':{kept}" in "".join(text.split()), text
    for mask in (ref / "masks").rglob("*.png"):
        assert mask.read_bytes() == (out / mask.relative_to(ref)).read_bytes()


def test_predict_objects_are_written_per_image_and_resume(trained_run, sample_data, tmp_path, cli):
    from trashseg.infer.objects import find_objects

    out = tmp_path / "pred"
    args = predict_val(trained_run, sample_data, out, "--objects", "--min-area", "5")
    code, text = cli(args)
    assert code == 0, text
    folder = PredictionFolder(out)
    assert folder.meta().objects == {"min_area": 5, "connectivity": 8}
    names = [i["file_name"] for i in json.loads((sample_data / "val.json").read_text())["images"]]
    total = 0
    for name in names:
        written = json.loads(folder.objects_path(name).read_text())
        assert (written["file_name"], written["height"], written["width"]) == (name, 128, 128)
        expected = [o.to_dict() for o in find_objects(folder.mask(name), folder.classes, min_area=5)]
        assert [{**o, "confidence": None} for o in written["objects"]] == expected  # the stored mask's regions
        assert all(0 < o["confidence"] <= 1 and o["area"] >= 5 for o in written["objects"])
        total += len(written["objects"])
    assert total > 0
    # resumable: an image whose objects are missing is predicted again, the others are skipped
    folder.objects_path(names[0]).unlink()
    code, text = cli(args)
    assert code == 0 and "'predicted': 1" in text and folder.objects_path(names[0]).exists(), text
    # the objects' settings are part of the job: another min-area into the same folder is refused
    code, text = cli([*args[:-1], "20"])
    assert code != 0 and "objects" in text and "Use another --out" in " ".join(text.split()), text


def test_submit_then_check(trained_run, sample_data, tmp_path, capsys):
    out = tmp_path / "pred"
    assert run_cli(["predict", trained_run, "--data", sample_data, "--out", out, "--workers", "0"], capsys)[0] == 0
    csv = tmp_path / "sub.csv"
    code, text = run_cli(["submit", out, "--data", sample_data, "--out", csv], capsys)
    assert code == 0, text
    code, text = run_cli(["submission", "check", csv, "--data", sample_data], capsys)
    assert code == 0 and "OK" in text, text
    code, text = run_cli(["evaluate", csv, "--data", sample_data, "--split", "test"], capsys)
    assert code == 2 and "missing top-level key 'annotations'" in text


def test_predict_with_wrong_class_list_is_refused(trained_run, sample_data, tmp_path, capsys):
    from trashseg.config import RECYCLING_CLASSES

    shuffled = ["Background", *reversed(RECYCLING_CLASSES[1:])]  # same names, other order: indices would lie
    code, text = run_cli(
        ["predict", trained_run, "--data", sample_data, "--out", tmp_path / "p", "--set", f"data.classes={shuffled}"],
        capsys,
    )
    assert code == 2 and "the model predicts classes" in text


def test_onnx_export_parity_and_runtime_predict(trained_run, sample_data, tmp_path, capsys):
    onnx = tmp_path / "m.onnx"
    assert export_run(trained_run, onnx)["max_abs_prob_diff"] < 1e-4
    code, text = run_cli(["export", trained_run, "--out", tmp_path / "cli.onnx"], capsys)
    assert code == 0 and (tmp_path / "cli.onnx").stat().st_size > 1000, text
    out_onnx, out_torch = tmp_path / "po", tmp_path / "pt"
    for src, out in ((onnx, out_onnx), (trained_run, out_torch)):
        assert (
            run_cli(["predict", src, "--data", sample_data, "--split", "val", "--out", out, "--workers", "0"], capsys)[
                0
            ]
            == 0
        )
    a, b = PredictionFolder(out_onnx), PredictionFolder(out_torch)
    name = json.loads((sample_data / "val.json").read_text())["images"][0]["file_name"]
    assert (a.mask(name) == b.mask(name)).mean() > 0.999


def test_predict_uses_the_runs_own_infer_section_unless_told_otherwise(trained_run, sample_data, tmp_path, capsys):
    """A run's infer section is its test-time recipe (mmseg's test_cfg): flags and --set override it key by key."""
    ckpt = torch.load(checkpoint_of(trained_run), weights_only=True)
    ckpt["hyper_parameters"]["config"]["infer"].update(hflip=True, scales=[1.0, 0.75])
    own = tmp_path / "own.ckpt"
    torch.save(ckpt, own)
    for options, hflip, scales in (
        ((), True, [1.0, 0.75]),
        (("--no-hflip",), False, [1.0, 0.75]),
        (("--set", "infer.scales=[1.0]"), True, [1.0]),
    ):
        out = tmp_path / f"pred{len(options)}{hflip}"
        code, text = run_cli(predict_val(own, sample_data, out, *options), capsys)
        assert code == 0, text
        tta = PredictionFolder(out).meta().tta
        assert tta == {"hflip": hflip, "vflip": False, "scales": scales, "mode": "resize"}
    export_run(own, tmp_path / "own.onnx")
    assert OnnxSegmenter(tmp_path / "own.onnx").infer.scales == [1.0, 0.75]


def _hostile_copy(sample_data, tmp_path, *extra: dict) -> Path:
    """The sample test split (two images) plus `extra` image entries, in a dataset folder of its own."""
    root = tmp_path / "data"
    test = json.loads((sample_data / "test.json").read_text())
    test["images"] = test["images"][:2] + list(extra)
    for img in test["images"][:2]:
        (root / img["file_name"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_data / img["file_name"], root / img["file_name"])
    (root / "test.json").write_text(json.dumps(test))
    return root


def test_predict_refuses_file_names_outside_the_dataset(trained_run, sample_data, tmp_path, capsys):
    """Issue 16.2: '../x/secret.jpg' is neither read nor written back as masks/../x/secret.jpg.png."""
    secret = tmp_path / "x" / "secret.jpg"
    write_image(secret)
    root = _hostile_copy(sample_data, tmp_path, {"id": 99, "file_name": "../x/secret.jpg", "height": 32, "width": 48})
    out = tmp_path / "preds" / "p"
    code, text = run_cli(["predict", trained_run, "--data", root, "--out", out, "--workers", "0"], capsys)
    assert code == 2 and "image_id=99: '../x/secret.jpg' is absolute or contains '..'" in " ".join(text.split())
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["secret.jpg"] and not out.exists()


def test_predict_refuses_an_image_bomb(trained_run, sample_data, tmp_path, capsys):
    """Issue 16.3: a 49 MP 1-bit PNG (6 kB) is refused by its header instead of allocating gigabytes."""
    root = _hostile_copy(sample_data, tmp_path, {"id": 99, "file_name": "bomb.png", "height": 7000, "width": 7000})
    write_bomb(root / "bomb.png")
    out = tmp_path / "p"
    code, text = run_cli(["predict", trained_run, "--data", root, "--out", out], capsys)  # 2 DataLoader workers
    assert code == 2 and "bomb.png: 7000×7000 is 49.0 MP, over the limit of 40.0 MP" in text, text
    assert "Traceback" not in text
    assert not list(out.rglob("*.tmp*"))
    code, text = run_cli(
        ["predict", trained_run, "--data", root, "--out", out, "--workers", "0", "--set", "data.max_pixels=1000"],
        capsys,
    )
    assert code == 2 and "0.0 MP, over the limit of 0.0 MP" in text and "bomb.png" not in text, text


def test_predict_out_that_is_a_file_or_read_only_is_named(trained_run, sample_data, tmp_path, monkeypatch, capsys):
    """Issue 16.8: a named error instead of FileExistsError / PermissionError tracebacks."""
    from tests.helpers import make_read_only

    taken = tmp_path / "preds.txt"
    taken.write_text("notes")
    code, text = run_cli(["predict", trained_run, "--data", sample_data, "--out", taken, "--workers", "0"], capsys)
    assert code == 2 and f"cannot create folder {taken}: {taken} is a file" in text, text
    assert taken.read_text() == "notes"
    locked = make_read_only(tmp_path / "ro", monkeypatch)
    code, text = run_cli(["predict", trained_run, "--data", sample_data, "--out", locked, "--workers", "0"], capsys)
    assert (
        code == 2
        and f"cannot write {locked / 'meta.json'}: Permission denied; choose a folder you can write to" in text
    ), text
    assert "Traceback" not in text
