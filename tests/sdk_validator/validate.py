#!/usr/bin/env python3
"""Validates chatkit-rs output against the official ChatKit Python SDK types (openai-chatkit).

A long-running line protocol, so the Rust integration tests pay the SDK's import cost once:

  stdin:  one JSON object per line: {"kind": K, "json": "<the raw JSON text>"}
          optional "wire": false turns off the wire-only rules listed below.
  stdout: exactly one line per input line, flushed: "ok" or "error: <one-line message>".

Kinds (the SDK types, from chatkit/types.py of openai-chatkit 1.6.5):
  event         TypeAdapter(ThreadStreamEvent)   one SSE `data:` payload
  thread        Thread                           threads.get_by_id / threads.update body
  threads_page  Page[Thread]                     threads.list body
  items_page    Page[ThreadItem]                 items.list body
  item          TypeAdapter(ThreadItem)          a thread item (e.g. a fixture or a stored row)
  request       TypeAdapter(ChatKitReq)          a request envelope (validated only)
  attachment    TypeAdapter(Attachment)          attachments.create body, upload answers
  empty         must be exactly `{}`             threads.delete / items.feedback /
                                                 attachments.delete bodies (server.py returns
                                                 the literal b"{}")

Byte parity: for event, thread, threads_page, items_page and item the validated value is
re-serialized exactly as ChatKitServer._serialize (server.py) does:
    obj.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True})
Every value validated here is a pydantic model (the discriminated unions resolve to their
concrete class), so that call applies as is. If the SDK bytes differ from the input bytes the
answer is "error: reserialized differs: <sdk bytes>". This pins, among others: key order =
field declaration order (thread items: id, thread_id, created_at, then type); null fields
omitted but empty lists/objects and false/default values present; no unknown keys; floats
with a fraction (1.0); raw UTF-8 strings; attachment `metadata` never sent (exclude_metadata).
The single exception: a string that is a datetime on both sides and denotes the same instant
as pydantic reads it (pydantic writes naive `YYYY-MM-DDTHH:MM:SS[.ffffff]`, six fractional
digits or none at all: `.500` becomes `.500000`, `.000000` is dropped, a 7th digit is
truncated, `Z` stays `Z`, offsets stay `+HH:MM`). chatkit-rs emits that naive shape, so its
bytes should match exactly; the leniency exists for hand-written fixtures.

Wire-only rules (behaviour of server.py rather than of the types; on unless "wire": false):
  * every Thread sent to a client carries "metadata": {}: `_to_thread_response` rebuilds the
    Thread without copying the stored metadata (thread, threads_page, thread.created and
    thread.updated events);
  * threads.list entries and the thread in thread.created / thread.updated have an empty
    items page: `_to_thread_response` of a ThreadMetadata uses `Page()`;
  * hidden items (hidden_context_item, sdk_hidden_context) never reach the client: they are
    filtered from thread items and items.list pages, and their thread.item.done is swallowed.
    (The SDK does not filter thread.item.added/replaced, but it never produces them for hidden
    items either, so those are rejected too.)

Run `validate.py --self-test` to check the validator itself against protocol examples.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from chatkit.widgets import DynamicWidgetComponent, DynamicWidgetRoot
from chatkit.types import (
    Attachment,
    ChatKitReq,
    HiddenContextItem,
    Page,
    SDKHiddenContextItem,
    Thread,
    ThreadCreatedEvent,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemReplacedEvent,
    ThreadStreamEvent,
    ThreadUpdatedEvent,
)

# Built once: TypeAdapter construction is the expensive part.
ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "event": TypeAdapter(ThreadStreamEvent),
    "thread": TypeAdapter(Thread),
    "threads_page": TypeAdapter(Page[Thread]),
    "items_page": TypeAdapter(Page[ThreadItem]),
    "item": TypeAdapter(ThreadItem),
    "request": TypeAdapter(ChatKitReq),
    "attachment": TypeAdapter(Attachment),
}
REserialized = {"event", "thread", "threads_page", "items_page", "item", "attachment"}
HIDDEN = (HiddenContextItem, SDKHiddenContextItem)

DATETIME = TypeAdapter(datetime)
# Only strings shaped like an ISO date-time qualify for the datetime leniency (pydantic would
# also read "1700000000" as a Unix time, which must not pass for a datetime string).
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


# Where widget trees sit: the `type` of the holding object → the key of the tree.
WIDGET_HOLDERS = {"widget": "widget", "widget.root.updated": "widget", "widget.component.updated": "component"}


class WidgetSerializationError(Exception):
    """A widget tree that is not serialized as the SDK serializes a template-built widget."""


def _widget_subtrees(obj: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(obj, dict):
        kind = obj.get("type")
        key = WIDGET_HOLDERS.get(kind) if isinstance(kind, str) else None
        for k, v in obj.items():
            if k == key:
                out.append((kind, v))
            else:
                _widget_subtrees(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _widget_subtrees(v, out)


def blank_widgets(data: bytes, ours: bool) -> bytes:
    """Widget trees replaced by "W". Parsed back, a widget goes through the strict component
    models (key order per model, ActionConfig defaults filled in), which is not how the SDK
    sends a widget built from a `.widget` template (`DynamicWidgetRoot`: key, id, type,
    children, then the other props as given). So the trees are compared apart: ours must be
    exactly the SDK's serialization of the same tree as a `DynamicWidgetRoot`."""
    trees: list[tuple[str, Any]] = []
    _widget_subtrees(json.loads(data), trees)
    text = data.decode("utf-8")
    for kind, tree in trees:
        compact = json.dumps(tree, separators=(",", ":"), ensure_ascii=False)
        if ours:
            model = DynamicWidgetComponent if kind == "widget.component.updated" else DynamicWidgetRoot
            expected = model.model_validate(tree).model_dump_json(by_alias=True, exclude_none=True)
            if compact != expected:
                raise WidgetSerializationError(f"{compact} but the SDK sends {expected}")
        at = text.find(compact)
        if at < 0:
            raise WidgetSerializationError(f"tree not found verbatim: {compact}")
        text = text[:at] + '"W"' + text[at + len(compact):]
    return text.encode("utf-8")


class WireRuleError(Exception):
    """A value the SDK types accept but ChatKitServer would never send."""


def sdk_serialize(value: BaseModel) -> bytes:
    """ChatKitServer._serialize, verbatim."""
    return value.model_dump_json(
        by_alias=True,
        exclude_none=True,
        context={"exclude_metadata": True},
    ).encode("utf-8")


MAX_ERRORS_SHOWN = 10


def describe(err: ValidationError) -> str:
    """pydantic's errors on one line (a union that matches no variant lists every variant's
    complaints, so only the first few are shown)."""
    errors = err.errors(include_url=False)
    parts = []
    for e in errors[:MAX_ERRORS_SHOWN]:
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']} [{e['type']}]")
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"... {len(errors) - MAX_ERRORS_SHOWN} more")
    return f"{len(errors)} validation error(s) for {err.title}: " + "; ".join(parts)


def _same_instant(a: str, b: str) -> bool:
    if not (ISO_DATETIME.match(a) and ISO_DATETIME.match(b)):
        return False
    try:
        da = DATETIME.validate_python(a)
        db = DATETIME.validate_python(b)
    except ValidationError:
        return False
    if (da.tzinfo is None) != (db.tzinfo is None):
        return False  # naive vs aware: not comparable, so not "the same instant"
    return da == db


class _Obj:
    """A JSON object with its key order (json.loads would give an unordered comparison)."""

    def __init__(self, pairs: list[tuple[str, Any]]):
        self.pairs = pairs


def _datetime_swaps(x: Any, y: Any, strings: list[int], swaps: dict[int, str]) -> bool:
    """Walks our tree `x` and the SDK's `y` in document order. True when they are equal except
    for datetime strings denoting the same instant; those are recorded in `swaps` by the index
    of the string token (keys included) in our text."""
    if isinstance(x, _Obj) and isinstance(y, _Obj):
        if len(x.pairs) != len(y.pairs):
            return False
        for (kx, vx), (ky, vy) in zip(x.pairs, y.pairs):
            if kx != ky:
                return False
            strings[0] += 1  # the key's string token
            if not _datetime_swaps(vx, vy, strings, swaps):
                return False
        return True
    if type(x) is not type(y):  # keeps 1 != 1.0 and true != 1
        return False
    if isinstance(x, list):
        return len(x) == len(y) and all(_datetime_swaps(a, b, strings, swaps) for a, b in zip(x, y))
    if isinstance(x, str):
        index = strings[0]
        strings[0] += 1
        if x == y:
            return True
        if _same_instant(x, y):
            swaps[index] = y
            return True
        return False
    return x == y


def _string_spans(raw: bytes) -> list[tuple[int, int]]:
    """Byte spans of every string token (quotes included) of valid JSON text, in order."""
    spans = []
    i, n = 0, len(raw)
    while i < n:
        if raw[i] == 0x22:  # '"'
            j = i + 1
            while raw[j] != 0x22:
                j += 2 if raw[j] == 0x5C else 1  # skip the escaped character
            spans.append((i, j + 1))
            i = j + 1
        else:
            i += 1
    return spans


def same_bytes_modulo_datetimes(ours: bytes, sdk: bytes) -> bool:
    """True when `ours` equals the SDK's bytes, or does once each datetime string that differs
    only in spelling is replaced by the SDK's spelling (every other byte must already match:
    key order, whitespace, escapes, number spelling)."""
    if ours == sdk:
        return True
    try:
        x = json.loads(ours, object_pairs_hook=_Obj)
        y = json.loads(sdk, object_pairs_hook=_Obj)
    except ValueError:
        return False
    strings, swaps = [0], {}
    if not _datetime_swaps(x, y, strings, swaps) or not swaps:
        return False
    spans = _string_spans(ours)
    if len(spans) != strings[0]:
        return False
    out, last = bytearray(), 0
    for index, replacement in sorted(swaps.items()):
        start, end = spans[index]
        out += ours[last:start] + json.dumps(replacement).encode()
        last = end
    out += ours[last:]
    return bytes(out) == sdk


def _check_wire_thread(thread: Thread, where: str, empty_items: bool) -> None:
    if thread.metadata:
        raise WireRuleError(
            f"{where}: thread metadata must be {{}} on the wire "
            "(ChatKitServer._to_thread_response rebuilds the Thread without it)"
        )
    if empty_items and (thread.items.data or thread.items.has_more or thread.items.after):
        raise WireRuleError(
            f"{where}: items must be the empty page {{\"data\":[],\"has_more\":false}} "
            "(_to_thread_response of stored thread metadata uses Page())"
        )
    for i, item in enumerate(thread.items.data):
        if isinstance(item, HIDDEN):
            raise WireRuleError(f"{where}.items.data.{i}: hidden item {item.type} sent to the client")


def check_wire_rules(kind: str, value: BaseModel) -> None:
    if kind == "thread":
        _check_wire_thread(value, "thread", empty_items=False)
    elif kind == "threads_page":
        for i, thread in enumerate(value.data):
            _check_wire_thread(thread, f"data.{i}", empty_items=True)
    elif kind == "items_page":
        for i, item in enumerate(value.data):
            if isinstance(item, HIDDEN):
                raise WireRuleError(f"data.{i}: hidden item {item.type} sent to the client")
    elif kind == "event":
        if isinstance(value, (ThreadCreatedEvent, ThreadUpdatedEvent)):
            _check_wire_thread(value.thread, value.type + ".thread", empty_items=True)
        elif isinstance(value, (ThreadItemDoneEvent, ThreadItemAddedEvent, ThreadItemReplacedEvent)):
            if isinstance(value.item, HIDDEN):
                raise WireRuleError(
                    f"{value.type} of hidden item {value.item.type} sent to the client "
                    "(the SDK persists hidden items but never forwards them)"
                )


def check(kind: str, raw: bytes, wire: bool = True) -> str:
    """The answer line (without newline) for one value."""
    if kind == "empty":
        return "ok" if raw == b"{}" else "error: expected exactly {} but got " + _one_line(raw)
    adapter = ADAPTERS.get(kind)
    if adapter is None:
        return f"error: unknown kind {kind!r} (expected one of {', '.join([*ADAPTERS, 'empty'])})"
    try:
        value = adapter.validate_json(raw)
    except ValidationError as err:
        return "error: " + describe(err)
    if kind in REserialized:
        sdk = sdk_serialize(value)
        ours = raw
        if b'"widget' in raw:
            try:
                ours, sdk = blank_widgets(raw, ours=True), blank_widgets(sdk, ours=False)
            except WidgetSerializationError as err:
                return f"error: widget serialization: {err}"
        if not same_bytes_modulo_datetimes(ours, sdk):
            return "error: reserialized differs: " + sdk.decode("utf-8")
    if wire:
        try:
            check_wire_rules(kind, value)
        except WireRuleError as err:
            return f"error: wire rule: {err}"
    return "ok"


def _one_line(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("\r", "\\r").replace("\n", "\\n")


def handle(line: bytes) -> str:
    try:
        req = json.loads(line)
    except ValueError as err:
        return f"error: bad input line (not JSON: {err})"
    if not isinstance(req, dict) or not isinstance(req.get("kind"), str) or not isinstance(req.get("json"), str):
        return 'error: bad input line (expected {"kind": <str>, "json": <str>})'
    wire = req.get("wire", True)
    if not isinstance(wire, bool):
        return 'error: bad input line ("wire" must be a boolean)'
    try:
        raw = req["json"].encode("utf-8")
    except UnicodeEncodeError:
        return "error: the json text contains a lone surrogate"
    return check(req["kind"], raw, wire)


def serve() -> None:
    out = sys.stdout.buffer
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return
        try:
            answer = handle(line)
        except Exception as err:  # never desynchronize the protocol
            answer = f"error: internal: {type(err).__name__}: {err}"
        answer = answer.replace("\r", "\\r").replace("\n", "\\n")
        out.write(answer.encode("utf-8") + b"\n")
        out.flush()


# Examples from the protocol notes (docs/chatkit-protocol §2, §4, §5, §6, §8.1), plus values
# that must fail. Each entry: kind, JSON text, expected answer prefix.
SELF_TEST: list[tuple[str, str, str]] = [
    ("threads_page", '{"data":[{"id":"thr_1b0c9d44","created_at":"2025-06-01T09:00:00.500000","status":{"type":"active"},"metadata":{},"items":{"data":[],"has_more":false}}],"has_more":true,"after":"thr_1b0c9d44"}', "ok"),
    ("threads_page", '{"data":[],"has_more":false}', "ok"),
    ("thread", '{"title":"Paris weather","id":"thr_5c1e9a02","created_at":"2025-06-01T10:15:42.118204","status":{"type":"active"},"metadata":{},"items":{"data":[],"has_more":false}}', "ok"),
    ("event", '{"type":"stream_options","stream_options":{"allow_cancel":true}}', "ok"),
    ("event", '{"type":"progress_update","icon":"search","text":"Looking up the forecast…"}', "ok"),
    ("event", '{"type":"client_effect","name":"highlight_text","data":{"index":142,"length":35}}', "ok"),
    ("event", '{"type":"notice","level":"warning","message":"You have 3 messages left today.","title":"Heads up"}', "ok"),
    ("event", '{"type":"error","code":"custom","message":"Quota exceeded","allow_retry":true}', "ok"),
    ("event", '{"type":"error","code":"stream.error","allow_retry":true}', "ok"),
    ("event", '{"type":"thread.item.removed","item_id":"msg_77c0e1aa"}', "ok"),
    ("event", '{"type":"thread.item.updated","item_id":"msg_68a1f0c2","update":{"type":"assistant_message.content_part.added","content_index":0,"content":{"annotations":[],"text":"","type":"output_text"}}}', "ok"),
    ("event", '{"type":"thread.item.updated","item_id":"msg_68a1f0c2","update":{"type":"assistant_message.content_part.text_delta","content_index":0,"delta":"It is sunny"}}', "ok"),
    ("event", '{"type":"thread.item.updated","item_id":"wf_2d9c4b10","update":{"type":"workflow.task.added","task_index":0,"task":{"status_indicator":"none","type":"thought","content":"Checking the forecast"}}}', "ok"),
    ("item", '{"id":"msg_0a4b77d3","thread_id":"thr_5c1e9a02","created_at":"2025-06-01T10:15:42.125511","type":"user_message","content":[{"type":"input_text","text":"What\'s the weather in Paris?"}],"attachments":[],"quoted_text":"Paris, France","inference_options":{"tool_choice":{"id":"web_search"},"model":"fast"}}', "ok"),
    ("item", '{"id":"msg_68a1f0c2","thread_id":"thr_5c1e9a02","created_at":"2025-06-01T10:15:44.902377","type":"assistant_message","content":[{"annotations":[],"text":"It is sunny in Paris.","type":"output_text"}]}', "ok"),
    ("item", '{"id":"fc_51e0","thread_id":"thr_5c1e9a02","created_at":"2025-06-01T10:16:03.004871","type":"client_tool_call","status":"pending","call_id":"call_9Qh2","name":"get_selected_rows","arguments":{"sheet":"Q3"}}', "ok"),
    ("event", '{"type":"thread.created","thread":{"id":"thr_5c1e9a02","created_at":"2025-06-01T10:15:42.118204","status":{"type":"active"},"metadata":{},"items":{"data":[],"has_more":false}}}', "ok"),
    ("event", '{"type":"thread.item.done","item":{"id":"msg_0a4b77d3","thread_id":"thr_5c1e9a02","created_at":"2025-06-01T10:15:42.125511","type":"user_message","content":[{"type":"input_text","text":"Hi"}],"attachments":[],"inference_options":{}}}', "ok"),
    ("event", '{"type":"thread.item.added","item":{"id":"msg_68a1f0c2","thread_id":"thr_5c1e9a02","created_at":"2025-06-01T10:15:43.001020","type":"assistant_message","content":[]}}', "ok"),
    ("event", '{"type":"thread.updated","thread":{"title":"Greeting","id":"thr_5c1e9a02","created_at":"2025-06-01T10:15:42.118204","status":{"type":"active"},"metadata":{},"items":{"data":[],"has_more":false}}}', "ok"),
    ("request", '{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"Hi"}],"attachments":[],"inference_options":{}}}}', "ok"),
    ("request", '{"type":"items.list","params":{"thread_id":"thr_1"},"metadata":{"x":1}}', "ok"),
    ("empty", "{}", "ok"),
    # Must fail.
    ("empty", "{ }", "error: expected exactly {}"),
    ("request", '{"type":"threads.nope","params":{}}', "error: 1 validation error(s)"),
    ("event", '{"type":"stream_options","stream_options":{"allow_cancel":true},"extra":1}', "error: reserialized differs: "),
    ("event", '{"stream_options":{"allow_cancel":true},"type":"stream_options"}', "error: reserialized differs: "),
    ("event", '{"type": "stream_options", "stream_options": {"allow_cancel": true}}', "error: reserialized differs: "),
    ("event", '{"type":"progress_update","text":"caf\\u00e9"}', "error: reserialized differs: "),
    ("event", '{"type":"error","code":"custom","message":null,"allow_retry":false}', "error: reserialized differs: "),
    ("event", '{"type":"thread.item.updated","item_id":"g","update":{"type":"generated_image.updated","image":{"id":"i","url":"u"},"progress":1}}', "error: reserialized differs: "),
    ("item", '{"type":"end_of_turn","id":"e","thread_id":"t","created_at":"2025-06-01T10:15:42"}', "error: reserialized differs: "),
    ("item", '{"id":"e","thread_id":"t","created_at":"2025-06-01T10:15:42.000000","type":"end_of_turn"}', "ok"),
    ("item", '{"id":"e","thread_id":"t","created_at":"2025-06-01T10:15:42.500","type":"end_of_turn"}', "ok"),
    ("item", '{"id":"e","thread_id":"t","created_at":1748772942,"type":"end_of_turn"}', "error: reserialized differs: "),
    ("item", '{"id":"e","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"end_of_turn"}', "ok"),
    ("item", '{"id":"m","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"user_message","content":[{"type":"input_text","text":"x"}],"attachments":[{"id":"a","name":"n","mime_type":"text/plain","metadata":{"k":1},"type":"file"}],"inference_options":{}}', "error: reserialized differs: "),
    ("thread", '{"id":"t","created_at":"2025-06-01T10:15:42","status":{"type":"active"},"metadata":{"owner":"u1"},"items":{"data":[],"has_more":false}}', "error: wire rule: "),
    ("threads_page", '{"data":[{"id":"t","created_at":"2025-06-01T10:15:42","status":{"type":"active"},"metadata":{},"items":{"data":[{"id":"e","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"end_of_turn"}],"has_more":false}}],"has_more":false}', "error: wire rule: "),
    ("items_page", '{"data":[{"id":"h","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"sdk_hidden_context","content":"x"}],"has_more":false}', "error: wire rule: "),
    ("event", '{"type":"thread.item.done","item":{"id":"h","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"hidden_context_item","content":{"a":null}}}', "error: wire rule: "),
    ("item", '{"id":"h","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"hidden_context_item","content":{"a":null}}', "ok"),
    ("item", '{"id":"w","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"widget","widget":{"id":"c","type":"Card","children":[{"type":"Button","label":"Go","onClickAction":{"type":"go"}}]}}', "ok"),
    ("item", '{"id":"w","thread_id":"t","created_at":"2025-06-01T10:15:42","type":"widget","widget":{"type":"Card","id":"c","children":[]}}', "error: widget serialization: "),
    ("event", '{"type":"thread.item.updated","item_id":"w","update":{"type":"widget.root.updated","widget":{"type":"Card","children":[{"type":"Text","value":"x","color":null}]}}}', "error: widget serialization: "),
    ("thread", "not json", "error: 1 validation error(s)"),
    ("bogus", "{}", "error: unknown kind"),
]


def self_test() -> int:
    failures = 0
    for kind, text, want in SELF_TEST:
        got = handle(json.dumps({"kind": kind, "json": text}).encode())
        if not got.startswith(want):
            failures += 1
            print(f"FAIL {kind} {text}\n  want {want!r}\n  got  {got!r}", file=sys.stderr)
    with_metadata = next(text for kind, text, _ in SELF_TEST if '"owner"' in text)
    wire_off = handle(json.dumps({"kind": "thread", "json": with_metadata, "wire": False}).encode())
    if wire_off != "ok":
        failures += 1
        print(f"FAIL wire=false: {wire_off}", file=sys.stderr)
    print(f"{len(SELF_TEST) + 1 - failures}/{len(SELF_TEST) + 1} self-test cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if sys.argv[1:]:
        sys.exit("usage: validate.py [--self-test]   (line protocol on stdin/stdout, see the docstring)")
    serve()
