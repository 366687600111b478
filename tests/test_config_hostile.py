"""Hostile configuration and command-line input: a clear error (file, line, key, what is
expected), exit 2, nothing lost, never a traceback or a hang."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from burnless.config import load_config
from burnless.errors import ConfigError
from tests.conftest import Workspace, fake, quoted

OK = "tiers:\n  silver: {command: x}\n"


def load_error(ws: Workspace, text: str | bytes) -> str:
    path = ws.state / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=ws.root)
    return str(exc.value)


def age(path: Path, seconds: float = 60) -> None:
    """Backdate ``path`` so the parsed-config cache may hold it."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def clean(p: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in p.stderr + p.stdout, p.stderr


# --------------------------------------------------------------------------- the YAML


@pytest.mark.parametrize("text", ["", "# only\n# comments\n", "---\n...\n"])
def test_empty_documents_ask_for_tiers(ws: Workspace, text: str) -> None:
    assert "config.yaml: (top level): the 'tiers' section is required" in load_error(ws, text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("42\n", "config.yaml:1: the config must be a mapping of keys, not a number"),
        ("just words\n", "config.yaml:1: the config must be a mapping of keys, not a string"),
        ("- a\n- b\n", "config.yaml:1: the config must be a mapping of keys, not a list"),
        ("tiers:\n\tsilver: {command: x}\n",
         "config.yaml:2: invalid YAML: found character '\\t' that cannot start any token"),
        ("tiers:\n  silver: {command: x}\n  silver: {command: y}\n",
         "config.yaml:3: tiers.silver: duplicate key"),
        ("tiers:\n  silver: {command: x, command: y}\n",
         "config.yaml:2: tiers.silver.command: duplicate key"),
        ("tiers:\n  silver: {command: x}\nextends: ~/base.yaml\n",
         "config.yaml:3: extends: unknown key"),
        ("tiers:\n  silver: {command: x}\nrouting: {rulez: []}\n",
         "config.yaml:3: routing.rulez: unknown key; did you mean 'rules'?"),
        ("tiers:\n  silver: {command: x, price: {inptu: 1}}\n",
         "config.yaml:2: tiers.silver.price.inptu: unknown key; did you mean 'input'?"),
        ("tiers:\n  silver: {command: x}\nrouting:\n  rules:\n    - {tier: silver, keyword: [a]}\n",
         "config.yaml:5: routing.rules.0.keyword: unknown key; did you mean 'keywords'?"),
        ("tiers:\n  silver: {command: !!python/object:os.system x}\n",
         "config.yaml:2: invalid YAML: could not determine a constructor"),
    ],
)
def test_bad_documents_say_where(ws: Workspace, text: str, message: str) -> None:
    assert message in load_error(ws, text)


def test_bom_and_crlf_are_fine_and_crlf_lines_still_count(ws: Workspace) -> None:
    ws.config("\ufefftiers:\r\n  silver: {command: x}\r\n")
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    assert "config.yaml:3: tiers.gold.comand: unknown key; did you mean 'command'?" in load_error(
        ws, "tiers:\r\n  silver: {command: x}\r\n  gold: {comand: x}\r\n")


def test_non_utf8_bytes_name_the_line(ws: Workspace) -> None:
    msg = load_error(ws, b"tiers:\n  silver: {command: 'x \xff'}\n")
    assert "config.yaml:2: not UTF-8 text (byte 0xff)" in msg
    assert "config.yaml:1: not UTF-8" in load_error(ws, b"\xff\xfet\x00i\x00")  # UTF-16


def test_anchors_aliases_and_merge_keys_override(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: &s {command: x, timeout: 5}\n"
              "  gold: {<<: *s, timeout: 10}\n  bronze: *s\n")
    cfg = load_config(cwd=ws.root)
    assert cfg.tiers["gold"].timeout == 10 and cfg.tiers["gold"].command == "x"
    assert cfg.tiers["bronze"].timeout == 5
    # Lines still point at the key that is wrong.
    assert "config.yaml:3: tiers.gold.timout: unknown key" in load_error(
        ws, "tiers:\n  silver: &s {command: x}\n  gold: {<<: *s, timout: 10}\n")


def test_alias_bomb_is_refused_fast(ws: Workspace) -> None:
    lines = ["tiers:\n  silver: {command: x}\npolicy:\n  sensitive_patterns:\n",
             '    - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    for i in range(1, 10):
        lines.append(f"    - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n")
    started = time.monotonic()
    msg = load_error(ws, "".join(lines))
    assert time.monotonic() - started < 2
    assert "config.yaml: invalid YAML: aliases expand the document to" in msg


def test_merge_key_bomb_is_refused_fast(ws: Workspace) -> None:
    text = "tiers:\n  silver: {command: x}\nx0: &m0 {a: 1, b: 2, c: 3, d: 4}\n"
    for i in range(1, 12):
        text += f"x{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 6) + "]}\n"
    started = time.monotonic()
    assert "aliases expand the document" in load_error(ws, text)
    assert time.monotonic() - started < 2


def test_recursive_alias_and_deep_nesting_are_errors(ws: Workspace) -> None:
    assert "config.yaml:3: invalid YAML: an alias refers to a node that contains it" in (
        load_error(ws, OK + "a: &a [*a]\n"))
    assert "invalid YAML: nested too deeply" in load_error(
        ws, OK + "audit: {verify: " + "[" * 1200 + "]" * 1200 + "}\n")


def test_cli_never_tracebacks_on_broken_yaml(ws: Workspace) -> None:
    ws.config(OK + "x: " + "{a: " * 1200 + "}" * 1200 + "\n")
    p = ws.run("route", "x")
    clean(p)
    assert p.returncode == 2 and "nested too deeply" in p.stderr


def test_a_large_plain_file_loads(ws: Workspace) -> None:
    ws.config(OK + "# padding\n" * 100_000)  # 1 MB of comments
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers:\n  silver: {command: x, timeout: '30'}\n",
         "config.yaml:2: tiers.silver.timeout: must be a number, not '30'"),
        ("tiers:\n  silver: {command: x, timeout: -1}\n", "must be positive"),
        ("tiers:\n  silver: {command: x, timeout: .nan}\n",
         "config.yaml:2: tiers.silver.timeout: must be a finite number, not nan"),
        ("tiers:\n  silver: {command: x, timeout: .inf}\n", "must be a finite number, not inf"),
        ("tiers:\n  silver: {command: x, price: {input: .nan}}\n",
         "tiers.silver.price.input: must be a finite number"),
        ("tiers:\n  silver: {command: x, price: -1}\n", "tiers.silver.price: prices must be >= 0"),
        ("tiers:\n  silver: {command: x, max_output_tokens: 1.5}\n",
         "tiers.silver.max_output_tokens: must be a whole number, not 1.5"),
        ("tiers:\n  silver: {command: x, local: 'yes'}\n",
         "tiers.silver.local: must be true or false, not 'yes'"),
        ("tiers:\n  silver: {command: yes}\n",
         "tiers.silver.command: must be a string, not a boolean (True); quote it in YAML"),
        ("tiers:\n  silver: {command: x, format: off}\n",
         "tiers.silver.format: must be a string, not a boolean (False); quote it"),
        ("tiers:\n  silver: {command: x, model: 4.10}\n",
         "tiers.silver.model: must be a string, not a number (4.1); quote it in YAML"),
        ("tiers:\n  silver: {command: x, env: {VERSION: 1.10}}\n",
         "tiers.silver.env.VERSION: must be a string, not a number (quote it in YAML"),
        ("tiers:\n  silver: {command: x, env: {DEBUG: on}}\n",
         "tiers.silver.env.DEBUG: must be a string, not a boolean"),
        ("tiers:\n  on: {command: x}\n", "tiers.True: a tier name must be text; quote it"),
        ("tiers:\n  silver: {command: x, name: gold}\n",
         "config.yaml:2: tiers.silver.name: unknown key (a tier's name is its key"),
        ("tiers:\n  silver: {command: x, env: {'A=B': x}}\n",
         "tiers.silver.env.A=B: 'A=B' is not an environment variable name"),
        ("tiers:\n  silver: {command: x, env: {'': x}}\n",
         "'' is not an environment variable name"),
        ('tiers:\n  silver: {command: x, env: {A: "x\\0y"}}\n',
         "tiers.silver.env.A: contains a NUL byte"),
        ("tiers:\n  silver: {command: x, pass_env: ['A=B']}\n",
         "tiers.silver.pass_env.0: 'A=B' is not an environment variable name"),
        ('tiers:\n  silver: {command: "x a\\0b"}\n', "tiers.silver.command: contains a NUL byte"),
        ("tiers:\n  silver: {command: ''}\n", "config.yaml:2: tiers.silver.command: is empty"),
        ("tiers:\n  silver: {command: '   '}\n", "tiers.silver.command: is empty"),
        ("tiers:\n  silver: {command: null}\n", "tiers.silver: give exactly one of 'command'"),
        ("tiers:\n  silver: {command: 'claude -p \"unclosed'}\n",
         "tiers.silver.command: cannot split into arguments: No closing quotation"),
        ("tiers:\n  silver: {command: 'x {foo}'}\n",
         "tiers.silver.command: unknown placeholder {foo}; known: {prefix_file}, {prompt}"),
        ("tiers:\n  silver: {command: 'x --system {prefix-file}'}\n",
         "unknown placeholder {prefix-file}; did you mean 'prefix_file'?"),
        ("tiers:\n  silver: {command: 'x {promt}', input: arg}\n",
         "unknown placeholder {promt}; did you mean 'prompt'?"),
        ("tiers:\n  silver: {command: x}\naudit: {verify: ['pytest -q', '']}\n",
         "config.yaml:3: audit.verify.1: is empty"),
        ("tiers:\n  silver: {command: x}\naudit: {verify: \"pytest '\"}\n",
         "audit.verify.0: cannot split into arguments: No closing quotation"),
        ("tiers:\n  silver: {command: x}\nversion: 2\n",
         "config.yaml:3: version: unsupported config version 2"),
        ("tiers:\n  silver: {command: x}\nbudget: {max_cost_per_task: -1}\n",
         "config.yaml:3: budget.max_cost_per_task: must be >= 0, not -1"),
        ("tiers:\n  silver: {command: x}\nbudget: {max_calls_per_session: -3}\n",
         "budget.max_calls_per_session: must be >= 0, not -3"),
        ("tiers:\n  silver: {command: x}\nbudget: {max_cost_per_day: .nan}\n",
         "budget.max_cost_per_day: must be a finite number"),
        ("tiers:\n  silver: {command: x}\nbudget: {max_cost_per_day: '5'}\n",
         "budget.max_cost_per_day: must be a number, not '5'"),
        ("tiers:\n  silver: {command: x}\nsession: {lock_timeout: -1}\n",
         "session.lock_timeout: must be >= 0"),
        ("tiers:\n  silver: {command: x}\nrouting: {breaker: {failures: -1}}\n",
         "routing.breaker.failures: must be >= 0"),
        ("tiers:\n  silver: {command: x}\nrouting: {breaker: {cooldown: .inf}}\n",
         "routing.breaker.cooldown: must be a finite number"),
        ("tiers:\n  silver: {command: x}\ncache: {ttl: -1}\n", "cache.ttl: must be >= 0"),
        ("tiers:\n  silver: {command: x}\ncache: {session_state: transcript}\n",
         "cache.session_state: must be 'capsules'"),
        ("tiers:\n  silver: {command: x}\ncache: {responses: on, prefix_cache: 1}\n",
         "cache.prefix_cache: must be true or false, not 1"),
        ("tiers:\n  silver: {command: x}\npolicy: {max_depth: -1}\n",
         "policy.max_depth: must be >= 0"),
        ("tiers:\n  silver: {command: x}\nmetrics: {port: 99999}\n",
         "metrics.port: must be a TCP port (0-65535), not 99999"),
        ("tiers:\n  silver: {command: x}\nmetrics: {host: ''}\n", "metrics.host: is empty"),
        ("tiers:\n  silver: {command: x}\nversion: '1'\n", "version: must be a whole number"),
    ],
)
def test_wrong_values_say_where_and_what(ws: Workspace, text: str, message: str) -> None:
    assert message in load_error(ws, text)


def test_yaml_11_booleans_are_booleans_where_a_boolean_is_expected(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: 'x ${HOME} {model}', local: yes}\n"
              "cache: {responses: on}\nrouting: {pin: no}\n")
    cfg = load_config(cwd=ws.root)
    assert cfg.tiers["silver"].local and cfg.cache.responses and not cfg.routing.pin


# --------------------------------------------------------------------------- tier references


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routing:\n  rules:\n    - {keywords: [a], tier: gld}\n",
         "config.yaml:6: routing.rules.0.tier: names tier 'gld', which is not defined; "
         "did you mean 'gold'?"),
        ("routing:\n  rules:\n    - {keywords: [a]}\n",
         "routing.rules.0.tier: names tier '', which is not defined"),
        ("routing:\n  rules:\n    - {regex: '(?P<a', tier: gold}\n",
         "config.yaml:6: routing.rules.0.regex: invalid regex"),
        ("routing:\n  rules:\n    - {keywords: ['a', ''], tier: gold}\n",
         "config.yaml:6: routing.rules.0.keywords.1: is empty"),
        ("routing:\n  rules:\n    - {keywords: ['  '], tier: gold}\n",
         "routing.rules.0.keywords.0: is empty"),
        ("routing:\n  rules:\n    - {min_chars: 10, max_chars: 5, tier: gold}\n",
         "routing.rules.0.min_chars: is above max_chars (10 > 5): the rule could never match"),
        ("routing:\n  rules:\n    - {min_chars: -1, tier: gold}\n",
         "routing.rules.0.min_chars: must be >= 0"),
        ("routing:\n  rules: {keywords: [a], tier: gold}\n",
         "config.yaml:5: routing.rules: must be a list, not a mapping"),
        ("routing:\n  ladder: [silver, gold, silver]\n",
         "config.yaml:5: routing.ladder.2: names tier 'silver' twice"),
        ("routing:\n  ladder: [silver, platinum]\n",
         "routing.ladder.1: names tier 'platinum', which is not defined"),
        ("planner: glod\n", "config.yaml:4: planner: names tier 'glod', which is not defined; "
         "did you mean 'gold'?"),
        ("planner: ''\n", "planner: names tier '', which is not defined"),
        ("executor: ''\n", "executor: names tier '', which is not defined"),
        ("compaction: {tier: bronze}\n",
         "config.yaml:4: compaction.tier: names tier 'bronze', which is not defined"),
        ("policy: {sensitive_patterns: ['[']}\n",
         "config.yaml:4: policy.sensitive_patterns.0: invalid regex"),
    ],
)
def test_references_to_tiers_and_rules(ws: Workspace, text: str, message: str) -> None:
    assert message in load_error(
        ws, "tiers:\n  silver: {command: x}\n  gold: {command: x}\n" + text)


def test_a_rule_with_no_condition_is_a_catch_all(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: x}\n  gold: {command: x}\n"
              "routing:\n  rules:\n    - {tier: gold}\n")
    p = ws.run("route", "anything", "--explain")
    assert p.returncode == 0 and "rule has no conditions" in p.stdout


# --------------------------------------------------------------------------- global defaults


def test_malformed_global_file_is_named(ws: Workspace, tmp_path: Path) -> None:
    home = tmp_path / "_burnless_home"
    home.mkdir()
    (home / "config.yaml").write_text("tiers: [not, a, mapping]\n")
    ws.config("planner: null\n")
    msg = load_error(ws, "planner: null\n")
    assert str(home / "config.yaml") + ":1: tiers: must be a mapping" in msg
    (home / "config.yaml").write_text("budget: {max_cost_per_day: lots}\n")
    assert str(home / "config.yaml") + ":1: budget.max_cost_per_day: must be a number" in (
        load_error(ws, OK))


def test_project_turns_a_global_command_tier_into_an_api_tier(
    ws: Workspace, tmp_path: Path
) -> None:
    home = tmp_path / "_burnless_home"
    home.mkdir()
    (home / "config.yaml").write_text("tiers:\n  silver: {command: 'claude -p', timeout: 30}\n")
    ws.config("tiers:\n  silver: {api: anthropic, model: claude-sonnet-4-5}\n")
    tier = load_config(cwd=ws.root).tiers["silver"]
    assert tier.api == "anthropic" and tier.command is None and tier.timeout == 30


def test_global_home_that_is_a_file_or_holds_a_directory_is_ignored(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.config(OK)
    not_a_dir = tmp_path / "home-file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("BURNLESS_HOME", str(not_a_dir))
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    monkeypatch.setenv("BURNLESS_HOME", str(tmp_path / "h"))
    (tmp_path / "h" / "config.yaml").mkdir(parents=True)
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    monkeypatch.setenv("BURNLESS_HOME", str(tmp_path / "f"))
    (tmp_path / "f").mkdir()
    os.mkfifo(tmp_path / "f" / "config.yaml")  # never opened: it would block
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    monkeypatch.delenv("BURNLESS_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}


# --------------------------------------------------------------------------- --config


def test_config_flag_pointing_at_the_wrong_thing(ws: Workspace, tmp_path: Path) -> None:
    ws.config(OK)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    cases = [
        (str(tmp_path / "missing.yaml"), "config file not found"),
        (str(ws.root), "is a directory; --config names the config file itself"),
        (str(fifo), "not a regular file"),
        ("/dev/null", "not a regular file"),
    ]
    for path, message in cases:
        p = ws.run("route", "x", "--config", path, timeout=20)
        clean(p)
        assert p.returncode == 2 and message in p.stderr, (path, p.stderr)
    p = ws.run("doctor", "--config", str(ws.root), timeout=20)
    assert p.returncode == 1 and "FAIL config" in p.stdout and "is a directory" in p.stdout


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_config(ws: Workspace) -> None:
    ws.config(OK)
    (ws.state / "config.yaml").chmod(0)
    try:
        p = ws.run("route", "x")
        clean(p)
        assert p.returncode == 2 and "cannot read config: Permission denied" in p.stderr
    finally:
        (ws.state / "config.yaml").chmod(0o644)


# ------------------------------------------------------------------- the parsed-config cache


def cache_file(ws: Workspace) -> Path:
    return ws.state / "cache" / "config.json"


def test_cache_is_used_and_survives_damage(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    load_config(cwd=ws.root)
    assert cache_file(ws).is_file()
    for junk in (b"", b"{not json", b"[]", b'{"key": 1}', b'{"key": null, "data": []}'):
        cache_file(ws).write_bytes(junk)
        assert set(load_config(cwd=ws.root).tiers) == {"silver"}


def test_cache_from_another_version_or_with_bad_data_is_not_trusted(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    load_config(cwd=ws.root)
    blob = orjson.loads(cache_file(ws).read_bytes())
    # Same key, data that no longer validates (a cache written by an older burnless):
    # the YAML is read again, and it is fine.
    cache_file(ws).write_bytes(orjson.dumps({"key": blob["key"], "data": {"tiers": {}}}))
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    # Another version's key: ignored.
    blob["key"][0] = "0.0.0-other"
    blob["data"]["tiers"]["gold"] = {"command": "stale"}
    cache_file(ws).write_bytes(orjson.dumps(blob))
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}


def test_edit_within_the_same_second_is_seen(ws: Workspace) -> None:
    """An edit that keeps size and mtime (coarse clocks, `cp -p`, `touch -r`) still shows."""
    cfg_path = ws.state / "config.yaml"
    ws.config("tiers:\n  silver: {command: aaaa}\n")
    age(cfg_path)
    assert load_config(cwd=ws.root).tiers["silver"].command == "aaaa"
    assert cache_file(ws).is_file()
    st = cfg_path.stat()
    ws.config("tiers:\n  silver: {command: bbbb}\n")
    os.utime(cfg_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cfg_path.stat().st_size == st.st_size
    assert load_config(cwd=ws.root).tiers["silver"].command == "bbbb"


def test_a_freshly_written_config_is_not_cached(ws: Workspace) -> None:
    ws.config(OK)
    load_config(cwd=ws.root)
    assert not cache_file(ws).exists()


def test_unusable_cache_dir_costs_only_speed(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    (ws.state / "cache").write_text("a file where the cache dir goes")
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    (ws.state / "cache").unlink()
    cache_file(ws).mkdir(parents=True)  # a directory where the cache file goes
    assert set(load_config(cwd=ws.root).tiers) == {"silver"}


def test_a_fifo_in_place_of_the_cache_does_not_hang(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    cache_file(ws).parent.mkdir(parents=True)
    os.mkfifo(cache_file(ws))
    p = ws.run("route", "x", timeout=20)
    assert p.returncode == 0 and p.stdout.strip() == "silver"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_cache_dir(ws: Workspace) -> None:
    ws.config(OK)
    age(ws.state / "config.yaml")
    (ws.state / "cache").mkdir()
    (ws.state / "cache").chmod(0o555)
    try:
        assert set(load_config(cwd=ws.root).tiers) == {"silver"}
    finally:
        (ws.state / "cache").chmod(0o755)


# --------------------------------------------------------------------------- command line


@pytest.fixture
def honest(ws: Workspace) -> Workspace:
    return ws.tiers(silver="honest")


def test_empty_task(honest: Workspace) -> None:
    for args, stdin in ((("run", ""), None), (("run", "-"), "   \n\t ")):
        p = honest.run(*args, input=stdin)
        clean(p)
        assert p.returncode == 2 and "the task is empty" in p.stderr
    assert honest.ledger() == []


def test_task_starting_with_a_dash(honest: Workspace) -> None:
    p = honest.run("run", "--json", "--", "-rf is not an option")
    assert p.returncode == 0 and orjson.loads(p.stdout)["status"] == "ok"
    assert honest.capsules()[0]["task"] == "-rf is not an option"


def test_a_5mb_task_on_stdin(honest: Workspace) -> None:
    task = "refactor " * (5 * 1024 * 1024 // 9)
    code, res = honest.json("run", "-", input=task, timeout=60)
    assert code == 2 and "policy.max_task_bytes" in res["error"]  # refused, nothing sent
    cfg = honest.state / "config.yaml"
    cfg.write_text(cfg.read_text() + "policy: {max_task_bytes: 6000000}\n")
    code, res = honest.json("run", "-", input=task, timeout=60)
    assert code == 0 and res["status"] == "ok"


def test_task_that_is_not_text(honest: Workspace) -> None:
    for cmd in ("route", "run"):
        p = subprocess.run([*honest_argv(), cmd, "-"], cwd=honest.root, input=b"fix \xff bug",
                           capture_output=True, timeout=30)
        err = p.stderr.decode()
        assert p.returncode == 2 and "not UTF-8 text (byte 0xff at offset 4)" in err, err
        p = subprocess.run([*honest_argv(), cmd, "-"], cwd=honest.root, input=b"fix\x00bug",
                           capture_output=True, timeout=30)
        assert p.returncode == 2 and "contains a NUL byte" in p.stderr.decode()
        p = subprocess.run([*honest_argv(), cmd, b"fix \xff bug"], cwd=honest.root,
                           capture_output=True, timeout=30)
        assert p.returncode == 2 and b"not UTF-8 text" in p.stderr and b"Traceback" not in p.stderr
    assert honest.ledger() == []


def honest_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "burnless"]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e400"])
def test_timeout_must_be_a_positive_finite_number(honest: Workspace, value: str) -> None:
    p = honest.run("run", "hi", "--json", "--timeout", value)
    clean(p)
    assert p.returncode == 2 and "--timeout must be a positive number of seconds" in p.stderr
    js = orjson.loads(p.stdout)
    assert js["ok"] is False and js["exit_code"] == 2 and "--timeout" in js["error"]
    assert honest.ledger() == []


@pytest.mark.parametrize(
    ("cmd", "message"),
    [("", "is empty"), ("  ", "is empty"),
     ("pytest '", "cannot split into arguments: No closing quotation")],
)
def test_verify_commands_that_cannot_run_are_refused_before_dispatch(
    honest: Workspace, cmd: str, message: str
) -> None:
    p = honest.run("run", "write a.txt hi", "--verify", cmd)
    clean(p)
    assert p.returncode == 2 and f"--verify {cmd!r}: {message}" in p.stderr
    assert honest.ledger() == [] and not (honest.root / "a.txt").exists()


def test_timeout_that_is_not_a_number(honest: Workspace) -> None:
    p = honest.run("run", "hi", "--timeout", "soon")
    assert p.returncode == 2 and "'soon' is not a valid float" in p.stderr


@pytest.mark.parametrize(("cmd", "tier"), [("run", "nope"), ("route", ""), ("run", "silver "),
                                         ("route", "../silver")])
def test_unknown_tier_flag(honest: Workspace, cmd: str, tier: str) -> None:
    p = honest.run(cmd, "hi", "--tier", tier)
    clean(p)
    assert p.returncode == 2 and "unknown tier" in p.stderr
    assert honest.ledger() == []


HOSTILE_SESSIONS = ["", ".", "..", "../../etc", "a/b", ".hidden", "a\nb", "x" * 129, "a b", "é"]


def test_hostile_session_ids(honest: Workspace) -> None:
    from burnless import BurnlessAgent, UsageError

    agent = BurnlessAgent(cwd=honest.root)
    for session in HOSTILE_SESSIONS:
        for call in (agent.run, agent.route):
            with pytest.raises(UsageError, match="invalid session id"):
                call("hi", session)
    p = honest.run("run", "hi", "--session", "../../etc")
    clean(p)
    assert p.returncode == 2 and "invalid session id '../../etc'" in p.stderr
    p = honest.run("route", "hi", env={"BURNLESS_SESSION": ".."})
    assert p.returncode == 2 and "invalid session id '..'" in p.stderr
    assert honest.ledger() == [] and not (honest.root.parent / "etc").exists()


@pytest.mark.parametrize(
    "run_id", ["../../etc/passwd", "", "r-20240101T000000-abcdef/../../x", "/etc/passwd",
               "r-20240101T000000-ABCDEF"])
def test_log_with_hostile_run_id(honest: Workspace, run_id: str) -> None:
    p = honest.run("log", run_id)
    clean(p)
    assert p.returncode == 2 and "invalid run id" in p.stderr and p.stdout == ""


def test_log_that_is_not_a_regular_file(honest: Workspace) -> None:
    logs = honest.state / "logs"
    logs.mkdir()
    (logs / "r-20240101T000000-aaaaaa.log").mkdir()
    os.mkfifo(logs / "r-20240101T000000-bbbbbb.log")
    for run_id in ("r-20240101T000000-aaaaaa", "r-20240101T000000-bbbbbb"):
        p = honest.run("log", run_id, timeout=20)
        clean(p)
        assert p.returncode == 2 and "is not a regular file" in p.stderr, p.stderr
    p = honest.run("log", "r-20240101T000000-cccccc")
    assert p.returncode == 2 and "no log for run" in p.stderr


def test_run_with_a_config_error_dispatches_nothing(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, timeout: .nan}}\n")
    code, js = ws.json("run", "hi")
    assert code == 2 and "tiers.silver.timeout: must be a finite number" in js["error"]
    assert ws.ledger() == [] and ws.capsules() == []


# --------------------------------------------------------------------------- init


def init(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*honest_argv(), "init", *args], cwd=root, capture_output=True,
                          text=True, timeout=30)


def test_init_where_burnless_is_a_file(tmp_path: Path) -> None:
    (tmp_path / ".burnless").write_text("my notes")
    p = init(tmp_path)
    clean(p)
    assert p.returncode == 2 and "is not a directory" in p.stderr
    assert (tmp_path / ".burnless").read_text() == "my notes"


def test_init_never_loses_the_users_config(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    (state / "config.yaml").write_text("mine: 1\n")
    (state / "prefix.md").write_text("my prefix\n")
    p = init(tmp_path)
    assert p.returncode == 2 and "already exists" in p.stderr
    assert (state / "config.yaml").read_text() == "mine: 1\n"
    assert init(tmp_path, "--force").returncode == 0
    assert (state / "config.yaml.bak").read_text() == "mine: 1\n"
    assert (state / "prefix.md.bak").read_text() == "my prefix\n"
    # The user edits again and forces again: the first backup is still there.
    (state / "config.yaml").write_text("mine: 2\n")
    assert init(tmp_path, "--force").returncode == 0
    assert (state / "config.yaml.bak").read_text() == "mine: 1\n"
    assert (state / "config.yaml.bak.1").read_text() == "mine: 2\n"
    # Forcing over an untouched example keeps no copy of it.
    assert init(tmp_path, "--force").returncode == 0
    assert not (state / "config.yaml.bak.2").exists()
    assert (state / "prefix.md.bak").read_text() == "my prefix\n"


def test_init_over_a_broken_symlink_or_directory(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    (state / "config.yaml").symlink_to(tmp_path / "dotfiles" / "burnless.yaml")
    p = init(tmp_path)
    assert p.returncode == 2 and "already exists" in p.stderr
    p = init(tmp_path, "--force", "--json")
    clean(p)
    assert p.returncode == 2 and "not a regular file" in orjson.loads(p.stdout)["error"]
    assert (state / "config.yaml").is_symlink()
    (state / "config.yaml").unlink()
    (state / "config.yaml").mkdir()
    p = init(tmp_path, "--force")
    clean(p)
    assert p.returncode == 2 and "not a regular file" in p.stderr


def test_init_keeps_an_existing_prefix_and_writes_a_loadable_config(tmp_path: Path) -> None:
    state = tmp_path / ".burnless"
    state.mkdir()
    (state / "prefix.md").write_text("my prefix\n")
    assert init(tmp_path).returncode == 0
    assert (state / "prefix.md").read_text() == "my prefix\n"
    assert set(load_config(cwd=tmp_path).tiers) >= {"gold", "silver", "bronze"}


# --------------------------------------------------------------------------- doctor


def test_doctor_with_every_kind_of_broken_tier(ws: Workspace) -> None:
    (ws.root / "script.sh").write_text("#!/bin/sh\necho hi\n")  # not executable
    (ws.root / "adir").mkdir()
    ws.config(
        "tiers:\n"
        "  missing: {command: 'not-an-agent -p'}\n"
        "  noexec: {command: ./script.sh}\n"
        "  isdir: {command: ./adir}\n"
        "  abspath: {command: /nonexistent/bin/agent}\n"
        "  nokey: {api: anthropic, model: claude-sonnet-4-5}\n"
        f"  good: {{command: {quoted(fake('honest'))}}}\n"
    )
    code, js = ws.json("doctor", env={"ANTHROPIC_API_KEY": ""})
    assert code == 1 and js["ok"] is False
    detail = {c["name"]: (c["status"], c["detail"]) for c in js["checks"]}
    assert detail["tier missing"][0] == "fail" and "'not-an-agent' not found" in (
        detail["tier missing"][1])
    assert detail["tier noexec"][0] == "fail" and "is not executable" in detail["tier noexec"][1]
    assert detail["tier isdir"][0] == "fail" and "is a directory" in detail["tier isdir"][1]
    assert detail["tier abspath"][0] == "fail" and "not found" in detail["tier abspath"][1]
    assert detail["tier nokey"][0] == "fail" and "ANTHROPIC_API_KEY" in detail["tier nokey"][1]
    assert detail["tier good"][0] == "ok"


@pytest.mark.parametrize(
    "text",
    ["", "- a list\n", "tiers:\n\tbad\n", "tiers:\n  silver: {command: 'x {foo}'}\n",
     "a: &a [*a]\n" + OK],
)
def test_doctor_with_a_broken_config(ws: Workspace, text: str) -> None:
    ws.config(text)
    p = ws.run("doctor", "--json")
    clean(p)
    assert p.returncode == 1
    (check,) = orjson.loads(p.stdout)["checks"]
    assert check["name"] == "config" and check["status"] == "fail" and "config.yaml" in (
        check["detail"])


# --------------------------------------------------------------------------- damaged state


def test_damaged_breaker_and_reservation_files_do_not_crash_a_run(ws: Workspace) -> None:
    ws.config(f"tiers:\n  silver: {{command: {quoted(fake('honest'))}, price: 1}}\n"
              "budget: {max_cost_per_day: 100}\n")
    (ws.state / "breaker.json").write_bytes(orjson.dumps(
        {"silver": {"streak": "many", "last_failure": None}, "gold": [], "x": {"streak": 1e300}}))
    (ws.state / "reservations.json").write_bytes(orjson.dumps(
        {"a": {"pid": os.getpid()}, "b": {"pid": 2**40, "amount": 1, "session": "s", "day": "d"},
         "c": {"pid": 1, "amount": "lots", "session": "default", "day": "x"}, "d": 7}))
    code, res = ws.json("run", "hi")
    assert code == 0 and res["status"] == "ok"
