"""Configuration: discovery, global defaults, validation messages; hostile input (empty, broken,
non-UTF-8 and bomb-shaped YAML, wrong values, bad references, a malformed global file, a --config
pointing at the wrong thing) gets a clear error (file, line, key, what is expected), never a
traceback or a hang."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from burnless.config import load_config
from burnless.errors import ConfigError
from tests.conftest import OK, Workspace, clean


def test_found_by_walking_up_from_a_subdirectory(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    sub = ws.root / "src" / "deep"
    sub.mkdir(parents=True)
    cfg = load_config(cwd=sub)
    assert cfg.workspace == ws.root and cfg.state_dir == ws.state


def test_global_defaults_are_overridden_by_the_project(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(
        "tiers:\n  silver: {command: 'echo global', timeout: 30}\n  gold: {command: echo}\n"
        "budget: {max_cost_per_day: 5}\n")
    monkeypatch.setenv("BURNLESS_HOME", str(home))
    ws.config("tiers:\n  silver: {command: 'echo project'}\nbudget: {max_cost_per_task: 1}\n")
    cfg = load_config(cwd=ws.root)
    assert cfg.tiers["silver"].command == "echo project"
    assert cfg.tiers["silver"].timeout == 30  # merged key by key
    assert "gold" in cfg.tiers and cfg.planner == "gold"
    assert cfg.budget.max_cost_per_day == 5 and cfg.budget.max_cost_per_task == 1


def test_xdg_config_home_is_the_default_home(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BURNLESS_HOME")
    xdg = tmp_path / "xdg"
    (xdg / "burnless").mkdir(parents=True)
    (xdg / "burnless" / "config.yaml").write_text("tiers:\n  bronze: {command: echo}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    ws.config("planner: null\n")  # tiers come from the global file
    assert set(load_config(cwd=ws.root).tiers) == {"bronze"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers:\n  silver: {command: [unclosed\n",
         "invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
         "sequence at line 2)"),
        ("tiers: {}\n", "tiers: must be a mapping of tier names"),
        ("planner: null\n", "the 'tiers' section is required"),
        ("tiers:\n  silver: {command: x}\nexecutor: slver\n",
         "executor: names tier 'slver', which is not defined; did you mean 'silver'?"),
        ("tiers:\n  silver: {command: x, timeout: soon}\n",
         "config.yaml:2: tiers.silver.timeout: must be a number, not 'soon'"),
        ("tiers:\n  silver: {command: x}\nrouting:\n  rules:\n    - {regex: '(', tier: silver}\n",
         "config.yaml:5: routing.rules.0.regex: invalid regex"),
        ("tiers:\n  silver: {command: x}\nbudgett: {}\n",
         "config.yaml:3: budgett: unknown key; did you mean 'budget'?"),
        ("tiers:\n  silver: {command: x, api: anthropic}\n", "give exactly one of 'command'"),
        ("tiers:\n  silver: {command: x}\n  silver: {command: y}\n",
         "config.yaml:3: tiers.silver: duplicate key"),
        ("tiers:\n  silver: {command: 'x {prompt}'}\n", "set input: arg"),
        ("- just\n- a list\n", "must be a mapping of keys"),
    ],
)
def test_bad_configs_say_where_and_what(ws: Workspace, text: str, message: str) -> None:
    ws.config(text)
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=ws.root)
    assert message in str(exc.value)


def test_cli_reports_a_config_error_as_exit_2(ws: Workspace) -> None:
    ws.config("tiers:\n  silver: {command: [unclosed\n")
    p = ws.run("route", "x")
    assert p.returncode == 2 and "invalid YAML" in p.stderr and "Traceback" not in p.stderr


def test_explicit_config_flag_and_env(ws: Workspace, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    other.write_text("tiers:\n  bronze: {command: echo}\n")
    ws.tiers(silver="honest")
    assert ws.run("--config", str(other), "route", "x").stdout.strip() == "bronze"
    assert ws.run("route", "x", "--config", str(other)).stdout.strip() == "bronze"
    assert ws.run("route", "x", env={"BURNLESS_CONFIG": str(other)}).stdout.strip() == "bronze"
    p = ws.run("route", "x", "--config", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "config file not found" in p.stderr


def load_error(ws: Workspace, text: str | bytes) -> str:
    path = ws.state / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=ws.root)
    return str(exc.value)




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
