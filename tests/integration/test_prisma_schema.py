"""prisma/schema.prisma stays in step with sql/schema.sql, the schema the runner's migrations produce.

Both are parsed: the Prisma schema by Prisma's own schema engine compiled to WebAssembly
(@prisma/prisma-schema-wasm, locked in prisma/package-lock.json: validation plus its DMMF, no
engine download), sql/schema.sql by its pg_dump layout (sql/dump_schema.py writes it). After a
migration these tests fail until the Prisma models say the same thing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.nodetools import REPO, npm_ci, run_bin, run_node

PRISMA = REPO / "prisma"
SCHEMA_SQL = REPO / "sql" / "schema.sql"
DOCS = REPO / "docs" / "prisma.md"
# PostgreSQL type -> (Prisma scalar, native type attribute or None for Prisma's default mapping).
TYPES: dict[str, tuple[str, list[Any] | None]] = {
    "text": ("String", None),
    "integer": ("Int", None),
    "smallint": ("Int", ["SmallInt", []]),
    "bigint": ("BigInt", None),
    "jsonb": ("Json", None),
    "boolean": ("Boolean", None),
    "timestamp with time zone": ("DateTime", ["Timestamptz", ["6"]]),
}


def prisma_type(sql_type: str) -> tuple[str, list[Any] | None, bool] | None:
    """(Prisma scalar, native type, is a list) for a pg_dump column type; None when unknown."""
    is_list = sql_type.endswith("[]")
    base = sql_type.removesuffix("[]")
    if base in TYPES:
        return (*TYPES[base], is_list)
    precision = re.fullmatch(r"timestamp\((\d)\) with time zone", base)
    if precision:
        return "DateTime", ["Timestamptz", [precision[1]]], is_list
    numeric = re.fullmatch(r"numeric\((\d+),(\d+)\)", base)
    if numeric:
        return "Decimal", ["Decimal", [numeric[1], numeric[2]]], is_list
    return None


@dataclass
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None


@dataclass
class Table:
    name: str
    columns: dict[str, Column] = field(default_factory=dict)
    identity: set[str] = field(default_factory=set)
    primary_key: tuple[str, ...] = ()
    uniques: dict[str, tuple[str, ...]] = field(default_factory=dict)
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    foreign_keys: dict[str, tuple[tuple[str, ...], str, tuple[str, ...], str]] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)


def columns_of(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip('"') for part in text.split(","))


def parse_sql(text: str) -> dict[str, Table]:
    """The tables of a pg_dump --schema-only file (the layout sql/dump_schema.py writes)."""
    tables: dict[str, Table] = {}
    for name, body in re.findall(r'CREATE TABLE public\."?(\w+)"? \((.*?)\n\);', text, re.S):
        table = tables[name] = Table(name)
        for line in body.strip().splitlines():
            line = line.strip().rstrip(",")
            check = re.match(r'CONSTRAINT "?(\w+)"? CHECK \((.*)\)$', line)
            if check:
                table.checks[check[1]] = check[2]
                continue
            column = re.match(r'"?(\w+)"? (.+?)(?: DEFAULT (.+?))?( NOT NULL)?$', line)
            assert column, f"unparsed column line in {name}: {line}"
            table.columns[column[1]] = Column(column[1], column[2], bool(column[4]), column[3])
    for name, column in re.findall(r'ALTER TABLE public\."?(\w+)"? ALTER COLUMN "?(\w+)"? ADD GENERATED', text):
        tables[name].identity.add(column)
    for name, constraint, kind, cols in re.findall(
            r'ALTER TABLE ONLY public\."?(\w+)"?\s+ADD CONSTRAINT "?(\w+)"? (PRIMARY KEY|UNIQUE) \(([^)]*)\);', text):
        if kind == "PRIMARY KEY":
            tables[name].primary_key = columns_of(cols)
            tables[name].uniques[constraint] = columns_of(cols)  # the pkey's name, checked with the rest
        else:
            tables[name].uniques[constraint] = columns_of(cols)
    for index, name, cols in re.findall(r'CREATE INDEX "?(\w+)"? ON public\."?(\w+)"? USING btree \(([^)]*)\);', text):
        tables[name].indexes[index] = columns_of(cols)
    for name, constraint, cols, target, target_cols, action in re.findall(
            r'ALTER TABLE ONLY public\."?(\w+)"?\s+ADD CONSTRAINT "?(\w+)"? FOREIGN KEY \(([^)]*)\) '
            r'REFERENCES public\."?(\w+)"?\(([^)]*)\)(?: ON DELETE (\w+))?;', text):
        tables[name].foreign_keys[constraint] = (columns_of(cols), target, columns_of(target_cols), action)
    return tables


@pytest.fixture(scope="module")
def dmmf() -> dict[str, Any]:
    completed = run_node(npm_ci(PRISMA), "dmmf.mjs", "schema.prisma")
    assert completed.returncode == 0, completed.stderr
    parsed: dict[str, Any] = json.loads(completed.stdout)["datamodel"]
    return parsed


@pytest.fixture(scope="module")
def tables() -> dict[str, Table]:
    return parse_sql(SCHEMA_SQL.read_text())


def models_by_table(dmmf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {model["dbName"] or model["name"]: model for model in dmmf["models"]}


def test_the_sql_parser_reads_every_table_line(tables: dict[str, Table]) -> None:
    # Guards the parser itself: every CREATE TABLE is read with its columns, keys and checks.
    assert set(tables) == set(re.findall(r'CREATE TABLE public\."?(\w+)"?', SCHEMA_SQL.read_text()))
    assert tables["PipelineRun"].primary_key == ("id",) and tables["StageOutput"].identity == {"id"}
    assert tables["StageOutput"].foreign_keys["StageOutput_runId_fkey"] == (("runId",), "PipelineRun", ("id",),
                                                                           "CASCADE")


def test_every_table_is_a_model_and_every_column_a_field(dmmf: dict[str, Any], tables: dict[str, Table]) -> None:
    models = models_by_table(dmmf)
    assert set(models) == set(tables), "prisma/schema.prisma must have one model per table of sql/schema.sql"
    for name, table in tables.items():
        scalars = {f["name"]: f for f in models[name]["fields"] if f["kind"] == "scalar"}
        assert set(scalars) == set(table.columns), f"{name}: fields differ from the columns"
        for column in table.columns.values():
            f = scalars[column.name]
            where = f"{name}.{column.name}"
            expected = prisma_type(column.type)
            assert expected, f"{where}: no Prisma mapping known for {column.type}: extend prisma_type()"
            assert (f["type"], f["nativeType"], f["isList"]) == expected, where
            if f["isList"]:
                # Prisma lists cannot be optional: a nullable array column must say what null means.
                assert column.not_null or "null" in f.get("documentation", ""), f"{where}: document NULL"
            else:
                assert f["isRequired"] == column.not_null, f"{where}: nullability differs"
            if column.name in table.identity:
                assert f.get("default") == {"name": "autoincrement", "args": []}, f"{where}: identity"
            elif column.default is None:
                assert not f["hasDefaultValue"], f"{where}: Prisma has a default the database lacks"
            elif column.default == "now()":
                assert f.get("default") == {"name": "now", "args": []}, where
            else:
                literal = re.sub(r"::\w+$", "", column.default).strip("'")
                assert str(f.get("default")) in (literal, json.dumps(json.loads(literal))), f"{where}: default"


def test_keys_indexes_and_relations_match(dmmf: dict[str, Any], tables: dict[str, Table]) -> None:
    models = models_by_table(dmmf)
    name_of = {model["name"]: table for table, model in models.items()}
    indexes: dict[str, dict[str, tuple[str, ...]]] = {}
    for index in dmmf["indexes"]:
        kind = "index" if index["type"] == "normal" else "unique"
        table_name = name_of[index["model"]]
        indexes.setdefault(f"{table_name}:{kind}", {})[index["dbName"]] = tuple(f["name"] for f in index["fields"])
    for name, table in tables.items():
        assert indexes.get(f"{name}:unique", {}) == table.uniques, f"{name}: primary key / unique constraints"
        assert indexes.get(f"{name}:index", {}) == table.indexes, f"{name}: indexes"
        relations = {(tuple(f["relationFromFields"]), name_of[f["type"]], tuple(f["relationToFields"]),
                      f["relationOnDelete"].upper())
                     for f in models[name]["fields"] if f["kind"] == "object" and f["relationFromFields"]}
        assert relations == set(table.foreign_keys.values()), f"{name}: foreign keys"


def test_bigint_fields_are_called_out_for_json(dmmf: dict[str, Any]) -> None:
    for model in dmmf["models"]:
        for f in model["fields"]:
            if f["type"] == "BigInt":
                assert "JSON.stringify" in f.get("documentation", ""), f"{model['name']}.{f['name']}: say it"


def test_every_check_constraint_is_documented(dmmf: dict[str, Any], tables: dict[str, Table]) -> None:
    docs = DOCS.read_text()
    models = models_by_table(dmmf)
    for name, table in tables.items():
        for constraint, expression in table.checks.items():
            assert f"`{constraint}`" in docs, f"docs/prisma.md must explain {constraint}: {expression}"
            constrained = [c for c in table.columns if re.search(rf'\b"?{c}"?\b', expression)]
            assert constrained, f"{constraint}: which column?"
            for column in constrained:
                documentation = next(f.get("documentation", "") for f in models[name]["fields"] if f["name"] == column)
                assert documentation.startswith("CHECK"), f"{name}.{column}: its /// comment must state the CHECK"


def test_every_model_is_marked_as_managed_elsewhere(dmmf: dict[str, Any], tables: dict[str, Table]) -> None:
    config = (PRISMA / "prisma.config.ts").read_text()
    external = re.search(r"external:\s*\[(.*?)\]", config, re.S)
    assert external and "externalTables: true" in config
    assert set(re.findall(r'"public\.(\w+)"', external[1])) == set(tables)
    for model in dmmf["models"]:
        assert "runner" in model.get("documentation", "").lower(), f"{model['name']}: say who manages it"


def test_the_prisma_config_type_checks_against_prisma_config() -> None:
    result = run_bin(npm_ci(PRISMA), "tsc", "-p", "tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_invalid_schema_is_refused_by_the_engine(tmp_path: Path) -> None:
    bad = tmp_path / "schema.prisma"
    bad.write_text((PRISMA / "schema.prisma").read_text().replace("BigInt ", "Bigint ", 1))
    completed = run_node(npm_ci(PRISMA), "dmmf.mjs", str(bad))
    assert completed.returncode == 1 and "Bigint" in completed.stderr
