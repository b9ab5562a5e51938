"""Imports follow the data flow: a package imports only packages of lower tiers.

The tiers (docs/architecture.md explains each):

    0  errors atomic hardware paths progress ranks schedules configs   (torch-free base)
    1  config
    2  data
    3  model
    4  train
    5  lr  infer
    6  evaluate
    7  curate
    8  runs  testing
    9  cli
   10  __main__  (python -m honer)

Every `import` in src/honer counts, at module level or inside a function: a lazy import is still
a dependency. Two packages of one tier do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "honer"
TIERS: list[set[str]] = [
    {"errors", "atomic", "hardware", "paths", "progress", "ranks", "schedules", "configs"},
    {"config"},
    {"data"},
    {"model"},
    {"train"},
    {"lr", "infer"},
    {"evaluate"},
    {"curate"},
    {"runs", "testing"},
    {"cli"},
    {"__main__"},
]
TIER = {name: i for i, names in enumerate(TIERS) for name in names}


def _package(module: str) -> str | None:
    """`honer.data.prepare` → `data`; `honer` itself → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "honer" else None


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported honer module, line) for every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("honer")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "honer":  # `from honer import hardware`: the submodules
                found += [(f"honer.{a.name}", node.lineno) for a in node.names]
            elif node.module.startswith("honer."):
                found.append((node.module, node.lineno))
    return found


def back_edges(root: Path = SRC) -> list[str]:
    """Every import that points to a package of the same or a higher tier."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        here = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem
        if here == "__init__":
            continue
        for module, line in imports_of(path):
            there = _package(module)
            if there is None or there == here:
                continue
            if there not in TIER or here not in TIER:
                problems.append(f"{rel}:{line}: `{module}`: package not in the tier list")
            elif TIER[there] >= TIER[here]:
                problems.append(
                    f"{rel}:{line}: {here} (tier {TIER[here]}) imports {module} "
                    f"(tier {TIER[there]})"
                )
    return problems


def test_every_package_has_a_tier() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(TIER), (packages | modules) - set(TIER)


def test_imports_follow_the_data_flow() -> None:
    assert back_edges() == []


def test_a_back_edge_is_caught(tmp_path: Path) -> None:
    """The checker itself: a model module importing the trainer is reported with its line."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "bad.py").write_text(
        "def f():\n    from honer.train.trainer import train\n"
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ok.py").write_text("from honer.errors import ConfigError\n")
    assert back_edges(tmp_path) == [
        "model/bad.py:2: model (tier 3) imports honer.train.trainer (tier 4)"
    ]
