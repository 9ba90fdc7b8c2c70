"""Shared fixtures: a tiny hand-made COCO dataset (exact pixels known) and the generated sample dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers import RECIPE, make_coco, run_cli

# The fuzz tests draw the same examples on every run (a red CI must mean a change broke something, not that a new
# example turned up) and keep no example database in the checkout. To explore further by hand:
# pytest -p no:cacheprovider --hypothesis-profile explore tests/...
settings.register_profile("trashseg", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500, database=None)
settings.load_profile("trashseg")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    make_coco(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's ~/.cache from tests."""
    monkeypatch.setenv("TRASHSEG_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trashseg.data.sample import write_sample_dataset

    root = tmp_path_factory.mktemp("sample")
    write_sample_dataset(root, n_train=24, n_val=8, n_test=8, size=128, seed=0)
    return root


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[[list], tuple[int, str]]:
    """`run_cli` as a fixture (bound to this test's capsys): ``code, text = cli(["split", data])``."""
    return lambda args: run_cli(args, capsys)


@pytest.fixture(scope="session")
def trained_run(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for a few steps on the sample data: enough to exercise every inference command."""
    from trashseg.config import load_config
    from trashseg.train.run import train

    tmp = tmp_path_factory.mktemp("run")
    cfg = load_config(
        RECIPE,
        [
            f"data.root={sample_data}",
            f"data.cache_dir={tmp / 'cache'}",
            "train.epochs=1",
            "train.val_every=1",
            "train.max_steps_per_epoch=4",
            "augment.image_size=64",
            "train.loggers=[csv]",
        ],
    )
    train(cfg, tmp / "run")
    return tmp / "run"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Browser tests skip without Chromium; a green run must not hide that the pages went unchecked."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "chromium" in str(r.longrepr).lower()]
    if skipped:
        terminalreporter.write_line(
            f"NOTE: {len(skipped)} browser test(s) skipped: Chromium is missing, so the HTML pages and the web page "
            "were not checked in a browser (apt-get install chromium chromium-driver; .ci/run installs them)",
            yellow=True,
        )
