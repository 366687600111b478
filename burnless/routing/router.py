"""The router: which tier serves a turn, and every reason why.

Order of decision: ``--tier`` › the first matching rule › the examples (``routing.examples``,
see ``examples``) › the session's pinned executor › ``executor``. Then policy filters the
choice (``safety.policy.allows``): sensitive work goes to local tiers only, even against
``--tier``. When the choice may not receive it, the work moves to a local tier that does
general work: never to a ``kind: check`` tier, which serves only the rules that name it;
with none, it is refused. Deterministic: no model is asked (unless ``routing.embed`` names
one to compare tasks with; it never answers them).

``route(cfg, task)`` takes the task as plain text, already masked by the caller: the CLI, the
Python API and the gateway (``burnless/auto``, on the last user message) all route through it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from burnless.errors import PolicyRefused
from burnless.routing.ladder import climb_from
from burnless.safety.policy import Policy, allows
from burnless.settings import Config, RuleSettings

if TYPE_CHECKING:
    from burnless.routing.examples import Neighbour


@dataclass(frozen=True)
class Decision:
    """Which tier serves a task, and why."""
    tier: str  # effective tier
    natural: str  # before policy
    pinned: str | None  # the session's pinned executor, if any
    policy: str | None  # what policy changed or required, if anything
    reasons: tuple[str, ...] = ()
    cascade: bool = False  # a rule asked for the cascade
    sensitive: bool = False
    ladder: tuple[str, ...] = field(default=())  # the rungs a cascade would climb
    examples: tuple[Neighbour, ...] = ()  # the nearest examples, when they were consulted
    min_similarity: float | None = None  # routing.min_similarity, when they were consulted

    def to_dict(self) -> dict[str, object]:
        return {
            "tier": self.tier,
            "natural": self.natural,
            "pinned": self.pinned,
            "policy": self.policy,
            "reasons": list(self.reasons),
            "cascade": self.cascade,
            "sensitive": self.sensitive,
            "ladder": list(self.ladder),
            "examples": [n.to_dict() for n in self.examples],
        }


@lru_cache(maxsize=256)
def _word(keyword: str) -> re.Pattern[str]:
    # Whole words: "latest" never matches "test", "decode" never matches "code".
    return re.compile(r"(?<![\w])" + re.escape(keyword) + r"(?![\w])", re.IGNORECASE)


_SEPARATORS = "/\\"
# A file extension, or a path that starts at a root, a home or a relative directory.
_PATH_LIKE = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,9}$|^(?:\.{1,2}|~)?[/\\]|^[A-Za-z]:[/\\]")


_RUN = re.compile(r"\S+")  # a blank-free run: a path is one (or ends one)
_TRIM_LEFT, _TRIM_RIGHT = "\"'`([{<", "\"'`)]}>,;:!?."


def keyword_hit(keyword: str, task: str, in_paths: bool = True) -> bool:
    """``keyword`` occurs in ``task`` as a whole word; with ``in_paths`` false, only outside
    file paths: a task that names ``docs/architecture.md`` is about that file, not about
    architecture.

    A match is inside a path when it is a directory between two separators (``src/design/``)
    or when the blank-free run around it has a file extension (``design-notes.txt``) or starts
    at a root. The runs are walked in step with the matches and each is judged once, so the
    time is linear in the task however many matches share one long run."""
    pattern = _word(keyword)
    if in_paths:
        return pattern.search(task) is not None
    runs = _RUN.finditer(task)
    run = next(runs, None)
    judged: dict[tuple[int, int], bool] = {}
    for m in pattern.finditer(task):
        start, end = m.span()
        if start > 0 and end < len(task) and task[start - 1] in _SEPARATORS \
                and task[end] in _SEPARATORS:
            continue
        while run is not None and run.end() <= start:
            run = next(runs, None)
        left = run.start() if run is not None and run.start() <= start else start
        while run is not None and run.end() < end:
            run = next(runs, None)
        right = run.end() if run is not None else end
        path = judged.get((left, right))
        if path is None:
            token = task[left:right].lstrip(_TRIM_LEFT).rstrip(_TRIM_RIGHT)
            path = judged[left, right] = _PATH_LIKE.search(token) is not None
        if not path:
            return True
    return False


def rule_match(rule: RuleSettings, task: str, labels: Sequence[str]) -> list[str] | None:
    """The reasons a rule matches (all its conditions hold), or None."""
    why: list[str] = []
    if rule.keywords:
        hits = [k for k in rule.keywords if keyword_hit(k, task, rule.in_paths)]
        if not hits:
            return None
        why.append("keyword " + ", ".join(repr(h) for h in hits))
    if rule.regex is not None:
        m = re.search(rule.regex, task)
        if m is None:
            return None
        why.append(f"regex {rule.regex!r} matched {m.group(0)[:40]!r}")
    if rule.labels:
        hits = [label for label in rule.labels if label in labels]
        if not hits:
            return None
        why.append("label " + ", ".join(repr(h) for h in hits))
    n = len(task)
    if rule.min_chars is not None:
        if n < rule.min_chars:
            return None
        why.append(f"{n} chars >= {rule.min_chars}")
    if rule.max_chars is not None:
        if n > rule.max_chars:
            return None
        why.append(f"{n} chars <= {rule.max_chars}")
    return why or ["rule has no conditions"]


def first_rule(
    cfg: Config, task: str, labels: Sequence[str]
) -> tuple[RuleSettings, str] | None:
    """The first ``routing.rules`` entry that matches, and the reason (``rule 'x' → tier: ...``).
    ``burnless run`` and the gateway's ``burnless/auto`` both decide with it."""
    for i, rule in enumerate(cfg.routing.rules):
        why = rule_match(rule, task, labels)
        if why is not None:
            return rule, f"{_label(rule, i)} → {rule.tier}: " + "; ".join(why)
    return None


def _label(rule: RuleSettings, i: int) -> str:
    return f"rule {rule.name!r}" if rule.name else f"rule {i + 1}"


def path_only(cfg: Config, task: str, upto: RuleSettings | None) -> list[str]:
    """Why the rules before ``upto`` (all, when None) with ``in_paths: false`` did not match
    on a keyword the task holds only inside file paths: what ``--explain`` should show."""
    said = []
    for i, rule in enumerate(cfg.routing.rules):
        if rule is upto:
            break
        if rule.in_paths or not rule.keywords:
            continue
        inside = [k for k in rule.keywords
                  if keyword_hit(k, task) and not keyword_hit(k, task, in_paths=False)]
        if inside:
            said.append(f"{_label(rule, i)} not applied: {', '.join(map(repr, inside))} only "
                        "inside a file path (in_paths: false)")
    return said


def examples_exist(cfg: Config) -> bool:
    """Are there examples to route by? Cheap (no import, at most one directory read): a
    config without them must not pay for routing by example."""
    if cfg.routing.examples or cfg.routing.learn:
        return True
    try:
        with os.scandir(cfg.state_dir / "examples") as it:
            return any(e.name.endswith(".txt") for e in it)
    except OSError:
        return False


def route(
    cfg: Config,
    task: str,
    *,
    labels: Sequence[str] = (),
    tier: str | None = None,
    pinned: str | None = None,
    sensitive: Sequence[str] = (),
    cascade: bool = False,
) -> Decision:
    """Decide the tier of an execution turn. ``sensitive`` holds the sensitivity reasons."""
    reasons: list[str] = []
    rule_cascade = False
    by_example = by_rule = False
    neighbours: tuple[Neighbour, ...] = ()
    min_similarity: float | None = None
    if pinned is not None and pinned not in cfg.tiers:
        reasons.append(f"pinned executor {pinned!r} is no longer defined; ignored")
        pinned = None
    elif pinned is not None and not cfg.tiers[pinned].general:
        reasons.append(f"pinned executor {pinned!r} is now kind: check; ignored")
        pinned = None
    if tier is not None:
        cfg.tier(tier)
        natural = tier
        reasons.append(f"--tier {tier}")
    else:
        natural = ""
        matched = first_rule(cfg, task, labels)
        reasons += path_only(cfg, task, matched[0] if matched is not None else None)
        if matched is not None:
            rule, why = matched
            natural, rule_cascade, by_rule = rule.tier, rule.cascade, True
            reasons.append(why)
        if not natural and examples_exist(cfg):
            from burnless.routing import examples

            # The examples' text (a file the user wrote) is quoted in the reason, which the
            # ledger keeps, and listed by --explain: masked like everything else shown.
            found = examples.match(cfg, task, sensitive=sensitive, mask=Policy(cfg).mask)
            neighbours, min_similarity = found.neighbours, found.min_similarity
            reasons.append(found.reason)
            if found.tier is not None:
                natural, by_example = found.tier, True
        if not natural and pinned is not None:
            natural = pinned
            reasons.append(f"pinned: the session's executor is {pinned}")
        if not natural:
            natural = cfg.executor or next(iter(cfg.tiers))
            reasons.append(f"default executor {natural}")
    use_cascade = cascade or rule_cascade
    # A cascade climbs from the cheapest rung, or from the rung that --tier, a rule or the
    # examples named (they say the rungs below it were not enough for work like this).
    named = tier is not None or by_example or by_rule
    ladder = climb_from(cfg, natural) if named else (cfg.routing.ladder or (natural,))
    if use_cascade and not named and ladder and natural != ladder[0]:
        natural = ladder[0]
        reasons.append(f"cascade starts at the cheapest rung, {natural}")
    if use_cascade:
        reasons.append("cascade: " + " → ".join(ladder))
    chosen, policy = natural, None
    if sensitive:
        because = "; ".join(sensitive)
        if allows(cfg.tiers[natural], sensitive):
            policy = f"sensitive ({because}): {natural} is local"
        else:
            locals_ = [name for name, t in cfg.tiers.items()
                       if t.general and allows(t, sensitive)]
            if not locals_:
                checks = [name for name, t in cfg.tiers.items()
                          if not t.general and allows(t, sensitive)]
                only = (f" ({', '.join(checks)}: kind check, which serves only the rules that "
                        "name it)" if checks else "")
                raise PolicyRefused(
                    f"sensitive work ({because}) may only go to a tier with local: true, and no "
                    f"local tier that does general work is configured{only}; nothing was sent. "
                    "Add one (a local model, e.g. `ollama run ...` with local: true)"
                )
            local_ladder = [t for t in cfg.routing.ladder if t in locals_]
            chosen = (local_ladder or locals_)[0]
            policy = f"sensitive ({because}): {natural} is not local → {chosen}"
        reasons.append("policy: " + policy)
        ladder = tuple(t for t in ladder if allows(cfg.tiers[t], sensitive)) or (chosen,)
    return Decision(
        tier=chosen,
        natural=natural,
        pinned=pinned,
        policy=policy,
        reasons=tuple(reasons),
        cascade=use_cascade,
        sensitive=bool(sensitive),
        ladder=ladder if use_cascade else (),
        examples=neighbours,
        min_similarity=min_similarity,
    )
