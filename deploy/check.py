#!/usr/bin/env python3
"""The dashboards and alert rules ask only for metrics the code exports.

`make check-observability` runs it (and `make test` through it). It checks:

1. Every metric the Rust sources of the gateway and the provider daemon
   construct (`gateway/src`, `mesh/src`, test modules left out): its name,
   type and labels, read from the constructor calls themselves
   (`IntCounterVec::new(Opts::new("dbytes_...", ...), &["label", ...])`,
   `IntGauge::new("dbytes_...", ...)`, or a local closure over one of
   them), not from every string that looks like a name: `repair status`
   parses `/metrics` with the same names, and a metric renamed at its
   constructor must not survive through such a string.
2. Every Grafana dashboard in grafana/dashboards: valid JSON, the
   `${datasource}` and `instance` variables, unique panel ids, and every
   panel but a row has targets with a PromQL expression on `${datasource}`
   whose every selector is filtered by `instance=~"$instance"`.
3. Every PromQL expression in the dashboards, deploy/prometheus/alerts.yml
   and its unit tests (deploy/prometheus/alerts.test.yml, series included):
   each `dbytes_*` name is an exported metric (a histogram only through its
   `_bucket`, `_sum` or `_count` series), each label a selector or a
   `by`/`on`/legend names is one of that metric's labels (or `job`,
   `instance`, `le` of a bucket).
4. The scrape jobs of deploy/prometheus/prometheus.yml are the `dbytes-*`
   jobs the target-down alert watches.
5. With promtool: `promtool check config`, `check rules` and `test rules`.
   Without it the check fails under CI (CI=true) and is skipped loudly
   otherwise.

python3 with its standard library only. `--sources DIR` reads the Rust
sources from another checkout (to see the check fail on a renamed metric).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("gateway/src", "mesh/src")
DASHBOARDS = REPO / "grafana" / "dashboards"
PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
SCRAPE_CONFIG = PROMETHEUS / "prometheus.yml"

# The prometheus crate's metric types, by the kind of series they export.
METRIC_TYPES = {
    "IntCounter": "counter",
    "Counter": "counter",
    "IntCounterVec": "counter",
    "CounterVec": "counter",
    "IntGauge": "gauge",
    "Gauge": "gauge",
    "IntGaugeVec": "gauge",
    "GaugeVec": "gauge",
    "Histogram": "histogram",
    "HistogramVec": "histogram",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# Labels Prometheus itself puts on every scraped series.
TARGET_LABELS = {"job", "instance"}


class CheckError(Exception):
    """A finding that fails the check; its text says what to fix."""


@dataclass
class Metric:
    """One metric as the code constructs it."""

    name: str
    kind: str  # counter, gauge or histogram
    labels: tuple[str, ...]
    where: str  # file:line of the constructor


@dataclass
class Findings:
    """What the check found wrong, reported all at once."""

    errors: list[str] = field(default_factory=list)
    # The dashboards' queries, (where, expr), for promtool to parse.
    dashboard_queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


# --- Rust sources ---------------------------------------------------------

RUST_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<raw_string>b?r(?P<hashes>\#*)"(?P<raw_body>.*?)"(?P=hashes))
  | (?P<string>b?"(?P<body>(?:[^"\\]|\\.)*)")
  | (?P<char>b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.))')
  | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9][0-9A-Za-z_]*)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Token:
    kind: str  # ident, string, punct or other
    text: str  # an identifier, a string's contents, a punctuation character
    line: int


def rust_tokens(text: str, path: str) -> list[Token]:
    """The tokens of a Rust file, comments and whitespace left out."""
    tokens: list[Token] = []
    position, line = 0, 1
    while position < len(text):
        match = RUST_TOKEN.match(text, position)
        if match is None:  # cannot happen: `punct` matches any character
            raise CheckError(f"{path}:{line}: cannot read the Rust source here")
        kind = match.lastgroup
        end = match.end()
        if kind == "block_comment":
            end = block_comment_end(text, position, f"{path}:{line}")
        elif kind in ("raw_string", "string"):
            body = match.group("raw_body" if kind == "raw_string" else "body")
            tokens.append(Token("string", body, line))
        elif kind == "ident":
            tokens.append(Token("ident", match.group(), line))
        elif kind == "punct":
            tokens.append(Token("punct", match.group(), line))
        elif kind not in ("space", "line_comment"):
            tokens.append(Token("other", match.group(), line))
        line += text.count("\n", position, end)
        position = end
    return tokens


def block_comment_end(text: str, start: int, where: str) -> int:
    """The end of the (possibly nested) block comment opening at `start`."""
    depth, position = 0, start
    while position < len(text):
        if text.startswith("/*", position):
            depth, position = depth + 1, position + 2
        elif text.startswith("*/", position):
            depth, position = depth - 1, position + 2
            if depth == 0:
                return position
        else:
            position += 1
    raise CheckError(f"{where}: a block comment is never closed")


def is_punct(tokens: list[Token], index: int, text: str) -> bool:
    return 0 <= index < len(tokens) and tokens[index].kind == "punct" and tokens[index].text == text


def is_ident(tokens: list[Token], index: int, text: str | None = None) -> bool:
    return (
        0 <= index < len(tokens)
        and tokens[index].kind == "ident"
        and (text is None or tokens[index].text == text)
    )


def matching_close(tokens: list[Token], open_index: int) -> int:
    """The index of the bracket closing the one at `open_index`."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    depth = 0
    for index in range(open_index, len(tokens)):
        token = tokens[index]
        if token.kind != "punct":
            continue
        if token.text in pairs:
            depth += 1
        elif token.text in pairs.values():
            depth -= 1
            if depth == 0:
                return index
    return len(tokens) - 1


def item_end(tokens: list[Token], start: int) -> int:
    """The index after the item starting at `start` (`...;` or `... { }`)."""
    depth = 0
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.kind != "punct":
            continue
        if token.text in "([":
            depth += 1
        elif token.text in ")]":
            depth -= 1
        elif token.text == ";" and depth == 0:
            return index + 1
        elif token.text == "{" and depth == 0:
            return matching_close(tokens, index) + 1
    return len(tokens)


def without_test_items(tokens: list[Token]) -> list[Token]:
    """The tokens with every `#[cfg(test)]` item (test modules) left out."""
    kept: list[Token] = []
    index = 0
    attribute = ["#", "[", "cfg", "(", "test", ")", "]"]
    while index < len(tokens):
        window = [token.text for token in tokens[index : index + len(attribute)]]
        if window == attribute:
            index = item_end(tokens, index + len(attribute))
            continue
        kept.append(tokens[index])
        index += 1
    return kept


def metric_type_in(tokens: list[Token]) -> str | None:
    """The metric type a closure's body constructs, if it constructs one."""
    for token in tokens:
        if token.kind == "ident" and token.text in METRIC_TYPES:
            return token.text
    return None


def closures(tokens: list[Token]) -> dict[str, str]:
    """Local closures that construct a metric from their first argument:
    `let counter = |name: &str, help: &str| IntCounter::new(name, help)...`
    maps `counter` to `IntCounter`."""
    found: dict[str, str] = {}
    for index in range(len(tokens) - 3):
        if (
            is_ident(tokens, index, "let")
            and is_ident(tokens, index + 1)
            and is_punct(tokens, index + 2, "=")
            and is_punct(tokens, index + 3, "|")
        ):
            end = item_end(tokens, index)
            metric_type = metric_type_in(tokens[index + 4 : end])
            if metric_type is not None:
                found[tokens[index + 1].text] = metric_type
    return found


def enclosing_call(tokens: list[Token], index: int) -> int | None:
    """The index of the `(` of the call whose argument list holds `index`."""
    depth = 0
    for position in range(index - 1, -1, -1):
        token = tokens[position]
        if token.kind != "punct":
            continue
        if token.text in ")]}":
            depth += 1
        elif token.text in "([{":
            if depth == 0:
                return position if token.text == "(" else None
            depth -= 1
    return None


def called_type(tokens: list[Token], open_index: int) -> str | None:
    """`Type` for a call `Type::new(` or `Type::with_opts(` opening at
    `open_index`."""
    if (
        is_ident(tokens, open_index - 1)
        and tokens[open_index - 1].text in ("new", "with_opts")
        and is_punct(tokens, open_index - 2, ":")
        and is_punct(tokens, open_index - 3, ":")
        and is_ident(tokens, open_index - 4)
    ):
        return tokens[open_index - 4].text
    return None


def label_list(tokens: list[Token], start: int, end: int, where: str) -> tuple[str, ...]:
    """The strings of the first `&[...]` between `start` and `end`."""
    for index in range(start, end):
        if is_punct(tokens, index, "&") and is_punct(tokens, index + 1, "["):
            close = matching_close(tokens, index + 1)
            labels = []
            for token in tokens[index + 2 : close]:
                if token.kind == "string":
                    labels.append(token.text)
                elif not (token.kind == "punct" and token.text == ","):
                    raise CheckError(f"{where}: the label list holds more than string literals")
            return tuple(labels)
    raise CheckError(f"{where}: a labelled metric without a literal `&[...]` label list")


def constructed_metric(
    tokens: list[Token], index: int, local_closures: dict[str, str], where: str
) -> tuple[str, tuple[str, ...]] | None:
    """The (type, labels) of the metric whose name is the string at
    `index`, if that string is a metric constructor's name argument."""
    if not is_punct(tokens, index - 1, "("):
        return None
    callee = tokens[index - 2] if index >= 2 else None
    if callee is None:
        return None
    if is_punct(tokens, index - 2, "!") and is_ident(tokens, index - 3):
        if tokens[index - 3].text.startswith("register_"):
            raise CheckError(
                f"{where}: `{tokens[index - 3].text}!` registers a metric this check cannot "
                "read; construct it as gateway/src/metrics.rs does, or teach deploy/check.py"
            )
        return None
    if callee.kind != "ident":
        return None
    is_path = is_punct(tokens, index - 3, ":") and is_punct(tokens, index - 4, ":")
    if callee.text in local_closures and not is_path:
        metric_type = local_closures[callee.text]
        if metric_type.endswith("Vec"):
            raise CheckError(
                f"{where}: closure `{callee.text}` builds a labelled {metric_type}; "
                "deploy/check.py reads labels only at direct constructor calls"
            )
        return metric_type, ()
    own_type = called_type(tokens, index - 1)
    if own_type in ("Opts", "HistogramOpts"):
        outer = enclosing_call(tokens, index - 5)
        outer_type = called_type(tokens, outer) if outer is not None else None
        if outer_type not in METRIC_TYPES:
            raise CheckError(
                f"{where}: {own_type}::new names a metric outside a constructor this check "
                "knows (IntCounterVec::new(Opts::new(..), &[..]) and the like); teach "
                "deploy/check.py"
            )
        assert outer is not None
        close = matching_close(tokens, outer)
        if outer_type.endswith("Vec"):
            return outer_type, label_list(tokens, index, close, where)
        return outer_type, ()
    if own_type in METRIC_TYPES:
        if own_type.endswith("Vec"):
            raise CheckError(f"{where}: {own_type}::new takes Opts, not a name")
        return own_type, ()
    return None


def exported_metrics(sources: Path) -> dict[str, Metric]:
    """Every `dbytes_*` metric the gateway and the provider daemon
    construct, by name."""
    metrics: dict[str, Metric] = {}
    files = sorted(path for folder in SOURCE_DIRS for path in (sources / folder).rglob("*.rs"))
    if not files:
        raise CheckError(f"no Rust sources under {sources} ({', '.join(SOURCE_DIRS)})")
    for path in files:
        relative = path.relative_to(sources).as_posix()
        tokens = without_test_items(rust_tokens(path.read_text(encoding="utf-8"), relative))
        local_closures = closures(tokens)
        for index, token in enumerate(tokens):
            if token.kind != "string" or not token.text.startswith("dbytes_"):
                continue
            where = f"{relative}:{token.line}"
            found = constructed_metric(tokens, index, local_closures, where)
            if found is None:
                continue
            metric_type, labels = found
            metric = Metric(token.text, METRIC_TYPES[metric_type], labels, where)
            known = metrics.get(metric.name)
            if known is not None and (known.kind, known.labels) != (metric.kind, metric.labels):
                raise CheckError(
                    f"{where}: {metric.name} is a {metric.kind} with labels {metric.labels}, "
                    f"but {known.where} makes it a {known.kind} with labels {known.labels}"
                )
            metrics.setdefault(metric.name, metric)
    if not metrics:
        raise CheckError(f"no dbytes_* metric constructor found under {sources}")
    return metrics


# --- PromQL -------------------------------------------------------------

PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
METRIC_NAME = re.compile(r"(?<![A-Za-z0-9_:$])(dbytes_[A-Za-z0-9_:]*)")
MATCHER = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*,?"""
)
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass
class Selector:
    """One `dbytes_*` name in an expression and its matchers."""

    name: str
    matchers: dict[str, str]  # label -> the matcher's operator and value


def selectors(expr: str, where: str) -> list[Selector]:
    """The `dbytes_*` selectors of a PromQL expression."""
    # Blank out string literals (keeping their length) so a label value
    # never reads as a metric name.
    masked = PROMQL_STRING.sub(lambda match: " " * len(match.group()), expr)
    found = []
    for match in METRIC_NAME.finditer(masked):
        matchers: dict[str, str] = {}
        rest = match.end()
        while rest < len(masked) and masked[rest] == " ":
            rest += 1
        if rest < len(masked) and masked[rest] == "{":
            close = masked.find("}", rest)
            if close < 0:
                raise CheckError(f"{where}: an unclosed {{ after {match.group(1)}")
            inside = expr[rest + 1 : close]
            position = 0
            while position < len(inside):
                matcher = MATCHER.match(inside, position)
                if matcher is None or matcher.end() == position:
                    if inside[position:].strip():
                        raise CheckError(
                            f"{where}: cannot read the matchers of {match.group(1)}: {inside!r}"
                        )
                    break
                matchers[matcher.group(1)] = matcher.group(2) + matcher.group(3)
                position = matcher.end()
        found.append(Selector(match.group(1), matchers))
    return found


def resolve(
    name: str, metrics: dict[str, Metric]
) -> tuple[Metric | None, str | None]:
    """The exported metric a series name belongs to, with the histogram
    series suffix it carries; or (None, why not)."""
    metric = metrics.get(name)
    if metric is not None:
        if metric.kind == "histogram":
            return None, (
                f"{name} is a histogram: query {name}_bucket, _sum or _count "
                f"({metric.where})"
            )
        return metric, None
    for suffix in HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and base in metrics:
            if metrics[base].kind != "histogram":
                return None, f"{base} is a {metrics[base].kind}, it has no {suffix} series"
            return metrics[base], None
    return None, f"{name} is not a metric the code exports"


def check_expr(
    expr: str,
    where: str,
    metrics: dict[str, Metric],
    findings: Findings,
    legend: str = "",
    instance_filter: bool = False,
) -> set[str]:
    """Checks one PromQL expression; returns the metric names it uses."""
    used: set[str] = set()
    if not expr.strip():
        findings.add(where, "an empty PromQL expression")
        return used
    allowed = set(TARGET_LABELS)
    try:
        found = selectors(expr, where)
    except CheckError as err:
        findings.add(where, str(err))
        return used
    for selector in found:
        metric, why_not = resolve(selector.name, metrics)
        if metric is None:
            findings.add(where, why_not or selector.name)
            continue
        used.add(metric.name)
        labels = set(metric.labels) | TARGET_LABELS
        if selector.name.endswith("_bucket") and metric.kind == "histogram":
            labels.add("le")
        allowed |= labels
        for label in selector.matchers:
            if label not in labels:
                findings.add(
                    where,
                    f"{selector.name} has no label {label!r} (it has {sorted(labels)}; "
                    f"{metric.where})",
                )
        if instance_filter and selector.matchers.get("instance") != '=~"$instance"':
            findings.add(where, f'{selector.name} is not filtered by instance=~"$instance"')
    masked = PROMQL_STRING.sub(lambda match: " " * len(match.group()), expr)
    for grouping in GROUPING.finditer(masked):
        for label in filter(None, (part.strip() for part in grouping.group(2).split(","))):
            if found and label not in allowed:
                findings.add(
                    where,
                    f"`{grouping.group(1)} ({label})`: no metric of this expression has "
                    f"label {label!r}",
                )
    for label in LEGEND_LABEL.findall(legend):
        if label not in allowed:
            findings.add(where, f"the legend's {{{{{label}}}}} is no label of this expression")
    return used


# --- Grafana dashboards -------------------------------------------------

DATASOURCE = "${datasource}"


def panels_of(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def check_dashboard(path: Path, metrics: dict[str, Metric], findings: Findings) -> set[str]:
    name = path.relative_to(REPO).as_posix()
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        findings.add(name, f"not valid JSON: {err}")
        return set()
    used: set[str] = set()
    if not dashboard.get("uid") or not dashboard.get("title"):
        findings.add(name, "a dashboard needs a uid and a title")
    if not isinstance(dashboard.get("schemaVersion"), int):
        findings.add(name, "no schemaVersion")
    templating = dashboard.get("templating", {}).get("list", [])
    variables = {variable.get("name"): variable for variable in templating}
    datasource = variables.get("datasource", {})
    if datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
        findings.add(name, "no `datasource` variable of type datasource over prometheus")
    instance = variables.get("instance")
    if instance is None:
        findings.add(name, "no `instance` variable")
    else:
        query = instance.get("query")
        query = query.get("query", "") if isinstance(query, dict) else str(query or "")
        where = f"{name} variable instance"
        if instance.get("datasource", {}).get("uid") != DATASOURCE:
            findings.add(where, f"its datasource is not {DATASOURCE}")
        match = re.fullmatch(r"label_values\((.*),\s*instance\)", query.strip())
        if match is None:
            findings.add(where, f"query {query!r} is not label_values(<metric>, instance)")
        else:
            used |= check_expr(match.group(1), where, metrics, findings)
    ids: set[int] = set()
    panels = panels_of(dashboard)
    if not panels:
        findings.add(name, "no panels")
    for panel in panels:
        where = f"{name} panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids:
            findings.add(where, "a duplicate panel id")
        ids.add(panel.get("id"))
        if not panel.get("gridPos"):
            findings.add(where, "no gridPos")
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != DATASOURCE:
            findings.add(where, f"its datasource is not {DATASOURCE}")
        targets = panel.get("targets") or []
        if not targets:
            findings.add(where, "no target")
        for target in targets:
            target_where = f"{where} target {target.get('refId')}"
            if target.get("datasource", {}).get("uid") != DATASOURCE:
                findings.add(target_where, f"its datasource is not {DATASOURCE}")
            expr = target.get("expr", "")
            if not isinstance(expr, str) or not METRIC_NAME.search(expr):
                findings.add(target_where, "no PromQL expression over a dbytes_* metric")
                continue
            findings.dashboard_queries.append((target_where, expr))
            used |= check_expr(
                expr,
                target_where,
                metrics,
                findings,
                legend=target.get("legendFormat", ""),
                instance_filter=True,
            )
    return used


# --- Prometheus rule files ----------------------------------------------

YAML_KEY = re.compile(r"^(?P<indent>\s*)(?:-\s+)?(?P<key>expr|series):\s*(?P<value>.*?)\s*$")


def yaml_scalar(value: str, where: str) -> str:
    """A one-line YAML scalar as these files write them."""
    if value.startswith("'"):
        if not value.endswith("'") or len(value) < 2:
            raise CheckError(f"{where}: an unclosed single-quoted string")
        return value[1:-1].replace("''", "'")
    if value.startswith('"'):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise CheckError(f"{where}: a double-quoted string JSON cannot read: {err}") from err
    return value


def rule_exprs(path: Path) -> list[tuple[str, str, str]]:
    """(key, PromQL, file:line) of every `expr:` and `series:` in a rule
    or rule-test file: one-line scalars or `|`/`>` blocks."""
    name = path.relative_to(REPO).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    index = 0
    while index < len(lines):
        match = YAML_KEY.match(lines[index])
        where = f"{name}:{index + 1}"
        index += 1
        if match is None:
            continue
        value = match.group("value")
        if value.split(" #")[0].strip() in ("|", "|-", ">", ">-"):
            indent = len(match.group("indent"))
            block = []
            while index < len(lines) and (
                not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
            ):
                block.append(lines[index].strip())
                index += 1
            value = "\n".join(block)
        else:
            value = yaml_scalar(value, where)
        found.append((match.group("key"), value, where))
    return found


def check_rules(path: Path, metrics: dict[str, Metric], findings: Findings) -> set[str]:
    used: set[str] = set()
    exprs = rule_exprs(path)
    if not exprs:
        findings.add(path.relative_to(REPO).as_posix(), "no expr found")
    for key, expr, where in exprs:
        if key == "series":
            # An input series of a unit test: a name and its labels.
            if not METRIC_NAME.match(expr.strip()):
                continue
        used |= check_expr(expr, where, metrics, findings)
    return used


def check_scrape_jobs(findings: Findings) -> None:
    """The scrape jobs are the ones the target-down alert watches."""
    name = SCRAPE_CONFIG.relative_to(REPO).as_posix()
    jobs = re.findall(r"^\s*-\s*job_name:\s*['\"]?([^'\"\s]+)", SCRAPE_CONFIG.read_text(), re.M)
    if not jobs:
        findings.add(name, "no scrape job")
    watched = re.search(r'up\{job=~"([^"]+)"\}', ALERTS.read_text())
    if watched is None:
        findings.add(ALERTS.relative_to(REPO).as_posix(), 'no alert on up{job=~"..."}')
        return
    for job in jobs:
        if not re.fullmatch(watched.group(1), job):
            findings.add(
                name, f"job {job!r} is not watched by the alert on up{{job=~{watched.group(1)!r}}}"
            )


# --- promtool -----------------------------------------------------------


# Grafana's variables, replaced by a value of their kind so that promtool
# can parse the dashboards' queries.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
}


def dashboard_rules(queries: list[tuple[str, str]]) -> str:
    """A rule file with each dashboard query as a recording rule (its group
    named for the panel), which `promtool check rules` parses."""
    lines = ["groups:"]
    for index, (where, expr) in enumerate(queries):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        if "$" in expr:
            raise CheckError(f"{where}: a Grafana variable deploy/check.py does not know: {expr}")
        lines += [
            f"  - name: {json.dumps(where)}",
            "    rules:",
            f"      - record: dashboard_query_{index}",
            f"        expr: {json.dumps(expr)}",
        ]
    return "\n".join(lines) + "\n"


def run_promtool(findings: Findings) -> str:
    """Runs promtool's checks; returns what to say about them."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            findings.add(
                "promtool",
                "not installed, and CI needs it: apt-get install prometheus (Debian) "
                "or put promtool on PATH",
            )
            return "promtool: MISSING"
        banner = "=" * 72
        print(
            f"{banner}\nSKIPPED: promtool is not installed, so the dashboards' queries were NOT\n"
            "parsed, and the alert rules and the scrape config NOT checked or unit-tested.\n"
            "Install it (Debian: apt-get install prometheus) and run\n"
            "`make check-observability` again; CI requires it.\n"
            f"{banner}",
            file=sys.stderr,
        )
        return "promtool: SKIPPED (not installed)"
    commands = [
        [promtool, "check", "config", SCRAPE_CONFIG.name],
        [promtool, "check", "rules", ALERTS.name],
        [promtool, "test", "rules", ALERT_TESTS.name],
    ]
    with tempfile.TemporaryDirectory(prefix="dbytes-check-") as scratch:
        queries = Path(scratch) / "dashboard-queries.yml"
        try:
            queries.write_text(dashboard_rules(findings.dashboard_queries), encoding="utf-8")
        except CheckError as err:
            findings.add("grafana/dashboards", str(err))
        else:
            # Quiet when it passes: it is the dashboards' PromQL, not a file to show.
            result = subprocess.run(
                [promtool, "check", "rules", str(queries)],
                capture_output=True,
                text=True,
                check=False,
            )
            print(
                f"$ promtool check rules <the {len(findings.dashboard_queries)} dashboard "
                f"queries>: {'SUCCESS' if result.returncode == 0 else 'FAILED'}",
                flush=True,
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip()
                print("  " + output.replace("\n", "\n  "), flush=True)
                findings.add("promtool", "a dashboard query does not parse (see above)")
        for command in commands:
            shown = " ".join(["promtool", *command[1:]])
            print(f"$ (cd deploy/prometheus && {shown})", flush=True)
            result = subprocess.run(
                command, cwd=PROMETHEUS, capture_output=True, text=True, check=False
            )
            output = (result.stdout + result.stderr).strip()
            if output:
                print("  " + output.replace("\n", "\n  "), flush=True)
            if result.returncode != 0:
                findings.add("promtool", f"`{shown}` failed (exit {result.returncode})")
    return "promtool: dashboard queries parsed, scrape config, rules and rule tests checked"


# --- main ---------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sources",
        type=Path,
        default=REPO,
        help="the checkout whose gateway/src and mesh/src are read (default: this one)",
    )
    parser.add_argument(
        "--no-promtool", action="store_true", help="leave out promtool (the Python checks only)"
    )
    args = parser.parse_args()
    findings = Findings()
    try:
        metrics = exported_metrics(args.sources.resolve())
    except CheckError as err:
        print(f"check-observability: {err}", file=sys.stderr)
        return 1
    used: set[str] = set()
    dashboards = sorted(DASHBOARDS.glob("*.json"))
    if not dashboards:
        findings.add("grafana/dashboards", "no dashboard")
    for path in dashboards:
        used |= check_dashboard(path, metrics, findings)
    for path in (ALERTS, ALERT_TESTS):
        used |= check_rules(path, metrics, findings)
    check_scrape_jobs(findings)
    promtool = "promtool: left out (--no-promtool)" if args.no_promtool else run_promtool(findings)
    if findings.errors:
        print("check-observability: FAILED", file=sys.stderr)
        for error in findings.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    unused = sorted(set(metrics) - used)
    print(
        f"check-observability: {len(dashboards)} dashboards and the alert rules use "
        f"{len(used)} of the {len(metrics)} metrics the code exports, all of them by "
        f"their exported names and labels; {promtool}."
    )
    if unused:
        print(f"  not shown anywhere: {', '.join(unused)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
