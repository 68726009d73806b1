"""deploy/aws (Terraform) checked offline: no terraform binary, no AWS account.

Oracles: python-hcl2 (HashiCorp's HCL2 grammar) parses every .tf file; the references are resolved
against the blocks the parser found (a reference checker that is itself tested on broken modules
here); the CloudWatch alarms are compared with deploy/prometheus/alerts.yml (names, thresholds,
durations); deploy.sh is run with and without a terraform on PATH.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
AWS = ROOT / "deploy" / "aws"
MODULE = AWS / "modules" / "aiots"
EXAMPLE = AWS / "examples" / "production"
TF_DIRS = (MODULE, EXAMPLE)
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

# ----------------------------------------------------------------------------- HCL helpers


def unquote(v: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and block labels: strip them."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


@functools.lru_cache(maxsize=16)
def load_dir(d: Path) -> dict[str, list[Any]]:
    """All top-level blocks of the .tf files of one module, by block type (parsed once per session;
    callers must not modify the result)."""
    out: dict[str, list[Any]] = {}
    for f in sorted(d.glob("*.tf")):
        with f.open() as fh:
            for kind, blocks in hcl2.load(fh).items():
                out.setdefault(kind, []).extend(blocks)
    return out


def labels(blocks: list[dict[str, Any]]) -> list[str]:
    return [unquote(k) for b in blocks for k in b if not k.startswith("__")]


def locals_of(mod: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: v for b in mod.get("locals", []) for k, v in b.items() if not k.startswith("__")}


def typed_labels(blocks: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(type, name) of resource/data blocks."""
    return {(unquote(t), unquote(n)) for b in blocks for t, inner in b.items() for n in inner if not n.startswith("__")}


def strings(node: Any) -> list[str]:
    """Every string value in a parsed block (expressions come as "${...}", literals quoted)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() if not k.startswith("__") for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


_REF = re.compile(
    r"(?<![\w.])(?:(var|local)\.(\w+)|(module)\.(\w+)(?:\.(\w+))?|(data)\.(\w+)\.(\w+)|((?:aws|random)_\w+)\.(\w+))"
)


def _match_brace(t: str, i: int) -> int:
    """Index of the "}" closing the "{" or "${" just before ``i`` (strings inside are skipped)."""
    depth = 1
    while i < len(t):
        c = t[i]
        if c == '"':
            i = _skip_string(t, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(t)


def _skip_string(t: str, i: int) -> int:
    """Index after the string literal starting at ``t[i] == '"'`` (escapes and ${...} inside)."""
    i += 1
    while i < len(t):
        if t[i] == "\\":
            i += 2
        elif t.startswith("${", i):
            i = _match_brace(t, i + 2) + 1
        elif t[i] == '"':
            return i + 1
        else:
            i += 1
    return len(t)


def _template(t: str) -> str:
    """The expression code of a string template: its ${...} parts; the literal text is dropped."""
    out, i = [], 0
    while i < len(t):
        if t.startswith("${", i):
            j = _match_brace(t, i + 2)
            out.append(_expression(t[i + 2 : j]))
            i = j + 1
        else:
            i += 1
    return " ".join(out)


def _expression(e: str) -> str:
    """Expression code with every string literal's text blanked (its ${...} parts kept)."""
    out, i = [], 0
    while i < len(e):
        if e[i] == '"':
            j = _skip_string(e, i)
            out.append(' "" ' + _template(e[i + 1 : j - 1]) + " ")
            i = j
        else:
            out.append(e[i])
            i += 1
    return "".join(out)


def code_of(value: str) -> str:
    """The expression code of one value as python-hcl2 returns it: "${expr}", a quoted template,
    a heredoc, or a bare keyword/type."""
    if value.startswith("${") and value.endswith("}") and _match_brace(value, 2) == len(value) - 1:
        return _expression(value[2:-1])
    if value.startswith('"'):
        return _template(value[1:-1])
    if value.startswith("<<"):
        return _template(value)
    return _expression(value)


def references(text: str) -> set[tuple[str, ...]]:
    """References in one parsed value: ("var", x), ("local", x), ("module", m, output|""),
    ("data", type, name), ("resource", type, name). Literal text never counts."""
    out: set[tuple[str, ...]] = set()
    for m in _REF.finditer(code_of(text)):
        if m.group(1):
            out.add((m.group(1), m.group(2)))
        elif m.group(3):
            out.add(("module", m.group(4), m.group(5) or ""))
        elif m.group(6):
            out.add(("data", m.group(7), m.group(8)))
        else:
            out.add(("resource", m.group(9), m.group(10)))
    return out


def test_code_of_keeps_expressions_and_drops_literal_text() -> None:
    assert references('"aws_s3_bucket.x var.y"') == set()
    assert references('"${var.a}-aws_s3_bucket.x"') == {("var", "a")}
    assert references('${merge(local.t, {Name = "${var.n}-x local.no"})}') == {("local", "t"), ("var", "n")}
    assert references('${jsonencode({for n in local.u : n => "${n}.${local.d}"})}') == {("local", "u"), ("local", "d")}
    assert references('"${join(",", [for s in var.l : "\\"${s}\\""])}"') == {("var", "l")}


@dataclass
class ModuleReport:
    problems: list[str] = field(default_factory=list)
    used_vars: set[str] = field(default_factory=set)


def check_module(d: Path) -> ModuleReport:
    """Every var./local./module./data./resource reference of the module at ``d`` resolves; every
    module call passes only declared inputs and all required ones, and reads only declared outputs."""
    mod = load_dir(d)
    rep = ModuleReport()
    variables = set(labels(mod.get("variable", [])))
    local_names = set(locals_of(mod))
    resources = typed_labels(mod.get("resource", []))
    data = typed_labels(mod.get("data", []))
    calls = {unquote(k): v for b in mod.get("module", []) for k, v in b.items() if not k.startswith("__")}
    child_outputs: dict[str, set[str]] = {}
    for name, body in calls.items():
        src = d / unquote(body["source"])
        if not src.is_dir():
            rep.problems.append(f"module {name}: source {src} is not a directory")
            continue
        child = load_dir(src)
        child_outputs[name] = set(labels(child.get("output", [])))
        inputs = child_vars(child)
        passed = {k for k in body if not k.startswith("__")} - {"source", "version", "providers", "count", "for_each"}
        for k in sorted(passed - set(inputs)):
            rep.problems.append(f"module {name}: input {k} is not a variable of {src}")
        for k in sorted(set(inputs) - passed):
            if not inputs[k]:
                rep.problems.append(f"module {name}: required input {k} not passed")
    for text in strings(mod):
        for ref in references(text):
            kind = ref[0]
            if kind == "var":
                rep.used_vars.add(ref[1])
                if ref[1] not in variables:
                    rep.problems.append(f"var.{ref[1]} is not declared")
            elif kind == "local" and ref[1] not in local_names:
                rep.problems.append(f"local.{ref[1]} is not defined")
            elif kind == "module":
                if ref[1] not in calls:
                    rep.problems.append(f"module.{ref[1]} is not called")
                elif ref[2] and ref[2] not in child_outputs.get(ref[1], set()):
                    rep.problems.append(f"module.{ref[1]}.{ref[2]} is not an output of that module")
            elif kind == "data" and (ref[1], ref[2]) not in data:
                rep.problems.append(f"data.{ref[1]}.{ref[2]} is not declared")
            elif kind == "resource" and (ref[1], ref[2]) not in resources:
                rep.problems.append(f"{ref[1]}.{ref[2]} is not declared")
    for v in sorted(variables - rep.used_vars):
        rep.problems.append(f"variable {v} is declared but never used")
    return rep


def child_vars(mod: dict[str, list[Any]]) -> dict[str, bool]:
    """Variables of a module -> whether it is optional (has a default, null included)."""
    return {unquote(k): "default" in v for b in mod.get("variable", []) for k, v in b.items() if not k.startswith("__")}


# ----------------------------------------------------------------------------- parsing and references


@pytest.mark.parametrize("tf", sorted(AWS.rglob("*.tf")), ids=lambda p: str(p.relative_to(AWS)))
def test_every_tf_file_parses(tf: Path) -> None:
    with tf.open() as fh:
        doc = hcl2.load(fh)
    assert doc, f"{tf} is empty"


def test_tf_files_found() -> None:
    assert {p.name for p in MODULE.glob("*.tf")} >= {"variables.tf", "outputs.tf", "ecs.tf", "alarms.tf", "versions.tf"}
    assert {p.name for p in EXAMPLE.glob("*.tf")} >= {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}


@pytest.mark.parametrize("d", TF_DIRS, ids=lambda p: p.name)
def test_every_reference_resolves(d: Path) -> None:
    rep = check_module(d)
    assert not rep.problems, "\n".join(rep.problems)


def _write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return tmp


def test_reference_checker_finds_what_is_broken(tmp_path: Path) -> None:
    """The checker itself: each kind of dangling reference is reported, a correct module is clean."""
    good = _write(
        tmp_path / "good",
        {
            "main.tf": 'variable "a" { type = string }\n'
            'locals { b = "${var.a}-x" }\n'
            'resource "aws_s3_bucket" "c" { bucket = local.b }\n'
            'data "aws_region" "r" {}\n'
            'output "o" { value = "${aws_s3_bucket.c.id} ${data.aws_region.r.name} var.not_a_ref" }\n',
        },
    )
    assert check_module(good).problems == []
    bad = _write(
        tmp_path / "bad",
        {
            "main.tf": 'variable "unused" { type = string }\n'
            "locals { b = var.missing }\n"
            'resource "aws_s3_bucket" "c" { bucket = local.nope }\n'
            'output "o" { value = [aws_s3_bucket.d.id, data.aws_region.r.name, module.m.x] }\n',
        },
    )
    problems = set(check_module(bad).problems)
    assert problems == {
        "var.missing is not declared",
        "local.nope is not defined",
        "aws_s3_bucket.d is not declared",
        "data.aws_region.r is not declared",
        "module.m is not called",
        "variable unused is declared but never used",
    }
    root = _write(
        tmp_path / "root",
        {
            "main.tf": 'module "m" {\n  source = "../good"\n  z = 1\n}\noutput "o" { value = module.m.nope }\n',
        },
    )
    assert set(check_module(root).problems) == {
        "module m: input z is not a variable of " + str(root / "../good"),
        "module m: required input a not passed",
        "module.m.nope is not an output of that module",
    }


def test_example_passes_every_required_input_and_module_has_docs() -> None:
    mod = load_dir(MODULE)
    for b in mod["variable"] + mod["output"]:
        for name, body in b.items():
            assert unquote(body.get("description", "")).strip(), f"{name}: no description"
    assert (AWS / "README.md").is_file() and (EXAMPLE / "terraform.tfvars.example").is_file()


# ----------------------------------------------------------------------------- security properties


def _blocks(block: str, kind: str) -> dict[str, dict[str, Any]]:
    """The module's ``block`` ("resource" or "data") blocks of type ``kind``, by name."""
    mod = load_dir(MODULE)
    return {unquote(n): body for b in mod[block] for t, inner in b.items() if unquote(t) == kind
            for n, body in inner.items() if not n.startswith("__")}  # fmt: skip


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return _blocks("resource", kind)


def test_data_stores_private_encrypted_and_reachable_only_from_services() -> None:
    db = _resources("aws_db_instance")["this"]
    assert db["publicly_accessible"] is False and db["storage_encrypted"] is True and db["multi_az"] is True
    redis = _resources("aws_elasticache_replication_group")["this"]
    assert redis["transit_encryption_enabled"] is True and redis["at_rest_encryption_enabled"] is True
    ingress = _resources("aws_vpc_security_group_ingress_rule")
    # who may open a connection to each security group
    sources: dict[str, set[str]] = {}
    for rule in ingress.values():
        target = re.search(r"aws_security_group\.(\w+)\.id", rule["security_group_id"])
        assert target
        src = rule.get("referenced_security_group_id") or rule.get("cidr_ipv4")
        m = re.search(r"aws_security_group\.(\w+)\.id", src or "")
        sources.setdefault(target.group(1), set()).add(m.group(1) if m else f"cidr:{src}")
    assert sources["db"] == {"services"} and sources["redis"] == {"services"}
    assert sources["services"] == {"gateway"} and sources["gateway"] == {"alb"}
    assert all(s.startswith("cidr:") for s in sources["alb"])
    assert set(sources) == {"db", "redis", "services", "gateway", "alb"}


def test_load_balancer_terminates_tls_in_front_of_the_gateway_only() -> None:
    listeners = _resources("aws_lb_listener")
    assert unquote(listeners["https"]["protocol"]) == "HTTPS"
    assert "var.acm_certificate_arn" in listeners["https"]["certificate_arn"]
    assert "TLS13" in unquote(listeners["https"]["ssl_policy"])
    assert unquote(listeners["http_redirect"]["default_action"][0]["type"]) == "redirect"
    assert set(_resources("aws_lb_target_group")) == {"gateway"}
    services = _resources("aws_ecs_service")
    assert "load_balancer" in services["gateway"] and "load_balancer" not in services["service"]
    for s in services.values():
        assert s["network_configuration"][0]["assign_public_ip"] is False
        assert "aws_subnet.private" in s["network_configuration"][0]["subnets"]


def test_secrets_come_from_secrets_manager_and_roles_read_only_their_own() -> None:
    mod = load_dir(MODULE)
    loc = locals_of(mod)
    arns = {k: v for k, v in loc["secret_arns"].items()}
    needed = {unquote(s) for v in loc["service_secrets"].values() for s in v} | {
        unquote(s) for s in loc["gateway_secrets"]
    }
    assert needed == set(arns)
    for name, expr in arns.items():
        assert "aws_secretsmanager_secret." in expr or "var.external_database_url_secret_arn" in expr, name
    policy = _blocks("data", "aws_iam_policy_document")["execution"]
    stmts = {unquote(s["sid"]): s for s in policy["statement"]}
    assert (
        "local.secret_arns[s]" in stmts["ReadOwnSecrets"]["resources"]
        and "each.value" in stmts["ReadOwnSecrets"]["resources"]
    )
    star = [sid for sid, s in stmts.items() if s["resources"] == ['"*"']]
    assert star == ["EcrAuthToken"]  # the one action AWS offers only on "*"
    ecs = (MODULE / "ecs.tf").read_text()
    assert ecs.count("secrets     = [for s in local.service_secrets[each.key]") == 1


# ----------------------------------------------------------------------------- alarms mirror alert rules


def _duration_s(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text))


def _prometheus_rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


def _expected(rule: dict[str, Any]) -> tuple[str, float, int]:
    """(comparison, threshold, seconds) a CloudWatch alarm needs to mirror a Prometheus rule."""
    expr = " ".join(rule["expr"].split())
    m = re.search(r"(==|>|<)\s*([0-9.]+)\s*$", expr)
    assert m, f"{rule['alert']}: no trailing comparison in {expr!r}"
    op, value = m.group(1), float(m.group(2))
    if op == "==":  # `up == 0`: no running task, i.e. fewer than 1
        assert value == 0
        op, value = "<", 1.0
    windows = [_duration_s(w) for w in re.findall(r"\[(\w+)\]", expr)]
    seconds = _duration_s(rule["for"]) if "for" in rule else max(windows)
    return {">": "GreaterThanThreshold", "<": "LessThanThreshold"}[op], value, seconds


def test_duration_and_threshold_oracle() -> None:
    assert _expected({"alert": "x", "expr": "a > 0.05", "for": "5m"}) == ("GreaterThanThreshold", 0.05, 300)
    assert _expected({"alert": "x", "expr": "sum(increase(a[10m])) > 0"}) == ("GreaterThanThreshold", 0.0, 600)
    assert _expected({"alert": "x", "expr": "up == 0", "for": "1m"}) == ("LessThanThreshold", 1.0, 60)


def test_every_prometheus_alert_has_a_cloudwatch_alarm_with_its_threshold_and_duration() -> None:
    rules = _prometheus_rules()
    alarms = locals_of(load_dir(MODULE))["alarm_rules"]
    assert set(alarms) == set(rules), (
        f"missing: {sorted(set(rules) - set(alarms))}, extra: {sorted(set(alarms) - set(rules))}"
    )
    for name, rule in rules.items():
        a = alarms[name]
        comparison, threshold, seconds = _expected(rule)
        assert unquote(a["comparison"]) == comparison, name
        assert float(a["threshold"]) == threshold, name
        assert a["period"] * a["evaluation_periods"] == seconds, name
        assert unquote(a["severity"]) == rule["labels"]["severity"], name
        if unquote(a["kind"]).startswith("emf"):
            metrics = {unquote(a.get(k, "")) for k in ("metric", "numerator", "denominator")} - {""}
            for metric in metrics:  # the metric the rule is about, exported by the sidecar
                assert metric in rule["expr"], (name, metric)
                assert f"^{metric}$" in (MODULE / "ecs.tf").read_text(), (name, metric)
    # every kind of alarm has a resource that creates it
    alarms_tf = (MODULE / "alarms.tf").read_text()
    for kind in {unquote(a["kind"]) for a in alarms.values()}:
        assert re.search(rf'resource "aws_cloudwatch_metric_alarm" "{kind}"', alarms_tf), kind


# ----------------------------------------------------------------------------- deploy.sh

DEPLOY_SH = AWS / "deploy.sh"


def _run_deploy(args: list[str], path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env["PATH"] = path
    return subprocess.run(["bash", str(DEPLOY_SH), *args], capture_output=True, text=True, env=env, timeout=30)


def test_deploy_sh_is_strict_bash_with_usage() -> None:
    text = DEPLOY_SH.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(DEPLOY_SH)], capture_output=True).returncode == 0
    bash_dir = str(Path(shutil.which("bash") or "/bin/bash").parent)
    for args in ([], ["bogus"], ["--help"]):
        out = _run_deploy(args, f"{bash_dir}:/usr/bin:/bin")
        assert "Usage: deploy/aws/deploy.sh plan|apply|status|destroy" in out.stdout + out.stderr, args
        assert out.returncode == (0 if args == ["--help"] else 2), (args, out.returncode)


def test_deploy_sh_says_when_terraform_is_missing(tmp_path: Path) -> None:
    out = _run_deploy(["plan"], "/usr/bin:/bin")
    if shutil.which("terraform", path="/usr/bin:/bin"):
        pytest.skip("a terraform is installed in /usr/bin or /bin")
    assert out.returncode == 127
    assert "terraform not found" in out.stderr and "developer.hashicorp.com" in out.stderr


def test_deploy_sh_runs_terraform_in_the_example(tmp_path: Path) -> None:
    """A fake terraform on PATH records the calls: init with the backend file, then plan/apply."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "terraform"
    fake.write_text(f'#!/usr/bin/env bash\necho "$PWD|$*" >> {log}\n')
    fake.chmod(0o755)
    backend = EXAMPLE / "backend.hcl"
    assert not backend.exists()
    out = _run_deploy(["plan"], f"{tmp_path}:/usr/bin:/bin")
    assert out.returncode == 0, out.stdout + out.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == f"{EXAMPLE}|init -input=false"
    assert calls[1].startswith(f"{EXAMPLE}|plan -input=false -out=")


# ----------------------------------------------------------------------------- limits only an apply would hit

# Fargate task sizes: CPU units -> allowed memory (MiB), from the ECS developer guide's task-size table.
FARGATE_SIZES = {
    256: {512, 1024, 2048},
    512: set(range(1024, 4096 + 1, 1024)),
    1024: set(range(2048, 8192 + 1, 1024)),
    2048: set(range(4096, 16384 + 1, 1024)),
    4096: set(range(8192, 30720 + 1, 1024)),
}


def test_default_task_sizes_are_valid_fargate_sizes() -> None:
    loc = locals_of(load_dir(MODULE))
    for name, s in [*loc["services"].items(), ("gateway", loc["gateway"])]:
        assert s["memory"] in FARGATE_SIZES.get(s["cpu"], set()), f"{name}: {s['cpu']} CPU units with {s['memory']} MiB"
        assert 1 <= s["min"] <= s["desired"] <= s["max"], name
    assert loc["services"]["ingestion"]["max"] == 1  # the single writer of the feed


def _max_len(variable: str) -> int:
    """Longest value a variable's validation regex ^[a-z][...]{m,n}$ admits."""
    body = next(b[f'"{variable}"'] for b in load_dir(MODULE)["variable"] if f'"{variable}"' in b)
    m = re.search(r"\{(\d+),(\d+)\}\$", body["validation"][0]["condition"])
    assert m, variable
    return 1 + int(m.group(2))


def test_longest_names_fit_aws_limits() -> None:
    """Names built from var.name and var.environment at their longest still fit: load balancer and
    target group 32 characters, IAM role 64, ElastiCache replication group 40."""
    prefix = "x" * _max_len("name") + "-" + "y" * _max_len("environment")
    longest_service = max([*locals_of(load_dir(MODULE))["services"], "gateway"], key=len)
    assert len(prefix) <= 32 and len(f"{prefix}-gw") <= 32
    assert len(f"{prefix}-{longest_service}-exec") <= 64 and len(f"{prefix}-rds-monitoring") <= 64
    assert len(prefix) <= 40
    text = "\n".join(p.read_text() for p in MODULE.glob("*.tf"))
    assert re.search(r'resource "aws_lb_target_group" "gateway" \{\n\s+name\s+= "\$\{local\.prefix\}-gw"', text)
