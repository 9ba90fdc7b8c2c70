import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.helpers import CLASSES, make_coco, run_cli
from trashseg.data.coco import load_split
from trashseg.errors import TrashsegError
from trashseg.submission import check_submission, read_submission, write_submission


@pytest.fixture
def split(tmp_path):
    return load_split(make_coco(tmp_path, name="test.json"), tmp_path, CLASSES)


def _masks(split):
    rng = np.random.default_rng(0)
    return [(img["file_name"], rng.integers(0, 4, (512, 512)).astype(np.uint8)) for img in split.images]


def test_roundtrip_resizes_to_256_nearest_row_major(tmp_path, split):
    rows = _masks(split)
    path = tmp_path / "sub.csv"
    assert write_submission(path, rows) == 2
    lines = path.read_text().splitlines()
    assert lines[0] == "image_id,PredictionString"
    assert lines[1].startswith("batch_01/0001.png,")
    back = read_submission(path, 4)
    assert list(back) == ["batch_01/0001.png", "batch_01/0002.png"]
    assert np.array_equal(back["batch_01/0001.png"], rows[0][1][::2, ::2])  # nearest = every second pixel
    values = lines[1].split(",")[1].split(" ")
    assert len(values) == 65536 and values[:3] == [str(v) for v in rows[0][1][0, 0:6:2]]
    assert check_submission(path, split) == []


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda ls: ["id,pred"] + ls[1:], "header must be image_id,PredictionString"),
        (lambda ls: ls[:2], "1 rows, test.json has 2 images"),
        (lambda ls: [ls[0], ls[2], ls[1]], "rows are not in test.json order"),
        (lambda ls: ls + [ls[1]], "image_id batch_01/0001.png appears twice"),
        (lambda ls: [ls[0], ls[1].replace("0001.png", "0009.png"), ls[2]], "image_id batch_01/0009.png is not in"),
        (lambda ls: [ls[0], ls[1] + " 1", ls[2]], "65537 values, expected 65536"),
        (lambda ls: [ls[0], ls[1][:-1] + "7", ls[2]], "class ids must lie in [0, 3]"),
        (lambda ls: [ls[0], ls[1][:-1] + "x", ls[2]], "non-integer values"),
    ],
)
def test_check_names_each_problem(tmp_path, split, mutate, message):
    path = tmp_path / "sub.csv"
    write_submission(path, _masks(split))
    path.write_text("\n".join(mutate(path.read_text().splitlines())) + "\n")
    problems = check_submission(path, split)
    assert any(message in str(p) for p in problems), problems


def test_reader_rejects_bad_file(tmp_path):
    with pytest.raises(TrashsegError, match="submission file not found"):
        read_submission(tmp_path / "nope.csv", 4)


def test_check_keeps_what_it_found_before_a_malformed_line(tmp_path, split):
    path = tmp_path / "sub.csv"
    write_submission(path, _masks(split))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1] + " 1", lines[2] + ",extra"]) + "\n")
    problems = [str(p) for p in check_submission(path, split)]
    assert any("65537 values" in p for p in problems) and any(":3: expected 2 columns, got 3" in p for p in problems)


def test_latin1_file_is_a_named_problem_not_a_traceback(tmp_path, split, capsys):
    """Issue 16.8: a CSV saved as Latin-1 by a spreadsheet."""
    path = tmp_path / "sub.csv"
    write_submission(path, _masks(split))
    text = path.read_text().replace("batch_01/0002.png", "batch_01/0002_é.png")
    path.write_bytes(text.encode("latin-1"))
    assert [p.code for p in check_submission(path, split)][-1] == "bad_file"
    code, out = run_cli(
        ["submission", "check", path, "--data", tmp_path, "--set", f"data.classes=[{','.join(CLASSES)}]"], capsys
    )
    assert code == 1 and f"{path}: not UTF-8 text (byte 0xe9 is invalid there); save the CSV as UTF-8" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("quoted", [False, True])
def test_a_row_longer_than_any_real_one_is_named_in_bounded_memory(tmp_path, quoted):
    """A 100 MB line was read whole and split (3.9 GB); a quoted field may span lines, so rows are bounded, not
    lines. 8 MB here: reading stops at the 1 MiB limit."""
    path = tmp_path / "sub.csv"
    with path.open("w") as fh:
        fh.write('image_id,PredictionString\na.png,"' if quoted else "image_id,PredictionString\na.png,")
        for _ in range(64):
            fh.write(("1 " * 1023 + "1\n") * 64 if quoted else "1 " * 65536)  # 128 kB
        fh.write('"\n' if quoted else "\n")
    tracemalloc.start()
    try:
        with pytest.raises(TrashsegError, match=r"sub\.csv:2: row longer than 1048576 characters .* at most 262144"):
            read_submission(path, 4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak


def test_a_class_id_beyond_64_bits_is_named(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("image_id,PredictionString\na.png," + "1 " * 65535 + "1" + "0" * 22 + "\n")
    with pytest.raises(TrashsegError, match=r"sub\.csv:2 image_id=a\.png: a class id beyond 64 bits; .*\[0, 3\]"):
        read_submission(path, 4)


_ROW = st.lists(st.sampled_from(["0", "3", "-1", "9" * 25, "x", " ", ",", '"', "\n", "\r", "é", "a.png"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(_ROW.map("".join), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))), raw=st.binary())
def test_fuzzed_submissions_read_or_give_a_named_error(tmp_path, body, raw):
    path = tmp_path / "sub.csv"
    for content in (("image_id,PredictionString\n" + body).encode("utf-8"), raw):
        path.write_bytes(content)
        try:
            read_submission(path, 4)
        except TrashsegError as exc:
            assert str(exc).startswith(str(path)), exc
