"""
The OpenAI Responses protocol as a Klein app (mounted by
L{claudeproxy.app.ProxyApp}):
C{POST /v1/responses}, and C{GET}/C{DELETE /v1/responses/{id}} for the
responses kept in memory.
"""

from __future__ import annotations

from typing import Union

from klein import Klein
from twisted.web.server import Request

from ...engine.errors import ProxyError
from ...engine.spec import TurnSpec
from ...engine.streaming import Outcome
from ...engine.told import ProtocolOutput
from ...engine.turn import TurnState
from ...store.responses import PersistedResponses
from ...web.httpio import write_error, write_json
from ...web.mount import answering_errors
from ...web.serving import Serving
from ..apps import ProtocolApp
from . import parse as orsp
from .output import ResponsesOutput, ResponsesStreamOutput
from .store import ResponseStore, Stored

Output = Union[ResponsesOutput, ResponsesStreamOutput]


def _no_such_response(response_id: str) -> ProxyError:
    return ProxyError(
        404, "No response with id '%s' found." % (response_id,), "invalid_request_error", "response_not_found", None
    )


class ResponsesApp(ProtocolApp):
    """
    The Responses routes and the responses kept for
    C{previous_response_id}; errors are OpenAI error objects.
    """

    app = answering_errors(Klein(), write_error)

    def __init__(self, serving: Serving, kept: int = 1000) -> None:
        super().__init__(serving)
        persisted = PersistedResponses(serving.state, serving.wallclock) if serving.state is not None else None
        self.store = ResponseStore(kept, persisted)

    @app.route("/v1/responses", methods=["POST"])
    async def create_response(self, request: Request) -> None:
        serving = self.serving
        store = self.store
        outputs: list[Output] = []

        def parse(body: bytes) -> TurnSpec:
            return orsp.parse_request(body, self.aliases, store.conversation, store.item)

        def make_output(spec: TurnSpec, state: TurnState, rid: str, created: int) -> ProtocolOutput:
            assert isinstance(spec, orsp.ResponsesRequest)
            output: Output
            if spec.stream:
                output = ResponsesStreamOutput(request, spec, rid, created, serving.wallclock)
            else:
                output = ResponsesOutput(request, spec, rid, created, serving.wallclock)
            outputs.append(output)
            return output

        def remember(spec: TurnSpec, outcome: Outcome, rid: str) -> None:
            assert isinstance(spec, orsp.ResponsesRequest) and outcome.finished is not None
            response = outputs[-1].response if outputs else None
            store.put(rid, Stored(orsp.conversation_after(spec, outcome.finished), response))

        await serving.serve(
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
        self.serving.authorize(request)
        stored = self.store.get(response_id)
        if stored is None or stored.response is None:
            raise _no_such_response(response_id)
        write_json(request, 200, stored.response)

    @app.route("/v1/responses/<string:response_id>", methods=["DELETE"])
    def delete_response(self, request: Request, response_id: str) -> None:
        self.serving.authorize(request)
        if not self.store.delete(response_id):
            raise _no_such_response(response_id)
        write_json(request, 200, {"id": response_id, "object": "response", "deleted": True})


__all__ = ["ResponsesApp"]
