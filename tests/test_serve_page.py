"""The web page of `escnet serve` in a real headless browser (Playwright driving chromium).

Needs the Python package ``playwright`` (the dev extras: imported directly, so a broken install
fails) and a chromium binary (Debian's ``chromium``; Playwright's own browser download cannot
work offline): the binary is ``$ESCNET_CHROMIUM`` or the first of ``chromium``,
``chromium-browser``, ``google-chrome`` on the PATH. Without one the test skips, saying so,
unless ``ESCNET_REQUIRE_BROWSER=1`` (``scripts/test.sh`` sets it, and installs chromium when it
may): then it fails.
With ``ESCNET_PAGE_SCREENSHOT=PATH`` it also saves its screenshot there (the README's picture).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import playwright.sync_api  # noqa: F401  (dev extras: a missing one fails, never skips)
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from _inference_helpers import CLASSES, Server, three_segment_signal, train_tiny_model  # noqa: E402


def _browser() -> str:
    required = os.environ.get("ESCNET_REQUIRE_BROWSER") == "1"
    names = ("chromium", "chromium-browser", "google-chrome")
    found = os.environ.get("ESCNET_CHROMIUM") or next(filter(None, map(shutil.which, names)), None)
    if not found:
        message = "no chromium binary (apt-get install chromium, or set ESCNET_CHROMIUM)"
        if required:
            pytest.fail(message + "; ESCNET_REQUIRE_BROWSER=1 says it should be there")
        pytest.skip(message)
    return found


@pytest.mark.slow
def test_page_uploads_a_recording_and_shows_labels(tmp_path: Path) -> None:
    chromium = _browser()
    from playwright.sync_api import sync_playwright

    model = train_tiny_model(tmp_path / "model")
    recording = tmp_path / "three_sounds.wav"
    sf.write(recording, three_segment_signal(16000, 4.0), 16000)  # 12 s: several windows
    tmpdir = tmp_path / "server-tmp"
    tmpdir.mkdir()
    server_log = tmp_path / "server.log"
    with Server(model, ["--threads", "1"], tmpdir, server_log) as server, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1100})
            page.goto(server.url + "/")
            page.wait_for_function(
                "document.getElementById('model').textContent.includes('tiny_test_cnn')"
            )
            page.set_input_files("#file", str(recording))
            page.wait_for_selector("body[data-state=done]", timeout=60_000)
            top = page.text_content("#top-label")
            bars = page.locator("#topk .bar").count()
            runs = page.locator("#runs li").all_text_contents()
            # The spectral image was drawn: the canvas holds non-black pixels.
            lit = page.evaluate(
                """() => {
                      const c = document.getElementById('spectrogram');
                      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0;
                      for (let i = 0; i < d.length; i += 4) n += d[i] + d[i + 1] + d[i + 2] > 60;
                      return n / (c.width * c.height);
                    }"""
            )
            visible = page.is_visible("#spectrogram") and page.is_visible("#timeline")
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert top in CLASSES
    assert bars == 3
    assert visible and lit > 0.05
    # The window labels follow the recording: its three sounds in order (a window that
    # straddles two sounds may get a third label; such runs are one window long).
    spans = []
    for run in runs:  # "4.0 – 8.0 s: high_tone"
        times, label = run.split(" s: ")
        start, end = (float(t) for t in times.split(" – "))
        spans.append((end - start, label))
    assert [label for length, label in spans if length > 1.0] == list(CLASSES)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("ESCNET_PAGE_SCREENSHOT")
    if target:
        Path(target).write_bytes(png)
    assert np.frombuffer(png, np.uint8).size > 10_000
