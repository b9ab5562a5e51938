"""The Gradio web chat, driven by headless Chromium: type a prompt, read the streamed answer.

Skipped (with the reason printed) only when Chromium, its driver, selenium or gradio cannot be
found; .ci/run installs them. The browser may resolve nothing but 127.0.0.1, and every wait is
bounded, so the test cannot hang CI or reach the network.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import time

import pytest

from tests.merge.adapter_util import make_adapter

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 90


def _missing() -> str | None:
    for module in ("gradio", "selenium"):
        if importlib.util.find_spec(module) is None:
            return (
                f"python package `{module}` is not installed (pip install 'honer[gradio]' selenium)"
            )
    if not any(shutil.which(b) for b in BROWSERS):
        return "no Chromium binary on PATH (apt-get install chromium)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # loopback only
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(TIMEOUT_S)
    return driver


def test_web_chat_streams_answer_in_browser(tiny_model_dir, tmp_path) -> None:
    reason = _missing()
    if reason:
        print(f"SKIPPED gradio browser test: {reason}")
        pytest.skip(reason)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from honer.infer.chat import Assistant
    from honer.infer.gradio_app import build_app, launch
    from honer.infer.prompt import PromptFormatter
    from honer.infer.stream import Sampling

    cfg, model = make_adapter(tiny_model_dir, tmp_path / "out")
    from honer.model.load import load_tokenizer

    tok = load_tokenizer(cfg)
    assistant = Assistant(model.eval(), tok, PromptFormatter(cfg, tok), Sampling(12))
    want = "".join(assistant.reply([{"role": "user", "content": "hello world"}])).strip()
    assert want
    app = build_app(assistant, "honer test")
    port = _free_port()
    launch(app, "127.0.0.1", port, share=False, block=False)
    driver = None
    try:
        driver = _browser()
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, TIMEOUT_S)
        box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "textarea"))
        box.send_keys("hello world")
        box.send_keys(Keys.ENTER)

        def answer(d) -> str | None:
            bots = d.find_elements(By.CSS_SELECTOR, '[data-testid="bot"]')
            text = " ".join(bots[-1].text.split()) if bots else ""
            return text if text == " ".join(want.split()) else None

        start = time.monotonic()
        got = wait.until(answer)
        print(f"browser read the answer in {time.monotonic() - start:.1f}s: {got!r}")
    finally:
        if driver is not None:
            driver.quit()
        app.close()
