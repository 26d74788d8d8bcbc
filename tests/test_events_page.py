"""The events timeline of `escnet serve`'s web page, in a real headless browser (as
tests/test_serve_page.py drives it: Playwright and the system's chromium, skipped when absent
unless ``ESCNET_REQUIRE_BROWSER=1``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from _inference_helpers import SAMPLE_RATE, Server, synth, train_tiny_model  # noqa: E402
from test_serve_page import _browser  # noqa: E402


@pytest.mark.slow
def test_page_draws_the_events_of_a_long_recording(tmp_path: Path) -> None:
    chromium = _browser()
    from playwright.sync_api import sync_playwright

    model = train_tiny_model(tmp_path / "model")
    rng = np.random.default_rng(3)
    x = np.zeros(30 * SAMPLE_RATE, np.float32)  # silence, with two sounds in it
    x[4 * SAMPLE_RATE : 7 * SAMPLE_RATE] = synth("low_tone", 3.0, SAMPLE_RATE, rng)
    x[20 * SAMPLE_RATE : 22 * SAMPLE_RATE] = synth("high_tone", 2.0, SAMPLE_RATE, rng)
    recording = tmp_path / "two_sounds.wav"
    sf.write(recording, x, SAMPLE_RATE)
    tmpdir = tmp_path / "server-tmp"
    tmpdir.mkdir()
    with (
        Server(model, ["--threads", "1"], tmpdir, tmp_path / "server.log") as server,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.goto(server.url + "/")
            page.wait_for_function(
                "document.getElementById('model').textContent.includes('tiny_test_cnn')"
            )
            page.set_input_files("#file", str(recording))
            page.wait_for_selector("body[data-events=done]", timeout=60_000)
            items = page.locator("#event-list li").all_text_contents()
            note = page.text_content("#events-note")
            # Event bands and score tracks were drawn: the canvas is no longer blank.
            drawn = page.evaluate(
                """() => {
                      const c = document.getElementById('events-canvas');
                      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0;
                      for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
                      return n / (c.width * c.height);
                    }"""
            )
            visible = page.is_visible("#events-canvas")
            page.screenshot(path=str(tmp_path / "events.png"), full_page=True)
        finally:
            browser.close()
    # "4.0 – 7.0 s: low_tone (peak 0.93)"
    spans = [(item.split(" s: ")[1].split(" (")[0], item.split(" – ")[0]) for item in items]
    assert [label for label, _ in spans] == ["low_tone", "high_tone"], items
    assert [float(start) for _, start in spans] == pytest.approx([4.0, 20.0], abs=0.5)
    assert note.startswith("2 event(s)") and visible and drawn > 0.05
