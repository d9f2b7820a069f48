"""IPython syntax in code cells: what a pipeline step really executes.

A pipeline step runs plain Python, so IPython-only lines are left out, each with a warning:
- `%time STMT` keeps STMT (it runs in the notebook too) and leaves out the timing;
- `%matplotlib inline` is what a step does anyway (it keeps each figure as PNG in its report): the line
  becomes a `pass` saying so, without a warning;
- any other line magic (`%matplotlib widget`, `%load_ext x`) or shell line (`!pip install x`) starting a
  logical line becomes `pass  # kale-yaml: left out: <the line>` at the same indentation, so every other
  line keeps its number and blocks stay valid (a trailing backslash continues the magic onto the next
  lines, left out too);
- `%%time` and `%%capture` as the cell's first line: that line is left out and the body runs at top level;
- `%%timeit`: the whole cell is left out (IPython runs its body inside a timing function, so it leaves
  nothing in the namespace);
- `%%writefile PATH` and `%%file PATH`: the cell becomes one statement that writes its body to PATH, as
  IPython does, and the body's lines become comments (the analysis replays the write in later steps:
  `written_file`);
- any other cell magic (`%%bash`, `%%writefile -a`, ...) raises `CellMagicError`: the caller decides whether
  it matters (a skipped cell never reaches this module).
A cell that already parses as Python is returned unchanged: `%` or `!` cannot start a Python statement, so
such a cell holds no magic, and a line starting with `%` inside a triple-quoted string stays as it is.
IPython's help syntax (`x?`) and assignment forms (`files = !ls`, `x = %who_ls`) are left alone: they remain
syntax errors, which `parse_cell` reports with a hint, as it reports code no cell can run (`return` outside a
function).
"""

from __future__ import annotations

import ast
import re
import warnings

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Collector
from kale_yaml.load.cells import Cell

RUNNABLE_CELL_MAGICS = frozenset({"time", "capture"})
WRITE_FILE_MAGICS = frozenset({"writefile", "file"})
LEFT_OUT = "pass  # kale-yaml: left out: "
TIMED = re.compile(r"^%time\s+(\S.*)$")
INLINE_FIGURES = re.compile(r"^%matplotlib\s+inline\s*$")
HONOURED = "pass  # kale-yaml: the step keeps figures as inline matplotlib does: "


class CellMagicError(Exception):
    """A cell magic other than `%%time`/`%%capture`: the cell cannot run in a pipeline step."""

    def __init__(self, cell_number: int, magic_name: str, line: int = 1) -> None:
        self.cell_number = cell_number
        self.magic_name = magic_name  # as written, e.g. "%%bash"
        self.line = line
        super().__init__(
            f"cell {cell_number}, line {line}: cell magic '{magic_name}' cannot run in a pipeline step; "
            "skip the cell or rewrite it in Python"
        )


def parses(source: str) -> bool:
    """Whether `source` is Python as far as the parser goes (top-level await allowed; warnings silenced)."""
    return _tree(source) is not None


def _tree(source: str) -> ast.Module | None:
    try:
        return parse_python(source)
    except (SyntaxError, ValueError):
        return None


TOO_DEEP_FOR_PYTHON = (
    "the code is nested too deeply for Python to compile (a very long expression such as 1+1+...+1, or"
    " thousands of nested operators): split it into several statements"
)


class NestedTooDeeply(SyntaxError):
    """Python's parser or compiler ran out of depth: a valid-looking expression like `1+1+...+1` with
    thousands of terms, or thousands of unary minuses. Python itself raises RecursionError or MemoryError
    for these; as a SyntaxError every caller that reports syntax errors reports this one too."""

    def __init__(self) -> None:
        super().__init__(TOO_DEEP_FOR_PYTHON)


def parse_python(source: str) -> ast.Module:
    """`ast.parse` (top-level await allowed; warnings silenced) that raises `NestedTooDeeply` instead of
    Python's RecursionError or MemoryError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (RecursionError, MemoryError):
        raise NestedTooDeeply() from None


def compile_check(source: str, filename: str) -> None:
    """Compile `source` as a cell runs it, for the errors only the compiler finds (`return` outside a
    function). From the text, not from a parsed tree: Python converts a tree back with a much smaller depth
    limit than it parses text, so a tree of a long expression that runs fine would fail here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, filename, "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (RecursionError, MemoryError):
        raise NestedTooDeeply() from None


def executable_source(cell: Cell) -> tuple[str, list[str]]:
    """The Python source to really execute for a code cell, and plain-text warnings about what was left out.

    Markdown and raw cells execute nothing: their source is "". The result has as many lines as the cell.
    """
    source, found = rewrite(cell)
    return source, [message for _line, message in found]


def rewrite(cell: Cell) -> tuple[str, list[tuple[int, str]]]:
    """As `executable_source`, with each warning's line number (1-based, within the cell)."""
    if cell.cell_type != "code":
        return "", []
    if parses(cell.source):
        return cell.source, []
    return _rewrite_lines(cell)


def _rewrite_lines(cell: Cell) -> tuple[str, list[tuple[int, str]]]:
    lines = cell.source.splitlines(keepends=True)
    found: list[tuple[int, str]] = []
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].strip()
        name = magic[2:].split(None, 1)[0] if magic[2:].strip() else ""
        if name == "timeit":
            message = (
                f"cell magic '{magic}' left out with its cell: IPython times the body in a function of its"
            )
            message += " own, so it leaves nothing behind"
            return "".join(_left_out(line, "") for line in lines), [(first + 1, message)]
        if name in WRITE_FILE_MAGICS:
            return _write_file(cell.number, lines, first, name), []
        if name not in RUNNABLE_CELL_MAGICS:
            raise CellMagicError(cell.number, "%%" + name, first + 1)
        lines[first] = _left_out(lines[first])
        found.append((first + 1, f"cell magic '{magic}' left out: the cell's body runs without it"))
    indent_from = ""
    for i, head in _magic_lines(lines):
        stripped = lines[i].strip()
        timed = TIMED.match(stripped)
        if head and INLINE_FIGURES.match(stripped):
            body, ending = _split(lines[i])
            lines[i] = body[: len(body) - len(body.lstrip())] + HONOURED + stripped + ending
            continue
        if head and timed and not stripped.endswith("\\"):
            # `%time STMT` runs STMT in the notebook: keep STMT, leave out the timing.
            body, ending = _split(lines[i])
            lines[i] = body[: len(body) - len(body.lstrip())] + timed.group(1) + ending
            found.append((i + 1, f"line magic '%time' left out: '{timed.group(1)}' runs without timing"))
            continue
        if head:
            kind = "shell line" if stripped.startswith("!") else "line magic"
            found.append((i + 1, f"{kind} '{stripped}' left out"))
            indent_from = lines[i]
        lines[i] = _left_out(lines[i], indent_from)
    return "".join(lines), found


def written_file(cell: Cell) -> tuple[str, str] | None:
    """(PATH, the statement that writes the file) for a `%%writefile PATH` or `%%file PATH` cell."""
    source = cell.source.lstrip()
    if cell.cell_type != "code" or not source.startswith(("%%writefile", "%%file")):
        return None
    try:
        text, _ = rewrite(cell)
    except CellMagicError:
        return None
    statement = next(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return _magic_path(source.splitlines()[0]) or "", statement


def _magic_path(magic: str) -> str | None:
    """The PATH of `%%writefile PATH` (quotes taken off, as IPython does), or None for options or no path."""
    words = magic.split(None, 1)
    path = words[1].strip() if len(words) > 1 else ""
    if len(path) > 1 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1]
    return path if path and not path.startswith("-") else None


def _write_file(number: int, lines: list[str], first: int, name: str) -> str:
    """`%%writefile PATH` as one statement writing the body, then the body's lines as comments."""
    path = _magic_path(lines[first].strip())
    if path is None:
        raise CellMagicError(number, "%%" + name, first + 1)
    body = "".join(lines[first + 1 :])
    if body and not body.endswith("\n"):  # IPython ends every cell with a newline before running it
        body += "\n"
    where = f"__import__('pathlib').Path({path!r})" + (".expanduser()" if path.startswith("~") else "")
    # Written only when the file differs: steps after this one write it again at their start, and on this
    # machine parallel steps share the folder; rewriting an identical file could let one read it half-written.
    write = (
        "(lambda path, text: path.is_file() and path.read_text(encoding='utf-8') == text"
        f" or path.write_text(text, encoding='utf-8'))({where}, {body!r})"
    )
    head = ["\n"] * first + [f"{write}  # kale-yaml: {lines[first].strip()}\n"]
    return "".join([*head, *(f"# {_split(line)[0]}\n" for line in lines[first + 1 :])])


def _left_out(line: str, indent_from: str | None = None) -> str:
    """`line` as a `pass` statement, indented like `indent_from` (default: like itself)."""
    body, ending = _split(line)
    model = body if indent_from is None else indent_from
    indent = model[: len(model) - len(model.lstrip())]
    return f"{indent}{LEFT_OUT}{body.strip()}{ending}"


def _split(line: str) -> tuple[str, str]:
    """A line from `splitlines(keepends=True)` as (content, line break)."""
    content = line.splitlines()[0] if line.splitlines() else ""
    return content, line[len(content) :]


def _magic_lines(lines: list[str]) -> list[tuple[int, bool]]:
    """(index, is the magic's first line) of lines starting a logical line with `%`/`!`, and continuations.

    A small scanner tracks strings, brackets and backslash continuations, so only true statement starts count.
    """
    result: list[tuple[int, bool]] = []
    quote: str | None = None  # the delimiter of the string open at the end of the previous line
    depth = 0
    continued = False  # previous code line ended with a backslash
    in_magic = False  # previous magic line ended with a backslash
    for index, line in enumerate(lines):
        body = _split(line)[0]
        if in_magic:
            result.append((index, False))
            in_magic = body.endswith("\\")
            continue
        at_start = quote is None and depth == 0 and not continued
        if at_start and body.lstrip().startswith(("%", "!")) and not body.lstrip().startswith("%%"):
            result.append((index, True))
            in_magic = body.endswith("\\")
            continue
        continued = False
        i = 0
        while i < len(body):
            ch = body[i]
            if quote is not None:
                if ch == "\\":
                    i += 2
                elif body.startswith(quote, i):
                    i += len(quote)
                    quote = None
                else:
                    i += 1
                continue
            if ch == "#":
                break
            if ch in "\"'":
                quote = body[i : i + 3] if body[i : i + 3] in ('"""', "'''") else ch
                i += len(quote)
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(0, depth - 1)
            elif ch == "\\" and i == len(body) - 1:
                continued = True
            i += 1
        if quote in ("'", '"') and not body.endswith("\\"):
            quote = None  # an unterminated one-line string: a syntax error the parser reports
    return result


def parse_cell(cell: Cell, notebook: str, out: Collector) -> tuple[ast.Module | None, str]:
    """The cell's executable source and its syntax tree; None (with errors in `out`) when it cannot run."""

    def error(kind: Kind, line: int | None, message: str, col: int | None = None) -> None:
        out.add(kind.at(notebook, message, cell=cell.number, line=line, col=col))

    tree = _tree(cell.source)
    source = cell.source
    if tree is None:  # not Python as it stands: leave IPython lines out
        try:
            source, found = _rewrite_lines(cell)
        except CellMagicError as e:
            message = (
                f"cell magic '{e.magic_name}' cannot run in a pipeline step: skip the cell or rewrite it"
            )
            error(ky.CELL_MAGIC, e.line, message)
            return None, cell.source
        for line, message in found:
            out.add(ky.LEFT_OUT.at(notebook, message, cell=cell.number, line=line))
    try:
        tree = tree or parse_python(source)
        compile_check(source, f"<cell {cell.number}>")
    except NestedTooDeeply:
        error(ky.TOO_DEEP_TO_COMPILE, None, TOO_DEEP_FOR_PYTHON)
        return None, source
    except SyntaxError as e:
        error(ky.SYNTAX_ERROR, e.lineno, _syntax_message(e, source), e.offset)
        return None, source
    except ValueError as e:  # e.g. a null byte in the source
        error(ky.SYNTAX_ERROR, None, str(e))
        return None, source
    return tree, source


def _syntax_message(e: SyntaxError, source: str) -> str:
    message = e.msg
    for what in ("return", "yield"):
        if message == f"'{what}' outside function":
            return f"'{what}' outside a function: a cell cannot {what}"
    lines = source.splitlines()
    text = lines[e.lineno - 1].strip() if e.lineno and e.lineno <= len(lines) else ""
    if text.endswith("?") or text.startswith("?"):
        return f"syntax error: {message} (IPython help syntax like 'x?' cannot run in a pipeline step)"
    if "= !" in text or "= %" in text or "=!" in text:
        return (
            f"syntax error: {message} (IPython's 'x = !cmd' and 'x = %magic' cannot run in a pipeline step)"
        )
    return f"syntax error: {message}"
