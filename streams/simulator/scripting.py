"""Which behaviour a request gets: a pure function of the document and the attempt.

Three sources, in priority order:

1. a directive line inside the document, ``[[sim: http_500, malformed, valid]]``;
2. the runtime script posted to ``/_sim/script``, keyed by document sha256;
3. the seeded fault mix, hashed from (seed, key, attempt).

Anything left over is ``valid``. In a script, attempt *n* uses item *n* and the
last item repeats, so ``[http_429, valid]`` fails once and then succeeds forever.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from streams.simulator.config import Behaviour, parse_behaviour

__all__ = ["choose_behaviour", "fault_mix_pick", "parse_directive", "scripted"]

_DIRECTIVE = re.compile(r"^[ \t]*\[\[sim:([^\]\n]*)\]\][ \t]*$", re.MULTILINE)


def parse_directive(document: str) -> tuple[Behaviour, ...] | None:
    """The behaviours listed by the document's first ``[[sim: ...]]`` line, if any.

    Raises :class:`~streams.errors.ConfigError` naming an unknown behaviour.
    """
    match = _DIRECTIVE.search(document)
    if match is None:
        return None
    names = [n for n in match.group(1).split(",") if n.strip()]
    if not names:
        return None
    return tuple(parse_behaviour(n) for n in names)


def scripted(script: Sequence[Behaviour], attempt: int) -> Behaviour:
    """Item ``attempt`` (1-based) of the script; the last item repeats."""
    return script[min(attempt, len(script)) - 1]


def fault_mix_pick(mix: Mapping[Behaviour, float], seed: int, key: str, attempt: int) -> Behaviour:
    """A reproducible draw from the mix for (seed, key, attempt); ``valid`` for the rest."""
    digest = hashlib.sha256(f"{seed}\x00{key}\x00{attempt}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2.0**64
    cumulative = 0.0
    # Sorted so the same mix written in another order draws the same behaviours.
    for behaviour in sorted(mix):
        cumulative += mix[behaviour]
        if draw < cumulative:
            return behaviour
    return Behaviour.VALID


def choose_behaviour(
    *,
    document: str,
    key: str,
    attempt: int,
    rules: Mapping[str, Sequence[Behaviour]],
    mix: Mapping[Behaviour, float],
    seed: int,
) -> Behaviour:
    """Directive > runtime script > fault mix > valid."""
    directive = parse_directive(document)
    if directive is not None:
        return scripted(directive, attempt)
    rule = rules.get(key)
    if rule:
        return scripted(rule, attempt)
    return fault_mix_pick(mix, seed, key, attempt)
