"""The competition's submission CSV: ``image_id,PredictionString`` with 256×256 class ids, row-major."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from trashseg.data.coco import CocoSplit, Problem
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_open
from trashseg.metrics import COMPETITION_SIZE, resize_nearest

HEADER = ["image_id", "PredictionString"]
csv.field_size_limit(sys.maxsize)  # a PredictionString is ~150 kB, above csv's default field limit
# A row is read at most this far: the largest real one is 4 × 65536 characters (three-digit ids and their spaces)
# plus its image_id, and reading a 100 MB line whole needed 3.9 GB.
MAX_ROW_CHARS = 1 << 20


def encode_mask(mask: np.ndarray) -> str:
    return " ".join(map(str, resize_nearest(mask).ravel().tolist()))


def write_submission(path: str | Path, rows: Iterable[tuple[str, np.ndarray]]) -> int:
    """Stream (file_name, mask) pairs into the CSV atomically; masks of any size are resized to 256×256."""
    n = 0
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for file_name, mask in rows:
            writer.writerow([file_name, encode_mask(mask)])
            n += 1
    return n


def iter_rows(path: str | Path) -> Iterator[tuple[int, str, str]]:
    """(line number, image_id, PredictionString) for each data row; a wrong header is an error."""
    path = Path(path)
    if not path.is_file():
        raise TrashsegError(f"{path}: submission file not found")
    with open(path, newline="", encoding="utf-8") as fh:
        lines = _BoundedLines(path, fh)
        reader = _utf8_rows(path, lines)
        header = next(reader, None)
        if header != HEADER:
            header_text = ",".join(header or ["(empty)"])
            raise TrashsegError(f"{path}: header must be {','.join(HEADER)}, got {header_text[:200]}")
        lines.next_row()
        for line, row in enumerate(reader, start=2):
            if len(row) != 2:
                raise TrashsegError(f"{path}:{line}: expected 2 columns, got {len(row)}")
            yield line, row[0], row[1]
            lines.next_row()


class _BoundedLines:
    """The file's lines for csv.reader, at most MAX_ROW_CHARS per CSV row (a quoted field may span lines): csv has
    only a process-wide field limit, checked after it has read a line whole."""

    def __init__(self, path: Path, fh: TextIO) -> None:
        self.path, self.fh, self.row, self.chars = path, fh, 1, 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        text = self.fh.readline(MAX_ROW_CHARS + 1 - self.chars)
        if not text:
            raise StopIteration
        self.chars += len(text)
        if self.chars > MAX_ROW_CHARS:
            raise TrashsegError(
                f"{self.path}:{self.row}: row longer than {MAX_ROW_CHARS} characters (a 256×256 PredictionString "
                f"has at most {4 * COMPETITION_SIZE**2}): not a submission row"
            )
        return text

    def next_row(self) -> None:
        self.row, self.chars = self.row + 1, 0


def _utf8_rows(path: Path, fh: Iterable[str]) -> Iterator[list[str]]:
    """CSV rows; bytes that are not UTF-8 (a file saved as Latin-1, say) are a named error, not a traceback."""
    try:
        yield from csv.reader(fh)
    except UnicodeDecodeError as exc:
        raise TrashsegError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} is invalid there); save the CSV as UTF-8"
        ) from None


def decode_row(path: Path, line: int, image_id: str, text: str, num_classes: int) -> np.ndarray:
    """One PredictionString → 256×256 uint8 mask, or an error naming the line and image id."""
    where = f"{path}:{line} image_id={image_id}"
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise TrashsegError(f"{where}: PredictionString holds non-integer values") from None
    except OverflowError:
        raise TrashsegError(f"{where}: a class id beyond 64 bits; class ids lie in [0, {num_classes - 1}]") from None
    if values.size != COMPETITION_SIZE**2:
        raise TrashsegError(f"{where}: {values.size} values, expected {COMPETITION_SIZE**2} (256×256)")
    if values.min() < 0 or values.max() >= num_classes:
        raise TrashsegError(
            f"{where}: class ids must lie in [0, {num_classes - 1}], found {values.min()}..{values.max()}"
        )
    return values.astype(np.uint8).reshape(COMPETITION_SIZE, COMPETITION_SIZE)


def read_submission(path: str | Path, num_classes: int) -> dict[str, np.ndarray]:
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    for line, image_id, text in iter_rows(path):
        if image_id in out:
            raise TrashsegError(f"{path}:{line}: image_id {image_id} appears twice")
        out[image_id] = decode_row(path, line, image_id, text, num_classes)
    return out


def check_submission(path: str | Path, split: CocoSplit) -> list[Problem]:
    """Everything that would make the competition reject or misread the file, each row named."""
    path = Path(path)
    file = str(path)
    expected = [img["file_name"] for img in split.images]
    problems: list[Problem] = []
    seen: list[str] = []
    seen_set: set[str] = set()
    try:
        for line, image_id, text in iter_rows(path):
            try:
                decode_row(path, line, image_id, text, len(split.classes))
            except TrashsegError as exc:
                problems.append(Problem("error", "bad_row", str(exc), file))
            if image_id in seen_set:
                problems.append(
                    Problem("error", "duplicate_row", f"line {line}: image_id {image_id} appears twice", file)
                )
            seen.append(image_id)
            seen_set.add(image_id)
    except TrashsegError as exc:  # a malformed line stops the reading; what was found before it still counts
        return [*problems, Problem("error", "bad_file", str(exc), file)]
    expected_set = set(expected)
    unknown = [i for i in dict.fromkeys(seen) if i not in expected_set]
    missing = [i for i in expected if i not in seen_set]
    if len(seen) != len(expected):
        problems.append(
            Problem("error", "row_count", f"{len(seen)} rows, {split.name} has {len(expected)} images", file)
        )
    problems += [Problem("error", "unknown_id", f"image_id {i} is not in {split.name}", file) for i in unknown[:20]]
    problems += [Problem("error", "missing_id", f"image_id {i} of {split.name} has no row", file) for i in missing[:20]]
    if not unknown and not missing and seen != expected:
        problems.append(Problem("error", "row_order", f"rows are not in {split.name} order", file))
    return problems
