"""YAML from an untrusted ConfigMap, parsed within bounds of size, depth and aliases.

A guest-mode ``consumer.yaml`` is written by anyone who can edit ConfigMaps in
the namespace, and it is parsed by the operator that holds the Lease. Plain
``yaml.safe_load`` has no limits: 1,100 nested ``[`` take 1.4 s in the pure
loader before it dies of ``RecursionError``, and an "alias bomb" (a few lines
of anchors that each reference the previous one nine times) loads in
milliseconds as shared references, then expands to hundreds of millions of
values in whatever walks it (validation, rendering, JSON encoding). PyYAML
has no option for either (libyaml stops at 1,000 levels, far past where the
Python side fails), and ruamel.yaml neither; so we bound the input ourselves,
in two steps:

1. **Size**: at most ``MAX_BYTES`` (a real ConsumerSpec is a few KB).
2. **Structure**, on libyaml's event stream, before anything is built: at
   most ``MAX_DEPTH`` levels of nesting, and at most ``MAX_NODES`` values
   *after alias expansion* (each alias counts as the size of the node it
   names, tracked per anchor). 50,000 is more than a ``MAX_BYTES`` document
   can hold without aliases, so aliases stay usable for what they are for
   (repeating a block) but cannot make a spec bigger than one could write out.
   A mapping key given twice is refused there too, with its path: PyYAML
   would keep the last value silently.

Only then is the document constructed (libyaml's ``CSafeLoader`` when PyYAML
has it, else the pure-Python ``SafeLoader``, several times slower). Measured
with libyaml on a loaded 2-core machine: the example ``consumer.yaml`` 1.7 ms;
1,100 nested lists refused in 4 ms, a 9**9 alias bomb in 0.2 ms; the worst
case within the bounds, a 64 KB flow list of 32,000 integers, 0.16 to 0.27 s
(the event pass is 30 to 50 ms of it). Hence the caller runs it off the event
loop (``controllers.reconciling``), and an invalid spec is parsed once per
change of its ConfigMap, never retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import yaml

MAX_BYTES: Final = 64 * 1024
MAX_DEPTH: Final = 64
MAX_NODES: Final = 50_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Rejected(Exception):
    """The text is not YAML, or exceeds a bound; the message says which (and where).

    ``path`` is the dotted path of the offending key when there is one
    (``autoscaler.prometheus.ratePerCore``), else empty.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def _where(mark: Any) -> str:
    return f" (line {mark.line + 1})" if mark is not None else ""


@dataclass(slots=True)
class _Frame:
    """One open collection of the event stream."""

    anchor: str | None
    mapping: bool
    # Values after alias expansion, this collection included.
    size: int = 1
    # Mappings: whether the next node is a key, the keys seen, the current key.
    # Sequences: ``key`` is the index of the current item.
    expecting_key: bool = True
    seen: set[str] = field(default_factory=set)
    key: str = ""
    items: int = 0


def _path(frames: list[_Frame]) -> str:
    return ".".join(f.key for f in frames)


def _enter_node(frames: list[_Frame], event: Any) -> None:
    """Note a node starting in the innermost collection; refuse a key given twice.

    YAML says keys are unique, yet PyYAML keeps the last of duplicates silently:
    ``numPartitions: 6`` then ``numPartitions: 8`` would read as 8. Keys are
    compared as written (``a`` and ``"a"`` are one key once the document is JSON).
    The merge key ``<<`` may repeat.
    """
    if not frames:
        return
    parent = frames[-1]
    if not parent.mapping:
        parent.key = str(parent.items)
        parent.items += 1
        return
    if not parent.expecting_key:
        parent.expecting_key = True
        return
    parent.expecting_key = False
    if not isinstance(event, yaml.ScalarEvent):
        parent.key = "?"
        return
    key = str(event.value)
    parent.key = key
    if key in parent.seen and key != "<<":
        raise Rejected(
            f"the key {key!r} is given twice{_where(event.start_mark)}", path=_path(frames)
        )
    parent.seen.add(key)


def check_structure(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Walk the event stream: raise :class:`Rejected` past ``max_depth`` levels or
    ``max_nodes`` values (aliases expanded), or at a mapping key given twice,
    before any of it is constructed."""
    frames: list[_Frame] = []
    sizes: dict[str, int] = {}
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.NodeEvent):
            _enter_node(frames, event)
        if isinstance(event, yaml.CollectionStartEvent):
            if len(frames) >= max_depth:
                raise Rejected(f"nests more than {max_depth} levels{_where(event.start_mark)}")
            frames.append(
                _Frame(anchor=event.anchor, mapping=isinstance(event, yaml.MappingStartEvent))
            )
            added = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = frames.pop()
            if frame.anchor is not None:
                sizes[frame.anchor] = frame.size
            if frames:
                frames[-1].size += frame.size
            continue
        elif isinstance(event, yaml.AliasEvent):
            # An unknown anchor is the constructor's error to report.
            added = sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            added = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        else:
            continue
        if frames and not isinstance(event, yaml.CollectionStartEvent):
            frames[-1].size += added
        total += added
        if total > max_nodes:
            raise Rejected(
                f"expands to more than {max_nodes} values (each alias counts as what it"
                f" repeats){_where(event.start_mark)}"
            )


def load(
    text: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> object:
    """The one document of ``text``, or :class:`Rejected` naming the problem."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise Rejected(f"is {size} bytes, more than the limit of {max_bytes}")
    try:
        check_structure(text, max_depth=max_depth, max_nodes=max_nodes)
        # A safe loader: plain data only, no Python objects.
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        where = _where(getattr(e, "problem_mark", None))
        problem = getattr(e, "problem", None)
        raise Rejected(f"not valid YAML{where}" + (f": {problem}" if problem else "")) from None
    except (ValueError, OverflowError) as e:
        # Scalars the resolver accepts but Python cannot build (an integer of more
        # than 4,300 digits, a timestamp of month 13).
        raise Rejected(f"not valid YAML: {e}") from None
