from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli
from trashseg.ensemble.voting import ensemble_csvs, ensemble_folders, hard_vote
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder
from trashseg.submission import read_submission, write_submission


def _member(root, probs_by_name, classes=("bg", "a", "b"), val_miou=None, split="/d/s.json"):
    f = PredictionFolder(root)
    f.init({"classes": list(classes), "has_probs": True, "val_miou": val_miou, "split": split, "data_root": "/d"})
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
    assert PredictionFolder(tmp_path / "e").meta().split == "/d/s.json"  # pseudo-labels need to know


def test_hard_vote_majority_and_tie_to_best_member(tmp_path):
    masks = [np.array([[1, 2]]), np.array([[1, 0]]), np.array([[2, 1]])]
    # first pixel: 2 votes for class 1; second pixel: a 3-way tie, decided by the best member
    roots = [Path("a"), Path("b"), Path("c")]
    assert hard_vote(masks, np.ones(3) / 3, best=2, num_classes=3, name="x.jpg", roots=roots).tolist() == [[1, 1]]
    assert hard_vote(masks, np.ones(3) / 3, best=0, num_classes=3, name="x.jpg", roots=roots).tolist() == [[1, 2]]
    # a zero-weight member does not switch the tie-break off
    assert hard_vote(masks, np.array([0.5, 0.0, 0.5]), best=2, num_classes=3, name="x.jpg", roots=roots).tolist() == [
        [2, 1]
    ]
    a = _member(tmp_path / "a", {"x.jpg": _probs([0, 1, 0])}, val_miou=0.5)
    b = _member(tmp_path / "b", {"x.jpg": _probs([0, 0, 1])}, val_miou=0.7)
    info = ensemble_folders([a, b], tmp_path / "h", "hard")
    assert PredictionFolder(tmp_path / "h").mask("x.jpg").tolist() == [[2]] and info["tie_break"].endswith("b")


def test_members_with_other_classes_or_shapes_are_refused(tmp_path):
    a = _member(tmp_path / "a", {"x.jpg": _probs([0.5, 0.5, 0])})
    c = _member(tmp_path / "c", {"x.jpg": _probs([0.5, 0.5])}, classes=("bg", "a"))
    with pytest.raises(TrashsegError, match="predicted with 2 classes.*3.*share one class list"):
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
    expected = hard_vote(masks, np.ones(3) / 3, best=0, num_classes=3, name="b.jpg", roots=paths)
    assert np.array_equal(read_submission(out, 3)["b.jpg"], expected)
    code, text = run_cli(["ensemble", *paths, "--out", out, "--mode", "soft"], capsys)
    assert code == 2 and "use --mode hard" in text


def test_hard_vote_tie_break_never_outvotes_a_weighted_majority():
    masks = [np.array([[1]]), np.array([[2]]), np.array([[2]])]
    roots = [Path("a"), Path("b"), Path("c")]
    assert hard_vote(
        masks, np.array([0.5, 0.3, 0.2001]), best=0, num_classes=3, name="x.jpg", roots=roots
    ).tolist() == [[2]]


def test_hard_vote_refuses_masks_that_do_not_line_up():
    roots = [Path("a"), Path("b")]
    with pytest.raises(TrashsegError, match=r"image x.jpg: mask shapes differ \(a: \(2, 2\), b: \(4, 1\)\)"):
        hard_vote(
            [np.zeros((2, 2), np.uint8), np.zeros((4, 1), np.uint8)],
            np.ones(2) / 2,
            best=0,
            num_classes=3,
            name="x.jpg",
            roots=roots,
        )
    with pytest.raises(TrashsegError, match="image x.jpg: b has class id 7, beyond the 3 classes"):
        hard_vote(
            [np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8)],
            np.ones(2) / 2,
            best=0,
            num_classes=3,
            name="x.jpg",
            roots=roots,
        )


def test_members_must_cover_the_same_images(tmp_path):
    one = {"x.jpg": _probs([0, 1, 0])}
    a = _member(tmp_path / "a", one)  # interrupted: x.jpg only
    b = _member(tmp_path / "b", {**one, "y.jpg": _probs([0, 1, 0])})
    with pytest.raises(TrashsegError, match=r"a has no prediction for 1 image\(s\) of .*b, e.g. y.jpg"):
        ensemble_folders([a, b], tmp_path / "e", "hard")


def test_a_killed_writes_temp_file_is_not_an_image(tmp_path):
    a = _member(tmp_path / "a", {"x.jpg": _probs([0, 1, 0])})
    b = _member(tmp_path / "b", {"x.jpg": _probs([0, 0, 1])})
    (a / "masks" / ".x.jpg.png.4242.tmp.png").write_bytes(b"half")  # left by an older writer killed mid-way
    assert ensemble_folders([a, b], tmp_path / "e", "hard")["images"] == 1


def test_rerun_with_other_settings_is_refused_not_mixed(tmp_path, monkeypatch):
    a = _member(tmp_path / "a", {"x.jpg": _probs([0, 1, 0])})
    b = _member(tmp_path / "b", {"x.jpg": _probs([0, 0, 1])})
    ensemble_folders([a, b], tmp_path / "e", "hard", weights=[1, 0])
    with pytest.raises(
        TrashsegError,
        match=r"already holds predictions made with weights=\[1.0, 0.0\]; this run "
        r"has weights=\[0.0, 1.0\]",
    ):
        ensemble_folders([a, b], tmp_path / "e", "hard", weights=[0, 1])
    assert PredictionFolder(tmp_path / "e").mask("x.jpg").tolist() == [[1]]
    monkeypatch.chdir(tmp_path)  # the same job, its folders spelled relative: resumes
    assert ensemble_folders([Path("a"), Path("b")], Path("e"), "hard", weights=[1, 0])["voted"] == 0


def test_unknown_mode_and_hard_with_probs_are_refused(tmp_path):
    a = _member(tmp_path / "a", {"x.jpg": _probs([0, 1, 0])})
    b = _member(tmp_path / "b", {"x.jpg": _probs([0, 0, 1])})
    with pytest.raises(TrashsegError, match="--mode 'Soft': choose soft or hard"):
        ensemble_folders([a, b], tmp_path / "e", "Soft")
    with pytest.raises(TrashsegError, match="--save-probs needs --mode soft"):
        ensemble_folders([a, b], tmp_path / "e", "hard", save_probs=True)


def test_csv_voting_quotes_ids_and_refuses_duplicates(tmp_path):
    m = np.zeros((256, 256), np.uint8)
    paths = [tmp_path / "s0.csv", tmp_path / "s1.csv"]
    for p in paths:
        write_submission(p, [("dir,x/1.jpg", m)])
    assert ensemble_csvs(paths, tmp_path / "v.csv", 3) == 1
    assert list(read_submission(tmp_path / "v.csv", 3)) == ["dir,x/1.jpg"]
    for p in paths:
        write_submission(p, [("a.jpg", m), ("a.jpg", m)])
    with pytest.raises(TrashsegError, match="image_id a.jpg appears twice"):
        ensemble_csvs(paths, tmp_path / "w.csv", 3)


@pytest.mark.parametrize("weights", ["nan,1", "inf,1", "1,-1", "0,0", "1e308,1e308"])
def test_nan_infinite_negative_or_zero_weights_are_refused(tmp_path, capsys, weights):
    a = _member(tmp_path / "a", {"x.jpg": _probs([0, 1, 0])})
    b = _member(tmp_path / "b", {"x.jpg": _probs([0, 0, 1])})
    with pytest.raises(TrashsegError, match="--weights .*: must be finite, non-negative numbers, not all zero"):
        ensemble_folders([a, b], tmp_path / "e", "soft", weights=[float(w) for w in weights.split(",")])
    code, text = run_cli(["ensemble", a, b, "--out", tmp_path / "e", "--weights", weights], capsys)
    assert code == 2 and "must be finite, non-negative numbers" in text, text
    assert not (tmp_path / "e").exists()


def test_members_predicted_on_other_splits_are_refused(tmp_path):
    same_names = {"x.jpg": _probs([0, 1, 0])}
    val = _member(tmp_path / "val", same_names, split="/d/val.json")
    test = _member(tmp_path / "test", same_names, split="/d/test.json")
    with pytest.raises(
        TrashsegError,
        match=r"test was predicted on split /d/test.json of /d, .*val on "
        r"/d/val.json of /d \(from their meta.json\): members must predict the "
        r"same split",
    ):
        ensemble_folders([val, test], tmp_path / "e", "hard")
    assert not (tmp_path / "e").exists()
