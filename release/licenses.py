"""Check pip-licenses' report of an environment against the license policy.

    pip-licenses --python .venv/bin/python --format=json > licenses.json
    python release/licenses.py licenses.json [--policy release/license-policy.toml]

Prints one line per violation (distribution, version, its license, why) and exits 1; else one
summary line. The policy file is described in its own comments.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

POLICY = Path(__file__).resolve().parent / "license-policy.toml"


class PolicyError(ValueError):
    """The policy file or the report cannot be read."""


def load_policy(path: Path) -> dict:
    try:
        policy = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the license policy ({exc})") from exc
    for key in ("allowed", "denied"):
        if not isinstance(policy.get(key), list):
            raise PolicyError(f"{path}: {key}: expected a list of SPDX identifiers")
    overlap = set(policy["allowed"]) & set(policy["denied"])
    if overlap:
        raise PolicyError(f"{path}: {sorted(overlap)[0]} is both allowed and denied")
    return policy


def _terms(expression: str, aliases: Mapping[str, str]) -> list[list[str]]:
    """An expression as alternatives (OR) of conjunctions (AND) of SPDX ids; "a; b" (several
    classifiers) means both apply. Parentheses are flattened: fine for the shapes seen on PyPI."""
    text = aliases.get(expression.strip(), expression.strip())
    if ";" in text:
        parts = [aliases.get(p.strip(), p.strip()) for p in text.split(";") if p.strip()]
        return [[term for part in parts for alt in _terms(part, aliases) for term in alt]]
    text = text.replace("(", " ").replace(")", " ")
    alternatives = []
    for alternative in re.split(r"\s+OR\s+", text):
        conj = []
        for term in re.split(r"\s+AND\s+", alternative.strip()):
            conj.extend(aliases.get(t.strip(), t.strip()) for t in re.split(r"\s+WITH\s+", term) if t.strip())
        alternatives.append(conj)
    return alternatives


def verdict(expression: str, policy: Mapping) -> str | None:
    """None when ``expression`` is acceptable, else why not."""
    aliases = policy.get("aliases", {})
    allowed, denied = set(policy["allowed"]), set(policy["denied"])
    alternatives = _terms(expression, aliases)
    reasons = []
    for conj in alternatives:
        bad = [t for t in conj if t in denied]
        unknown = [t for t in conj if t not in allowed and t not in denied]
        if not bad and not unknown:
            return None
        reasons.append(f"denied: {', '.join(bad)}" if bad else f"not in the policy: {', '.join(unknown)}")
    return "; ".join(dict.fromkeys(reasons))


def violations(report: Iterable[Mapping], policy: Mapping) -> list[str]:
    """One line per distribution (and model weights) the policy does not accept."""
    exceptions = policy.get("exceptions", {})
    found = []
    for row in report:
        name, version, license_ = row["Name"], row.get("Version", "?"), row.get("License", "UNKNOWN")
        if license_ in ("UNKNOWN", "", None) and name in exceptions:
            license_ = exceptions[name][0]
        why = "no license in its metadata" if license_ in ("UNKNOWN", "", None) else verdict(license_, policy)
        if why:
            found.append(f"{name} {version}: license {license_!r}: {why}")
        model = policy.get("models", {}).get(name)
        if model:
            why = verdict(model["terms"], policy)
            if why:
                found.append(f"{name} {version}: weights of {model['model']} under {model['terms']!r} "
                             f"({model['card']}): {why}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="pip-licenses --format=json output")
    parser.add_argument("--policy", type=Path, default=POLICY)
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.policy)
        try:
            report = json.loads(args.report.read_text())
        except ValueError as exc:
            raise PolicyError(f"{args.report}: not JSON ({exc})") from exc
        if not isinstance(report, list) or not all(isinstance(r, dict) and "Name" in r for r in report):
            raise PolicyError(f"{args.report}: expected pip-licenses' JSON (a list of objects with Name, License)")
    except (OSError, ValueError) as exc:
        print(f"licenses: {exc}", file=sys.stderr)
        return 1
    found = violations(report, policy)
    for line in found:
        print(f"licenses: {line}", file=sys.stderr)
    if found:
        print(f"licenses: {len(found)} violation(s) of {args.policy}", file=sys.stderr)
        return 1
    models = sum(1 for r in report if r["Name"] in policy.get("models", {}))
    print(f"licenses: {len(report)} distributions ({models} with model weights) comply with {args.policy.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
