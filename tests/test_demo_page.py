"""The demo page (`./run demo`): driven in a real headless Chromium, and its streaming of long audio."""

import os
import shutil
import time

import pytest
import soundfile
from conftest import ROOT

from evaluation.arctic import ARCTIC
from evaluation.recordings import RATE, real_recording_with_pauses

SCREENSHOT = os.path.join(ROOT, "outputs", "demo_page.png")  # README's picture: assets/demo_page.png is a copy of it


def chromium_driver():
    """Headless Chromium through selenium, from Debian's chromium + chromium-driver (./run installs them as root)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("NO BROWSER TEST: chromium/chromedriver missing (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(driver))  # paths given: selenium downloads nothing


@pytest.fixture(scope="module")
def default_pipe(default_dir):
    from transformers import pipeline

    pipe = pipeline("speech-instruct", model=default_dir, trust_remote_code=True)
    pipe.model.merge_lora()
    return pipe


def test_transcribing_in_the_browser_shows_the_pipelines_text(default_pipe):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from scripts.demo_page import build_page, launch_page

    expected = default_pipe(ARCTIC.audio, task="transcribe", max_new_tokens=48)
    page = build_page(default_pipe, max_new_tokens=48)
    _, url, _ = launch_page(page, port=None, block=False)
    browser = chromium_driver()
    try:
        started = time.perf_counter()
        browser.get(url)
        wait = WebDriverWait(browser, 120)
        upload = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#audio input[type=file]"))[0]
        upload.send_keys(os.path.abspath(ARCTIC.audio))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#audio audio, #audio [data-testid='waveform-controls']"))
        browser.find_element(By.CSS_SELECTOR, "#transcribe").click()
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#status").text.startswith("done"))
        shown = browser.find_element(By.CSS_SELECTOR, "#output textarea").get_attribute("value")
        status = browser.find_element(By.CSS_SELECTOR, "#status").text
        os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
        assert browser.save_screenshot(SCREENSHOT)
        print(f"browser test: page, upload, transcription in {time.perf_counter() - started:.1f} s")
    finally:
        browser.quit()
        page.close()
    assert shown == expected and len(expected.split()) >= 3
    assert "audio 4.0 s" in status  # arctic_a0007 lasts 4.0 s
    with open(SCREENSHOT, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_long_recording_streams_segment_by_segment_to_the_pipelines_text(seamless_checkpoint, tmp_path):
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct)
    from scripts.demo_page import Responder

    pipe = pipeline("speech-instruct", model=seamless_checkpoint)
    audio, _ = real_recording_with_pauses(rounds=3)
    path = str(tmp_path / "long.wav")
    soundfile.write(path, audio, RATE)
    kwargs = dict(max_new_tokens=4)
    updates = list(Responder(pipe, **kwargs).respond("transcribe", path, "de", "", "", progress=lambda *a, **k: None))
    texts = [text for text, _ in updates]
    assert len(pipe.segments(audio, "segments")) >= 4
    assert texts[-1] == pipe(path, task="transcribe", **kwargs)
    assert updates[-1][1].startswith("done") and f"audio {len(audio) / RATE:.1f} s" in updates[-1][1]
    assert len(set(texts)) > len(pipe.segments(audio, "segments"))  # it grew piece by piece, not once per segment


def test_a_click_without_what_it_needs_is_a_message_on_the_page(seamless_checkpoint):
    import gradio as gr
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct)
    from scripts.demo_page import Responder

    responder = Responder(pipeline("speech-instruct", model=seamless_checkpoint))
    with pytest.raises(gr.Error, match="Upload or record"):
        next(responder.respond("transcribe", None, "de", "", ""))
    with pytest.raises(gr.Error, match="Write a question"):
        next(responder.respond("answer", ARCTIC.audio, "de", " ", ""))
    not_audio = os.path.join(ROOT, "README.md")
    with pytest.raises(gr.Error, match="README.md"):
        next(responder.respond("transcribe", not_audio, "de", "", ""))


def test_a_beam_searched_transcript_comes_whole_and_equals_the_pipelines(seamless_checkpoint, tmp_path):
    """With transcribe_num_beams > 1 the page cannot stream one hypothesis: it shows the pipeline's transcript."""
    from transformers import pipeline

    from scripts.demo_page import Responder

    pipe = pipeline("speech-instruct", model=seamless_checkpoint)
    pipe.model.config.transcribe_num_beams, pipe.model.config.transcribe_ctc_weight = 3, 0.3
    path = str(tmp_path / "clip.wav")
    soundfile.write(path, real_recording_with_pauses(rounds=1)[0][: 3 * RATE], RATE)
    try:
        updates = list(Responder(pipe, max_new_tokens=5).respond("transcribe", path, "de", "", "", progress=lambda *a, **k: None))
        expected = pipe(path, task="transcribe", max_new_tokens=5)
    finally:
        pipe.model.config.transcribe_num_beams, pipe.model.config.transcribe_ctc_weight = 1, 0.0
    assert updates[-1][0] == expected and updates[-1][1].startswith("done")
    with pytest.raises(ValueError, match="streamer follows one hypothesis"):
        pipe(path, task="transcribe", num_beams=2, streamer=object(), max_new_tokens=2)
