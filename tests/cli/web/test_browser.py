"""``cogen serve`` in a real browser: headless Chromium driven by Selenium through upload → draw
the mask → run → result; the JSON the page offers must match ``cogen complete`` with the same
seed. Saves the screenshot of docs/web.md and the README at docs/figures/web.png.

Skips, with the reason, where Selenium, Gradio, ``chromium`` or ``chromedriver`` is missing
(Debian: ``apt-get install -y chromium chromium-driver``; .ci/run installs them). Nothing is
downloaded: Selenium is pointed at the system's browser and driver.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

if importlib.util.find_spec("gradio") is None:  # the server imports it, not this test
    pytest.skip("cogen serve needs Gradio: pip install 'cogenerate[web]'", allow_module_level=True)
pytest.importorskip("selenium", reason="the browser test needs Selenium: pip install selenium")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

from cogenerate.cli import main  # noqa: E402
from cogenerate.cli.web import inputs  # noqa: E402
from tests.cli.web.helpers import assert_same_numbers, numbers  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[3]
SCREENSHOT = REPOSITORY / "docs" / "figures" / "web.png"
BROWSER = next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
DRIVER = shutil.which("chromedriver")
if BROWSER is None or DRIVER is None:
    pytest.skip("needs Chromium and its driver: apt-get install -y chromium chromium-driver "
                f"(found browser: {BROWSER}, driver: {DRIVER})", allow_module_level=True)

STARTUP_SECONDS = 90  # importing Gradio and torch on a busy machine
RUN_SECONDS = 60
# Polish steps of the watched run: enough that the sampler itself runs for several of the page's
# snapshot intervals (0.25 s), so a live update shows on a fast machine too (with 20 steps the
# sampler ended before the first one on one CI run).
RUN_STEPS = 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``cogen serve`` in a subprocess on a free port: ``(url, folder of its runs)``."""
    folder = tmp_path_factory.mktemp("served")
    port = _free_port()
    log = (folder / "server.log").open("w")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cogenerate", "--threads", "1", "serve", "--port", str(port), "--out",
         str(folder / "runs")], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"cogen serve exited with {process.returncode}:\n{(folder / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"cogen serve did not answer on {url} in {STARTUP_SECONDS} s")
            time.sleep(0.3)
        yield url, folder / "runs"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1300", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(what: str, condition: Callable[[], Any], *, seconds: float = 20.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - elements come and go while Svelte renders
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(every)


def _text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _set_number(driver: WebDriver, element_id: str, value: int) -> None:
    field = _wait(f"the field #{element_id}",
                  lambda: driver.find_element(By.CSS_SELECTOR, f"#{element_id} input[type=number]"))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(value), Keys.TAB)


def _toasts(driver: WebDriver) -> list[str]:
    return [toast.text for toast in driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")]


def _close_toasts(driver: WebDriver) -> None:
    for button in driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body] button[aria-label]"):
        if button.is_displayed():
            button.click()


def _draw(driver: WebDriver) -> None:
    """Paint a band across the middle of the image with four mouse strokes (the brush is the
    editor's default tool)."""
    canvas = _wait("the drawing canvas", lambda: driver.find_elements(By.CSS_SELECTOR, "#editor canvas")[-1])
    strokes = ActionChains(driver, duration=10)  # ms per pointer move (Selenium's default is 250)
    for dy in (-45, -25, -5, 15):
        strokes.move_to_element_with_offset(canvas, -70, dy).click_and_hold()
        strokes.move_by_offset(70, 0).move_by_offset(70, 0).release()
    strokes.perform()


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_upload_draw_run_cancel_and_the_json_matches_cogen_complete(server: tuple[str, Path], browser: WebDriver,
                                                                    tmp_path: Path) -> None:
    """One page session (loading the page again would double the test's time): a bad file, then
    upload → draw → run → result and its JSON against the command line, the screenshot, then a
    long run cancelled."""
    url, _ = server
    torch.set_num_threads(1)
    image = inputs.write_test_image(inputs.test_image_names()[3], tmp_path)  # the dress, 28×28 grey
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not an image")

    browser.get(url)
    upload = _wait("the upload field", lambda: browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]"))
    _wait("the model's description", lambda: "DCGAN" in _text(browser, "model-info"))

    # a file that is not an image: one clear line in the page, no traceback
    upload.send_keys(str(not_an_image))
    error = _wait("the error message", lambda: [text for text in _toasts(browser) if "not an image" in text])
    assert "notes.txt is not an image that can be read" in error[0] and "Traceback" not in browser.page_source
    _close_toasts(browser)
    browser.find_element(By.CSS_SELECTOR, "#upload button[aria-label='Clear']").click()

    # upload → draw → settings → run
    upload = _wait("the upload field again",
                   lambda: browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]"))
    upload.send_keys(str(image))
    _wait("the image on the canvas", lambda: "Paint the region to hide" in _text(browser, "status"))
    _draw(browser)
    _set_number(browser, "chains", 4)
    _set_number(browser, "budget", 0)
    browser.find_element(By.XPATH, "//button[contains(., 'More options')]").click()
    _set_number(browser, "steps", RUN_STEPS)
    browser.find_element(By.XPATH, "//button[contains(., 'More options')]").click()
    browser.find_element(By.ID, "run").click()

    statuses: set[str] = set()

    def finished() -> bool:
        statuses.add(_text(browser, "status").split(" · ")[0])
        return bool(browser.find_elements(By.CSS_SELECTOR, "#downloads a[href*='completion.json']"))

    _wait("the result", finished, seconds=RUN_SECONDS, every=0.05)
    assert "Running smc-polish" in statuses, f"no live update while the sampler ran: {statuses}"
    status = _text(browser, "status")
    assert status.startswith("Done: smc-polish, 4 chains") and "ESS" in status and "log evidence" in status

    # the result images are there
    for element_id in ("mean", "std", "weights", "figure"):
        source = browser.find_element(By.CSS_SELECTOR, f"#{element_id} img").get_attribute("src")
        assert source, f"no image in #{element_id}"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#completions img")) >= 4

    # the JSON the page offers, and the mask drawn
    links = {Path(a.get_attribute("href")).name: a.get_attribute("href")
             for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a[href]")}
    assert {"completion.json", "completion.png", "mean.png", "samples.png", "mask.png"} <= set(links)
    page = json.loads(_download(links["completion.json"]))
    (tmp_path / "mask.png").write_bytes(_download(links["mask.png"]))
    hidden = int((np.asarray(Image.open(tmp_path / "mask.png")) < 128).sum())
    assert page["mask"].startswith("file:") and page["hidden_pixels"] == hidden and 20 < hidden < 28 * 28 // 2
    assert (page["chains"], page["steps"], page["seed"], page["budget"]) == (4, RUN_STEPS, 0, None)

    # the same run from the command line the report names
    argv = shlex.split(page["command"])[1:]
    assert argv[0] == "complete" and argv[-2] == "--out"
    assert main(["--quiet", "--threads", "1", *argv[:-1], str(tmp_path / "command")]) == 0
    command = json.loads((tmp_path / "command" / "completion.json").read_text())
    assert_same_numbers(page, command, tolerance=1e-5)
    assert numbers(page) > 50

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    _close_toasts(browser)
    browser.execute_script("window.scrollTo(0, 0)")
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 40, 2400))
    time.sleep(0.5)
    assert browser.save_screenshot(str(SCREENSHOT))
    browser.set_window_size(1400, 1300)

    # a long run, cancelled: the sampler stops and the page shows the partial result
    method = browser.find_element(By.CSS_SELECTOR, "#method input")
    method.click()
    method.send_keys(Keys.CONTROL, "a")
    method.send_keys("ais", Keys.ENTER)
    browser.find_element(By.XPATH, "//button[contains(., 'More options')]").click()
    _set_number(browser, "steps", 3000)
    browser.find_element(By.ID, "run").click()
    _wait("the long run to start", lambda: _text(browser, "status").startswith("Running ais"), seconds=RUN_SECONDS)
    browser.find_element(By.ID, "cancel").click()
    _wait("the partial result", lambda: _text(browser, "status").startswith("Cancelled: partial result of ais"),
          seconds=30)
    cancelled = json.loads(_download(next(
        a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a[href*='completion.json']"))))
    assert cancelled["method"] == "ais" and cancelled["steps"] == 3000
    assert any("stopped by the callback" in warning for warning in cancelled["diagnostics"]["warnings"])
