"""
The Responses API's streaming events (C{response.created} ...
C{response.completed}, the item and part events, C{error}) and their
server-sent-event framing.  Pure functions: each takes its sequence
number.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ...engine.errors import ProxyError
from .shapes import output_text


def event(kind: str, sequence_number: int, **fields: Any) -> dict[str, Any]:
    """
    One streaming event: C{type}, C{sequence_number} and its fields.
    """
    return {"type": kind, "sequence_number": sequence_number, **fields}


def event_of(sequence_number: int, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    return event(kind, sequence_number, **fields)


def lifecycle(sequence_number: int, kind: str, response: Mapping[str, Any]) -> dict[str, Any]:
    """
    C{response.created}, C{.in_progress}, C{.completed}, C{.incomplete} or
    C{.failed}, carrying the response object.
    """
    return event(kind, sequence_number, response=dict(response))


def item_added(sequence_number: int, index: int, item: Mapping[str, Any]) -> dict[str, Any]:
    return event("response.output_item.added", sequence_number, output_index=index, item=dict(item))


def item_done(sequence_number: int, index: int, item: Mapping[str, Any]) -> dict[str, Any]:
    return event("response.output_item.done", sequence_number, output_index=index, item=dict(item))


def content_part_added(sequence_number: int, item_id: str, index: int) -> dict[str, Any]:
    return event(
        "response.content_part.added",
        sequence_number,
        item_id=item_id,
        output_index=index,
        content_index=0,
        part=output_text(""),
    )


def content_part_done(sequence_number: int, item_id: str, index: int, text: str) -> dict[str, Any]:
    return event(
        "response.content_part.done",
        sequence_number,
        item_id=item_id,
        output_index=index,
        content_index=0,
        part=output_text(text),
    )


def text_delta(sequence_number: int, item_id: str, index: int, delta: str) -> dict[str, Any]:
    return event(
        "response.output_text.delta",
        sequence_number,
        item_id=item_id,
        output_index=index,
        content_index=0,
        delta=delta,
        logprobs=[],
    )


def text_done(sequence_number: int, item_id: str, index: int, text: str) -> dict[str, Any]:
    return event(
        "response.output_text.done",
        sequence_number,
        item_id=item_id,
        output_index=index,
        content_index=0,
        text=text,
        logprobs=[],
    )


def summary_part_added(sequence_number: int, item_id: str, index: int) -> dict[str, Any]:
    return event(
        "response.reasoning_summary_part.added",
        sequence_number,
        item_id=item_id,
        output_index=index,
        summary_index=0,
        part={"type": "summary_text", "text": ""},
    )


def summary_text_delta(sequence_number: int, item_id: str, index: int, delta: str) -> dict[str, Any]:
    return event(
        "response.reasoning_summary_text.delta",
        sequence_number,
        item_id=item_id,
        output_index=index,
        summary_index=0,
        delta=delta,
    )


def summary_text_done(sequence_number: int, item_id: str, index: int, text: str) -> dict[str, Any]:
    return event(
        "response.reasoning_summary_text.done",
        sequence_number,
        item_id=item_id,
        output_index=index,
        summary_index=0,
        text=text,
    )


def summary_part_done(sequence_number: int, item_id: str, index: int, text: str) -> dict[str, Any]:
    return event(
        "response.reasoning_summary_part.done",
        sequence_number,
        item_id=item_id,
        output_index=index,
        summary_index=0,
        part={"type": "summary_text", "text": text},
    )


def arguments_delta(sequence_number: int, item_id: str, index: int, delta: str) -> dict[str, Any]:
    return event(
        "response.function_call_arguments.delta", sequence_number, item_id=item_id, output_index=index, delta=delta
    )


def arguments_done(sequence_number: int, item_id: str, index: int, arguments: str) -> dict[str, Any]:
    return event(
        "response.function_call_arguments.done",
        sequence_number,
        item_id=item_id,
        output_index=index,
        arguments=arguments,
    )


def error_event(sequence_number: int, error: ProxyError) -> dict[str, Any]:
    return event("error", sequence_number, code=error.code, message=error.message, param=error.param)


def sse(obj: Mapping[str, Any]) -> bytes:
    """
    One server-sent event, named by the event's type.
    """
    return (
        b"event: "
        + str(obj["type"]).encode("utf-8")
        + b"\ndata: "
        + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        + b"\n\n"
    )
