import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

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
    assert f.init({**job, "has_probs": True}).has_probs
    with pytest.raises(TrashsegError, match=r"made with tta=\{'hflip': True, 'scales': \[1.0\]\}; this run has tta="):
        f.init({**job, "tta": {"hflip": False, "scales": [1.0]}, "has_probs": True})
    # the same job resumes (tuples and lists compare as they read back); a folder with probabilities keeps them
    assert f.init({**job, "has_probs": False}).has_probs and f.meta().has_probs


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


def _meta(folder, meta) -> PredictionFolder:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta))
    return PredictionFolder(folder)


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"classes": "bg,a"}, r"classes: Input should be a valid list"),
        ({"classes": ["bg", 1]}, r"classes\.1: Input should be a valid string"),
        ({"classes": [f"c{i}" for i in range(300)]}, r"classes: List should have at most 255 items"),
        ({"classes": ["bg", "a"], "members": "/x"}, r"members: Input should be a valid list"),
        ({"classes": ["bg", "a"], "val_miou": float("nan")}, r"val_miou: Input should be a finite number"),
        ({"classes": ["bg", "a"], "has_probs": "maybe"}, r"has_probs: Input should be a valid boolean"),
        ([1, 2], r"\(root\): Input should be a valid dictionary"),
    ],
)
def test_a_meta_json_that_is_not_a_prediction_meta_is_named_by_file_and_field(tmp_path, meta, error):
    with pytest.raises(TrashsegError, match=rf"meta\.json: invalid prediction folder meta\n  {error}"):
        _meta(tmp_path, meta).meta()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"[" * 100_000, r"nested too deep"),
        (b'{"classes": ["bg", "' + b"a" * (1 << 20) + b'"]}', r"larger than 1048576 bytes"),
        ('{"classes": ["bg", "é"]}'.encode("latin-1"), r"not UTF-8 text \(offset 20\)"),
    ],
)
def test_a_meta_json_too_deep_too_large_or_not_utf8_is_named(tmp_path, content, error):
    (tmp_path / "meta.json").write_bytes(content)
    with pytest.raises(TrashsegError, match=rf"meta\.json: {error}"):
        PredictionFolder(tmp_path).meta()


def test_members_that_list_themselves_or_nest_too_deep_are_named(tmp_path):
    """A meta.json whose members listed its own folder sent audit's leakage check into a RecursionError."""
    loop = _meta(tmp_path / "loop", {"classes": ["bg", "a"], "members": [str(tmp_path / "other")]})
    _meta(tmp_path / "other", {"classes": ["bg", "a"], "members": [str(tmp_path / "loop")]})
    with pytest.raises(TrashsegError, match=r"other/meta\.json: lists .*loop as its own member \(.*loop → .*other →"):
        loop.models()
    for k in range(12):  # chain0 → chain1 → ... → chain11
        _meta(tmp_path / f"chain{k}", {"classes": ["bg", "a"], "members": [str(tmp_path / f"chain{k + 1}")]})
    _meta(tmp_path / "chain12", {"classes": ["bg", "a"], "source": "run/best.ckpt"})
    with pytest.raises(TrashsegError, match=r"chain0/meta\.json: members nested deeper than 8"):
        PredictionFolder(tmp_path / "chain0").models()
    leaves = PredictionFolder(tmp_path / "chain6").models()
    assert [(f.root.name, m.source) for f, m in leaves] == [("chain12", "run/best.ckpt")]


def test_many_members_listing_the_same_folders_visit_a_bounded_number(tmp_path):
    """Each level listing the next 200 times would be 200^8 visits."""
    _meta(tmp_path / "l3", {"classes": ["bg", "a"]})
    for k in (2, 1, 0):
        _meta(tmp_path / f"l{k}", {"classes": ["bg", "a"], "members": [str(tmp_path / f"l{k + 1}")] * 200})
    assert len(PredictionFolder(tmp_path / "l2").models()) == 200
    with pytest.raises(TrashsegError, match=r"l0/meta\.json: its members list more than 1024 folders"):
        PredictionFolder(tmp_path / "l0").models()


def test_an_image_list_with_a_malformed_info_is_named(tmp_path):
    folder = PredictionFolder(tmp_path)
    (tmp_path / "images.json").write_text(json.dumps({"info": {"video": {"file": "a.mp4", "every": 0}}, "images": []}))
    with pytest.raises(TrashsegError, match=r"images\.json: invalid image list\n  info\.video\.every: .*greater than"):
        folder.image_list()
    (tmp_path / "images.json").write_text(json.dumps({"info": "x", "images": []}))
    with pytest.raises(TrashsegError, match=r"images\.json: invalid image list\n  info: Input should be"):
        folder.image_list()


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_META = st.fixed_dictionaries(
    {},
    optional={
        key: _JSON | st.lists(st.text(max_size=8), max_size=3)
        for key in ("classes", "members", "source", "split", "has_probs", "val_miou", "image_size", "tta")
    },
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(meta=_META | _JSON, raw=st.binary(max_size=80))
def test_fuzzed_meta_and_image_lists_read_or_give_a_named_error(tmp_path, meta, raw):
    folder = PredictionFolder(tmp_path)
    for content in (json.dumps(meta).encode("utf-8"), raw):
        for name, read in (("meta.json", folder.models), ("images.json", folder.image_list)):
            (tmp_path / name).write_bytes(content)
            try:
                read()
            except TrashsegError as exc:
                assert str(tmp_path) in str(exc), exc
