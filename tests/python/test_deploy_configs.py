"""The operating files in deploy/ stay valid and in step with the binary.

- deploy/prometheus/: `promtool check config` (which checks the rule files too), `promtool check
  rules` and the rules' unit tests (`promtool test rules alerts_test.yml`);
- deploy/grafana/kinesin-dashboard.json: parses, uses its data source and stream variables, and
  its queries are PromQL that promtool accepts;
- every metric name the alert rules and the dashboard use is one that /metrics of the binary under
  test ($KINESIN_BIN) serves;
- deploy/kubernetes/: every manifest validates against Kubernetes' schemas (kubernetes-validate,
  offline, strict), the objects fit together (Services, probes, volume, PodDisruptionBudget), the
  ConfigMap's TOML starts a real node, and its start script makes pods 0..2 form a real cluster
  from INITIAL_PEERS and pod 3 join it.

promtool comes from Debian's prometheus package (scripts/setup.sh installs it).
"""

import json
import os
import re
import shutil
import subprocess
import tomllib
import urllib.request

import kubernetes_validate
import pytest
import yaml

from conftest import Server, create_stream, kinesin_bin, poll

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
PROMETHEUS_DIR = os.path.join(DEPLOY, "prometheus")
DASHBOARD = os.path.join(DEPLOY, "grafana", "kinesin-dashboard.json")
KUBERNETES_DIR = os.path.join(DEPLOY, "kubernetes")

# The Kubernetes version the manifests are validated against (one kubernetes-validate bundles).
KUBERNETES_VERSION = "1.30.0"

# What the brief for these files asked of them: names that must stay covered.
REQUIRED_ALERT_METRICS = {
    "kinesis_WriteProvisionedThroughputExceeded_total",
    "kinesis_ReadProvisionedThroughputExceeded_total",
    "kinesis_GetRecords_IteratorAgeMilliseconds",
    "kinesis_SubscribeToShardEvent_MillisBehindLatest",
    "kinesin_node_peer_live",
    "kinesin_shards_leaderless",
    "kinesin_shards_under_replicated",
    "kinesin_disk_free_bytes",
    "kinesin_disk_total_bytes",
    "kinesin_wal_sync_seconds_sum",
    "kinesin_wal_sync_seconds_count",
}
REQUIRED_DASHBOARD_METRICS = {
    "kinesis_IncomingRecords_total",
    "kinesis_IncomingBytes_total",
    "kinesis_PutRecord_Latency_sum",
    "kinesis_PutRecord_Latency_count",
    "kinesis_PutRecords_Latency_sum",
    "kinesis_PutRecords_Latency_count",
    "kinesis_GetRecords_Latency_sum",
    "kinesis_GetRecords_Latency_count",
    "kinesis_WriteProvisionedThroughputExceeded_total",
    "kinesis_ReadProvisionedThroughputExceeded_total",
    "kinesis_GetRecords_IteratorAgeMilliseconds",
    "kinesin_node_peer_live",
    "kinesin_raft_term_changes_total",
    "kinesin_wal_syncs_total",
    "kinesin_wal_sync_waiters_total",
    "kinesin_raft_groups_quiet",
    "kinesin_raft_groups",
}
# Prometheus' own series, not the binary's.
PROMETHEUS_METRICS = {"up"}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def promtool(*args, cwd=PROMETHEUS_DIR):
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed: run scripts/setup.sh (it installs Debian's prometheus "
            "package, which has promtool)",
            pytrace=False,
        )
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def assert_promtool(*args, cwd=PROMETHEUS_DIR):
    out = promtool(*args, cwd=cwd)
    assert out.returncode == 0, f"promtool {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def alert_rules():
    rules = []
    for group in load_yaml(os.path.join(PROMETHEUS_DIR, "alerts.yml"))["groups"]:
        rules += group["rules"]
    return rules


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_panels(dashboard):
    """Every panel, including those inside (collapsed) rows."""
    out = []

    def walk(panels):
        for p in panels:
            out.append(p)
            walk(p.get("panels", []))

    walk(dashboard["panels"])
    return out


def dashboard_queries(dashboard):
    """(panel title, PromQL expression) of every panel target."""
    return [(p.get("title", ""), t["expr"]) for p in dashboard_panels(dashboard) for t in p.get("targets", [])
            if "expr" in t]


def variable_query(var):
    q = var.get("query", "")
    return q.get("query", "") if isinstance(q, dict) else q


def label_values_selector(query):
    """The series selector of Grafana's label_values(SELECTOR, LABEL) (None for other queries)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*", query, re.S)
    return m.group(1) if m else None


PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
    "bool", "inf", "nan",
}


def promql_metric_names(expr):
    """The metric names a PromQL expression (possibly with Grafana's $variables) selects.

    Strings, label matchers ({...}), ranges ([...]) and label lists (by (...), on (...), ...) are
    dropped first; what is left are functions (followed by '('), keywords, numbers and durations,
    and metric names."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\[\]]*\]", " ", s)
    s = re.sub(r"\$\w+", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([0-9][\w.]*|[A-Za-z_:][\w:]*)(\s*\()?", s):
        token, call = m.group(1), m.group(2)
        if token[0].isdigit() or call or token.lower() in PROMQL_KEYWORDS:
            continue
        names.add(token)
    return names


def served_metric_names(text):
    """Metric names in a Prometheus text exposition: sample names, and the names TYPE lines declare
    (a summary's _sum and _count, a histogram's too), so a family with no series yet counts."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind in ("summary", "histogram"):
                names |= {f"{name}_sum", f"{name}_count"}
            if kind == "histogram":
                names.add(f"{name}_bucket")
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][\w:]*", line).group(0))
    return names


def grafana_to_promql(expr):
    """A dashboard query with Grafana's variables replaced, for promtool: interval variables by a
    duration, the others (used in regex matchers) by '.*'."""
    expr = re.sub(r"\$\{?__(?:rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


def test_promtool_check_config():
    out = assert_promtool("check", "config", "prometheus.yml")
    assert "alerts.yml" in out, f"prometheus.yml does not load alerts.yml:\n{out}"


def test_scrape_config_covers_the_compose_nodes():
    config = load_yaml(os.path.join(PROMETHEUS_DIR, "prometheus.yml"))
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "kinesin"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t: sc.get("labels", {}) for sc in job["static_configs"] for t in sc["targets"]}
    compose = load_yaml(os.path.join(DEPLOY, "docker-compose.yml"))
    nodes = {name: svc["environment"]["KINESIN_NODE_ID"] for name, svc in compose["services"].items()}
    assert set(targets) == {f"{name}:4567" for name in nodes}
    for name, node_id in nodes.items():
        assert targets[f"{name}:4567"].get("node") == node_id, f"{name}: node label is not its node id"


def test_promtool_check_rules():
    out = assert_promtool("check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(alert_rules())} rules found" in out, out


def test_promtool_rule_unit_tests():
    assert_promtool("test", "rules", "alerts_test.yml")


def test_alert_rules_have_severity_and_annotations():
    rules = alert_rules()
    assert rules
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    for r in rules:
        assert r["labels"].get("severity") in ("critical", "warning"), r["alert"]
        assert r["annotations"].get("summary") and r["annotations"].get("description"), r["alert"]
        text = r["annotations"]["summary"] + r["annotations"]["description"]
        # Each names what it is about: the stream, the node or the peer.
        assert re.search(r"\$labels\.(stream|instance|node|peer)", text), f"{r['alert']} names no stream or node"


def test_alert_unit_tests_cover_write_throttling_and_node_down():
    """The unit tests must make these fire (and the healthy case fire nothing), not merely parse."""
    fired = {}
    quiet = set()
    for t in load_yaml(os.path.join(PROMETHEUS_DIR, "alerts_test.yml"))["tests"]:
        for case in t.get("alert_rule_test", []):
            if case.get("exp_alerts"):
                fired.setdefault(case["alertname"], []).extend(case["exp_alerts"])
            else:
                quiet.add(case["alertname"])
    assert any(a["exp_labels"].get("stream") for a in fired.get("KinesisWriteThrottled", []))
    assert any(a["exp_labels"].get("peer") for a in fired.get("KinesinNodeDown", []))
    assert "KinesinNodeUnreachable" in fired
    assert {"KinesisWriteThrottled", "KinesinNodeDown"} <= quiet
    untested = {r["alert"] for r in alert_rules()} - set(fired)
    assert not untested, f"alerts no unit test makes fire: {sorted(untested)}"


# --------------------------------------------------------------------------------------------
# Grafana
# --------------------------------------------------------------------------------------------


def test_dashboard_structure():
    d = load_dashboard()
    assert d["title"] and d["uid"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("DS_PROMETHEUS")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus"
    stream = variables.get("stream")
    assert stream and stream["type"] == "query"
    assert label_values_selector(variable_query(stream)), "the stream variable lists the streams' label values"
    assert stream["datasource"]["uid"] == "${DS_PROMETHEUS}"

    panels = dashboard_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
        if p["type"] == "row":
            continue
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]

    # Every per-stream query follows the stream variable.
    for title, expr in dashboard_queries(d):
        for name in promql_metric_names(expr):
            if name.startswith("kinesis_"):
                assert 'stream=~"$stream"' in expr, f"panel {title!r}: {name} ignores $stream"


def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses every dashboard query (as a recording rule) with the variables filled in."""
    d = load_dashboard()
    queries = dashboard_queries(d)
    assert queries
    rules = [{"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)} for i, (_, e) in enumerate(queries)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = assert_promtool("check", "rules", str(path), cwd=str(tmp_path))
    assert f"SUCCESS: {len(rules)} rules found" in out, out


def test_promql_metric_name_extraction():
    expr = (
        'sum by (stream, shard) (rate(kinesis_IncomingRecords_total{stream=~"$stream",x!="a{b}"}[$__rate_interval]))\n'
        "/ on (stream) group_left (region) max without (instance) (kinesis_Foo_total offset 5m)\n"
        '> bool 1e3 and histogram_quantile(0.9, kinesin_bar_bucket[5m:1m]) or vector(0) unless up == 0'
    )
    assert promql_metric_names(expr) == {"kinesis_IncomingRecords_total", "kinesis_Foo_total", "kinesin_bar_bucket", "up"}
    assert label_values_selector('label_values(kinesis_IncomingRecords_total{account="1"}, stream)') == \
        'kinesis_IncomingRecords_total{account="1"}'


# --------------------------------------------------------------------------------------------
# The metric names, against the binary
# --------------------------------------------------------------------------------------------


def alert_metric_names():
    names = set()
    for r in alert_rules():
        names |= promql_metric_names(r["expr"])
    return names


def dashboard_metric_names():
    d = load_dashboard()
    names = set()
    for _, expr in dashboard_queries(d):
        names |= promql_metric_names(expr)
    for var in d["templating"]["list"]:
        if var["type"] == "query":
            selector = label_values_selector(variable_query(var))
            assert selector, f"variable {var['name']}: not a label_values(SELECTOR, LABEL) query"
            names |= promql_metric_names(selector)
    return names


def test_configs_use_the_metrics_they_were_written_for():
    assert REQUIRED_ALERT_METRICS <= alert_metric_names(), REQUIRED_ALERT_METRICS - alert_metric_names()
    assert REQUIRED_DASHBOARD_METRICS <= dashboard_metric_names(), REQUIRED_DASHBOARD_METRICS - dashboard_metric_names()


def test_metric_names_are_served_by_the_binary(tmp_path):
    """Every metric the alert rules and the dashboard use is on /metrics of a real node that has a
    stream with a record in it (families without series yet count by their TYPE line)."""
    s = Server(tmp_path / "node")
    try:
        s.start()
        client = s.client()
        name = create_stream(client, shards=1)
        client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
        with urllib.request.urlopen(f"{s.endpoint}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        s.cleanup()
    assert f'stream="{name}"' in text, "no per-stream series after a put"
    served = served_metric_names(text)
    for source, used in (("deploy/prometheus/alerts.yml", alert_metric_names()),
                         ("deploy/grafana/kinesin-dashboard.json", dashboard_metric_names())):
        missing = sorted(used - PROMETHEUS_METRICS - served)
        assert not missing, f"{source} uses metrics {kinesin_bin()} does not serve: {missing}"


# --------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------


def kubernetes_objects():
    """{(kind, name): object} of every manifest in deploy/kubernetes/ (the kustomization aside)."""
    objects = {}
    for path in manifest_files():
        for doc in load_yaml_docs(os.path.join(KUBERNETES_DIR, path)):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = doc
    return objects


def manifest_files():
    return sorted(f for f in os.listdir(KUBERNETES_DIR) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")


def test_kubernetes_manifests_validate():
    files = manifest_files()
    assert files
    errors = []
    for path in files:
        docs = load_yaml_docs(os.path.join(KUBERNETES_DIR, path))
        assert docs, f"{path} is empty"
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(map(str, e.path)) or "(top)"
                errors.append(f"{path}: {doc['kind']}/{doc['metadata']['name']}: {where}: {e.message}")
    assert not errors, "\n".join(errors)


def test_kustomization_lists_every_manifest():
    k = load_yaml(os.path.join(KUBERNETES_DIR, "kustomization.yaml"))
    assert k["kind"] == "Kustomization"
    assert sorted(k["resources"]) == manifest_files()


def container_port(container, port):
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    (p,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return p


def env_of(container):
    """The container's environment as Kubernetes makes it: $(VAR) is replaced by a variable
    defined before it; a variable from valueFrom stands as <NAME>."""
    env = {}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
        else:
            env[e["name"]] = f"<{e['name']}>"
    return env


def test_kubernetes_objects_fit_together():
    objects = kubernetes_objects()
    (sts,) = [o for (kind, _), o in objects.items() if kind == "StatefulSet"]
    spec = sts["spec"]
    pod = spec["template"]
    labels = pod["metadata"]["labels"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    # The founding pods must be able to start together: each is ready only once they have formed.
    assert spec["podManagementPolicy"] == "Parallel"

    # The headless Service names the pods, before they are ready; the client Service serves the API.
    headless = objects[("Service", spec["serviceName"])]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: container_port(container, p["targetPort"]) for p in headless["ports"]}
    assert ports == {"cluster": 7000, "api": 4567}
    services = [o for (kind, _), o in objects.items() if kind == "Service"]
    for svc in services:
        assert svc["spec"]["selector"].items() <= labels.items(), svc["metadata"]["name"]
    client_services = [svc for svc in services if svc["spec"].get("clusterIP") != "None"]
    assert client_services and all(
        4567 in {container_port(container, p["targetPort"]) for p in svc["spec"]["ports"]} for svc in client_services
    )

    # Probes on /healthz of the API port.
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and container_port(container, get["port"]) == 4567, probe

    # The data directory is the claim template's volume.
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/kinesin"] == claim["metadata"]["name"]

    # One pod down at most.
    (pdb,) = [o for (kind, _), o in objects.items() if kind == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    # The config: the ConfigMap mounted where KINESIN_CONFIG and the command look, its TOML's
    # directory and ports those of the pod.
    env = env_of(container)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_dir = [m["mountPath"] for m in container["volumeMounts"] if "configMap" in volumes.get(m["name"], {})]
    assert len(config_dir) == 1
    config_map = objects[("ConfigMap", volumes[mounts[config_dir[0]]]["configMap"]["name"])]
    assert env["KINESIN_CONFIG"] == f"{config_dir[0]}/kinesin.toml"
    assert container["command"] == ["/bin/sh", f"{config_dir[0]}/start.sh"]
    toml = tomllib.loads(config_map["data"]["kinesin.toml"])
    assert toml["data_dir"] == "/var/lib/kinesin"
    assert toml["listen"].rsplit(":", 1)[1] == "4567"
    assert toml["cluster_listen"].rsplit(":", 1)[1] == "7000"

    # The peers are the pods' stable names under the headless Service: node id = ordinal + 1.
    name, service = sts["metadata"]["name"], spec["serviceName"]
    expected = ",".join(f"{i + 1}@{name}-{i}.{service}:7000" for i in range(spec["replicas"]))
    assert env["INITIAL_PEERS"] == expected
    assert env["KINESIN_CLUSTER_ADVERTISE"] == f"<POD_NAME>.{service}:7000"
    assert [e for e in container["env"] if e["name"] == "POD_NAME"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    client_names = {svc["metadata"]["name"] for svc in client_services}
    assert re.fullmatch(r"http://([\w-]+):4567", env["JOIN_URL"]).group(1) in client_names


def config_map():
    objects = kubernetes_objects()
    (cm,) = [o for (kind, _), o in objects.items() if kind == "ConfigMap"]
    return cm


@pytest.fixture
def start_script(tmp_path):
    path = tmp_path / "start.sh"
    path.write_text(config_map()["data"]["start.sh"])
    return str(path)


def run_start_script(script, tmp_path, hostname, **env):
    """Runs start.sh with a stand-in `kinesin` that prints its arguments and KINESIN_* settings."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "kinesin"
    fake.write_text('#!/bin/sh\necho "args=$*"\nenv | grep "^KINESIN_" | sort\n')
    fake.chmod(0o755)
    base = {"PATH": f"{bindir}:/usr/bin:/bin", "HOSTNAME": hostname,
            "INITIAL_PEERS": "1@kinesin-0.kinesin:7000,2@kinesin-1.kinesin:7000,3@kinesin-2.kinesin:7000",
            "JOIN_URL": "http://kinesin-api:4567"}
    out = subprocess.run(["sh", script], env={**base, **env}, capture_output=True, text=True, timeout=30)
    settings = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return out, settings


def test_start_script_node_ids_peers_and_join(start_script, tmp_path):
    peers = "1@kinesin-0.kinesin:7000,2@kinesin-1.kinesin:7000,3@kinesin-2.kinesin:7000"
    for ordinal in range(3):
        out, s = run_start_script(start_script, tmp_path, f"kinesin-{ordinal}")
        assert out.returncode == 0, out.stderr
        assert s["args"] == "server"
        assert s["KINESIN_NODE_ID"] == str(ordinal + 1)
        assert s["KINESIN_PEERS"] == peers
        assert "KINESIN_JOIN" not in s
    # Beyond the founding nodes: join.
    out, s = run_start_script(start_script, tmp_path, "kinesin-3")
    assert out.returncode == 0, out.stderr
    assert s["KINESIN_NODE_ID"] == "4" and s["KINESIN_JOIN"] == "http://kinesin-api:4567"
    assert "KINESIN_PEERS" not in s
    # Node 1 in the list must not match node 11.
    out, s = run_start_script(start_script, tmp_path, "kinesin-10")
    assert s["KINESIN_NODE_ID"] == "11" and "KINESIN_PEERS" not in s and "KINESIN_JOIN" in s
    # KINESIN_JOIN given: every pod joins through it (a founding pod rebuilt on an empty volume).
    out, s = run_start_script(start_script, tmp_path, "kinesin-0", KINESIN_JOIN="http://kinesin-2.kinesin:4567")
    assert s["KINESIN_NODE_ID"] == "1" and s["KINESIN_JOIN"] == "http://kinesin-2.kinesin:4567"
    assert "KINESIN_PEERS" not in s
    # A name without an ordinal is refused, not guessed.
    out, s = run_start_script(start_script, tmp_path, "kinesin")
    assert out.returncode != 0 and "ordinal" in out.stderr and "args" not in s


def test_config_map_toml_starts_a_node(tmp_path):
    """The ConfigMap's kinesin.toml is accepted by the binary (every key known, every value valid);
    the addresses and directory it names are overridden by flags here."""
    path = tmp_path / "kinesin.toml"
    path.write_text(config_map()["data"]["kinesin.toml"])
    s = Server(tmp_path / "node", extra_args=["--config", str(path)])
    try:
        s.start()
        client = s.client()
        name = create_stream(client, shards=1)
        client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    finally:
        s.cleanup()


class PodNode(Server):
    """A node started the way a pod starts: start.sh with the pod's name, `kinesin` on PATH, and
    the StatefulSet's settings as environment variables (local addresses for the pods' DNS names)."""

    def __init__(self, base_dir, script, config, hostname, initial_peers_of, join_url_of):
        super().__init__(base_dir)
        self.script, self.config, self.hostname = script, config, hostname
        self.initial_peers_of, self.join_url_of = initial_peers_of, join_url_of
        self.wait_on_start = False

    def command(self):
        bindir = os.path.join(self.base_dir, "bin")
        os.makedirs(bindir, exist_ok=True)
        link = os.path.join(bindir, "kinesin")
        if not os.path.lexists(link):
            os.symlink(kinesin_bin(), link)
        env = {
            "PATH": f"{bindir}:/usr/bin:/bin",
            "HOSTNAME": self.hostname,
            "KINESIN_CONFIG": self.config,
            "KINESIN_DATA_DIR": self.data_dir,
            "KINESIN_LISTEN": f"127.0.0.1:{self.port}",
            "KINESIN_CLUSTER_LISTEN": f"127.0.0.1:{self.cluster_port}",
            "KINESIN_CLUSTER_ADVERTISE": f"127.0.0.1:{self.cluster_port}",
            "INITIAL_PEERS": self.initial_peers_of(),
            "JOIN_URL": self.join_url_of(),
        }
        return ["env", "-i", *[f"{k}={v}" for k, v in env.items()], "sh", self.script]

    def wait_healthy(self, timeout=60.0):
        if self.wait_on_start:
            super().wait_healthy(timeout)


def cluster_view(node):
    with urllib.request.urlopen(f"{node.endpoint}/admin/v1/cluster", timeout=5) as r:
        return json.load(r)


def test_start_script_forms_a_cluster_and_scales_out(start_script, tmp_path):
    """Pods 0..2 form a three-node cluster from INITIAL_PEERS; pod 3 joins it through JOIN_URL."""
    config = tmp_path / "kinesin.toml"
    config.write_text(config_map()["data"]["kinesin.toml"])
    nodes = []

    def initial_peers():
        return ",".join(f"{i + 1}@127.0.0.1:{n.cluster_port}" for i, n in enumerate(nodes[:3]))

    def join_url():
        return nodes[0].endpoint

    try:
        for ordinal in range(4):
            nodes.append(PodNode(tmp_path / f"kinesin-{ordinal}", start_script, str(config), f"kinesin-{ordinal}",
                                 initial_peers, join_url))
        for n in nodes[:3]:
            n.start()  # all three before waiting: a founding node is healthy only once they formed
        for n in nodes[:3]:
            n.wait_on_start = True
            n.wait_healthy()

        def founded():
            view = cluster_view(nodes[0])
            up = {n["id"]: n["cluster_addr"] for n in view["nodes"] if n["state"] == "up"}
            return view["controller_leader"] and up == {i + 1: f"127.0.0.1:{n.cluster_port}" for i, n in enumerate(nodes[:3])}

        poll(founded, timeout=30, what="pods 0..2 to form a three-node cluster")

        nodes[3].wait_on_start = True
        nodes[3].start()

        def joined():
            up = {n["id"]: n for n in cluster_view(nodes[1])["nodes"] if n["state"] == "up"}
            return 4 in up and up[4]["cluster_addr"] == f"127.0.0.1:{nodes[3].cluster_port}"

        poll(joined, timeout=60, what="pod 3 to join as node 4")
        client = nodes[3].client()
        name = create_stream(client, shards=2)
        client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    finally:
        for n in nodes:
            n.cleanup()
