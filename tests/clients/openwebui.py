"""
Open WebUI, driven in a headless chromium (selenium), against a claudeproxy
daemon whose CLI talks to the fake upstream (tests/clients/serve.py).

    python openwebui.py URL_OF_OPEN_WEBUI [SCREENSHOT_DIR]

Run by tests/clients.sh openwebui, which installs Open WebUI and selenium
into their venv and starts Open WebUI against the daemon.  Each step checks
what a user sees on the page; the first that fails ends the run (exit 1)
with a screenshot and the page's HTML in SCREENSHOT_DIR.
"""

from __future__ import annotations

import os
import struct
import sys
import time
import zlib
from typing import Any, Callable

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

CHROMIUM = os.environ.get("CLAUDEPROXY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CLAUDEPROXY_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update"
    " --disable-sync --no-first-run --disable-dev-shm-usage --window-size=1400,1000"
).split()

#: what the fake upstream answers (tests/fakeanthropic.py Reply, TASK_ANSWERS)
REPLY = "Hello from the fake upstream."
TITLE = "Fake upstream chat"
TAGS = ("General", "Testing")
FOLLOW_UPS = ("Can you say more?", "Can you give an example?", "What should I try next?")
#: the answer to "answer slowly" (tests/clients/serve.py SLOW_TEXT)
SLOW = " ".join("word%d" % (i,) for i in range(400))
#: the model picked: not the first the daemon lists
PICK = "claude-opus-4"


def red_png(size: int = 16) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Failed(Exception):
    pass


def wait(what: str, test: Callable[[], Any], timeout: float = 60.0) -> Any:
    end = time.time() + timeout
    last: Any = None
    while time.time() < end:
        try:
            last = test()
        except WebDriverException:
            last = None
        if last:
            return last
        time.sleep(0.25)
    raise Failed("timed out after %d s waiting for %s" % (timeout, what))


class Page:
    def __init__(self, url: str, shots: str) -> None:
        self.url = url.rstrip("/")
        self.shots = shots
        options = Options()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def shot(self, name: str) -> None:
        os.makedirs(self.shots, exist_ok=True)
        self.d.save_screenshot(os.path.join(self.shots, name + ".png"))
        with open(os.path.join(self.shots, name + ".html"), "w", encoding="utf-8") as f:
            f.write(self.d.page_source)

    def js(self, script: str, *args: Any) -> Any:
        return self.d.execute_script(script, *args)

    def text(self) -> str:
        return str(self.js("return document.body.innerText"))

    def all(self, css: str) -> list[Any]:
        return [e for e in self.d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]

    def one(self, css: str, timeout: float = 30.0) -> Any:
        return wait(css, lambda: (self.all(css) or [None])[0], timeout)

    def button(self, label: str, timeout: float = 30.0) -> Any:
        """
        A visible button whose text or aria-label is C{label}.
        """

        def find() -> Any:
            for b in self.all("button"):
                if b.text.strip() == label or b.get_attribute("aria-label") == label:
                    return b
            return None

        return wait("the button %r" % (label,), find, timeout)

    def dismiss_whats_new(self) -> None:
        try:
            self.button("Okay, Let's Go!", timeout=8).click()
        except Failed:
            pass

    # -- the chat -------------------------------------------------------

    def model_shown(self) -> str:
        return str(self.one("#model-selector-model-button").text).strip()

    def pick_model(self, name: str) -> list[str]:
        self.one("#model-selector-model-button").click()
        items = wait("the model list", lambda: self.all('[aria-label="model-item"]') or self.all('[role="option"]'))
        names = [i.text.strip().splitlines()[0] for i in items if i.text.strip()]
        for item in items:
            if item.text.strip().splitlines()[0] == name:
                item.click()
                break
        else:
            raise Failed("%s not in the model list %s" % (name, names))
        wait("%s shown as the chat's model" % (name,), lambda: self.model_shown() == name, 10)
        return names

    def send(self, text: str) -> None:
        box = self.one("#chat-input")
        box.click()
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    def responses(self) -> list[str]:
        return [str(e.text) for e in self.all(".chat-assistant")]

    def idle(self) -> bool:
        """
        No generation running: the send button is back, no stop button.
        """
        return not self.all('button[aria-label="Stop"]') and bool(
            self.all("#send-message-button, #voice-input-button, button[aria-label='Voice mode']")
        )

    def open_sidebar(self) -> None:
        if not self.sidebar_titles():
            for b in self.all('button[aria-label="Open Sidebar"]'):
                b.click()
                break

    def sidebar_titles(self) -> list[str]:
        return [str(e.text).strip() for e in self.all("#sidebar-chat-item") if e.text.strip()]

    def tags_shown(self) -> list[str]:
        text = self.text()
        return [t for t in TAGS if t in text]

    def tags_stored(self) -> list[str]:
        """
        The chat's tags as the page's own API calls return them.
        """
        chat = self.d.current_url.rsplit("/c/", 1)[-1]
        found = self.d.execute_async_script(
            """const done = arguments[arguments.length - 1];
            fetch('/api/v1/chats/' + arguments[0] + '/tags',
                  {headers: {Authorization: 'Bearer ' + localStorage.token}})
              .then(r => r.json()).then(j => done(j.map(t => t.name)), e => done([String(e)]));""",
            chat,
        )
        return [str(t) for t in found or []]

    def last_message_text(self) -> str:
        messages = self.all('#messages-container [id^="message-"]')
        return str(messages[-1].text).replace(" ", "") if messages else ""

    def regenerate(self) -> None:
        last = self.all(".chat-assistant")[-1]
        ActionChains(self.d).move_to_element(last).perform()
        buttons = wait("the Regenerate button", lambda: self.all('button[aria-label="Regenerate"]'), 10)
        buttons[-1].click()
        # 0.12 opens a menu: "Suggest a change", Try Again, Add Details, More Concise
        self.button("Try Again", timeout=10).click()

    def error_shown(self) -> str:
        """
        The text of an error shown in the last reply, if any.
        """
        messages = self.all('#messages-container [id^="message-"]')
        if not messages:
            return ""
        # 0.12: a grey box with an info icon in place of the reply's text
        for css in ("#response-content-container div.rounded-2xl", '[class*="red"]'):
            found = [
                str(e.text).strip()
                for e in messages[-1].find_elements(By.CSS_SELECTOR, css)
                if e.is_displayed() and e.text.strip()
            ]
            if found:
                return found[-1]
        return ""

    def tool_calls_shown(self) -> list[str]:
        """
        The tool calls shown in the last reply (a collapsible line naming
        the tool).
        """
        last = self.all(".chat-assistant")[-1]
        return [line for line in str(last.text).splitlines() if "View Result from" in line]

    def attach_image(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(red_png())
        inputs = [
            e
            for e in self.d.find_elements(By.CSS_SELECTOR, 'input[type="file"]')
            if e.get_attribute("id") != "camera-input"
        ]
        inputs[0].send_keys(path)
        wait("the image attached", lambda: self.all("#message-input-container img"), 30)


def run(page: Page) -> list[str]:
    done: list[str] = []
    last = [time.time()]

    def step(name: str) -> None:
        done.append(name)
        now = time.time()
        print("   ok (%4.1f s): %s" % (now - last[0], name), flush=True)
        last[0] = now

    page.d.get(page.url + "/")
    page.dismiss_whats_new()
    first = page.model_shown()
    names = page.pick_model(PICK)
    if len(names) != len(set(names)):
        raise Failed("a model listed twice: %s" % (names,))
    step("model picker: %s (first %s, was preselected %s); picked %s" % (names, names[0], first, PICK))
    page.shot("01-picked")

    page.send("Hi there")
    wait("the first reply", lambda: page.responses() and REPLY in page.responses()[-1])
    step("turn 1 answered: %r" % (page.responses()[-1],))
    page.shot("02-reply")

    # the task answers: the title in the sidebar, the follow-ups under the
    # reply, the tags on the chat
    wait("the generation and its tasks to end", page.idle, 60)
    page.open_sidebar()
    title = wait("the title in the sidebar", lambda: [t for t in page.sidebar_titles() if TITLE in t])
    step("title in the sidebar: %r" % (title[0],))
    wait("the follow-ups", lambda: all(f in page.text() for f in FOLLOW_UPS), 30)
    step("follow-up suggestions shown: %s" % (list(FOLLOW_UPS),))
    tags = page.tags_shown()
    if tags:
        step("tags shown: %s" % (tags,))
    else:
        # 0.12 shows no tags in the chat; they are the chat's, for search
        stored = wait("the chat's tags", lambda: sorted(page.tags_stored()) == sorted(TAGS) and page.tags_stored(), 20)
        step("tags set on the chat (not shown in the page): %s" % (stored,))
    page.shot("03-tasks")

    page.send("And a second turn")
    wait("the second reply", lambda: len(page.responses()) == 2 and REPLY in page.responses()[-1])
    wait("the generation and its tasks to end", page.idle, 60)
    step("turn 2 answered: %r" % (page.responses()[-1],))

    page.regenerate()
    wait("the regenerated reply (2/2)", lambda: "2/2" in page.last_message_text() and REPLY in page.responses()[-1])
    wait("the generation and its tasks to end", page.idle, 60)
    step("regenerated: the reply shows 2/2 and %r" % (page.responses()[-1],))
    page.shot("04-regenerated")

    page.send("Please answer slowly")
    seen = wait(
        "the slow answer's first words", lambda: "word5 " in (page.responses() or [""])[-1] and page.responses()[-1]
    )
    later = wait("the slow answer growing", lambda: len(page.responses()[-1]) > len(seen) + 20 and page.responses()[-1])
    step("streamed: the reply grew on the page (%d, then %d chars)" % (len(seen), len(later)))
    page.button("Stop").click()
    wait("the generation stopped", page.idle, 20)
    stopped = page.responses()[-1]
    time.sleep(3)
    after = page.responses()[-1]
    if after != stopped or "word399" in after:
        raise Failed("the reply went on after Stop: %d then %d chars" % (len(stopped), len(after)))
    step("stopped: the reply stays at %d chars (the full answer has %d)" % (len(after), len(SLOW)))
    page.shot("05-stopped")

    page.send("Please be overloaded")
    error = wait("the error box", lambda: "overloaded" in page.error_shown().lower() and page.error_shown(), 60)
    step("upstream 529 shown as an error: %r" % (error,))
    page.shot("06-error")

    chat = page.d.current_url
    page.d.refresh()
    wait("the chat after the reload", lambda: REPLY in page.text(), 30)
    shown = page.model_shown()
    if shown != PICK:
        raise Failed("after a reload the chat shows %s, not the picked %s" % (shown, PICK))
    step("reload of %s: the model is still %s" % (chat, shown))
    page.d.get(page.url + "/")
    wait("a new chat", lambda: page.model_shown(), 30)
    time.sleep(2)
    step("a new chat after the reload preselects %s" % (page.model_shown(),))
    page.shot("07-reloaded")

    # in that new chat: a tool call (the fake calls the first tool Open
    # WebUI offers, its built-in get_current_timestamp), then an image
    page.send("Please use the tool")
    wait("the answer after the tool call", lambda: page.responses() and REPLY in page.responses()[-1], 60)
    wait("the generation and its tasks to end", page.idle, 60)
    calls = page.tool_calls_shown()
    if not calls or "get_current_timestamp" not in calls[0]:
        raise Failed("no call of get_current_timestamp shown in the reply: %s" % (calls,))
    step("tool call shown: %r, then the answer" % (calls[0],))
    page.shot("08-tool")

    page.attach_image(os.path.join(page.shots, "red.png"))
    page.send("What is in this image?")
    wait("the answer to the image", lambda: len(page.responses()) == 2 and REPLY in page.responses()[-1], 60)
    if not page.all("#messages-container img[alt]:not(.assistant-message-profile-image)"):
        raise Failed("the image is not shown in the user's message")
    step("image sent and shown, answered")
    page.shot("09-image")
    return done


def main() -> int:
    url = sys.argv[1]
    shots = sys.argv[2] if len(sys.argv) > 2 else "/tmp/openwebui-shots"
    page = Page(url, shots)
    try:
        run(page)
    except (Failed, WebDriverException) as e:
        print("   FAILED: %s" % (e,), flush=True)
        page.shot("failed")
        return 1
    finally:
        page.d.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
