import numpy as np
import pytest

from tests.conftest import run_cli
from trashseg.ensemble.voting import ensemble_folders, hard_vote
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.submission import read_submission, write_submission


def _member(root, probs_by_name, classes=("bg", "a", "b"), val_miou=None):
    f = PredictionFolder(root)
    f.init({"classes": list(classes), "has_probs": True, "val_miou": val_miou, "split": "s.json", "data_root": "/d"})
    for name, probs in probs_by_name.items():
        f.write(name, probs.argmax(0), probs)
    return root


def _probs(*pixels):
    """One row of pixels, each given as its class distribution."""
    return np.array(pixels, np.float32).T[:, None, :]


def test_soft_vote_is_the_weighted_mean(tmp_path):
    a = _member(tmp_path / "a", {"x.jpg": _probs([0.6, 0.4, 0], [0.1, 0.9, 0])})
    b = _member(tmp_path / "b", {"x.jpg": _probs([0.0, 1.0, 0], [0.1, 0.0, 0.9])})
    ensemble_folders([a, b], tmp_path / "e", "soft", save_probs=True)
    e = PredictionFolder(tmp_path / "e")
    np.testing.assert_allclose(e.probs("x.jpg")[:, 0, :], [[0.3, 0.1], [0.7, 0.45], [0, 0.45]], atol=1e-3)
    ensemble_folders([a, b], tmp_path / "w", "soft", weights=[3, 1])
    assert PredictionFolder(tmp_path / "w").mask("x.jpg").tolist() == [[1, 1]]
    assert PredictionFolder(tmp_path / "e").meta()["split"] == "s.json"  # pseudo-labels need to know


def test_hard_vote_majority_and_tie_to_best_member(tmp_path):
    masks = [np.array([[1, 2]]), np.array([[1, 0]]), np.array([[2, 1]])]
    # first pixel: 2 votes for class 1; second pixel: a 3-way tie, decided by the best member
    assert hard_vote(masks, np.ones(3) / 3, best=2, num_classes=3).tolist() == [[1, 1]]
    assert hard_vote(masks, np.ones(3) / 3, best=0, num_classes=3).tolist() == [[1, 2]]
    a = _member(tmp_path / "a", {"x.jpg": _probs([0, 1, 0])}, val_miou=0.5)
    b = _member(tmp_path / "b", {"x.jpg": _probs([0, 0, 1])}, val_miou=0.7)
    info = ensemble_folders([a, b], tmp_path / "h", "hard")
    assert PredictionFolder(tmp_path / "h").mask("x.jpg").tolist() == [[2]] and info["tie_break"].endswith("b")


def test_members_with_other_classes_or_shapes_are_refused(tmp_path):
    a = _member(tmp_path / "a", {"x.jpg": _probs([0.5, 0.5, 0])})
    c = _member(tmp_path / "c", {"x.jpg": _probs([0.5, 0.5])}, classes=("bg", "a"))
    with pytest.raises(TrashsegError, match="predicts 2 classes.*3.*share one class list"):
        ensemble_folders([a, c], tmp_path / "e", "soft")
    d = _member(tmp_path / "d", {"x.jpg": np.full((3, 2, 2), 1 / 3, np.float32)})
    with pytest.raises(TrashsegError, match=r"image x.jpg: probability shapes differ"):
        ensemble_folders([a, d], tmp_path / "e2", "soft")


def test_csv_hard_voting_via_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    masks = [rng.integers(0, 3, (256, 256)).astype(np.uint8) for _ in range(3)]
    paths = []
    for k, m in enumerate(masks):
        paths.append(tmp_path / f"s{k}.csv")
        write_submission(paths[-1], [("a.jpg", m), ("b.jpg", m)])
    out = tmp_path / "vote.csv"
    code, text = run_cli(["ensemble", *paths, "--out", out, "--mode", "hard", "--num-classes", "3"], capsys)
    assert code == 0, text
    expected = hard_vote(masks, np.ones(3) / 3, 0, 3)
    assert np.array_equal(read_submission(out, 3)["b.jpg"], expected)
    code, text = run_cli(["ensemble", *paths, "--out", out, "--mode", "soft"], capsys)
    assert code == 2 and "use --mode hard" in text
