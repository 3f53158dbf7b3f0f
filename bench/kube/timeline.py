#!/usr/bin/env python3
"""Phases of each warm pod start in a bench/kube/trace directory.

Reads what bench/kube/trace copied from a test cluster started with
K8S_TRACE=1: the API server's audit log (audit.log), containerd's log
(containerd.log), the kubelet's (kubelet.log), the pods' logs (pod-logs/)
and the hub's (jupyterhub.log); prints, for the pods of the spawn
benchmark's user (kb-spawn) on each side, where each start's time went,
and the medians without each side's first (the warm-up).

    python3 bench/kube/timeline.py DIR
"""
import glob
import json
import re
import statistics
import sys

PHASES = [
    ("request>pod", "the request until the pod is created: spinbook's API calls / the hub's"),
    ("pod>sandbox", "scheduling, volumes, the pod's sandbox and network"),
    ("init", "spinbook's init container: created, started, run, exited"),
    ("init>seen", "its exit until the kubelet sees it (PLEG relist)"),
    ("main start", "the main container created and started"),
    ("jupyter", "main container until Jupyter is ready (the agent's first ready / Jupyter listening)"),
    ("ready>kernel", "Jupyter ready until the kernel is asked for (spinbook: up returns and the login)"),
    ("kernel", "the kernel started until it answered 1+1 and the client left"),
    ("total", "the request until the kernel's answer"),
]


def secs(hms):
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def read(d):
    pods, ids = {}, {}
    creates, misses = [], []
    for line in open(d + "/audit.log"):
        e = json.loads(line)
        o, ua = e.get("objectRef", {}), e.get("userAgent", "")
        if o.get("resource") != "pods" or o.get("subresource"):
            continue
        if e["verb"] == "create" and ua.startswith(("spinbook", "OpenAPI-Generator")):
            creates.append((secs(e["stageTimestamp"][11:-1]), o.get("name")))
        if ua.startswith("spinbook") and e["verb"] == "get" and e.get("responseStatus", {}).get("code") == 404:
            misses.append((secs(e["requestReceivedTimestamp"][11:-1]), o.get("name")))
    for line in open(d + "/containerd.log"):
        m = re.match(r'time="\S+T(\S+)Z" level=\w+ msg="(.*)', line)
        if not m:
            continue
        t, msg = secs(m.group(1)), m.group(2)
        r = re.search(r"RunPodSandbox for &PodSandboxMetadata\{Name:([^,]+),Uid:([^,]+),", msg)
        if r:
            p = pods.setdefault(r.group(2), {"name": r.group(1), "c": {}})
            if "returns sandbox id" in msg:
                p["sandbox"] = t
                ids[re.search(r'returns sandbox id \\"(\w+)', msg).group(1)] = (r.group(2), None)
            continue
        r = re.search(r'CreateContainer within sandbox \\"(\w+)\\" for (container )?&ContainerMetadata\{Name:([^,]+),', msg)
        if r and r.group(1) in ids:
            uid = ids[r.group(1)][0]
            c = pods[uid]["c"].setdefault(r.group(3), {})
            if "returns container id" in msg:
                ids[re.search(r'returns container id \\"(\w+)', msg).group(1)] = (uid, r.group(3))
            else:
                c["create"] = t
            continue
        r = re.search(r'StartContainer for \\"(\w+)\\" returns successfully', msg)
        if r and r.group(1) in ids:
            uid, name = ids[r.group(1)]
            pods[uid]["c"][name]["started"] = t
            continue
        r = re.search(r'^shim disconnected" id=(\w+)', msg)
        if r and ids.get(r.group(1), (None, None))[1]:
            uid, name = ids[r.group(1)]
            pods[uid]["c"][name].setdefault("exited", t)
    for line in open(d + "/kubelet.log"):
        m = re.match(r'I\d{4} (\S+)\s+\d+ \S+\] "Generic \(PLEG\): container finished" podID="[^"]+" containerID="(\w+)"', line)
        if m and ids.get(m.group(2), (None, None))[1]:
            uid, name = ids[m.group(2)]
            pods[uid]["c"][name].setdefault("seen", secs(m.group(1)))
    posts = {}
    for f in glob.glob(d + "/jupyterhub.log"):
        for line in open(f, errors="replace"):
            m = re.match(r"\[I \S+ (\S+) JupyterHub log:\d+\] 20[12] POST /hub/api/users/([^/]+)/server \S+ ([\d.]+)ms", line)
            if m:
                end = secs(m.group(1))
                posts.setdefault(m.group(2), []).append((end - float(m.group(3)) / 1000, end))
    for uid, p in pods.items():
        logs = glob.glob(f"{d}/pod-logs/*_{p['name']}_{uid}/notebook/*.log")
        for f in logs[:1]:
            for line in open(f, errors="replace"):
                m = re.match(r"\S+T(\S+)Z \w+ \w (.*)", line)
                if not m:
                    continue
                t, msg = secs(m.group(1)), m.group(2)
                for key, mark in (("ready", 'jupyter readiness changed" ready=true'), ("listening", "is running at"),
                                  ("kernel", "Kernel started"), ("answered", "Starting buffering")):
                    if mark in msg:
                        p.setdefault(key, t)
    return pods, creates, misses, posts


def phases(pods, creates, misses, posts):
    out = []
    for uid, p in sorted(pods.items(), key=lambda x: x[1].get("sandbox", 0)):
        name = p["name"]
        if not name.endswith("-kb-spawn") or "sandbox" not in p or "answered" not in p:
            continue
        created = max((t for t, n in creates if n == name and t <= p["sandbox"]), default=None)
        if created is None:
            continue
        spinbook = name.startswith("spinbook-")
        if spinbook:
            asked = [t for t, n in misses if n == name and created - 2 < t <= created]
        else:
            asked = [a for a, b in posts.get(name[len("jupyter-"):], []) if a <= created <= b]
        main, init = p["c"].get("notebook", {}), p["c"].get("spinbook-agent")
        ph = {"request>pod": created - min(asked) if asked else None, "pod>sandbox": p["sandbox"] - created}
        if init and "seen" in init and "exited" in init:
            ph["init"] = init["exited"] - p["sandbox"]
            ph["init>seen"] = init["seen"] - init["exited"]
            ph["main start"] = main["started"] - init["seen"]
        else:
            ph["init"], ph["init>seen"] = 0.0, 0.0
            ph["main start"] = main["started"] - p["sandbox"]
        ready = p.get("ready") or p.get("listening")
        ph["jupyter"] = ready - main["started"]
        ph["ready>kernel"] = p["kernel"] - ready
        ph["kernel"] = p["answered"] - p["kernel"]
        ph["total"] = p["answered"] - min(asked) if asked else None
        out.append((name, ph))
    return out


def main():
    rows = phases(*read(sys.argv[1]))
    keys = [k for k, _ in PHASES]
    print("%-18s" % "pod" + "".join("%13s" % k for k in keys))
    for name, ph in rows:
        print("%-18s" % name + "".join("%13s" % ("%.3f" % ph[k] if ph.get(k) is not None else "-") for k in keys))
    print()
    for side in ("spinbook-kb-spawn", "jupyter-kb-spawn"):
        runs = [ph for n, ph in rows if n == side][1:]
        if not runs:
            continue
        print("median of %d, %s:" % (len(runs), side))
        for k, what in PHASES:
            vals = [ph[k] for ph in runs if ph.get(k) is not None]
            if vals:
                print("  %-13s %6.3f s  (%.3f-%.3f)  %s" % (k, statistics.median(vals), min(vals), max(vals), what))


if __name__ == "__main__":
    main()
