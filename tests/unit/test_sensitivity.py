"""Sensitivity: patterns, path globs (in every form a task writes a path), labels, secrets with
redaction off (table-driven); the reasons never quote a secret."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from burnless.config import load_config
from burnless.errors import ConfigError
from burnless.safety.policy import Policy
from burnless.safety.sensitivity import Sensitivity, classify, path_matches, paths_in
from tests.conftest import FAKE_SECRETS

GITHUB = "gh" + "p_" + "R8aZkQ2mW5xT9vB3nL7pC1dF6gH0jK4sY2eU"
AWS_ID = "AK" + "IA" + "Z5Q7XN2RT4YBW6UP"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Update secrets/prod.env now", ["secrets/prod.env"]),
        ("Read ./config/keys.json.", ["./config/keys.json"]),
        ("copy ~/.ssh/id_rsa somewhere", ["~/.ssh/id_rsa"]),
        (
            "edit `auth/session.py` and (tests/test_auth.py)",
            ["auth/session.py", "tests/test_auth.py"],
        ),
        ("open prod.env and keys.json", ["prod.env", "keys.json"]),
        ("see .env and .ssh", [".env", ".ssh"]),
        ("run --config=deploy/prod.yaml", ["deploy/prod.yaml"]),
        ('open "my dir/file name.txt"', ["my dir/file name.txt", "dir/file", "name.txt"]),
        (r"windows C:\Users\me\secrets\prod.env", [r"C:\Users\me\secrets\prod.env"]),
        ("fetch https://example.com/a/b.json and ftp://x/y", []),
        ("version 1.2.3 costs 3.5GB ... and / or ~", []),
        ("Refactor the auth module", []),
        ("a/b a/b a/b", ["a/b"]),
    ],
)
def test_paths_in(text: str, expected: list[str]) -> None:
    assert paths_in(text) == expected


@pytest.mark.parametrize(
    ("path", "glob", "matches"),
    [
        ("secrets/prod.env", "secrets/**", True),
        ("secrets/deep/er/prod.env", "secrets/**", True),
        ("secrets/prod.env", "secrets/*", True),
        ("secrets/deep/prod.env", "secrets/*.env", False),  # * stays in one segment
        ("secrets/deep/prod.env", "secrets/**/*.env", True),
        ("secrets/prod.env", "secrets/**/*.env", True),  # **/ may be empty
        ("secrets/prod.env", "secrets", True),  # a directory covers its contents
        ("secrets/prod.env", "secrets/", True),
        ("config/keys/prod.json", "config/keys", True),  # anchored directory, contents too
        ("config/keys/deep/prod.json", "config/*", True),  # config/keys matches config/*
        ("other/config/keys/prod.json", "config/keys", False),
        ("src/secrets.py", "secrets/**", False),
        ("src/secrets/x", "secrets/**", False),  # a glob with / is anchored
        ("src/secrets/x", "**/secrets/**", True),
        ("./config/keys.json", "config/*.json", True),  # normalized form
        ("config/../secrets/k", "secrets/*", True),
        ("certs/deep/server.pem", "*.pem", True),  # no / : any depth
        ("certs/server.pem.bak", "*.pem", False),
        ("~/.ssh/id_rsa", "**/.ssh/*", True),
        ("~/.ssh/id_rsa", "~/.ssh/**", True),
        ("~/.ssh/id_rsa", ".ssh", True),
        ("/srv/app/secrets/prod.env", "secrets/**", True),  # absolute: tried from each dir
        ("/etc/shadow", "/etc/**", True),
        ("../other/secrets/x", "secrets/**", True),
        ("data/customer_42.csv", "data/customer_[0-9]*.csv", True),
        ("data/customer_x.csv", "data/customer_[!a-z]*.csv", False),
        ("data/file?.csv", "data/file?.csv", True),
        ("data/file/.csv", "data/file?.csv", False),  # ? is not /
        ("Secrets/prod.env", "secrets/**", False),  # case-sensitive
        (r"C:\Users\me\secrets\prod.env", "secrets/**", True),
    ],
)
def test_path_matches(path: str, glob: str, matches: bool) -> None:
    assert path_matches(path, glob) is matches


def test_home_directory_and_tilde_are_the_same_place() -> None:
    home = os.path.expanduser("~")
    assert path_matches(f"{home}/.ssh/id_rsa", "~/.ssh/*")
    assert path_matches("~/.aws/credentials", f"{home}/.aws/credentials")


NONE: dict[str, object] = {"patterns": (), "paths": (), "labels": (), "redact_secrets": True}


@pytest.mark.parametrize(
    ("task", "options", "reasons"),
    [
        ("Refactor the auth module", {}, []),
        (
            "Export customer_1234 to CSV",
            {"patterns": [r"customer_\d+"]},
            [r"pattern 'customer_\d+' matched"],
        ),
        ("Export CUSTOMER_1234", {"patterns": [r"customer_\d+"]}, []),  # case-sensitive
        (
            "Export CUSTOMER_1234",
            {"patterns": [r"(?i)customer_\d+"]},
            [r"pattern '(?i)customer_\d+' matched"],
        ),
        (
            "Rotate the keys in secrets/prod.env",
            {"paths": ["secrets/**"]},
            ["path 'secrets/prod.env' matches 'secrets/**'"],
        ),
        (
            "Read ./config/keys.json and ~/.ssh/id_rsa",
            {"paths": ["config/keys.json", "**/.ssh/**"]},
            [
                "path './config/keys.json' matches 'config/keys.json'",
                "path '~/.ssh/id_rsa' matches '**/.ssh/**'",
            ],
        ),
        ("Read docs/secrets.md", {"paths": ["secrets/**"]}, []),
        ("Tidy the README", {"labels": ["sensitive"]}, ["label sensitive"]),
        ("Tidy the README", {"labels": ["docs", "Sensitive "]}, ["label sensitive"]),
        ("Tidy the README", {"labels": ["docs"]}, []),
        (f"Use {GITHUB} to push", {}, []),  # redaction on: the secret is masked, not sensitive
        (
            f"Use {GITHUB} and {AWS_ID}",
            {"redact_secrets": False},
            ["secret (aws, github) in task while redact_secrets is off"],
        ),
        (
            "customer_7 data in secrets/x.env",
            {"patterns": [r"customer_\d+"], "paths": ["*.env"], "labels": ["sensitive"]},
            [
                r"pattern 'customer_\d+' matched",
                "path 'secrets/x.env' matches '*.env'",
                "label sensitive",
            ],
        ),
    ],
)
def test_classify(task: str, options: dict[str, object], reasons: list[str]) -> None:
    kwargs = {**NONE, **options}
    result = classify(task, **kwargs)  # type: ignore[arg-type]
    assert result == Sensitivity(bool(reasons), tuple(reasons))


def test_invalid_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"policy\.sensitive_patterns: 'customer_\(' is not"):
        classify("x", patterns=["customer_("], paths=(), labels=(), redact_secrets=True)


# -- task forms once found slipping through --------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "glob"),
    [
        ("rotate **secrets/prod.env** now", "secrets/**"),
        ("rotate *secrets/prod.env*", "secrets/**"),
        ("scp deploy@host:secrets/prod.env .", "secrets/**"),
        ("docker cp app:/srv/app/secrets/prod.env .", "secrets/**"),
        ("open file:///srv/app/secrets/prod.env", "secrets/**"),
        ("open file://localhost/srv/app/secrets/prod.env", "secrets/**"),
        ("the bug is at certs/server.pem:12:3", "*.pem"),
        ("list secrets/ and tell me what is there", "secrets/**"),
        ("list ./secrets", "secrets/**"),
    ],
)
def test_path_forms_are_sensitive(task: str, glob: str) -> None:
    res = classify(task, patterns=[], paths=[glob], labels=[], redact_secrets=True)
    assert res.sensitive, paths_in(task)


def test_directory_rule_for_double_star_stays_anchored() -> None:
    assert not path_matches("src/secrets", "secrets/**")
    assert path_matches("src/secrets", "**/secrets/**")
    assert not classify("at 12:30 fix a:b in 3.5s", patterns=[], paths=["*.pem", "secrets/**"],
                        labels=[], redact_secrets=True).sensitive


@pytest.mark.parametrize("label", ["sensitive", " Sensitive ", "urgent,sensitive",
                                   "sensitive; urgent"])
def test_sensitive_label_forms(label: str) -> None:
    assert classify("x", patterns=[], paths=[], labels=[label], redact_secrets=True).sensitive
    assert not classify("x", patterns=[], paths=[], labels=["insensitive", "sensitive-ish"],
                        redact_secrets=True).sensitive


def test_sensitivity_reasons_never_quote_a_secret(tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / ".burnless").mkdir(parents=True)
    (root / ".burnless" / "config.yaml").write_text(
        "tiers:\n  silver: {command: echo}\npolicy: {sensitive_paths: ['vault/**']}\n")
    pol = Policy(load_config(cwd=root))
    secret = FAKE_SECRETS["github"][0]
    assert pol.sensitivity("read vault/plain.txt", ()) == ("path 'vault/plain.txt' matches "
                                                          "'vault/**'",)
    assert not (root / ".burnless" / "redact.key").exists()  # `route` writes nothing
    reasons = pol.sensitivity(f"read vault/{secret}.txt", ())
    assert reasons and secret not in " ".join(reasons) and "[REDACTED:github:" in reasons[0]
