import numpy as np
import pytest

from trashseg import fileio
from trashseg.errors import TrashsegError
from trashseg.infer.folder import PredictionFolder


def test_roundtrip_nested_file_names_and_done(tmp_path):
    f = PredictionFolder(tmp_path)
    f.init({"classes": ["bg", "a"]})
    probs = np.random.default_rng(0).random((2, 5, 7)).astype(np.float32)
    assert not f.done("batch_01/0001.jpg", with_probs=True)
    f.write("batch_01/0001.jpg", probs.argmax(0), probs)
    assert f.done("batch_01/0001.jpg", with_probs=True)
    assert (tmp_path / "masks" / "batch_01" / "0001.jpg.png").exists()
    np.testing.assert_allclose(f.probs("batch_01/0001.jpg"), probs, atol=1e-3)  # float16 on disk
    assert np.array_equal(f.mask("batch_01/0001.jpg"), probs.argmax(0))


def test_resuming_with_other_classes_is_refused_and_missing_things_named(tmp_path):
    f = PredictionFolder(tmp_path)
    f.init({"classes": ["bg", "a"]})
    with pytest.raises(
        TrashsegError,
        match=r"already holds predictions made with classes=\['bg', 'a'\]; this run "
        r"has classes=\['bg', 'b'\]",
    ):
        f.init({"classes": ["bg", "b"]})
    with pytest.raises(TrashsegError, match="no probabilities for image x.jpg"):
        f.probs("x.jpg")
    with pytest.raises(TrashsegError, match="not a prediction folder"):
        PredictionFolder(tmp_path / "nope").meta()


def test_resume_must_be_the_same_job_and_keeps_probabilities(tmp_path):
    f = PredictionFolder(tmp_path)
    job = {"classes": ["bg", "a"], "source": "run1", "tta": {"hflip": True, "scales": (1.0,)}}
    assert f.init({**job, "has_probs": True})["has_probs"]
    with pytest.raises(TrashsegError, match=r"made with tta=\{'hflip': True, 'scales': \[1.0\]\}; this run has tta="):
        f.init({**job, "tta": {"hflip": False, "scales": [1.0]}, "has_probs": True})
    # the same job resumes (tuples and lists compare as they read back); a folder with probabilities keeps them
    assert f.init({**job, "has_probs": False})["has_probs"] and f.meta()["has_probs"]


def test_names_skip_a_killed_writes_temp_files(tmp_path):
    f = PredictionFolder(tmp_path)
    f.init({"classes": ["bg", "a"]})
    f.write("d/1.jpg", np.zeros((2, 2), np.uint8))
    (tmp_path / "masks" / "d" / ".2.jpg.png.77.tmp.png").write_bytes(b"")
    assert f.names() == ["d/1.jpg"] and not list(tmp_path.rglob("*.tmp"))


def test_outputs_outside_the_folder_are_refused(tmp_path):
    """Issue 16.2: `trashseg pseudo` takes file names straight from a split JSON; none may leave the folder."""
    f = PredictionFolder(tmp_path / "pred")
    f.init({"classes": ["bg", "a"]})
    mask = np.zeros((4, 4), np.uint8)
    for name in ("../../x/secret.jpg", str(tmp_path / "x" / "secret.jpg")):
        with pytest.raises(TrashsegError, match="is absolute or contains '..'"):
            f.write(name, mask, mask[None].astype(np.float32))
    (tmp_path / "pred" / "masks").symlink_to(tmp_path)
    with pytest.raises(TrashsegError, match="leads through a symbolic link"):
        f.write("a.jpg", mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]


def test_resume_removes_the_temporaries_of_a_killed_run(tmp_path):
    """Issue 16.7: a SIGKILL mid-write leaves a hidden temporary; the rerun of the same job deletes it."""
    f = PredictionFolder(tmp_path)
    f.init({"classes": ["bg", "a"]})
    stale = tmp_path / "masks" / "b" / ".1.jpg.png.k3j4h5g6.999999999@x.tmp.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    stale.rename(stale.with_name(stale.name.replace("@x", f"@{fileio._HOST}")))
    f.init({"classes": ["bg", "a"]})
    assert not list(tmp_path.rglob("*.tmp*"))
