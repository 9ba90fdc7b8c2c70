"""`predict --crf`: the CRF refines the probabilities inside predict, as `trashseg crf` does on a saved folder."""

from __future__ import annotations

import numpy as np

from tests.helpers import predict_val, run_cli
from trashseg.infer.folder import PredictionFolder


def test_predict_crf_gives_the_masks_of_crf_on_the_saved_probabilities(trained_run, sample_data, tmp_path, capsys):
    settings = ["--set", "crf.iterations=2", "--set", "crf.workers=1"]
    plain_args = predict_val(trained_run, sample_data, tmp_path / "plain", "--save-probs")
    code, text = run_cli([*plain_args, *settings], capsys)
    assert code == 0, text
    code, text = run_cli(["crf", tmp_path / "plain", "--out", tmp_path / "after", *settings], capsys)
    assert code == 0, text
    code, text = run_cli([*predict_val(trained_run, sample_data, tmp_path / "inside", "--crf"), *settings], capsys)
    assert code == 0, text
    inside, after, plain = (PredictionFolder(tmp_path / n) for n in ("inside", "after", "plain"))
    assert inside.meta().crf["iterations"] == 2  # the refinement is part of the job, so a resume keeps it
    assert inside.names() == after.names() == plain.names()
    agree = [np.mean(inside.mask(n) == after.mask(n)) for n in inside.names()]
    assert min(agree) > 0.99, agree  # the saved probabilities are float16: a few pixels may round the other way
    changed = [np.mean(inside.mask(n) != plain.mask(n)) for n in inside.names()]
    assert max(changed) > 0, "the CRF changed no pixel of any image"
