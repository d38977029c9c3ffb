"""
The daemon for tests/clients.sh: the real site and the real CLI, whose
upstream is the fake API (tests/fakeanthropic.py), answering every model
call with text, or with a call of the client's first tool when the last
user text asks to "use the tool".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.logger import globalLogBeginner, textFileLogObserver

from claudeproxy.config import Config
from claudeproxy.engine.process import group_spawner
from claudeproxy.service import build
from tests.fakeanthropic import FakeAnthropic, Reply, ToolUse
from tests.harness import cli_env

reactor: Any = _reactor


#: tools the fake prefers to call, in order, when the prompt asks for one
PREFERRED = ("get_weather", "read", "exec_command", "bash")


def fill(schema: Any, name: str = "") -> Any:
    """
    A small value that matches C{schema}: what a model would fill in.
    """
    if not isinstance(schema, dict):
        return "Bern"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return fill(schema[key][0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = [k for k in kind if k != "null"][0] if [k for k in kind if k != "null"] else "null"
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {k: fill(v, k) for k, v in props.items() if k in required}
    if kind == "array":
        return [fill(schema.get("items") or {}, name)]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "echo Bern" if name == "command" else "Bern"


def texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    if isinstance(value, dict):
        return texts(value.get("text")) + texts(value.get("content"))
    return []


def schema_in_prompt(body: dict[str, Any]) -> Any:
    """
    The first JSON schema (an object with C{properties}) written in the
    prompt, as JSON-mode clients give it: a model reads and follows it.
    """
    decoder = json.JSONDecoder()
    for source in texts(body.get("system")) + texts(body.get("messages")):
        for i, ch in enumerate(source):
            if ch != "{":
                continue
            try:
                value, _ = decoder.raw_decode(source, i)
            except ValueError:
                continue
            if isinstance(value, dict) and isinstance(value.get("properties"), dict) and value["properties"]:
                return value
    return None


class ScriptedFake(FakeAnthropic):
    def next_reply(self, body: dict[str, Any]) -> Reply:
        offered = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        content = last.get("content")
        text = (
            content
            if isinstance(content, str)
            else " ".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")
        )
        answered = isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        )
        print("upstream: tools=%d last=%s" % (len(offered), json.dumps(last)[-300:]), flush=True)
        structured = [t for t in offered if str(t["name"]).endswith("StructuredOutput")]
        if structured:
            # the CLI's --json-schema tool: answer with a value of the schema
            schema = structured[0].get("input_schema") or {}
            if not schema.get("properties"):
                # json_object: the schema is in the prompt
                schema = schema_in_prompt(body) or schema
            return Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse(structured[0]["name"], fill(schema)),))
        client = [t for t in offered if str(t["name"]).startswith("mcp__cp__")]
        # the daemon's tool_choice turn (ENFORCE_TOOL) is obeyed, as a model does
        asked = "use the tool" in text.lower() or "requires a tool call" in text
        if client and asked and not answered:
            by_name = {str(t["name"]).split("__")[-1].lower(): t for t in client}
            pick = next((by_name[n] for n in PREFERRED if n in by_name), client[0])
            args = fill(pick.get("input_schema") or {})
            return Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse(pick["name"], args),))
        return super().next_reply(body)


def record_requests(site: Any, path: str) -> None:
    """
    Append each client request (path, headers, JSON body) to C{path} as a
    JSON line: the raw material of tests/fixtures/clients/ (make.py trims it).
    """
    base = site.requestFactory

    class Recording(base):  # type: ignore[misc,valid-type]
        def process(self) -> Any:
            if self.method == b"POST" and self.path.startswith(b"/v1/"):
                self.content.seek(0)
                try:
                    body = json.loads(self.content.read() or b"null")
                except ValueError:
                    body = None
                self.content.seek(0)
                headers = {k.decode().lower(): v[0].decode() for k, v in self.requestHeaders.getAllRawHeaders()}
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"path": self.path.decode(), "headers": headers, "body": body}) + "\n")
            return super().process()

    site.requestFactory = Recording


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=34561)
    parser.add_argument("--claude", required=True)
    args = parser.parse_args()
    # the daemon's request log lines, beside the fake's upstream lines
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    fake = ScriptedFake(reactor)
    env = cli_env(fake.listen(), tempfile.mkdtemp(prefix="cp-clients-home-"))
    config = Config(
        listen="tcp:%d:interface=127.0.0.1" % (args.port,),
        claude=args.claude,
        workdir=tempfile.mkdtemp(prefix="cp-clients-work-"),
        model_aliases=(("gpt-4o", "sonnet"), ("mock-model", "sonnet")),
    )
    daemon = build(reactor, config, env, spawner=group_spawner(reactor))
    capture = os.environ.get("CLAUDEPROXY_CLIENTS_CAPTURE")
    if capture:
        record_requests(daemon.site, capture)
    daemon.core.startService()
    reactor.listenTCP(args.port, daemon.site, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
