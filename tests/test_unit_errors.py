"""
Unit tests for L{claudeproxy.errors}: the OpenAI error shape and the mapping
from a CLI C{result} line with C{is_error: true} to the client's error.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.errors import (
    INSTALL_HINT,
    LOGIN_HINT,
    ProxyError,
    bad_request,
    cli_failed,
    cli_missing,
    error_from_result,
    timeout,
)
from claudeproxy.web.httpio import openai_error

EXTRA_USAGE = (
    "API Error: 400 "
    '{"type":"error","error":{"type":"invalid_request_error","message":"Third-party apps now draw from your '
    'extra usage, not your plan limits. Turn on extra usage to keep going."}}'
)


def result(text: Any, status: Optional[int], **extra: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": status,
        "result": text,
        "stop_reason": "stop_sequence",
        "session_id": "s",
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    line.update(extra)
    return line


class ProxyErrorTests(SynchronousTestCase):
    def test_openai_error(self) -> None:
        e = ProxyError(400, "bad", "invalid_request_error", "some_code", "messages[0]")
        self.assertEqual(
            openai_error(e),
            {"error": {"message": "bad", "type": "invalid_request_error", "param": "messages[0]", "code": "some_code"}},
        )

    def test_defaults(self) -> None:
        e = ProxyError(500, "x")
        self.assertEqual(
            openai_error(e), {"error": {"message": "x", "type": "invalid_request_error", "param": None, "code": None}}
        )
        self.assertEqual(e.headers(), {})

    def test_headers_retry_after(self) -> None:
        self.assertEqual(ProxyError(429, "slow", retry_after=17).headers(), {"Retry-After": "17"})
        self.assertEqual(ProxyError(429, "slow", retry_after=0).headers(), {"Retry-After": "0"})

    def test_is_exception(self) -> None:
        e = ProxyError(400, "m")
        self.assertIsInstance(e, Exception)
        self.assertEqual(self.assertRaises(ProxyError, self._raise, e), e)

    @staticmethod
    def _raise(e: Exception) -> None:
        raise e

    def test_bad_request(self) -> None:
        e = bad_request("nope", "stop")
        self.assertEqual((e.status, e.type, e.code, e.param), (400, "invalid_request_error", "invalid_request", "stop"))
        self.assertEqual(bad_request("n", None, "invalid_json").code, "invalid_json")

    def test_cli_missing(self) -> None:
        e = cli_missing("`claude` was not found on PATH")
        self.assertEqual(e.status, 503)
        self.assertEqual(e.type, "server_error")
        self.assertEqual(e.code, "cli_unavailable")
        self.assertIn("`claude` was not found on PATH", e.message)
        self.assertIn(INSTALL_HINT, e.message)
        self.assertIn("npm install -g @anthropic-ai/claude-code", e.message)

    def test_cli_failed(self) -> None:
        e = cli_failed("it crashed")
        self.assertEqual((e.status, e.type, e.code), (502, "server_error", "cli_error"))
        self.assertEqual(e.message, "it crashed")

    def test_cli_failed_stderr(self) -> None:
        e = cli_failed("it crashed", "  Error: segfault\n")
        self.assertEqual(e.message, "it crashed; its stderr ended with: Error: segfault")
        self.assertEqual(cli_failed("x", "  \n ").message, "x")

    def test_timeout(self) -> None:
        e = timeout("too slow")
        self.assertEqual((e.status, e.type, e.code, e.message), (504, "server_error", "timeout", "too slow"))


class ErrorFromResultTests(SynchronousTestCase):
    def test_401(self) -> None:
        e = error_from_result(result("API Error: 401 Invalid bearer token", 401))
        self.assertEqual(e.status, 401)
        self.assertEqual(e.type, "authentication_error")
        self.assertEqual(e.code, "cli_not_logged_in")
        self.assertIn(LOGIN_HINT, e.message)
        self.assertIn("401 Invalid bearer token", e.message)
        self.assertNotIn("API Error:", e.message)

    def test_not_logged_in_without_status(self) -> None:
        for text in ("Not logged in · Please run /login", "Failed to authenticate. API Error: 401", "Invalid API key"):
            e = error_from_result(result(text, None))
            self.assertEqual(e.status, 401, text)
            self.assertIn("/login", e.message)

    def test_429_without_rate_limit(self) -> None:
        e = error_from_result(result("API Error: 429 rate limited", 429))
        self.assertEqual(e.status, 429)
        self.assertEqual(e.type, "rate_limit_error")
        self.assertEqual(e.code, "rate_limit_exceeded")
        self.assertIsNone(e.retry_after)
        self.assertEqual(e.headers(), {})
        self.assertIn("429 rate limited", e.message)

    def test_429_with_resets_at(self) -> None:
        e = error_from_result(
            result("API Error: 429", 429), {"status": "rejected", "resetsAt": 1_700_000_300}, now=1_700_000_000.0
        )
        self.assertEqual(e.retry_after, 300)
        self.assertEqual(e.headers(), {"Retry-After": "300", "x-should-retry": "false"})

    def test_429_retry_after_rounds_up(self) -> None:
        e = error_from_result(result("x", 429), {"status": "rejected", "resetsAt": 100.2}, now=50.0)
        self.assertEqual(e.retry_after, 51)
        e = error_from_result(result("x", 429), {"status": "rejected", "resetsAt": 100.0}, now=99.9)
        self.assertEqual(e.retry_after, 1)

    def test_429_while_the_window_allows_has_no_retry_after(self) -> None:
        """
        A 429 that is not the subscription's window (it still allows: a
        burst limit) says nothing of when to come back: the window's reset,
        hours away, is not a Retry-After.
        """
        for status in ("allowed", "allowed_warning", None):
            e = error_from_result(result("x", 429), {"status": status, "resetsAt": 10_900}, now=100.0)
            self.assertIsNone(e.retry_after, status)

    def test_429_reset_in_the_past(self) -> None:
        e = error_from_result(result("x", 429), {"resetsAt": 100}, now=200.0)
        self.assertIsNone(e.retry_after)
        e = error_from_result(result("x", 429), {"resetsAt": "soon"}, now=0.0)
        self.assertIsNone(e.retry_after)
        e = error_from_result(result("x", 429), {"status": "rejected"}, now=0.0)
        self.assertIsNone(e.retry_after)

    def test_extra_usage_402(self) -> None:
        e = error_from_result(result(EXTRA_USAGE, 400))
        self.assertEqual(e.status, 402)
        self.assertEqual(e.type, "insufficient_quota")
        self.assertEqual(e.code, "extra_usage_required")
        self.assertIn("Third-party apps now draw from your extra usage", e.message)

    def test_other_400(self) -> None:
        e = error_from_result(result("API Error: 400 messages.0: text is too short", 400))
        self.assertEqual(e.status, 400)
        self.assertEqual(e.type, "invalid_request_error")
        self.assertEqual(e.code, "upstream_invalid_request")
        self.assertIn("text is too short", e.message)
        self.assertIsNone(e.anthropic_message)

    def test_prompt_too_long_upstream(self) -> None:
        """
        The API's 400 "prompt is too long: N tokens > M maximum" is OpenAI's
        C{context_length_exceeded}, with the figures, and no retry.
        """
        e = error_from_result(result("API Error: 400 prompt is too long: 210417 tokens > 200000 maximum", 400))
        self.assertEqual((e.status, e.type, e.code), (400, "invalid_request_error", "context_length_exceeded"))
        self.assertIn("maximum context length is 200000 tokens", e.message)
        self.assertIn("resulted in 210417 tokens", e.message)
        self.assertEqual(e.anthropic_message, "prompt is too long: 210417 tokens > 200000 maximum")
        self.assertEqual(e.headers()["x-should-retry"], "false")

    def test_prompt_too_long_as_the_cli_words_it(self) -> None:
        """
        The CLI rewords the API's answer; the figures are still read, and
        its advice (to compact) is not passed on.
        """
        e = error_from_result(
            result(
                "Prompt is too long · the request is ~210417 tokens (limit 200000) but this conversation is "
                "only ~1 tokens — the rest is system prompt. A single-exchange conversation cannot be compacted",
                400,
            )
        )
        self.assertEqual(e.code, "context_length_exceeded")
        self.assertEqual(e.anthropic_message, "prompt is too long: 210417 tokens > 200000 maximum")
        self.assertNotIn("compacted", e.message)

    def test_prompt_too_long_refused_by_the_cli(self) -> None:
        """
        The CLI's own refusal (no upstream request, no status) is the same
        error, without figures.
        """
        e = error_from_result(result("Prompt is too long", None))
        self.assertEqual((e.status, e.code), (400, "context_length_exceeded"))
        self.assertEqual(e.anthropic_message, "prompt is too long")
        self.assertFalse(e.retryable)

    def test_403(self) -> None:
        e = error_from_result(result("API Error: 403 forbidden", 403))
        self.assertEqual((e.status, e.type, e.code), (403, "permission_error", "upstream_forbidden"))

    def test_404(self) -> None:
        e = error_from_result(result("API Error: 404 model: nope", 404))
        self.assertEqual((e.status, e.code), (404, "model_not_found"))

    def test_413(self) -> None:
        e = error_from_result(result("API Error: 413 too big", 413))
        self.assertEqual((e.status, e.code), (413, "request_too_large"))

    def test_529_overloaded(self) -> None:
        e = error_from_result(result("API Error: 529 Overloaded", 529))
        self.assertEqual((e.status, e.type, e.code), (503, "server_error", "upstream_overloaded"))

    def test_overloaded_text(self) -> None:
        e = error_from_result(result('API Error: {"type":"overloaded_error","message":"Overloaded"}', None))
        self.assertEqual(e.status, 503)

    def test_500(self) -> None:
        e = error_from_result(result("API Error: 500 internal", 500))
        self.assertEqual((e.status, e.type, e.code), (502, "server_error", "upstream_error"))
        self.assertIn("500", e.message)
        self.assertIn("internal", e.message)

    def test_other_5xx(self) -> None:
        self.assertEqual(error_from_result(result("x", 503)).status, 502)

    def test_no_status(self) -> None:
        e = error_from_result(result("something odd happened", None))
        self.assertEqual((e.status, e.type, e.code), (502, "server_error", "cli_error"))
        self.assertIn("something odd happened", e.message)

    def test_errors_list(self) -> None:
        e = error_from_result(result(None, None, subtype="error_during_execution", errors=["first", "second"]))
        self.assertEqual(e.status, 502)
        self.assertIn("first; second", e.message)

    def test_no_text_at_all(self) -> None:
        e = error_from_result(result("", None, subtype="error_max_turns"))
        self.assertEqual(e.status, 502)
        self.assertIn("error_max_turns", e.message)
        e = error_from_result({"type": "result", "is_error": True})
        self.assertIn("unknown", e.message)

    def test_all_to_openai_shape(self) -> None:
        for status in (None, 400, 401, 403, 404, 413, 429, 500, 529):
            e = error_from_result(result("API Error: x", status))
            shape = openai_error(e)
            self.assertEqual(set(shape), {"error"})
            self.assertEqual(set(shape["error"]), {"message", "type", "param", "code"})
            self.assertIsInstance(shape["error"]["message"], str)
