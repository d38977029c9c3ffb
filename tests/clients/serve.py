"""
The daemon for tests/clients.sh: the real site and the real CLI, whose
upstream is the fake API (tests/fakeanthropic.py), answering every model
call with text, or with a call of the client's first tool when the last
user text asks to "use the tool".

With C{CLAUDEPROXY_CLIENTS_REALHOME=1} the CLI's HOME is a real Claude Code
user's (tests/realhome.py: CLAUDE.md files, rules, hooks, an output style,
a plugin, auto memory, the login in C{~/.claude/.credentials.json}) and the
CLI runs in a project under it.  Each upstream request is then printed
with the markers of that set-up it carries and whether it is a compaction
request, and at shutdown the totals (and the hooks that ran) are printed
and written as JSON to C{--report}.  C{CLAUDEPROXY_CLIENTS_INPUT_TOKENS=N}
makes every answer report N input tokens (a near-full context window);
C{CLAUDEPROXY_CLIENTS_UPSTREAM=path} appends each upstream request body to
C{path} as a JSON line.

Two phrases in the last user text script the answer, for the chat UIs
driven in a browser (tests/clients/openwebui.py): "answer slowly" streams a
long answer in small pieces (a generation to stop), "be overloaded" gets
the upstream's 529 overloaded_error with C{x-should-retry: false} (an
error the page must show).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Optional

import attrs
from twisted.internet import reactor as _reactor
from twisted.logger import globalLogBeginner, textFileLogObserver

from claudeproxy.config import Config
from claudeproxy.engine.process import group_spawner
from claudeproxy.service import build
from tests import realhome
from tests.fakeanthropic import FakeAnthropic, Reply, ToolUse
from tests.harness import cli_env

reactor: Any = _reactor


#: what the CLI's compaction request, and a turn served from its summary, carry
COMPACTION_TEXTS = ("CRITICAL: Respond with TEXT ONLY", "This session is being continued")
#: the access token of the realistic HOME's login (its .credentials.json)
FILE_TOKEN = "sk-ant-oat01-realhome-credentials-file"

#: the answer streamed to "answer slowly": 160 pieces, 0.1 s apart
SLOW_TEXT = " ".join("word%d" % (i,) for i in range(400))
#: a 529 the upstream says not to retry
OVERLOADED = Reply(
    status=529, error_type="overloaded_error", error_message="Overloaded", headers={"x-should-retry": "false"}
)

#: tools the fake prefers to call, in order, when the prompt asks for one
#: (get_current_timestamp: Open WebUI's built-in tool that needs nothing)
PREFERRED = ("get_weather", "read", "exec_command", "bash", "get_current_timestamp")


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


def has_observation(messages: list[Any]) -> bool:
    """
    Whether a tool's result is already in the conversation: a tool_result
    block, or the text C{Observation:} that smolagents sends it back as.
    """
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        for b in content if isinstance(content, list) else []:
            if isinstance(b, dict) and (
                b.get("type") == "tool_result" or str(b.get("text", "")).startswith("Observation:")
            ):
                return True
        if isinstance(content, str) and content.startswith("Observation:"):
            return True
    return False


def is_compaction(body: Any) -> bool:
    text = json.dumps(body)
    return any(t in text for t in COMPACTION_TEXTS)


class ScriptedFake(FakeAnthropic):
    #: the input tokens every answer reports (None: the fake's default)
    input_tokens: Optional[int] = None
    #: append each upstream request body here as a JSON line ("": don't)
    upstream_log: str = ""
    #: print each request's markers of the realistic HOME
    realhome: bool = False

    def next_reply(self, body: dict[str, Any]) -> Reply:
        reply = self.scripted(body)
        if self.input_tokens is not None:
            reply = attrs.evolve(reply, input_tokens=self.input_tokens)
        if self.upstream_log:
            with open(self.upstream_log, "a", encoding="utf-8") as f:
                f.write(json.dumps(body) + "\n")
        if self.realhome:
            print(
                "upstream #%d: markers=%s compaction=%s"
                % (len(self.message_requests), realhome.markers_in(body), is_compaction(body)),
                flush=True,
            )
        return reply

    def _watch(self, request: Any, n: int) -> None:
        # an upstream call the CLI dropped before its end (a stopped
        # generation): said in the log, where the clients' checks look
        super()._watch(request, n)
        request.notifyFinish().addErrback(lambda _: print("upstream #%d: cut before its end" % (n,), flush=True))

    def scripted(self, body: dict[str, Any]) -> Reply:
        offered = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
        # the conversation's last turn: newer CLIs (2.1.332) put system
        # messages of their own (the environment section) after it
        messages = [m for m in body.get("messages") or [] if m.get("role") != "system"]
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
        print(
            "upstream #%d: tools=%d images=%d last=%s"
            % (len(self.requests), len(offered), json.dumps(last).count('"type": "image"'), json.dumps(last)[-300:]),
            flush=True,
        )
        # not a chat UI's task prompt, whose chat history quotes the phrase
        own = not text.lstrip().startswith("### Task:")
        if own and "be overloaded" in text.lower():
            return OVERLOADED
        if own and "answer slowly" in text.lower():
            return Reply(text=SLOW_TEXT, chunk=20, delay=0.1)
        client = [t for t in offered if str(t["name"]).startswith("mcp__cp__")]
        # the daemon's tool_choice turn (ENFORCE_TOOL) is obeyed, as a model
        # does; asked to, it calls the client's tool before it gives any
        # structured answer (dspy offers both)
        asked = "use the tool" in text.lower() or "requires a tool call" in text
        if client and asked and not answered:
            by_name = {str(t["name"]).split("__")[-1].lower(): t for t in client}
            pick = next((by_name[n] for n in PREFERRED if n in by_name), client[0])
            if "final_answer" in by_name and has_observation(messages):
                # smolagents: its tool's result came back (as text), so the
                # model gives the answer through its final_answer tool
                pick = by_name["final_answer"]
            args = fill(pick.get("input_schema") or {})
            return Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse(pick["name"], args),))
        structured = [t for t in offered if str(t["name"]).endswith("StructuredOutput")]
        if structured:
            # the CLI's --json-schema tool: answer with a value of the schema
            schema = structured[0].get("input_schema") or {}
            if not schema.get("properties"):
                # json_object: the schema is in the prompt
                schema = schema_in_prompt(body) or schema
            return Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse(structured[0]["name"], fill(schema)),))
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


def make_realhome() -> tuple[str, str]:
    """
    A real user's HOME, logged in through its credentials file, and a
    project under it for the CLI to run in (so the HOME's CLAUDE.md is a
    parent directory's too).
    """
    home = realhome.make(tempfile.mkdtemp(prefix="cp-clients-realhome-"))
    workdir = os.path.join(home, "projects", "app")
    os.makedirs(workdir)
    realhome.add_memory(home, workdir)
    credentials = {
        "claudeAiOauth": {
            "accessToken": FILE_TOKEN,
            "refreshToken": "sk-ant-ort01-unused",
            "expiresAt": int((time.time() + 86400) * 1000),
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
        }
    }
    with open(os.path.join(home, ".claude", ".credentials.json"), "w", encoding="utf-8") as f:
        json.dump(credentials, f)
    return home, workdir


def totals(fake: FakeAnthropic, home: str) -> dict[str, Any]:
    """
    What reached upstream of the user's set-up, over every upstream
    request, and the hooks that ran.
    """
    requests = fake.message_requests
    markers = [realhome.markers_in(r.body) for r in requests]
    return {
        "upstream_requests": len(requests),
        "requests_with_markers": sum(1 for m in markers if m),
        "markers": sorted({m for found in markers for m in found}),
        "compaction_requests": sum(1 for r in requests if is_compaction(r.body)),
        "hooks_ran": realhome.hooks_ran(home),
        "login_from_credentials_file": sum(
            1 for r in requests if r.headers.get("authorization") == "Bearer " + FILE_TOKEN
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=34561)
    parser.add_argument("--claude", required=True)
    parser.add_argument("--report", default="", help="with a realistic HOME: write the totals here at shutdown")
    args = parser.parse_args()
    # the daemon's request log lines, beside the fake's upstream lines
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    fake = ScriptedFake(reactor)
    tokens = os.environ.get("CLAUDEPROXY_CLIENTS_INPUT_TOKENS")
    fake.input_tokens = int(tokens) if tokens else None
    fake.upstream_log = os.environ.get("CLAUDEPROXY_CLIENTS_UPSTREAM", "")
    fake.realhome = os.environ.get("CLAUDEPROXY_CLIENTS_REALHOME", "0") not in ("", "0")
    if fake.realhome:
        home, workdir = make_realhome()
        env = cli_env(fake.listen(), home)
        # logged in as a user is: by the credentials file
        env.pop("CLAUDE_CODE_OAUTH_TOKEN")
        print("realistic HOME %s, CLI in %s" % (home, workdir), flush=True)

        def report() -> None:
            found = totals(fake, home)
            print("realhome totals: %s" % (json.dumps(found),), flush=True)
            if args.report:
                with open(args.report, "w", encoding="utf-8") as f:
                    json.dump(found, f)

        # after the CLI processes have ended, so every hook they ran is seen
        reactor.addSystemEventTrigger("after", "shutdown", report)
    else:
        env = cli_env(fake.listen(), tempfile.mkdtemp(prefix="cp-clients-home-"))
        workdir = tempfile.mkdtemp(prefix="cp-clients-work-")
    config = Config(
        listen="tcp:%d:interface=127.0.0.1" % (args.port,),
        claude=args.claude,
        workdir=workdir,
        model_aliases=(("gpt-4o", "sonnet"), ("mock-model", "sonnet")),
    )
    daemon = build(reactor, config, env, spawner=group_spawner(reactor))
    capture = os.environ.get("CLAUDEPROXY_CLIENTS_CAPTURE")
    if capture:
        record_requests(daemon.site, capture)
    daemon.core.startService()
    reactor.addSystemEventTrigger("before", "shutdown", daemon.core.stopService)
    reactor.listenTCP(args.port, daemon.site, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
