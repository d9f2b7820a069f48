"""A cell's outputs in nbformat's output model, bounded so that no cell can fill a report.

Per cell and per stream, the first STREAM_HEAD and the last STREAM_TAIL characters are kept; what lies between
is replaced by a note saying how much was cut (the tail follows the cell's other outputs). A rich value larger
than RICH_LIMIT characters is left out with a note, and a cell keeps at most OUTPUTS_LIMIT displayed values.
"""

from __future__ import annotations

from typing import Any

STREAM_HEAD = 50_000
STREAM_TAIL = 50_000
TEXT_LIMIT = 100_000  # the text/plain form of one value: kept as head and tail as well
RICH_LIMIT = 10_000_000  # one HTML table, SVG or base64 image
OUTPUTS_LIMIT = 500  # displayed values (display(), figures, the last expression) per cell


def cut_note(count: int, what: str) -> str:
    return f"{chr(10)}[kale-yaml: {count:,} characters of {what} cut here]{chr(10)}"


def bounded_text(text: str, what: str) -> str:
    """text, or its head and tail with a note between them when it is longer than TEXT_LIMIT."""
    if len(text) <= TEXT_LIMIT:
        return text
    half = TEXT_LIMIT // 2
    return text[:half] + cut_note(len(text) - 2 * half, what) + text[-half:]


class _Stream:
    """One stream of one cell: the head as outputs, then a tail buffer once the head is full."""

    def __init__(self) -> None:
        self.head_left = STREAM_HEAD
        self.tail: list[str] = []
        self.tail_size = 0
        self.cut = 0

    def keep_tail(self, text: str) -> None:
        self.tail.append(text)
        self.tail_size += len(text)
        if self.tail_size > 2 * STREAM_TAIL:  # trimmed in batches: each character is copied O(1) times
            self._trim()

    def _trim(self) -> None:
        joined = "".join(self.tail)
        if len(joined) > STREAM_TAIL:
            self.cut += len(joined) - STREAM_TAIL
            joined = joined[-STREAM_TAIL:]
        self.tail, self.tail_size = [joined], len(joined)

    def ending(self, name: str) -> str:
        self._trim()
        text = "".join(self.tail)
        return (cut_note(self.cut, name) + text) if self.cut else text


class CellOutputs:
    """The outputs of one cell as they happen: stream text, displayed values, then maybe an error."""

    def __init__(self, number: int, execution_count: int) -> None:
        self.number, self.execution_count = number, execution_count
        self.outputs: list[dict[str, Any]] = []
        self.streams: dict[str, _Stream] = {}
        self.shown = 0
        self.dropped = 0

    def write(self, name: str, text: str) -> None:
        """Text the cell wrote to stdout or stderr (name)."""
        if not text:
            return
        stream = self.streams.get(name)
        if stream is None:
            stream = self.streams[name] = _Stream()
        if stream.head_left > 0:
            head = text[: stream.head_left]
            stream.head_left -= len(head)
            self._append_stream(name, head)
            text = text[len(head) :]
        if text:
            stream.keep_tail(text)

    def _append_stream(self, name: str, text: str) -> None:
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text  # consecutive writes to one stream are one output, as Jupyter keeps them
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def show(self, data: dict[str, Any], metadata: dict[str, Any], result: bool = False) -> None:
        """A displayed value (display_data), or the cell's last expression (execute_result)."""
        if self.shown >= OUTPUTS_LIMIT:
            self.dropped += 1
            return
        self.shown += 1
        if result:
            kind: dict[str, Any] = {"output_type": "execute_result", "execution_count": self.execution_count}
        else:
            kind = {"output_type": "display_data"}
        self.outputs.append({**kind, "data": data, "metadata": metadata})

    def error(self, name: str, value: str, traceback_lines: list[str]) -> None:
        self.outputs.append(
            {"output_type": "error", "ename": name, "evalue": value, "traceback": traceback_lines}
        )

    def close(self) -> None:
        """The tails of the streams whose heads filled up, and a note of the values not kept."""
        for name, stream in self.streams.items():
            if stream.tail:
                text = stream.ending(name)
                if text:
                    self._append_stream(name, text)
        self.streams = {}
        if self.dropped:
            note = f"[kale-yaml: {self.dropped:,} more displayed values not kept (at most {OUTPUTS_LIMIT:,})]"
            self._append_stream("stderr", note + chr(10))
            self.dropped = 0

    def record(self) -> dict[str, Any]:
        return {"cell": self.number, "execution_count": self.execution_count, "outputs": self.outputs}
