"""Checks that the rendered chart and the example Job agree with each other and with the code:
socket path, ports, environment variable names, and the profiler's and optimizer's TLS and token
wiring (the names the CLI reads, files inside the mounted Secrets, a 0600 token copy, probes that
can speak TLS) and the Job's per-link TLS CA and token variables (the names the Python client reads).

Usage: python3 check_rendered.py <rendered.yaml> <example-job.yaml> <repo-root>
(rendered with release name "perseus" in namespace "perseus", as the example Job assumes.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

rendered, job_file, root = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
job = yaml.safe_load(job_file.read_text())
problems: list[str] = []


def find(kind: str, name_suffix: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix))


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env", [])}


def mounted_under(path: str, mounts: dict[str, str]) -> str | None:
    """The name of the volume whose mount holds `path`, or None."""
    for name, at in mounts.items():
        if path.startswith(at.rstrip("/") + "/"):
            return name
    return None


def check(ok: bool, what: str) -> None:
    if not ok:
        problems.append(what)


# The code's defaults: the agent's socket and the services' ports (packages/cli/src/commands/serve.ts).
serve_ts = (root / "packages/cli/src/commands/serve.ts").read_text()
block = re.search(r"DEFAULT_LISTEN[^{]*\{(.*?)\};", serve_ts, re.S)
defaults = dict(re.findall(r"^\s*(agent|profiler|optimizer): '([^']+)',", block.group(1) if block else "", re.M))
check(set(defaults) == {"agent", "profiler", "optimizer"}, f"could not read DEFAULT_LISTEN from serve.ts: {defaults}")

# Agent: listens on the hostPath socket the code uses by default.
ds = find("DaemonSet", "-agent")
pod = ds["spec"]["template"]["spec"]
agent = pod["containers"][0]
agent_env = env(agent)
listen = agent_env["PERSEUS_AGENT_LISTEN"]
check(listen == defaults.get("agent"), f"agent listens on {listen}, the code's default is {defaults.get('agent')}")
sock_dir = str(Path(listen.removeprefix("unix:")).parent)
mounts = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}
host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
check(mounts.get("socket") == sock_dir, f"agent mounts its socket volume at {mounts.get('socket')}, listens in {sock_dir}")
check(host_paths.get("socket") == sock_dir, f"agent socket hostPath {host_paths.get('socket')} != {sock_dir}")
state = agent_env["PERSEUS_AGENT_STATE_FILE"]
check(str(Path(state).parent) == mounts.get("state"), f"agent state file {state} outside its state mount")
check(agent["lifecycle"]["preStop"]["exec"]["command"][-1].startswith("kill -TERM 1"), "agent preStop does not start the drain")
# Training pods may run as root: no uid may use the agent's privileged AdminReset (tokens only).
check(agent_env.get("PERSEUS_AGENT_ADMIN_UIDS") == "none", f"agent admin uids {agent_env.get('PERSEUS_AGENT_ADMIN_UIDS')!r}: a root training pod could reset other jobs' GPUs")

# Profiler and optimizer: Service ports = listen ports = container ports = the code's default ports.
for role in ("profiler", "optimizer"):
    sts = find("StatefulSet", f"-{role}")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    e = env(c)
    port = int(e[f"PERSEUS_{role.upper()}_LISTEN"].rsplit(":", 1)[1])
    default_port = int(defaults.get(role, ":0").rsplit(":", 1)[1])
    check(port == default_port, f"{role} listens on {port}, the code's default port is {default_port}")
    cports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(cports.get("grpc") == port, f"{role} container port {cports.get('grpc')} != listen port {port}")
    metrics_port = int(e[f"PERSEUS_{role.upper()}_METRICS_LISTEN"].rsplit(":", 1)[1])
    check(cports.get("metrics") == metrics_port, f"{role} metrics container port != {metrics_port}")
    svc = find("Service", f"-{role}")
    sports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    check(sports.get("grpc") == port, f"{role} Service port {sports.get('grpc')} != {port}")
    check(e[f"PERSEUS_{role.upper()}_DATA_DIR"].startswith(c["volumeMounts"][0]["mountPath"]), f"{role} data dir not on its volume")

# Profiler and optimizer listen on 0.0.0.0: the CLI refuses that without TLS and a token file. The
# names must be the ones the CLI reads: TLS from serve.ts's tlsCredentials, the token file from
# serve-<role>.ts's --<role>-token-file option.
tls_names = dict(re.findall(r"str\('(tlsCert|tlsKey|tlsClientCa)', '(PERSEUS_[A-Z_]+)'\)", serve_ts))
check(set(tls_names) == {"tlsCert", "tlsKey", "tlsClientCa"}, f"could not read the TLS variables from serve.ts: {tls_names}")
healthcheck_js = (root / "deploy/container/healthcheck.cjs").read_text()
for role in ("profiler", "optimizer"):
    role_ts = (root / f"packages/cli/src/commands/serve-{role}.ts").read_text()
    m = re.search(rf"'--{role}-token-file <file>',\s*'(PERSEUS_[A-Z_]+)'", role_ts)
    token_var = m.group(1) if m else None
    check(token_var is not None, f"could not read --{role}-token-file's variable from serve-{role}.ts")
    pod = find("StatefulSet", f"-{role}")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    e = env(c)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for key in ("tlsCert", "tlsKey"):
        path = e.get(tls_names.get(key, "?"))
        check(path is not None, f"{role} does not set {tls_names.get(key)}: it would refuse to serve on 0.0.0.0")
        vol = mounted_under(path or "", mounts)
        check(vol is not None and "secret" in volumes.get(vol, {}), f"{role}: {tls_names.get(key)}={path} is not in a mounted Secret")
    if tls_names.get("tlsClientCa") in e:
        ca_path = e[tls_names["tlsClientCa"]]
        check(mounted_under(ca_path, mounts) is not None, f"{role}: client CA {ca_path} not mounted")
    token_path = e.get(token_var or "?")
    check(token_path is not None, f"{role} does not set {token_var}: it would refuse to serve on 0.0.0.0")
    tvol = mounted_under(token_path or "", mounts)
    check(tvol is not None and "emptyDir" in volumes.get(tvol, {}), f"{role}: token file {token_path} is not the 0600 copy in an emptyDir (a Secret volume with fsGroup is group-readable, which the service refuses)")
    inits = pod.get("initContainers", [])
    copies = [i for i in inits if token_path and token_path in " ".join(i.get("command", [])) and "umask 077" in " ".join(i.get("command", []))]
    check(len(copies) == 1, f"{role}: no init container writes {token_path} with umask 077")
    for probe in ("readinessProbe", "livenessProbe"):
        check("grpc" not in c[probe], f"{role} {probe} is a kubelet gRPC probe, which cannot speak TLS")
        check(c[probe].get("exec", {}).get("command", [])[-1:] == ["/opt/perseus/healthcheck.cjs"], f"{role} {probe} is not the image's health check")
    for name in ("PERSEUS_HEALTHCHECK_TLS_CA", *tls_names.values()):
        check(name in healthcheck_js, f"the image's health check does not read {name}")

profiler_svc = find("Service", "-profiler")
want_profiler = f"{profiler_svc['metadata']['name']}:{profiler_svc['spec']['ports'][0]['port']}"
opt_env = env(find("StatefulSet", "-optimizer")["spec"]["template"]["spec"]["containers"][0])
check(opt_env["PERSEUS_OPTIMIZER_PROFILER_URL"] == want_profiler, f"optimizer reads the profiler at {opt_env['PERSEUS_OPTIMIZER_PROFILER_URL']}, Service is {want_profiler}")

# The optimizer's own link to the TLS profiler: the CA and token-file variables serve-optimizer.ts
# reads, the CA inside the mounted TLS Secret, the token a 0600 copy in the emptyDir.
opt_ts = (root / "packages/cli/src/commands/serve-optimizer.ts").read_text()
opt_pod = find("StatefulSet", "-optimizer")["spec"]["template"]["spec"]
opt_c = opt_pod["containers"][0]
opt_mounts = {m["name"]: m["mountPath"] for m in opt_c["volumeMounts"]}
opt_volumes = {v["name"]: v for v in opt_pod.get("volumes", [])}
for flag, kind in (("--optimizer-profiler-tls-ca <pem>", "secret"), ("--optimizer-profiler-token-file <path>", "emptyDir")):
    m = re.search(rf"'{re.escape(flag)}',\s*'(PERSEUS_[A-Z_]+)'", opt_ts)
    var = m.group(1) if m else None
    check(var is not None, f"could not read {flag}'s variable from serve-optimizer.ts")
    path = opt_env.get(var or "?")
    check(path is not None, f"optimizer does not set {var}: it would dial the TLS profiler in plaintext or without a token")
    vol = mounted_under(path or "", opt_mounts)
    check(vol is not None and kind in opt_volumes.get(vol, {}), f"optimizer: {var}={path} is not in a mounted {kind}")
    if kind == "emptyDir":
        inits = [" ".join(i.get("command", [])) for i in opt_pod.get("initContainers", [])]
        check(any(path and f"> {path}" in c and "umask 077" in c for c in inits), f"optimizer: no init container writes {path} with umask 077")
        items = [i["path"] for v in opt_volumes.values() for i in v.get("secret", {}).get("items", [])]
        check(Path(path or "").name in items, f"optimizer: the tokens Secret volume does not project {Path(path or '').name}")

# The example Job: same socket, group, label, and the Services' addresses.
jpod = job["spec"]["template"]["spec"]
jc = jpod["containers"][0]
je = env(jc)
check(je["PERSEUS_AGENT_URL"] == listen, f"job's PERSEUS_AGENT_URL {je['PERSEUS_AGENT_URL']} != agent's {listen}")
jmounts = {m["name"]: m["mountPath"] for m in jc["volumeMounts"]}
jhost = {v["name"]: v["hostPath"]["path"] for v in jpod["volumes"] if "hostPath" in v}
check(jmounts.get("perseus-socket") == sock_dir and jhost.get("perseus-socket") == sock_dir, "job does not mount the agent's socket folder at the same path")
gid = int(agent_env["PERSEUS_AGENT_SOCKET_GROUP"])
check(gid in jpod["securityContext"]["supplementalGroups"], f"job lacks the socket group {gid}")
for role in ("profiler", "optimizer"):
    svc = find("Service", f"-{role}")
    want = f"{svc['metadata']['name']}.perseus.svc:{svc['spec']['ports'][0]['port']}"
    check(je[f"PERSEUS_{role.upper()}_URL"] == want, f"job's PERSEUS_{role.upper()}_URL {je[f'PERSEUS_{role.upper()}_URL']} != {want}")
# The Job's TLS CA and token for the profiler and optimizer links: per-link names the Python client
# builds (perseus/security.py), the CA file inside a mounted volume, the token from a Secret.
security_py = (root / "packages/client-python/perseus/security.py").read_text()
check('f"PERSEUS_{link.upper()}_TOKEN"' in security_py and '_setting(link, "TLS_CA"' in security_py, "perseus/security.py no longer reads PERSEUS_<LINK>_TOKEN / _TLS_CA")
jenv_full = {e["name"]: e for e in jc.get("env", [])}
for role in ("profiler", "optimizer"):
    ca = je.get(f"PERSEUS_{role.upper()}_TLS_CA")
    check(bool(ca) and mounted_under(ca, jmounts) is not None, f"job's PERSEUS_{role.upper()}_TLS_CA {ca} is not in a mounted volume")
    tok = jenv_full.get(f"PERSEUS_{role.upper()}_TOKEN", {})
    check("secretKeyRef" in tok.get("valueFrom", {}), f"job's PERSEUS_{role.upper()}_TOKEN does not come from a Secret")
check(not any(k.startswith("PERSEUS_AGENT_TLS") or k in ("PERSEUS_TLS_CA", "PERSEUS_TOKEN") for k in je), "job sets TLS or a token for every link: the agent link is its local socket")

policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
labels = job["spec"]["template"]["metadata"]["labels"]
for p in policies:
    for rule in p["spec"]["ingress"]:
        for peer in rule["from"]:
            sel = peer.get("podSelector", {}).get("matchLabels", {})
            if "perseus.io/client" in sel:
                check(all(labels.get(k) == v for k, v in sel.items()), f"{p['metadata']['name']} admits {sel}, the job has {labels}")

# Every PERSEUS_* name the manifests set is one the code reads (services or Python client).
sources = "".join(
    f.read_text()
    for pattern in ("packages/*/src/**/*.ts", "packages/client-python/perseus/**/*.py", "deploy/container/*.cjs")
    for f in root.glob(pattern)
)
named: set[str] = set()
for d in [*docs, job]:
    spec = d.get("spec", {})
    tpl = spec.get("template", {}).get("spec", {})
    for c in tpl.get("containers", []):
        named.update(e["name"] for e in c.get("env", []) if e["name"].startswith("PERSEUS_"))
for name in sorted(named):
    role_listen = re.fullmatch(r"PERSEUS_(AGENT|PROFILER|OPTIMIZER)_LISTEN", name)
    # The Python client builds its per-link names: PERSEUS_<LINK>_<SETTING> (perseus/security.py).
    client_link = re.fullmatch(r"PERSEUS_(AGENT|PROFILER|OPTIMIZER)_(TOKEN|TOKEN_FILE|TLS_CA|TLS_CERT|TLS_KEY)", name)
    read = (
        name in sources
        or (role_listen is not None and "PERSEUS_${key.toUpperCase()}_LISTEN" in serve_ts)
        or (
            client_link is not None
            and ((f'_setting(link, "{client_link.group(2)}"' in security_py and 'f"PERSEUS_{link.upper()}_{name}"' in security_py) or f'PERSEUS_{{link.upper()}}_{client_link.group(2)}"' in security_py)
        )
    )
    check(read, f"{name} is set by the chart or the job but read by no source")

if problems:
    print("chart-consistency: FAIL", *problems, sep="\n  ")
    sys.exit(1)
print(f"chart-consistency: OK ({len(docs)} rendered objects, {len(named)} PERSEUS_* variables, socket {listen})")
