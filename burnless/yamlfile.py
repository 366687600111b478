"""A YAML config file read with the file and line of every key path, for error messages.

Safe loading only; duplicate keys, recursive aliases and alias bombs are refused before the
document is constructed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burnless.errors import ConfigError


@dataclass
class Source:
    """Where each key path came from, for error messages."""

    lines: dict[tuple[str, ...], tuple[Path, int]] = field(default_factory=dict)
    default_file: Path = Path()

    def where(self, path: tuple[str, ...]) -> str:
        for n in range(len(path), -1, -1):
            hit = self.lines.get(path[:n])
            if hit:
                return f"{hit[0]}:{hit[1]}"
        return str(self.default_file)


def fail(src: Source, path: tuple[str, ...], msg: str) -> ConfigError:
    keypath = ".".join(path) if path else "(top level)"
    return ConfigError(f"{src.where(path)}: {keypath}: {msg}")


MAX_CONFIG_BYTES = 1 << 20  # a real config is a few KB; a 4 MB one took 20 s to parse


def read_yaml(file: Path, src: Source) -> dict[str, Any]:
    import yaml

    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{file}: the config is larger than {MAX_CONFIG_BYTES >> 20} MiB; "
                          "a configuration is a few KB (keep long text in prefix.md)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{file}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                          "save the file as UTF-8") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                # Before construction, which expands aliases and rewrites merge keys (`<<:`).
                _check_size(node, file)
                _record_lines(node, (), file, src, set())
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and cmark is not None:
            problem += f" ({context} at line {cmark.line + 1})"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid YAML: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: the config must be a mapping of keys, not {kind_of(data)}")
    return data


# Aliases may repeat a node (that is their point) but not blow a small file up into a huge
# document (the "billion laughs"): the document as expanded may hold this many nodes.
MAX_EXPANDED_NODES = 100_000


def _check_size(root: Any, file: Path) -> None:
    import yaml

    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            line = node.start_mark.line + 1
            raise ConfigError(f"{file}:{line}: invalid YAML: an alias refers to a node that "
                              "contains it (a recursive structure)")
        active.add(id(node))
        n = 1
        if isinstance(node, yaml.MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n += sum(size(item) for item in node.value)
        active.discard(id(node))
        sizes[id(node)] = n
        return n

    total = size(root)
    if total > max(len(sizes), MAX_EXPANDED_NODES):
        raise ConfigError(f"{file}: invalid YAML: aliases expand the document to {total:,} "
                          f"nodes (more than {MAX_EXPANDED_NODES:,}); write it out plainly")


def _record_lines(
    node: Any, path: tuple[str, ...], file: Path, src: Source, seen_nodes: set[int]
) -> None:
    import yaml

    if id(node) in seen_nodes:  # an alias: its lines are those of its anchor
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            sub = (*path, key)
            if key in seen:
                src.lines[sub] = (file, key_node.start_mark.line + 1)
                raise fail(src, sub, "duplicate key")
            seen.add(key)
            src.lines[sub] = (file, key_node.start_mark.line + 1)
            _record_lines(value_node, sub, file, src, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, str(i))
            src.lines[sub] = (file, item.start_mark.line + 1)
            _record_lines(item, sub, file, src, seen_nodes)


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), f"a {type(value).__name__}")
