"""Routing by example: the vectoriser, the index and the vote (burnless.routing.examples)."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import orjson
import pytest

from burnless.config import load_config_data
from burnless.routing import examples as ex
from burnless.routing.examples import Example, Index, decide, terms, vote
from burnless.routing.router import route

LADDER = ("bronze", "silver", "gold")

EASY = ["Fix the typo in the README", "Rename the variable tmp to path in cleanup.py",
        "Bump the version in pyproject.toml", "Add a docstring to parse_header",
        "Remove the unused import in utils.py", "Update the copyright year in LICENSE"]
HARD = ["Design the architecture of the plugin system and its migration plan",
        "Find the race condition that double-charges customers under load",
        "Investigate the memory leak in the worker that only shows in production",
        "Redesign the permission model for multi-tenant isolation across services"]


def examples() -> list[Example]:
    return ([Example("bronze", t, "example", f"easy:{i}") for i, t in enumerate(EASY)]
            + [Example("gold", t, "example", f"hard:{i}") for i, t in enumerate(HARD)])


def cfg_with(tmp_path: Path, **routing: object):  # type: ignore[no-untyped-def]
    data = {"tiers": {t: {"command": "x"} for t in LADDER},
            "routing": {"ladder": list(LADDER), **routing}}
    return load_config_data(data, tmp_path / ".burnless" / "config.yaml")


# --------------------------------------------------------------------------- vectoriser


def test_terms_are_words_pairs_prefixes_and_identifier_parts() -> None:
    tf, shape = terms("Rename getUserInfo to fetch_user_info in api/user.ts")
    assert tf["w:getuserinfo"] == 1 and tf["w:info"] == 2
    assert tf["w:user"] == 3  # getUserInfo, fetch_user_info, user.ts
    assert tf["w:fetch"] == 1 and tf["b:rename getuserinfo"] == 1
    assert tf["p:renam"] == 1  # "rename", "renaming", "renamed" share it
    assert {"path", "ident"} <= set(shape)
    assert not any(k.startswith("len:") and v == 0 for k, v in shape.items())


def test_numbers_are_not_words_but_shape() -> None:
    tf, shape = terms("Bump the version from 2.3.1 to 2.3.2")
    assert not any(k in tf for k in ("w:2", "w:3", "w:1"))
    assert shape.get("number") == 1.0


def test_cjk_runs_become_character_pairs() -> None:
    tf, _ = terms("把README里的错别字改掉")
    assert tf["w:readme"] == 1
    assert {"c:把", "c:里的", "c:错别", "c:别字", "c:改掉"} <= set(tf)


def test_unicode_forms_and_case_are_one_word() -> None:
    composed = "Corrige la fonctionnalité"
    decomposed = unicodedata.normalize("NFD", composed).upper()
    assert terms(composed)[0] == terms(decomposed)[0]


def test_the_vectoriser_is_the_same_in_every_process() -> None:
    """Feature ids come from CRC-32, not Python's per-process string hash."""
    text = "Fix the typo in README 修复错误"
    code = ("import sys, orjson; from burnless.routing.examples import _hashed; "
            "w, s = _hashed(sys.argv[1]); print(orjson.dumps([sorted(w.items()), "
            "sorted(s.items())]).decode())")
    outs = {subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed},
                           check=True).stdout for seed in ("1", "2")}
    w, s = ex._hashed(text)
    assert outs == {orjson.dumps([sorted(w.items()), sorted(s.items())]).decode() + "\n"}


# --------------------------------------------------------------------------- the index


def test_nearest_examples_first_with_cosine_similarity() -> None:
    index = Index.build(examples())
    found = index.search("fix a typo in the readme file")
    assert found[0][0].text == "Fix the typo in the README"
    sims = [s for _, s in found]
    assert sims == sorted(sims, reverse=True) and 0 < sims[-1] <= sims[0] <= 1
    assert index.search("Fix the typo in the README")[0][1] == pytest.approx(1.0, abs=1e-5)


def test_same_examples_same_answer_in_memory_and_on_disk(tmp_path: Path) -> None:
    mem = Index.build(examples())
    disk = Index.build(examples(), tmp_path / "ix.sqlite", key="k")
    again = Index.open(tmp_path / "ix.sqlite", "k")
    assert again is not None
    for task in ("fix the readme typo", "plan the plugin architecture", "memory leak in prod"):
        a, b, c = mem.search(task), disk.search(task), again.search(task)
        assert a == b == c


def test_open_refuses_another_key_or_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "ix.sqlite"
    Index.build(examples(), path, key="one")
    assert Index.open(path, "two") is None
    path.write_bytes(b"this is not a database" * 100)
    assert Index.open(path, "one") is None
    assert Index.open(tmp_path / "missing.sqlite", "one") is None


def test_no_shared_word_no_neighbour() -> None:
    index = Index.build(examples())
    assert index.search("zzz qqq") == []
    assert index.search("") == []


def test_ties_go_to_the_example_listed_first() -> None:
    twins = [Example("gold", "refactor the billing module", "example", "first"),
             Example("bronze", "refactor the billing module", "example", "second")]
    found = Index.build(twins).search("refactor the billing module")
    assert [e.source for e, _ in found] == ["first", "second"]
    assert found[0][1] == found[1][1]
    m = vote(found, min_similarity=0.1, ladder=LADDER)
    assert m.tier is None and "a tie" in m.reason


def test_empty_example_set() -> None:
    index = Index.build([])
    assert len(index) == 0 and index.search("anything") == []
    m = decide([index], "anything", min_similarity=0.1, ladder=LADDER)
    assert m.tier is None and "none yet" in m.reason


def test_non_english_tasks_find_their_own_language() -> None:
    index = Index.build([
        Example("bronze", "Corrige la faute d'orthographe dans le README", "example", "fr"),
        Example("gold", "Conçois l'architecture d'un système de files d'attente distribué",
                "example", "fr2"),
        Example("bronze", "把 README 里的错别字改掉", "example", "zh"),
        Example("gold", "设计一个支持多租户隔离的权限系统架构", "example", "zh2"),
        Example("bronze", "README の誤字を直してください", "example", "ja"),
    ])
    assert index.search("corrige une faute dans le fichier README")[0][0].source == "fr"
    assert index.search("设计权限系统的架构")[0][0].source == "zh2"
    assert index.search("ドキュメントの誤字を直して")[0][0].source == "ja"


def test_a_large_set_matches_the_exact_search_where_the_budget_prunes() -> None:
    """Thousands of examples: with a tiny postings budget the common words only re-rank, and
    the nearest examples are still the exact search's."""
    import random

    rng = random.Random(3)
    filler = ["the", "a", "in", "module", "service", "code", "file", "fix", "add", "update"]
    big = [Example("bronze" if i % 2 else "gold",
                   " ".join(rng.choice(filler) for _ in range(8)) + f" item{i} part{i % 97}",
                   "example", f"n{i}") for i in range(3000)]
    index = Index.build(big)
    task = "update the module item1234 part70"
    exact = index.search(task, budget=10**9, candidates=10**9)
    pruned = index.search(task, budget=200, candidates=50)
    assert exact[0][0].source == "n1234" and pruned[0][0].source == "n1234"
    assert pruned[0][1] == exact[0][1]
    assert [e.source for e, _ in pruned[:3]] == [e.source for e, _ in exact[:3]]


@pytest.mark.slow
def test_a_hundred_thousand_examples(tmp_path: Path) -> None:
    import time

    big = [Example(("bronze", "silver", "gold")[i % 3], f"task number {i} in module m{i % 500} "
                   f"touching file f{i % 1000}.py", "example", str(i)) for i in range(100_000)]
    index = Index.build(big, tmp_path / "big.sqlite", key="k")
    t0 = time.process_time()
    found = index.search("task in module m42 touching file f42.py")
    assert time.process_time() - t0 < 1.0
    assert found and all("m42" in e.text for e, _ in found[:5])


# --------------------------------------------------------------------------- the vote


def n(tier: str, sim: float, kind: str = "example") -> tuple[Example, float]:
    return Example(tier, f"{tier} {sim}", kind, f"{tier}-{sim}"), sim  # type: ignore[arg-type]


def test_a_strict_majority_of_squared_similarity_decides() -> None:
    m = vote([n("bronze", 0.6), n("gold", 0.5), n("bronze", 0.3)], min_similarity=0.2,
             ladder=LADDER)
    assert m.tier == "bronze"  # 0.36 + 0.09 = 0.45 of 0.70
    assert m.reason.startswith("examples → bronze: 2 of the 3 examples")
    assert dict(m.shares)["bronze"] == pytest.approx(0.45 / 0.70)
    m = vote([n("bronze", 0.5), n("gold", 0.5)], min_similarity=0.2, ladder=LADDER)
    assert m.tier is None and "a tie" in m.reason
    m = vote([n("bronze", 0.5), n("gold", 0.4), n("silver", 0.4)], min_similarity=0.2,
             ladder=LADDER)
    assert m.tier is None and "no majority" in m.reason


def test_min_similarity_is_inclusive_and_below_it_nothing_counts() -> None:
    m = vote([n("gold", 0.25), n("bronze", 0.2), n("bronze", 0.19)], min_similarity=0.25,
             ladder=LADDER)
    assert m.tier == "gold" and [x.counted for x in m.neighbours] == [True, False, False]
    m = vote([n("gold", 0.19)], min_similarity=0.25, ladder=LADDER)
    assert m.tier is None and "below min_similarity 0.25" in m.reason
    assert len(m.neighbours) == 1  # still shown, for --explain


def test_a_counter_example_votes_for_the_next_rung_up() -> None:
    m = vote([n("bronze", 0.8, "counter")], min_similarity=0.1, ladder=LADDER)
    assert m.tier == "silver" and m.neighbours[0].vote == "silver"
    m = vote([n("gold", 0.8, "counter")], min_similarity=0.1, ladder=LADDER)
    assert m.tier == "gold"  # the top rung failed: nothing below it will do better
    m = vote([n("local", 0.8, "counter")], min_similarity=0.1, ladder=LADDER)
    assert m.tier is None and m.neighbours[0].vote is None


def test_decide_merges_indexes_by_similarity() -> None:
    given = Index.build([Example("bronze", "fix the typo in the readme", "example", "g")])
    learned = Index.build([Example("gold", "fix the typo in the readme please now", "counter",
                                   "l")])
    m = decide([given, learned], "fix the typo in the readme", min_similarity=0.1,
               ladder=LADDER, k=1)
    assert [x.example.source for x in m.neighbours] == ["g"] and m.tier == "bronze"


# --------------------------------------------------------------------------- in the router


def test_route_uses_examples_after_rules_and_before_the_pin(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, examples={"bronze": EASY, "gold": HARD},
                   rules=[{"keywords": ["urgent"], "tier": "silver"}])
    d = route(cfg, "fix a typo in the README", pinned="gold")
    assert d.tier == "bronze" and d.reasons[0].startswith("examples → bronze")
    assert d.examples and d.min_similarity == cfg.routing.min_similarity
    d = route(cfg, "urgent: fix a typo in the README")
    assert d.tier == "silver" and not d.examples  # a rule decided: examples not consulted
    d = route(cfg, "fix a typo in the README", tier="gold")
    assert d.tier == "gold" and d.min_similarity is None
    d = route(cfg, "zzz qqq", pinned="gold")
    assert d.tier == "gold"
    assert d.reasons[0] == "examples: no example shares a word with the task"
    assert d.reasons[1].startswith("pinned")


def test_route_with_examples_keeps_the_policy_filter(tmp_path: Path) -> None:
    data = {"tiers": {"bronze": {"command": "x"}, "gold": {"command": "x"},
                      "local": {"command": "x", "local": True}},
            "routing": {"ladder": ["local", "bronze", "gold"],
                        "examples": {"gold": HARD, "bronze": EASY}}}
    cfg = load_config_data(data, tmp_path / ".burnless" / "config.yaml")
    d = route(cfg, "investigate the memory leak in the worker", sensitive=("label sensitive",))
    assert d.natural == "gold" and d.tier == "local"
    assert d.policy is not None and "not local" in d.policy


def test_a_cascade_climbs_from_the_rung_the_examples_named(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, examples={"gold": HARD, "silver": ["Add pagination to the API"]})
    d = route(cfg, "find the race condition that double-charges customers", cascade=True)
    assert d.natural == "gold" and d.ladder == ("gold",)
    d = route(cfg, "zzz qqq", cascade=True)
    assert d.natural == "bronze" and d.ladder == LADDER


def test_example_files_are_read_and_an_unknown_tier_file_is_an_error(tmp_path: Path) -> None:
    from burnless.errors import ConfigError

    cfg = cfg_with(tmp_path)
    folder = tmp_path / ".burnless" / "examples"
    folder.mkdir(parents=True)
    (folder / "bronze.txt").write_text("# easy work\n\nFix the typo in the README\n"
                                       "Rename a variable\n", encoding="utf-8")
    (folder / "notes.md").write_text("not examples")
    d = route(cfg, "fix the typo in the README")
    assert d.tier == "bronze" and "(examples/bronze.txt:3)" in d.reasons[0]
    (folder / "platinum.txt").write_text("anything\n")
    with pytest.raises(ConfigError, match=r"platinum\.txt: names tier 'platinum'"):
        route(cfg, "fix the typo in the README")
    (folder / "platinum.txt").unlink()
    (folder / "gold.txt").write_bytes(b"ok\n\xff\xfe broken\n")
    with pytest.raises(ConfigError, match=r"gold\.txt:2: not UTF-8"):
        route(cfg, "fix the typo in the README")
    (folder / "gold.txt").unlink()
    os.mkfifo(folder / "gold.txt")  # planted: must not hang the route
    with pytest.raises(ConfigError, match=r"gold\.txt: not a regular file"):
        route(cfg, "fix the typo in the README")


def test_the_cached_index_follows_edits_of_the_examples(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path)
    folder = tmp_path / ".burnless" / "examples"
    folder.mkdir(parents=True)
    (folder / "bronze.txt").write_text("Fix the typo in the README\n")
    assert route(cfg, "fix the typo in the README").tier == "bronze"
    assert (tmp_path / ".burnless" / "cache" / "examples-given.sqlite").is_file()
    (folder / "bronze.txt").unlink()
    (folder / "gold.txt").write_text("Fix the typo in the README\n")  # same second: by content
    assert route(cfg, "fix the typo in the README").tier == "gold"


def test_a_workspace_where_the_cache_cannot_be_written_routes_in_memory(
        tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, examples={"bronze": EASY})
    state = tmp_path / ".burnless"
    state.mkdir(parents=True)
    (state / "cache").write_text("a file where the cache directory would be")
    assert route(cfg, "fix the typo in the README").tier == "bronze"
    assert route(cfg, "fix the typo in the README").tier == "bronze"


def test_a_secret_in_an_example_is_masked_in_the_reason_and_the_neighbours(
        tmp_path: Path) -> None:
    secret = "sk-ant-api03-" + "Z" * 90
    cfg = cfg_with(tmp_path, examples={"gold": [f"rotate the key {secret} in the vault"]})
    d = route(cfg, "rotate the key in the vault")
    assert d.tier == "gold"
    shown = orjson.dumps(d.to_dict()).decode()
    assert secret not in shown and "[REDACTED:" in d.reasons[0]
    assert "[REDACTED:" in d.examples[0].example.text


def test_whatever_is_planted_where_the_index_goes_is_rebuilt_over(tmp_path: Path) -> None:
    cfg = cfg_with(tmp_path, examples={"bronze": EASY})
    cache = tmp_path / ".burnless" / "cache"
    cache.mkdir(parents=True)
    os.mkfifo(cache / "examples-given.sqlite")  # SQLite would block opening it
    assert route(cfg, "fix the typo in the README").tier == "bronze"
    assert (cache / "examples-given.sqlite").is_file()
    (cache / "examples-given.sqlite").unlink()
    (tmp_path / "elsewhere.sqlite").write_text("not ours")
    (cache / "examples-given.sqlite").symlink_to(tmp_path / "elsewhere.sqlite")
    assert route(cfg, "fix the typo in the README").tier == "bronze"
    assert (tmp_path / "elsewhere.sqlite").read_text() == "not ours"
