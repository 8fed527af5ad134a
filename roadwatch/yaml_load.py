"""Reading YAML the one way every Roadwatch file loader does: safe, and a key given twice is
an error naming the key and its lines (PyYAML keeps the last one silently, so a site, scene,
calibration, delivery or manifest file could say one thing to a reader and another to the
node)."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """Not valid YAML; the message is one line, with the line number where known."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # `<<: *base` merges, and keys given beside it override it
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first_line.get(key)
                except TypeError:
                    continue  # unhashable: the base class refuses it with its own message
                line = key_node.start_mark.line + 1
                if earlier is not None:
                    raise ConstructorError(
                        None,
                        None,
                        f"key {key!r} is given twice (first at line {earlier})",
                        key_node.start_mark,
                    )
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def _one_line(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "invalid"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
        return problem
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def load_yaml(text: str | bytes) -> Any:
    """The data of a YAML document (safe tags only). YamlError, one line, when the text is
    not YAML, holds a key twice in one mapping, or nests too deeply to read."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise YamlError(_one_line(exc)) from None
    except RecursionError:
        raise YamlError("nested too deeply") from None
