#!/usr/bin/env python3
"""The floor: a minimal Python dispatcher (YAML config, spawn the worker, one JSONL line under a
lock). What any Python tool that does burnless's job pays at the least."""
import fcntl
import json
import shlex
import subprocess
import sys
import time

import yaml

cfg = yaml.safe_load(open(".burnless/config.yaml", encoding="utf-8"))
tier = cfg["tiers"]["silver"]
task = sys.argv[1]
t0 = time.time()
p = subprocess.run(shlex.split(tier["command"]), input=task.encode(), capture_output=True)
rec = {"ts": t0, "tier": "silver", "exit": p.returncode, "bytes": len(p.stdout)}
with open(".burnless/floor.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(".burnless/floor.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
print(p.stdout.decode()[-200:])
