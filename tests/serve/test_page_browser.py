"""The web page at ``/`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright): the form is
built from the model's schema, an image is picked and an audio file dropped, the record is submitted, and the
rendered prediction, probabilities and contribution chart are those of the model."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'modalfuse[serve]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright: pip install 'modalfuse[test]'"
)

from .test_serve_app import _row, frame_of  # noqa: E402

#: Flags of a headless Chromium that reaches nothing but the test server.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    """Debian's chromium (or the browser named by ``MODALFUSE_CHROMIUM``); skip when there is none."""
    found = (
        os.environ.get("MODALFUSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found or not Path(found).exists():
        pytest.skip("no chromium to drive: install Debian's chromium (apt-get install -y chromium)")
    return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    executable = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield context
        finally:
            context.close()


def _drop_file(page: Any, selector: str, path: Path, mime: str) -> None:
    """Drop ``path`` on the element ``selector`` as a user dragging the file from their desktop would."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name, mime]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: mime}));
            return transfer;
        }""",
        [data, path.name, mime],
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_the_page_predicts_a_picked_image_and_a_dropped_audio_file(
    browser, server, served_clf, table_dir: Path, tmp_path: Path
) -> None:
    row_index = 11
    row = _row(table_dir, row_index)
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")

    # the form is built from GET /model: one field per column the model uses
    page.wait_for_selector("#submit:not([disabled])")
    fields = page.eval_on_selector_all("#record [data-column]", "els => els.map(e => [e.name, e.type])")
    assert dict(fields) == {
        "image": "file",
        "audio": "file",
        "text": "textarea",
        "num": "number",
        "colour": "text",
        "speaker": "text",
    }
    assert "late" in page.text_content("#about")

    page.set_input_files("input[name=image]", str(table_dir / row["image"]))
    _drop_file(page, "#drop-audio", table_dir / row["audio"], "audio/wav")
    assert (
        page.eval_on_selector("input[name=audio]", "e => e.files.length && e.files[0].name") == row["audio"]
    )
    page.wait_for_selector("#drop-image img")  # the picked image is previewed
    page.fill("textarea[name=text]", row["text"])
    page.click("#submit")
    page.wait_for_selector("#prediction[data-prediction]")

    expected = served_clf.explain(frame_of(table_dir, [(row_index, ("image", "audio", "text"))]))
    proba = served_clf.predict_proba(frame_of(table_dir, [(row_index, ("image", "audio", "text"))]))[0]
    assert page.text_content("#prediction") == str(expected["prediction"].iloc[0])
    shown = {
        tr.get_attribute("data-class"): float(tr.query_selector_all("td")[1].text_content())
        for tr in page.query_selector_all("#probabilities tr")
    }
    assert shown == {
        str(c): pytest.approx(p, abs=5e-4) for c, p in zip(served_clf.classes_, proba, strict=True)
    }
    used = page.text_content("#used")
    assert used.startswith("inputs used: image, audio, text") and "treated as missing: tabular" in used

    bars = page.query_selector_all("#chart svg rect.bar")
    values = {b.get_attribute("data-input"): float(b.get_attribute("data-value")) for b in bars}
    assert set(values) == set(served_clf.inputs_)
    for name, value in values.items():
        assert value == pytest.approx(float(expected[name].iloc[0]), abs=1e-6)
    assert values["tabular"] == 0.0  # not given: contributes nothing
    widths = {b.get_attribute("data-input"): float(b.get_attribute("width")) for b in bars}
    strongest = max(values, key=lambda n: abs(values[n]))
    assert widths[strongest] == max(widths.values()) > 1.0  # bars are drawn to scale

    assert errors == []
    origin = server.url + "/"
    assert all(u.startswith(origin) or u.startswith(("data:", "blob:")) for u in requests), requests
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("MODALFUSE_SCREENSHOT")  # docs/serving-page.png is made this way
    if target:
        shutil.copyfile(shot, target)
    page.close()


def test_the_page_shows_a_client_error_as_text(browser, server) -> None:
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#submit:not([disabled])")
    page.set_input_files(
        "input[name=image]", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    page.click("#submit")
    # a selector wait, not wait_for_function: the page's policy forbids eval, which polling a string needs
    page.wait_for_selector("#error:not(:empty)")
    assert page.text_content("#error").startswith("image: ")
    assert "does not fit the image input" in page.text_content("#error")
    assert page.text_content("#prediction") == "—"
    page.fill("input[name=num]", "0.5")
    page.set_input_files("input[name=image]", files=[])
    page.click("#submit")
    page.wait_for_selector("#prediction[data-prediction]")
    assert page.text_content("#error") == ""
    assert np.isfinite(float(page.query_selector("#chart svg rect.bar").get_attribute("data-value")))
    page.close()
