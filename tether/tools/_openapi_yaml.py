"""YAML read the way an OpenAPI document means it: as JSON written in YAML.

OpenAPI documents are JSON data (OpenAPI 3.1 requires YAML 1.2's JSON-compatible reading, 3.0
recommends it), but PyYAML's `safe_load` reads YAML 1.1, where that data changes under the
author's feet: ``enum: [2024-01-01]`` became a `date` no argument can equal, a property named
``no``, ``on`` or ``off`` became the key `False`/`True`, ``200:`` the integer 200 (a key JSON
cannot have), and ``!!binary`` or ``!!set`` values made the schema hash fail with a bare
TypeError. This loader keeps timestamps and yes/no/on/off as strings, mapping keys as the text
written, and refuses tags that have no JSON value.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError


class _JSONLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans, no timestamps and string keys."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConstructorError(
                        None, None, "a mapping key must be a plain value (JSON object keys are "
                        "strings), not a list or mapping", key_node.start_mark)
                key_node.tag = "tag:yaml.org,2002:str"  # the key as written: `200`, `no`
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


_JSONLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_JSONLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _no_json_value(loader: _JSONLoader, node: yaml.Node) -> Any:
    raise ConstructorError(None, None, f"the YAML tag {node.tag!r} has no JSON value; an "
                           "OpenAPI document is JSON data", node.start_mark)


for _tag in ("binary", "set", "omap", "pairs", "timestamp"):
    _JSONLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _no_json_value)


def load_yaml(text: str) -> Any:
    """Parse YAML (or JSON) text as JSON data."""
    return yaml.load(text, Loader=_JSONLoader)  # a SafeLoader: no Python objects
