"""Render the message catalogue of docs/events.md from the services' declared contracts.

Every messaging service declares what it publishes and consumes in
`<service>/entrypoints/contracts.py` (`CONTRACTS`, a `chassis.messaging.MessageContracts`);
this script writes the tables between the generated markers of docs/events.md, and leaves
the prose around them alone. `tests/contracts` fails when the committed file differs.

    .venv/bin/python scripts/generate_events_doc.py           # rewrite docs/events.md
    .venv/bin/python scripts/generate_events_doc.py --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chassis.messaging import MessageContracts, MessageType

SERVICES = ("catalog", "identity", "inventory", "orders", "payments", "notifications")
DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
START = "<!-- generated:events:start -->"
END = "<!-- generated:events:end -->"


def load_contracts(services: Sequence[str] = SERVICES) -> list[MessageContracts]:
    contracts = []
    for service in services:
        module = importlib.import_module(f"{service}.entrypoints.contracts")
        declared: MessageContracts = module.CONTRACTS
        if declared.service != service:
            raise ValueError(f"{module.__name__} declares the contracts of {declared.service}")
        contracts.append(declared)
    return contracts


def is_command(type_: str) -> bool:
    """`<domain>.<command>.v1` is a command; `<domain>.<entity>.<happened>.v1` an event."""
    return MessageType.parse(type_).name.count(".") == 1


def render(contracts: Sequence[MessageContracts]) -> str:
    """The generated section (markers included) for these services' contracts."""
    consumers: dict[str, list[str]] = {}
    for declared in contracts:
        for type_ in declared.consumes:
            consumers.setdefault(type_, []).append(declared.service)
    rows: dict[bool, list[tuple[str, str]]] = {False: [], True: []}
    for declared in contracts:
        for type_, published in declared.publishes.items():
            schema = published.data.model_json_schema()
            summary = _meaning(published.summary or published.data.__doc__)
            cells = [
                f"`{type_}`",
                declared.service,
                ", ".join(sorted(consumers.get(type_, []))) or "—",
                f"`{published.subject}`",
                f"`{_shape(schema, schema.get('$defs', {}))}`",
                summary,
            ]
            rows[is_command(type_)].append((type_, "| " + " | ".join(cells) + " |"))
    header = (
        "| type | producer | consumers | subject | data | meaning |\n|---|---|---|---|---|---|\n"
    )
    unpublished = sorted(set(consumers) - {t for c in contracts for t in c.publishes})
    lines = [
        START,
        "<!-- Generated from each service's entrypoints/contracts.py by"
        " scripts/generate_events_doc.py: edit those, then run it. -->",
        "",
        "### Events",
        "",
        header + "\n".join(row for _, row in sorted(rows[False])),
        "",
        "### Commands",
        "",
        header + "\n".join(row for _, row in sorted(rows[True])),
        "",
        "`subject` names the `data` field the envelope subject equals. In `data`, `?` marks an "
        "optional field, `Money` is `{amount: int, currency}`, a bare name is a string. Each "
        "service serves the full JSON Schemas (and its consumers' own) as AsyncAPI 3.0 at "
        "`GET /asyncapi.json`.",
    ]
    if unpublished:
        lines += ["", "Consumed but published by no service: " + ", ".join(unpublished) + "."]
    lines.append(END)
    return "\n".join(lines)


def update(document: str, section: str) -> str:
    """`document` with its generated section replaced by `section`."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"docs/events.md has no {START} … {END} section")
    return document[:start] + section + document[end + len(END) :]


def _meaning(doc: str | None) -> str:
    """The docstring's first paragraph on one line, safe in a table cell."""
    paragraph = (doc or "").strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split()).replace("|", "\\|")


def _shape(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """`{order_id, lines: [{sku, quantity: int}], total: Money, note?}` of a JSON Schema."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return "Money" if name == "Money" else _shape(defs[name], defs)
    variants = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if variants:
        return " | ".join(_shape(variant, defs) for variant in variants)
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        fields = []
        for name, field in schema["properties"].items():
            label = name if name in required else f"{name}?"
            inner = _shape(field, defs)
            fields.append(label if inner == "string" else f"{label}: {inner}")
        return "{" + ", ".join(fields) + "}"
    if kind == "array":
        return f"[{_shape(schema.get('items', {}), defs)}]"
    if kind == "string" and "format" in schema:
        return str(schema["format"])
    return {"integer": "int", "boolean": "bool", "string": "string"}.get(str(kind), str(kind))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/events.md is stale")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    wanted = update(current, render(load_contracts()))
    if args.check:
        if wanted != current:
            sys.stderr.write("docs/events.md is stale: run scripts/generate_events_doc.py\n")
            return 1
        return 0
    if wanted != current:
        DOC.write_text(wanted, encoding="utf-8")
        sys.stderr.write("docs/events.md updated\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
