"""
Routes of the responses protocol (a mixin of L{claudeproxy.routes.ProxyApp}):
C{POST /v1/responses}, and C{GET}/C{DELETE /v1/responses/{id}} for the
responses kept in memory.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Optional, Protocol, Union, cast

import attrs
from twisted.web.server import Request

from . import openai_responses as orsp
from .app import app
from .config import Config
from .conversation import Conversation
from .errors import ProxyError
from .httpio import write_error, write_json
from .responses_output import ResponsesOutput, ResponsesStreamOutput
from .spec import TurnSpec
from .streaming import Outcome, TurnOutput
from .turn import TurnState

Output = Union[ResponsesOutput, ResponsesStreamOutput]


@attrs.define
class Stored:
    """
    A kept response: the conversation a follow-up continues, and the
    response object as the client got it.
    """

    conversation: Conversation
    response: Optional[dict[str, Any]]


class ResponseStore:
    """
    The last C{size} responses, least recently used forgotten first.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Stored] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, response_id: str) -> Optional[Stored]:
        stored = self._items.get(response_id)
        if stored is not None:
            self._items.move_to_end(response_id)
        return stored

    def conversation(self, response_id: str) -> Optional[Conversation]:
        stored = self.get(response_id)
        return stored.conversation if stored is not None else None

    def put(self, response_id: str, stored: Stored) -> None:
        self._items[response_id] = stored
        self._items.move_to_end(response_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def delete(self, response_id: str) -> bool:
        return self._items.pop(response_id, None) is not None


class _Host(Protocol):
    """
    What the mixin uses of L{claudeproxy.routes.ProxyApp}.
    """

    config: Config
    wallclock: Callable[[], float]

    def _authorize(self, request: Request) -> None: ...

    async def serve(
        self,
        request: Request,
        endpoint: str,
        id_prefix: str,
        parse: Callable[[bytes], TurnSpec],
        make_output: Callable[[TurnSpec, TurnState, str, int], TurnOutput],
        write_err: Callable[[Request, ProxyError], None],
        remember: Optional[Callable[[TurnSpec, Outcome, str], None]] = None,
    ) -> None: ...


def _no_such_response(response_id: str) -> ProxyError:
    return ProxyError(
        404, "No response with id '%s' found." % (response_id,), "invalid_request_error", "response_not_found", None
    )


class ResponsesRoutes:
    #: how many responses are kept for C{previous_response_id}
    responses_kept = 1000

    @property
    def responses_store(self) -> ResponseStore:
        store = self.__dict__.get("_responses_store")
        if store is None:
            store = self.__dict__["_responses_store"] = ResponseStore(self.responses_kept)
        return cast(ResponseStore, store)

    @app.route("/v1/responses", methods=["POST"])
    async def create_response(self, request: Request) -> None:
        host = cast(_Host, self)
        store = self.responses_store
        outputs: list[Output] = []

        def parse(body: bytes) -> TurnSpec:
            return orsp.parse_request(body, host.config.model_aliases, store.conversation)

        def make_output(spec: TurnSpec, state: TurnState, rid: str, created: int) -> TurnOutput:
            assert isinstance(spec, orsp.ResponsesRequest)
            output: Output
            if spec.stream:
                output = ResponsesStreamOutput(request, spec, rid, created, lambda: state.model, host.wallclock)
            else:
                output = ResponsesOutput(request, spec, rid, created, host.wallclock)
            outputs.append(output)
            return output

        def remember(spec: TurnSpec, outcome: Outcome, rid: str) -> None:
            assert isinstance(spec, orsp.ResponsesRequest) and outcome.finished is not None
            response = outputs[-1].response if outputs else None
            store.put(rid, Stored(orsp.conversation_after(spec, outcome.finished), response))

        await host.serve(
            request,
            endpoint="/v1/responses",
            id_prefix="resp_",
            parse=parse,
            make_output=make_output,
            write_err=write_error,
            remember=remember,
        )

    @app.route("/v1/responses/<string:response_id>", methods=["GET"])
    def get_response(self, request: Request, response_id: str) -> None:
        try:
            cast(_Host, self)._authorize(request)
            stored = self.responses_store.get(response_id)
            if stored is None or stored.response is None:
                raise _no_such_response(response_id)
            write_json(request, 200, stored.response)
        except ProxyError as e:
            write_error(request, e)

    @app.route("/v1/responses/<string:response_id>", methods=["DELETE"])
    def delete_response(self, request: Request, response_id: str) -> None:
        try:
            cast(_Host, self)._authorize(request)
            if not self.responses_store.delete(response_id):
                raise _no_such_response(response_id)
            write_json(request, 200, {"id": response_id, "object": "response", "deleted": True})
        except ProxyError as e:
            write_error(request, e)
