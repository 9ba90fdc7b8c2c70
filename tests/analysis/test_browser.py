"""The reports open in a real browser: every picture decodes and no script fails (headless Debian Chromium)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from trashseg.analysis.eda import write_eda
from trashseg.analysis.report import write_report
from trashseg.config import load_config
from trashseg.data.coco import load_named_split
from trashseg.data.masks import MaskCache
from trashseg.infer.folder import PredictionFolder

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run installs them)",
)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pages(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pages")
    cfg = load_config(None, [f"data.root={sample_data}"])
    val = load_named_split(cfg.data, "val", True)
    cache = MaskCache(val, out / "cache")
    folder = PredictionFolder(out / "pred")
    folder.init({"classes": val.classes, "source": "test"})
    for k, img in enumerate(val.images):
        folder.write(img["file_name"], np.roll(cache.get(img), 3 * k, axis=1))  # wrong by a shift
    write_eda(val, out / "eda", cache)
    write_report([out / "pred"], val, out / "eval", cache, worst=4)
    return {"eda": out / "eda" / "index.html", "report": out / "eval" / "index.html"}


@pytest.mark.parametrize("page", ["eda", "report"])
def test_every_image_loads_and_no_script_error(browser, pages, page):
    browser.get(pages[page].as_uri())
    images = browser.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);")
    assert len(images) >= 5
    broken = [alt for alt, complete, width in images if not complete or width == 0]
    assert broken == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_clicking_a_header_sorts_the_worst_images(browser, pages):
    browser.get(pages["report"].as_uri())
    read = (
        "var t = document.querySelectorAll('table.sortable'); t = t[t.length - 1];"
        "return Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[1].textContent));"
    )
    before = browser.execute_script(read)
    assert before == sorted(before)  # worst first
    browser.execute_script(
        "var t = document.querySelectorAll('table.sortable'); t[t.length - 1]"
        ".tHead.rows[0].cells[1].click(); t[t.length - 1].tHead.rows[0].cells[1].click();"
    )
    assert browser.execute_script(read) == sorted(before, reverse=True)
