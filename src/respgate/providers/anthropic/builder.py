"""The two StreamBuilder calls hosted tools need, until streaming.py has them (Gemini uses them too).

* `annotate`: a citation on the output_text part being written, as OpenAI streams it
  (`response.output_text.annotation.added`), so the part's `.done` event, the item and the final
  Response all carry it;
* `add_tool_item`: a whole hosted-tool item (web_search_call, computer_call) with its progress events
  (`response.web_search_call.in_progress` / `.searching` / `.completed`) between added and done.

Written against the builder's own state (one open item, its open part): the builder stays the only
place that numbers events and owns the output list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...streaming import StreamBuilder, _added_snapshot

Json = dict[str, Any]

WEB_SEARCH_PROGRESS = ("response.web_search_call.in_progress", "response.web_search_call.searching",
                       "response.web_search_call.completed")


class HostedToolBuilder(StreamBuilder):
    def text_offset(self) -> int:
        """Characters already in the output_text part the next text delta continues (0: a new part)."""
        open_ = self._open
        if open_ is None or open_.item["type"] != "message" or open_.part_kind != "output_text":
            return 0
        return sum(len(chunk) for chunk in open_.chunks)

    def open_text(self) -> str:
        """The text of the output_text part the next text delta continues ("" when none is open)."""
        open_ = self._open
        if open_ is None or open_.item["type"] != "message" or open_.part_kind != "output_text":
            return ""
        return "".join(open_.chunks)

    def annotate(self, annotation: Json) -> list[Json]:
        """Add `annotation` to the open output_text part; nothing when no text part is open."""
        open_ = self._open
        if open_ is None or open_.part is None or open_.part_kind != "output_text":
            return []
        annotations: list[Json] = open_.part["annotations"]
        annotations.append(annotation)
        return [self._stamp("response.output_text.annotation.added", **self._where(open_),
                            annotation_index=len(annotations) - 1, annotation=annotation)]

    def add_tool_item(self, item: Json, progress: Sequence[str] = ()) -> list[Json]:
        """A finished item at once: added, its progress events, done."""
        events = self._begin()
        self._close_item("completed", events)
        index = len(self._response["output"])
        events.append(self._stamp("response.output_item.added", output_index=index, item=_added_snapshot(item)))
        events += [self._stamp(kind, item_id=item["id"], output_index=index) for kind in progress]
        events.append(self._stamp("response.output_item.done", output_index=index, item=item))
        self._response["output"].append(item)
        return events
