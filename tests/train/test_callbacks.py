import json

from trashseg.train.callbacks import ValidationReport


def test_history_keeps_one_line_per_epoch_when_an_epoch_is_repeated(tmp_path):
    """A crash between a validation and its checkpoint makes the resumed run validate that epoch again."""
    report = ValidationReport(tmp_path, ["bg", "a"])
    for epoch, miou in [(0, 0.1), (1, 0.2), (1, 0.25), (2, 0.3)]:
        report._append_history({"epoch": epoch, "miou": miou})
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"epoch": 0, "miou": 0.1}, {"epoch": 1, "miou": 0.25},
                                                     {"epoch": 2, "miou": 0.3}]
