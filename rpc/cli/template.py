"""Go templates for ``--format``, as podman's report package runs them: ``table`` with its
header row and aligned columns, the implicit ``{{range .}}`` around a row's template,
``\\t``/``\\n`` typed as two characters, and podman's shapes of the objects (maps, times).

Imported only when a template is given (the default tables never need it). The Go
side is in gotemplate.py (parse and run), gofuncs.py and goprintf.py (functions) and
govalues.py (values and printing).
"""

from __future__ import annotations

from .gotemplate import Template, TemplateError
from .govalues import GoMap, GoTime, View, fmt_v, go_float, go_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["GoMap", "GoTime", "Headers", "Template", "TemplateError", "View", "camel_words",
           "fmt_v", "go_float", "go_time", "normalize", "parse_report", "podman_shaped", "render",
           "render_one"]


def normalize(fmt: str) -> str:
    """podman's NormalizeFormat: ``\\t``/``\\n`` typed as two characters become the real ones,
    and a table's spaces become column breaks; the text ends with a newline."""
    if fmt.startswith("table "):
        text = fmt[len("table "):].replace("\\t", "\t").replace("\\n", "\n").replace(" ", "\t")
    else:
        text = fmt.replace("\\t", "\t").replace("\\n", "\n")
    return text if text.endswith("\n") else text + "\n"


def _has_range(fmt: str) -> bool:
    """podman's EnforceRange test: the format has ``{{range .}}`` and, after it, ``{{end}}``."""
    actions = _actions(fmt)
    for i, action in enumerate(actions):
        if action.split() == ["range", "."] and not action.startswith(("-", " -")):
            return any(a.strip().rstrip("-").strip() == "end" for a in actions[i + 1:])
    return False


def _actions(text: str) -> list[str]:
    out, at = [], text.find("{{")
    while at >= 0:
        close = text.find("}}", at)
        if close < 0:
            break
        out.append(text[at + 2 : close])
        at = text.find("{{", close)
    return out


def parse_report(fmt: str, name: str) -> tuple[Template, bool]:
    """A user's --format as podman's report package reads it: (template, is it a table).

    The normalized text is tried first; when it does not parse, the text as given
    (podman does the same, for formats like ``{{printf "\\n"}}``).
    """
    table = fmt.startswith("table ")
    if table:
        first = "{{range .}}" + normalize(fmt) + "{{end -}}"
        second = "{{range .}}" + fmt[len("table "):] + "{{end -}}"
    else:
        norm = normalize(fmt)
        first = norm if _has_range(norm) else "{{range .}}" + norm + "{{end -}}"
        second = fmt if _has_range(fmt) else "{{range .}}" + fmt + "{{end -}}"
    try:
        return Template(name, first), table
    except TemplateError:
        if first == second:
            raise
    return Template(name, second), table


def camel_words(name: str) -> list[str]:
    """fatih/camelcase's Split, which podman's headers use: ``RunningFor`` -> Running, For;
    ``PDFLoader`` -> PDF, Loader."""
    runs: list[list[str]] = []
    last = ""
    for ch in name:
        cls = "l" if ch.islower() else "u" if ch.isupper() else "d" if ch.isdigit() else "o"
        if cls == last:
            runs[-1].append(ch)
        else:
            runs.append([ch])
        last = cls
    for i in range(len(runs) - 1):
        if runs[i] and runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


class Headers(GoMap):
    """The header row of a table: any field's header is its name split and upper-cased,
    unless the command overrides it (``ID`` -> CONTAINER ID)."""

    __slots__ = ("overrides",)

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        super().__init__()
        self.overrides = overrides or {}

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.overrides:
            return self.overrides[key].upper()
        return " ".join(camel_words(key)).upper()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)


def render(fmt: str, rows: list[Any], *, name: str, headers: dict[str, str] | None = None,
           noheading: bool = False) -> str:
    """Rows through a user's --format, as podman prints them: a ``table`` gets its header
    row and aligned columns (Go's tabwriter, as podman sets it up)."""
    tmpl, table = parse_report(fmt, name)
    text = tmpl.execute(rows)
    if not table:
        return text
    if not noheading:
        text = tmpl.execute([Headers(headers)]) + text
    from .common import tabwrite

    return tabwrite(text)


def render_one(fmt: str, value: Any, *, name: str) -> str:
    """One object through a template, without podman's range: ``info`` and ``version``."""
    return Template(name, normalize(fmt)).execute(value)


# Keys whose values are Go maps in podman's objects (the rest of a dict is a struct), and
# keys whose RFC 3339 texts are time.Time values there.
MAP_KEYS = frozenset(("Labels", "Annotations", "Sysctls", "Options", "Attributes", "DriverOpts",
                      "Namespaces"))
TIME_KEYS = frozenset(("Created", "CreatedAt", "StartedAt", "FinishedAt", "Time"))


def podman_shaped(obj: Any) -> Any:
    """An inspect object as podman's template sees it: maps as GoMaps, times as GoTimes,
    and ``.ID`` for ``Id`` (podman's inspectNormalize turns ``{{.Id}}`` into ``{{.ID}}``)."""
    out = _shaped(obj)
    if isinstance(out, dict) and "Id" in out and "ID" not in out:
        return View(out, {"ID": out["Id"]}, "define.InspectContainerData")
    return out


def _shaped(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        items = {k: _shaped(v, k) for k, v in value.items()}
        return GoMap(items) if key in MAP_KEYS else items
    if isinstance(value, list):
        return [_shaped(v) for v in value]
    if key in TIME_KEYS and isinstance(value, str) and "T" in value:
        from .common import CLIError

        try:
            return go_time(value)
        except CLIError:  # not a time after all: keep the text
            return value
    return value
