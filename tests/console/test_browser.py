"""The console in a real Chromium (Selenium), with a resident in a real ``billtalk chat``.

A resident asks for a person in the terminal chat; a staff member logs in, finds
the handoff in the inbox, takes it, replies, and the reply arrives in the chat's
stdout; then releases it. Also: filter by intent, annotate a turn and export the
queue, and a ``<script>`` message shown as text. Screenshots go to the test's
temporary folder (and to ``BILLTALK_CONSOLE_SHOTS`` when set).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.console.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
BILLTALK = str(Path(sys.executable).parent / "billtalk")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "browser-test-password"

pytestmark = pytest.mark.slow


class Chat:
    """A ``billtalk chat`` subprocess: send a line, read the reply block up to ``--``."""

    def __init__(self, env: dict[str, str], resident: str) -> None:
        self.proc = subprocess.Popen(
            [BILLTALK, "chat", "--resident", resident],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def say(self, text: str, timeout: float = 120) -> list[str]:
        """Send one message; the lines printed before its ``--``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        block: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line == "--":
                self.transcript += [f"> {text}", *block]
                return block
            block.append(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _run(env: dict[str, str], *args: str, stdin: str = "") -> str:
    r = subprocess.run(
        [BILLTALK, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def product(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A seeded demo community served by ``billtalk serve`` (SQLite file), with staff."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: run scripts/setup.sh (installs chromium)")
    env = {**os.environ, "BILLTALK_DATABASE_URL": f"sqlite:///{tmp_path / 'billtalk.db'}"}
    env.pop("BILLTALK_DIALOGUE_DATABASE_URL", None)
    seeded = json.loads(_run(env, "demo", "seed", "--households", "4", "--months", "2"))
    _run(env, "staff", "add", "--username", "sam", "--role", "supervisor", stdin=PASSWORD + "\n")
    port = free_port()
    server = subprocess.Popen(
        [BILLTALK, "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            pytest.fail("billtalk serve did not start")
        time.sleep(0.3)
    try:
        yield {"env": env, "base": base, "seeded": seeded}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1100",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    target = os.environ.get("BILLTALK_CONSOLE_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def _wait(driver: Any, condition: Any, timeout: float = 30) -> Any:
    """Wait for ``condition``, looking again when HTMX swapped the node being read.

    The console's polling replaces parts of the page; chromedriver then sometimes reports
    the node it just found as "not belonging to the document" (a plain WebDriverException,
    not a stale-element one). That is a race of the test's reading, not a failure: the
    condition is checked again on the new node.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(d: Any) -> Any:
        try:
            return condition(d)
        except StaleElementReferenceException:
            return False
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return False
            raise

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)


def test_handoff_from_a_real_chat_filter_annotate_and_script_as_text(
    product: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    base, env = product["base"], product["env"]
    resident = product["seeded"]["households"][2]["resident_ids"][0]
    chat = Chat(env, resident)
    try:
        chat.say("hello")
        handed = chat.say("I want to talk to a person")
        assert any("staff" in line.lower() for line in handed), handed
        chat.say("<script>alert(1)</script>")

        # -- log in (the console redirects to its login form) ---------------------------
        browser.get(f"{base}/console/")
        _wait(browser, ec.presence_of_element_located((By.NAME, "username")))
        _shot(browser, tmp_path, "01-login")
        browser.find_element(By.NAME, "username").send_keys("sam")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        _wait(browser, ec.presence_of_element_located((By.ID, "inbox-rows")))

        # -- the handoff is in the inbox (HTMX polling keeps it live) --------------------
        row = _wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "tr.inbox-row")))
        conversation_id = row.get_attribute("data-conversation")
        _shot(browser, tmp_path, "02-inbox")
        row.find_element(By.TAG_NAME, "a").click()
        _wait(browser, ec.presence_of_element_located((By.ID, "reply-form")))
        browser.find_element(By.CSS_SELECTOR, "button[name=take]").click()
        _wait(browser, ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dl.facts"), "sam"))

        # the <script> message is shown as text, and nothing ran
        texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".message-text")]
        assert "<script>alert(1)</script>" in texts
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert  # noqa: B018 - raises when no alert is open
        # each resident message shows its intent and confidence
        assert "human_handoff" in browser.find_element(By.ID, "transcript").text

        # -- reply: it reaches the resident's terminal chat ------------------------------
        reply = "Hi, this is Sam from the management office. How can I help?"
        browser.find_element(By.CSS_SELECTOR, "#reply-form textarea").send_keys(reply)
        browser.find_element(By.CSS_SELECTOR, "#reply-form button[type=submit]").click()
        _wait(browser, ec.text_to_be_present_in_element((By.ID, "transcript"), reply))
        _shot(browser, tmp_path, "03-conversation")
        block = chat.say("my water bill looks wrong")
        assert reply in "\n".join(block), block
        # the resident's new message shows up live (HTMX polling), without a reload
        _wait(
            browser,
            ec.text_to_be_present_in_element((By.ID, "transcript"), "my water bill looks wrong"),
            timeout=30,
        )
        _shot(browser, tmp_path, "04-live")

        # -- release: the assistant answers again -----------------------------------------
        browser.find_element(By.CSS_SELECTOR, "button[name=release]").click()
        _wait(browser, ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dd.status"), "active"))
        answered = chat.say("how much do I owe?")
        assert any("¥" in line or "owe" in line.lower() for line in answered), answered

        # -- filter by intent ------------------------------------------------------------
        browser.get(f"{base}/console/conversations")
        Select(browser.find_element(By.NAME, "intent")).select_by_value("human_handoff")
        browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
        _wait(browser, ec.url_contains("intent=human_handoff"))
        links = [
            a.get_attribute("href")
            for a in browser.find_elements(By.CSS_SELECTOR, "tr.conversation-row a")
        ]
        assert [link.rsplit("/", 1)[1] for link in links] == [conversation_id]
        _shot(browser, tmp_path, "05-filtered")
        browser.get(f"{base}/console/conversations?intent=pay_bill")
        assert browser.find_elements(By.CSS_SELECTOR, "tr.conversation-row") == []

        # -- annotate a turn, then export the queue ---------------------------------------
        browser.get(f"{base}/console/conversations/{conversation_id}")
        turn = next(
            t
            for t in browser.find_elements(By.CSS_SELECTOR, "article.turn")
            if "my water bill looks wrong" in t.text
        )
        turn.find_element(By.TAG_NAME, "summary").click()
        intent = turn.find_element(By.NAME, "intent")
        intent.clear()
        intent.send_keys("explain_bill")
        turn.find_element(By.NAME, "entities").send_keys("utility=water")
        turn.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        _wait(browser, ec.text_to_be_present_in_element((By.ID, "transcript"), "✓ explain_bill"))
        browser.get(f"{base}/console/annotations")
        assert "my water bill looks wrong" in browser.page_source
        _shot(browser, tmp_path, "06-annotations")
        out = tmp_path / "nlu.yml"
        _run(env, "nlu", "annotations", "export", "--out", str(out))
        doc = yaml.safe_load(out.read_text(encoding="utf-8"))
        assert doc["nlu"] == [
            {"intent": "explain_bill", "examples": "- my [water](utility) bill looks wrong\n"}
        ]

        # -- the dashboard renders its charts ---------------------------------------------
        browser.get(f"{base}/console/dashboard")
        assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart svg polyline")) >= 6
        images = browser.find_elements(By.CSS_SELECTOR, "figure.chart img")
        assert images and all(
            browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images
        )
        _shot(browser, tmp_path, "07-dashboard")
        # Chinese: the language link switches every label
        browser.find_element(By.LINK_TEXT, "中文").click()
        _wait(browser, ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "仪表盘"))
        assert "自助解决率" in browser.page_source
        browser.find_element(By.LINK_TEXT, "EN").click()
        _wait(browser, ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Dashboards"))
        # the browser saw no CSP violation or script error
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == []
    finally:
        chat.close()
