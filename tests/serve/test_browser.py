"""The served page in a real browser (headless Debian Chromium over a loopback uvicorn): upload a photo, see the
overlay and legend, toggle a class, move the opacity slider, no script error, no sideways scroll on a phone."""

import io
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import cv2
import httpx
import pytest
import uvicorn
from PIL import Image

from trashseg.config import InferConfig
from trashseg.models.segmenter import load_model
from trashseg.serve.app import create_app

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run installs them)",
)
SCREENSHOT_LIMIT = 300_000


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(trained_run):
    """http://127.0.0.1:PORT/ of a real uvicorn in a thread, once /ready says the model answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(lambda: load_model(trained_run), infer=InferConfig(hflip=True))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not become ready"
        time.sleep(0.1)
    yield url
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def photo(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated scene, enlarged to a photo's proportions."""
    name = json.loads((sample_data / "val.json").read_text())["images"][0]["file_name"]
    image = cv2.resize(cv2.imread(str(sample_data / name)), (480, 360), interpolation=cv2.INTER_NEAREST)
    path = tmp_path_factory.mktemp("photo") / "bottles.jpg"
    cv2.imwrite(str(path), image)
    return path


def _opaque(browser) -> int:
    return browser.execute_script(
        "const c = document.getElementById('overlay'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0;"
        "return n;"
    )


def test_upload_shows_overlay_and_legend_and_the_controls_work(browser, server, photo, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1100, 900)
    browser.get(server)
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "tta").get_attribute("value") == "hflip")
    browser.execute_script("document.getElementById('file').hidden = false;")
    browser.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(browser, 120).until(lambda b: not b.find_element(By.ID, "status").text.startswith("segmenting"))
    status = browser.find_element(By.ID, "status").text
    assert status.startswith("bottles.jpg: 480×360, TTA hflip"), status
    size = browser.execute_script("const c = document.getElementById('overlay'); return [c.width, c.height];")
    assert size == [480, 360]
    rows = browser.find_elements(By.CSS_SELECTOR, "#legend tr")
    assert rows and all(r.find_element(By.CSS_SELECTOR, "input[type=checkbox]") for r in rows)
    assert browser.find_element(By.ID, "mask").get_attribute("download") == "bottles_mask.png"

    box = rows[0].find_element(By.CSS_SELECTOR, "input[type=checkbox]")  # the largest class: it has pixels
    before = _opaque(browser)
    box.click()
    assert _opaque(browser) != before
    box.click()
    assert _opaque(browser) == before
    slider = browser.find_element(By.ID, "opacity")
    slider.send_keys(Keys.END)
    assert browser.execute_script("return document.getElementById('overlay').style.opacity;") == "1"
    slider.send_keys(Keys.HOME)
    assert browser.execute_script("return document.getElementById('overlay').style.opacity;") == "0"
    slider.send_keys(*[Keys.RIGHT] * 60)
    assert browser.execute_script("return document.getElementById('overlay').style.opacity;") == "0.6"

    browser.execute_script("document.getElementById('file').hidden = true;")  # as a visitor sees the page
    shot = tmp_path / "serve.png"  # a 256-colour palette: a photo's screenshot in full colour is ~400 kB
    Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB").quantize(256).save(shot, optimize=True)
    assert 0 < shot.stat().st_size < SCREENSHOT_LIMIT
    if os.environ.get("TRASHSEG_SCREENSHOT"):  # how docs/serve.png is refreshed
        shutil.copyfile(shot, os.environ["TRASHSEG_SCREENSHOT"])

    browser.set_window_size(390, 844)  # a phone
    width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth];")
    assert width[0] <= width[1], width
    view = browser.execute_script("return document.getElementById('view').getBoundingClientRect().right;")
    assert view <= width[1]
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_refused_upload_shows_the_servers_message(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    browser.get(server)
    browser.execute_script("document.getElementById('file').hidden = false;")
    browser.find_element(By.ID, "file").send_keys(str(text))
    WebDriverWait(browser, 30).until(lambda b: "error" in b.find_element(By.ID, "status").get_attribute("class"))
    assert browser.find_element(By.ID, "status").text.startswith("notes.jpg: cannot be decoded: not an image")
