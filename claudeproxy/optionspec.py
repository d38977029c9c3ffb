"""
What makes a L{claudeproxy.config.Config} field a daemon option: its help,
how a value given on the command line is read, how the docs show it.  The
twistd options (L{claudeproxy._tap.Options}, and so C{claudeproxy serve
--help}) and the table in docs/options.md are made from these.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import attrs

#: C{Opt.unset} when the option's default is the field's
SAME = object()


@attrs.frozen
class Opt:
    """
    A field's option, as written in C{Config} (see L{option}).
    """

    #: the text of C{--help}
    help: str
    #: the docs' text (markdown), when it says more than C{help}
    doc: str = ""
    #: reads a given value (raises ValueError); None: the value as given
    parse: Optional[Callable[[str], Any]] = None
    #: the words the option takes, and the field value each stands for
    choices: tuple[tuple[str, Any], ...] = ()
    #: given any number of times; the field holds every value, in order
    repeat: bool = False
    #: the option's name, when not the field's (with hyphens)
    name: str = ""
    #: the options' key, when not the name
    key: str = ""
    #: what the option takes, as the docs show it (e.g. NAME=TARGET)
    metavar: str = ""
    #: the default as the docs show it, when not the field's default
    shown: str = ""
    #: the option's default, when not the field's (C{None}: decided at start)
    unset: Any = SAME


def option(default: Any, **opt: Any) -> Any:
    """
    A C{Config} field that is a daemon option; C{opt} are L{Opt}'s.
    """
    return attrs.field(default=default, metadata={"option": Opt(**opt)})


@attrs.frozen
class Option:
    """
    One daemon option: a C{Config} field and its L{Opt}, resolved.
    """

    field: str
    name: str
    key: str
    #: "flag" (no value), "param" (one value) or "repeat" (one value, any
    #: number of times)
    kind: str
    #: the options' value when not given
    default: Any
    opt: Opt
    #: the field's default
    field_default: Any

    def read(self, value: str) -> Any:
        """
        A value given on the command line, as the options keep it; raises
        ValueError.
        """
        words = dict(self.opt.choices)
        if words:
            if value not in words:
                raise ValueError("must be %s" % (" or ".join(words),))
            return value
        return self.opt.parse(value) if self.opt.parse is not None else value

    def to_config(self, value: Any) -> Any:
        """
        The options' value as the field holds it.
        """
        if self.kind == "flag":
            return bool(value)
        if self.kind == "repeat":
            return tuple(value)
        words = dict(self.opt.choices)
        return words[value] if words else value

    def shown_default(self) -> str:
        """
        The default as the docs' table shows it.
        """
        if self.opt.shown:
            return self.opt.shown
        if self.kind == "flag":
            return "on" if self.field_default else "off"
        if self.default is None or self.default == []:
            return "none"
        return "`%s`" % (self.default,)

    def heading(self) -> str:
        return "`--%s%s`" % (self.name, " " + self.opt.metavar if self.opt.metavar else "")


def options_of(config: type) -> list[Option]:
    """
    The options of C{config}'s fields, in field order.
    """
    found = []
    for f in attrs.fields(config):
        opt = f.metadata.get("option")
        if opt is None:
            continue
        name = opt.name or f.name.replace("_", "-")
        default: Any
        if opt.repeat:
            kind, default = "repeat", []
        elif f.type in (bool, "bool") and not opt.choices:
            kind, default = "flag", None
        else:
            kind = "param"
            if opt.unset is not SAME:
                default = opt.unset
            elif opt.choices:
                default = next(word for word, value in opt.choices if value == f.default)
            else:
                default = f.default
        found.append(Option(f.name, name, opt.key or name, kind, default, opt, f.default))
    return found


def options_table(config: type) -> str:
    """
    The docs' table of C{config}'s options (markdown).
    """
    lines = ["| Option | Default | Meaning |", "|---|---|---|"]
    for o in options_of(config):
        meaning = o.opt.doc or o.opt.help
        lines.append("| %s | %s | %s |" % (o.heading(), o.shown_default(), meaning.replace("|", "\\|")))
    return "\n".join(lines) + "\n"


# -- readers of given values ---------------------------------------------------------


def positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise ValueError("must be at least 1")
    return n


def non_negative_int(value: str) -> int:
    n = int(value)
    if n < 0:
        raise ValueError("must be 0 or more")
    return n


def positive_float(value: str) -> float:
    n = float(value)
    if not n > 0:
        raise ValueError("must be more than 0")
    return n


def non_negative_float(value: str) -> float:
    n = float(value)
    if not n >= 0:
        raise ValueError("must be 0 or more")
    return n


def percentage(value: str) -> float:
    n = float(value)
    if not 0 <= n < 100:
        raise ValueError("must be a percentage from 0 to less than 100")
    return n


def plan(value: str) -> str:
    from .store.pricing import PLANS

    if value not in PLANS:
        raise ValueError("not a plan: %r (one of %s)" % (value, ", ".join(PLANS)))
    return value


def api_key(value: str) -> tuple[str, str]:
    from .web.auth import parse_key

    try:
        return parse_key(value)
    except ValueError:
        raise ValueError("must not be empty")


def model_alias(value: str) -> tuple[str, str]:
    name, sep, target = value.partition("=")
    if not sep or not name.strip() or not target.strip():
        raise ValueError("takes NAME=TARGET, got %r" % (value,))
    return name.strip(), target.strip()


def origin(value: str) -> str:
    if "://" not in value:
        raise ValueError("takes an origin like http://localhost:8080, got %r" % (value,))
    return value


def host(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()
