import numpy as np
import pytest

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
    with pytest.raises(TrashsegError, match="already holds predictions for classes"):
        f.init({"classes": ["bg", "b"]})
    with pytest.raises(TrashsegError, match="no probabilities for image x.jpg"):
        f.probs("x.jpg")
    with pytest.raises(TrashsegError, match="not a prediction folder"):
        PredictionFolder(tmp_path / "nope").meta()
