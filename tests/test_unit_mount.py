"""
Klein apps mounted side by side (L{claudeproxy.web.mount.Mounted}): a
request reaches the app that routes its path; a path no app routes, or
routes for other methods only, gets the daemon's 404 or 405.
"""

from __future__ import annotations

import json
from typing import Any, cast

from klein import Klein
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest

from claudeproxy.web.app import unknown_route
from claudeproxy.web.mount import Mounted


class First:
    app = Klein()

    @app.route("/one", methods=["GET"])
    def one(self, request: IRequest) -> bytes:
        return b"first"


class Second:
    app = Klein()

    @app.route("/two", methods=["POST"])
    def two(self, request: IRequest) -> bytes:
        return b"second"

    @app.route("/items/<string:name>", methods=["GET"])
    def item(self, request: IRequest, name: str) -> bytes:
        return name.encode()


class MountedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.http = StubTreq(Mounted([First().app, Second().app], unknown_route))

    def answer(self, method: str, path: str) -> tuple[int, bytes]:
        response = self.successResultOf(cast(Any, self.http).request(method, "http://127.0.0.1" + path))
        return response.code, self.successResultOf(response.content())

    def error_code(self, body: bytes) -> Any:
        return json.loads(body)["error"]["code"]

    def test_each_app_routes_its_paths(self) -> None:
        self.assertEqual(self.answer("GET", "/one"), (200, b"first"))
        self.assertEqual(self.answer("POST", "/two"), (200, b"second"))
        self.assertEqual(self.answer("GET", "/items/x"), (200, b"x"))

    def test_unknown_path(self) -> None:
        code, body = self.answer("GET", "/three")
        self.assertEqual((code, self.error_code(body)), (404, "unknown_url"))
        self.assertIn("GET /three", json.loads(body)["error"]["message"])

    def test_wrong_method(self) -> None:
        code, body = self.answer("GET", "/two")
        self.assertEqual((code, self.error_code(body)), (405, "method_not_allowed"))
        code, body = self.answer("POST", "/one")
        self.assertEqual((code, self.error_code(body)), (405, "method_not_allowed"))

    def test_path_not_utf8(self) -> None:
        code, body = self.answer("GET", "/items/%FF")
        self.assertEqual((code, body), (400, b"Non-UTF-8 encoding in URL."))
        # Klein logs the bad encoding
        self.assertEqual(len(self.flushLoggedErrors(UnicodeDecodeError)), 1)
