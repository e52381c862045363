"""The harness and ``media/support.js``: real Chromium trusts only the CA its NSS db was given."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.browser_support import StaticServer, write_tone_wav
from tests.browser.conftest import OpenBrowser
from townhall.pki import DevCA


def test_chromium_has_everything_the_media_modules_need(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    page = open_browser().new_page()
    page.goto(static_server.url + "/pages/media.html")
    support = page.evaluate("async () => (await import('/static/media/support.js')).checkSupport()")
    assert support == {"ok": True, "missing": []}


def test_support_check_names_what_an_insecure_page_lacks(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    # The same files reached through a non-loopback name are not a secure context.
    page = open_browser(extra_args=["--host-resolver-rules=MAP media.invalid 127.0.0.1"]).new_page()
    page.goto(static_server.url.replace("127.0.0.1", "media.invalid") + "/pages/media.html")
    support = page.evaluate("async () => (await import('/static/media/support.js')).checkSupport()")
    assert support["ok"] is False
    assert "a secure (HTTPS) page" in support["missing"]


def test_chromium_trusts_a_ca_through_its_nss_db_and_refuses_without_it(
    open_browser: OpenBrowser, tmp_path: Path
) -> None:
    ca = DevCA.ensure(tmp_path / "ca")
    issued = ca.issue("static", ["127.0.0.1"])
    root = tmp_path / "https-www"
    with StaticServer.for_browser_files(root, (issued.cert_file, issued.key_file)) as server:
        trusting = open_browser(ca_files=[ca.cert_file]).new_page()
        trusting.goto(server.url + "/pages/media.html")
        assert trusting.title() == "Townhall media test page"

        stranger = open_browser().new_page()
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            stranger.goto(server.url + "/pages/media.html")


def test_devices_are_listed_with_labels_and_the_chosen_microphone_is_used(
    open_browser: OpenBrowser, static_server: StaticServer, tmp_path: Path
) -> None:
    tone = write_tone_wav(tmp_path / "tone.wav", 440, 2.0)
    page = open_browser(audio_file=tone).new_page()
    page.goto(static_server.url + "/pages/media.html")
    found = page.evaluate(
        "async () => (await import('/static/media/devices.js')).listDevices({askPermission: true})"
    )
    assert found["microphones"] and found["cameras"]
    assert all(device["label"] for device in found["microphones"] + found["cameras"])
    chosen = found["microphones"][-1]
    label = page.evaluate(
        """async (deviceId) => {
            const {startMicrophone} = await import('/static/media/audio-send.js');
            const mic = await startMicrophone({deviceId, onPacket: () => {}});
            const label = mic.track.label;
            mic.stop();
            return label;
        }""",
        chosen["deviceId"],
    )
    assert label == chosen["label"]
    refusal = page.evaluate(
        """async () => {
            const {startMicrophone} = await import('/static/media/audio-send.js');
            try {
                await startMicrophone({deviceId: 'no-such-device', onPacket: () => {}});
                return 'started';
            } catch (error) {
                return error.name;
            }
        }"""
    )
    assert refusal == "OverconstrainedError"
