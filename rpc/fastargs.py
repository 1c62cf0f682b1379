"""The CLI's argv parsed without argparse, for the forms this module fully understands.

Importing argparse costs ~10 ms of every ``varpod`` start-up (it pulls in re,
enum, gettext and locale): more than many commands then take. The arguments
stay declared once, as ``add_argument(...)`` calls; a ``Recorder`` takes those
same calls, and ``parse()`` walks argv the way argparse's ``_parse_known_args``
does (Python 3.11's, same option/argument pattern, same positional matching,
same '--' handling) to build the same Namespace. tests/test_cli_parse.py
compares the two on the live Python (it also passed on 3.12.1 and 3.13.0).

Whatever it does not fully understand raises ``Decline``: help, every error
(an unknown or abbreviated option, a missing value, a bad int or choice, a
missing required argument, extra arguments), words argparse may read either
way (``-1``, ``-x y``), and the forms whose reading changed between Python
versions. The caller then gives argv to argparse, which parses it or prints
its usual help or error: this module never has to reproduce those.
"""

from __future__ import annotations

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

REMAINDER = "..."  # argparse.REMAINDER: compared by value, so the declarations can use this one
PARSER = "A..."  # argparse.PARSER: a command word and everything after it
SUPPRESS = "==SUPPRESS=="  # argparse.SUPPRESS as a default: no attribute unless given
_UNSET = object()


class Decline(Exception):
    """argparse has to judge this argv: help, an error, or a form not understood here."""


class Namespace:
    """The parsed attributes; equal to another Namespace with the same ones, like argparse's."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        if not hasattr(other, "__dict__"):
            return NotImplemented
        return vars(self) == vars(other)

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items())) + ")"


class _Action:
    """One recorded add_argument call, reduced to what parsing needs."""

    __slots__ = ("choices", "commands", "default", "dest", "kind", "nargs", "required", "strings", "type")

    def __init__(self, strings: tuple[str, ...], dest: str, kind: str, *, nargs: Any = None,
                 type: Any = None, choices: Any = None, default: Any = None,
                 required: bool = False) -> None:
        self.strings = strings
        self.dest = dest
        self.kind = kind  # "store", "store_true", "append", "help", "version", "declined", "commands"
        self.nargs = nargs
        self.type = type
        self.choices = choices
        self.default = default
        self.required = required
        self.commands: Callable[[str], Recorder | None] | None = None

    @property
    def takes_value(self) -> bool:
        return self.kind in ("store", "append")


class Recorder:
    """Stands in for an ArgumentParser: takes the same add_argument calls and keeps them.

    A declaration it cannot follow (another action, nargs, a keyword it does
    not know) sets ``understood`` to False, and then ``parse()`` declines every
    argv that reaches this parser.
    """

    _ACTIONS = {None: "store", "store": "store", "store_true": "store_true", "append": "append",
                "version": "version"}
    _KEYWORDS = frozenset(("action", "nargs", "type", "choices", "default", "required", "dest",
                           "help", "metavar", "version"))

    def __init__(self, add_help: bool = True) -> None:
        self.actions: list[_Action] = []  # declaration order: argparse checks them in this order
        self.options: dict[str, _Action] = {}  # option string -> its action
        self.positionals: list[_Action] = []
        self.understood = True
        if add_help:
            self._add(_Action(("-h", "--help"), SUPPRESS, "help", default=SUPPRESS))

    def add_argument(self, *strings: str, **kw: Any) -> None:
        kind = self._ACTIONS.get(kw.get("action"), "")
        if not strings or not kind or not self._KEYWORDS.issuperset(kw):
            self.understood = False
            return
        if not strings[0].startswith("-"):
            self._positional(strings, kind, kw)
        else:
            self._option(strings, kind, kw)

    def add_declined(self, *strings: str) -> None:
        """Options argparse has (declared there in full) that are left to it: any use of one
        declines, and their names count when an abbreviation is judged ambiguous."""
        action = _Action(strings, SUPPRESS, "declined", default=SUPPRESS)
        for s in strings:
            self.options[s] = action

    def add_commands(self, dest: str, recorder_for: Callable[[str], Recorder | None]) -> None:
        """A required command word (argparse's add_subparsers); recorder_for(word) is its parser."""
        action = _Action((), dest, "commands", nargs=PARSER, required=True)
        action.commands = recorder_for
        self._add(action)

    def _positional(self, strings: tuple[str, ...], kind: str, kw: dict) -> None:
        nargs = kw.get("nargs")
        if len(strings) != 1 or kind != "store" or nargs not in (None, "+", "*", REMAINDER) \
                or "dest" in kw:
            self.understood = False
            return
        self._add(_Action((), strings[0], kind, nargs=nargs, type=kw.get("type"),
                          choices=kw.get("choices"), default=kw.get("default"), required=True))

    def _option(self, strings: tuple[str, ...], kind: str, kw: dict) -> None:
        # Single-dash strings longer than "-x" and nargs change how argparse splits words.
        if "nargs" in kw or any(len(s) < 2 or s[0] != "-" or (s[1] != "-" and len(s) != 2)
                                for s in strings):
            self.understood = False
            return
        if kind == "version":  # argparse prints it and exits: nothing reaches the Namespace
            self._add(_Action(strings, SUPPRESS, kind, default=SUPPRESS))
            return
        dest = kw.get("dest")
        if dest is None:  # argparse's rule: the first long string, else the first one
            longs = [s for s in strings if s[1] == "-"]
            dest = (longs or strings)[0].lstrip("-").replace("-", "_")
        default = kw.get("default", _UNSET)
        if default is _UNSET:
            default = False if kind == "store_true" else None
        self._add(_Action(strings, dest, kind, type=kw.get("type"), choices=kw.get("choices"),
                          default=default, required=bool(kw.get("required", False))))

    def _add(self, action: _Action) -> None:
        self.actions.append(action)
        if action.strings:
            for s in action.strings:
                self.options[s] = action
        else:
            self.positionals.append(action)


def parse(argv: list[str], top: Recorder) -> Namespace:
    """argv read as argparse would read it with the recorded declarations; Decline otherwise."""
    values: dict[str, Any] = {}
    _parse_into(top, list(argv), values)
    return Namespace(**values)


def _parse_into(rec: Recorder, args: list[str], ns: dict[str, Any]) -> None:
    """argparse's parse_args for one parser: defaults, then options and positionals in turn."""
    if not rec.understood:
        raise Decline("a declaration this parser cannot follow")
    for action in rec.actions:
        if action.dest != SUPPRESS and action.dest not in ns and action.default != SUPPRESS:
            ns[action.dest] = action.default
    walk = _Walk(rec, args, ns)
    walk.run()
    for action in rec.actions:
        if action in walk.seen:
            continue
        if action.required:
            raise Decline(f"{action.dest} is required")
        # argparse converts a string default through type only when it was not given.
        default = action.default
        if isinstance(default, str) and action.type is not None and ns.get(action.dest) is default:
            ns[action.dest] = _convert(action, default)


class _Walk:
    """One pass over one parser's words, in the order and with the rules of argparse 3.11.

    ``kinds`` is argparse's pattern: "A" an argument, "O" an option, "-" the
    first "--" (every word after it is an argument), plus "?" for a word that
    starts with "-" but is no option string this module reads (an unknown or
    abbreviated option, a negative number, words with spaces). argparse may read
    "?" as an argument or an option; wherever that would matter, we decline.
    """

    def __init__(self, rec: Recorder, args: list[str], ns: dict[str, Any]) -> None:
        self.rec = rec
        self.args = args
        self.ns = ns
        self.seen: set[_Action] = set()
        self.positionals = list(rec.positionals)
        self.found: dict[int, tuple[_Action, str, str | None, bool]] = {}
        kinds = []
        for i, word in enumerate(args):
            if word == "--":
                kinds.append("-")
                kinds.extend("A" * (len(args) - i - 1))
                break
            if len(word) < 2 or word[0] != "-":
                kinds.append("A")
                continue
            found = self._option_in(word)
            if found is None:
                kinds.append("?")
            else:
                self.found[i] = found
                kinds.append("O")
        self.kinds = "".join(kinds)

    def _option_in(self, word: str) -> tuple[_Action, str, str | None, bool] | None:
        """(action, option string, explicit value, whether '=' gave it), as argparse reads word."""
        options = self.rec.options
        if word in options:
            return options[word], word, None, False
        head, eq, value = word.partition("=")
        if eq and head in options:
            return options[head], head, value, True
        if word[1] == "-":
            # Abbreviations are argparse's to read, but an ambiguous one is an error
            # wherever it stands, even among a command's own arguments.
            if sum(1 for s in options if s.startswith(head)) > 1:
                raise Decline(f"ambiguous option {word}")
            return None
        if word[:2] in options:  # -xVALUE, or grouped flags -xyz
            return options[word[:2]], word[:2], word[2:], False
        return None

    def run(self) -> None:
        """argparse's loop: positionals before each option, then the option and its value."""
        kinds = self.kinds
        option_at = [i for i, k in enumerate(kinds) if k in "O?"]
        start = 0
        while option_at and start <= option_at[-1]:
            next_option = min(i for i in option_at if i >= start)
            if start != next_option:
                end = self._positionals(start)
                if end > start:
                    start = end
                    continue
            if kinds[start] not in "O?":
                raise Decline("unrecognized arguments")
            start = self._option(start)
        if self._positionals(start) != len(self.args):
            raise Decline("unrecognized arguments")

    def _positionals(self, start: int) -> int:
        counts = _match_partial(self.positionals, self.kinds, start)
        marker = self.kinds.find("-")
        for action, n in zip(self.positionals, counts, strict=False):
            words = self.args[start : start + n]
            # argparse drops the first "--" from these words; newer versions only when it
            # is the separator itself. Same answer when the separator is among them.
            if action.nargs != REMAINDER and "--" in words and not start <= marker < start + n:
                raise Decline("a literal '--' among positional words")
            if n == 0 and action.nargs == "*" and start < len(self.args):
                # Which of these words an empty "*" leaves to the options and positionals
                # after it is where argparse versions differ.
                raise Decline("a '*' positional matched no words before others")
            self._take(action, words)
            start += n
        del self.positionals[: len(counts)]
        return start

    def _option(self, i: int) -> int:
        """The option word at i (with its value, or its grouped flags); the index after them."""
        if self.kinds[i] == "?":
            raise Decline(f"not an option this parser reads: {self.args[i]}")
        action, string, explicit, by_equals = self.found[i]
        taken: list[tuple[_Action, list[str]]] = []  # argparse acts once the whole word is read
        while True:
            if explicit is not None:
                if action.takes_value:
                    if explicit == "--":  # argparse 3.11 drops it and stores []
                        raise Decline(f"'--' as the value of {string}")
                    taken.append((action, [explicit]))
                    stop = i + 1
                    break
                # A flag with text after it: -it is -i -t. "--rm=x", "-i=t" and "-ie=x" are
                # errors or read differently by different Python versions.
                if string[1] == "-" or by_equals or not explicit:
                    raise Decline(f"explicit value for {string}")
                taken.append((action, []))
                string = "-" + explicit[0]
                if string not in self.rec.options:
                    raise Decline(f"unknown flag in {self.args[i]}")
                action = self.rec.options[string]
                explicit = explicit[1:] or None
                if explicit is not None and explicit[0] == "=":
                    raise Decline(f"'=' after a grouped flag: {self.args[i]}")
            elif action.takes_value:
                if self.kinds[i + 1 : i + 2] != "A":
                    raise Decline(f"{string} needs a value")
                taken.append((action, [self.args[i + 1]]))
                stop = i + 2
                break
            else:
                taken.append((action, []))
                stop = i + 1
                break
        for action, values in taken:
            self._take(action, values)
        return stop

    def _take(self, action: _Action, words: list[str]) -> None:
        self.seen.add(action)
        if action.nargs not in (PARSER, REMAINDER) and "--" in words:
            words = list(words)
            words.remove("--")  # argparse drops the first "--" from such values
        if action.kind in ("help", "version", "declined"):
            raise Decline(action.kind)
        if action.kind == "store_true":
            self.ns[action.dest] = True
        elif action.kind == "commands":
            self._command(action, words)
        elif action.nargs is None:
            value = _checked(action, _convert(action, words[0]))
            if action.kind == "append":
                value = [*(self.ns.get(action.dest) or []), value]
            self.ns[action.dest] = value
        elif action.nargs == REMAINDER:
            self.ns[action.dest] = [_convert(action, w) for w in words]
        else:
            self.ns[action.dest] = [_checked(action, _convert(action, w)) for w in words]

    def _command(self, action: _Action, words: list[str]) -> None:
        """argparse's subparsers action: the command's own parse, its attributes copied over."""
        rec = action.commands(words[0]) if action.commands else None
        if rec is None:
            raise Decline(f"invalid command {words[0]!r}")
        self.ns[action.dest] = words[0]
        sub: dict[str, Any] = {}
        _parse_into(rec, words[1:], sub)
        self.ns.update(sub)


def _convert(action: _Action, word: str) -> Any:
    if action.type is None:
        return word
    try:
        return action.type(word)
    except (TypeError, ValueError):
        raise Decline(f"invalid {action.dest} value {word!r}") from None


def _checked(action: _Action, value: Any) -> Any:
    if action.choices is not None and value not in action.choices:
        raise Decline(f"invalid choice {value!r} for {action.dest}")
    return value


def _match_partial(positionals: list[_Action], kinds: str, start: int) -> list[int]:
    """How many words each of the first positionals takes at start, as argparse's regex match
    of as many of them as match (all, else all but the last, ...)."""
    for n in range(len(positionals), 0, -1):
        counts = _match(positionals[:n], kinds, start)
        if counts is not None:
            return counts
    return []


def _match(actions: list[_Action], kinds: str, at: int) -> list[int] | None:
    """re.match of the actions' nargs patterns at kinds[at:]: greedy, then backtracking."""
    if not actions:
        return []
    for n in _lengths(actions[0].nargs, kinds, at):
        rest = _match(actions[1:], kinds, at + n)
        if rest is not None:
            return [n, *rest]
    return None


def _lengths(nargs: Any, kinds: str, at: int) -> range:
    """Word counts one positional's pattern can match at kinds[at:], longest first.

    None is '-*A-*', "+" is '-*A[A-]*', "*" is '-*[A-]*', REMAINDER '[-AO]*', PARSER '-*A[-AO]*'.
    """
    end = len(kinds)
    if nargs == REMAINDER:
        return range(end - at, -1, -1)
    if nargs == "*":
        j = at
        while j < end and kinds[j] in "A-":
            j += 1
        if j < end and kinds[j] == "?":
            raise Decline("a word argparse may read as an argument or an option")
        return range(j - at, -1, -1)
    i = at
    while i < end and kinds[i] == "-":
        i += 1
    if nargs == PARSER and i > at:
        raise Decline("'--' before the command")  # what argparse then does varies by version
    if i == end or kinds[i] == "O":
        return range(0)
    if kinds[i] == "?":
        raise Decline("a word argparse may read as an argument or an option")
    i += 1
    if nargs == PARSER:
        return range(end - at, i - at - 1, -1)
    more = "-" if nargs is None else "A-"
    j = i
    while j < end and kinds[j] in more:
        j += 1
    if nargs == "+" and j < end and kinds[j] == "?":
        raise Decline("a word argparse may read as an argument or an option")
    return range(j - at, i - at - 1, -1)
