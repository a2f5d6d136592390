#!/usr/bin/env python3
"""Checks one `redlock --json` object against the schema of docs/cli-json.md.

Usage: check_cli_json.py FILE COMMAND OK
  FILE     holds exactly one JSON object on one line (what redlock printed)
  COMMAND  run | acquire | extend | release | "release --force" | status | - (unknown: a
           usage error)
  OK       true | false: the expected value of "ok"
Exits 0 when the object matches, 1 with the reasons on stderr otherwise.
"""
import json
import sys

ERROR_NAMES = {"usage", "unavailable", "software", "not_acquired", "lost", "cannot_execute",
               "not_found", "signal", "other"}
STR, INT, BOOL, LIST, DICT, NULL = str, int, bool, list, dict, type(None)

ENVELOPE = {"schema": (INT,), "command": (STR, NULL), "ok": (BOOL,), "exit_code": (INT,),
            "error": (DICT, NULL)}
FIELDS = {
    "acquire": {"resources": (LIST,), "value": (STR, NULL), "fencing_token": (INT, NULL),
                "validity_ms": (INT, NULL), "attempts": (INT,)},
    "run": {"resources": (LIST,), "value": (STR, NULL), "fencing_token": (INT, NULL),
            "attempts": (INT,), "command_exit_code": (INT, NULL),
            "command_signal": (INT, NULL), "lost": (BOOL,)},
    "extend": {"resources": (LIST,), "value": (STR,), "fencing_token": (INT, NULL),
               "validity_ms": (INT, NULL)},
    "release": {"force": (BOOL,), "resources": (LIST,), "value": (STR,),
                "released": (INT, NULL), "servers": (INT, NULL)},
    # release --force: what was removed instead of one value.
    "release --force": {"force": (BOOL,), "resources": (LIST,), "removed": (LIST,),
                        "answered": (INT, NULL), "servers": (INT,)},
    "status": {"status": (STR,), "verdict": (STR,), "quorum": (INT,), "resources": (LIST,),
               "holder": (STR, NULL), "holding_nodes": (INT,), "free_nodes": (INT,),
               "validity_ms": (INT, NULL), "owner": (DICT, NULL), "nodes": (LIST,)},
}
NODE = {"node": (STR,), "error": (STR, NULL), "latency_us": (INT, NULL),
        "fencing_counter": (INT, NULL), "keys": (LIST,)}
KEY = {"resource": (STR,), "present": (BOOL,), "value": (STR, NULL), "ttl_ms": (INT, NULL),
       "owner": (DICT, NULL)}
OWNER = {"host": (STR,), "pid": (INT,), "program": (STR,), "label": (STR,), "since_ms": (INT,),
         "since": (STR, NULL)}
REMOVED = {"resource": (STR,), "value": (STR,), "servers": (INT,), "owner": (DICT, NULL)}

problems = []


def typed(value, types):
    # bool is an int in Python: an INT field must not accept true/false.
    if isinstance(value, bool):
        return BOOL in types
    return isinstance(value, types)


def check_object(obj, spec, where, exact=True):
    if not isinstance(obj, dict):
        problems.append(f"{where}: not an object")
        return
    for name, types in spec.items():
        if name not in obj:
            problems.append(f"{where}: missing field {name!r}")
        elif not typed(obj[name], types):
            problems.append(f"{where}.{name}: {obj[name]!r} is not {[t.__name__ for t in types]}")
    if exact:
        for name in obj:
            if name not in spec:
                problems.append(f"{where}: undocumented field {name!r}")


def main():
    path, command, want_ok = sys.argv[1], sys.argv[2], sys.argv[3] == "true"
    text = open(path, encoding="utf-8").read()
    if text.count("\n") != 1 or not text.endswith("\n"):
        problems.append(f"expected exactly one line, got {text!r}")
    d = json.loads(text)
    usage = isinstance(d.get("error"), dict) and d["error"].get("name") == "usage"
    spec = dict(ENVELOPE)
    # COMMAND "release --force" checks a force release, whose "command" is "release".
    fields = FIELDS.get(command, {})
    command = command.split(" ")[0]
    if not usage:
        spec.update(fields)
    # A usage error found after the subcommand started may carry some of its fields.
    check_object(d, spec, "$", exact=not usage)
    if usage:
        for name in d:
            if name not in ENVELOPE and name not in fields:
                problems.append(f"$: undocumented field {name!r}")
    if d.get("schema") != 1:
        problems.append("schema is not 1")
    if d.get("command") != (None if command == "-" else command):
        problems.append(f"command is {d.get('command')!r}, expected {command!r}")
    if d.get("ok") is not want_ok:
        problems.append(f"ok is {d.get('ok')!r}, expected {want_ok}")
    err = d.get("error")
    if d.get("ok") is True and err is not None:
        problems.append("ok but error is not null")
    if d.get("ok") is False:
        check_object(err, {"code": (INT,), "name": (STR,), "message": (STR,)}, "$.error")
        if isinstance(err, dict):
            if err.get("code") != d.get("exit_code"):
                problems.append("error.code differs from exit_code")
            if err.get("name") not in ERROR_NAMES:
                problems.append(f"error.name {err.get('name')!r} is not documented")
            if not err.get("message"):
                problems.append("error.message is empty")
    if d.get("ok") is True and d.get("exit_code") not in (0, 3, 4) and command != "run":
        problems.append(f"ok with exit code {d.get('exit_code')}")
    if not usage:
        for r in d.get("resources", []) if isinstance(d.get("resources"), list) else []:
            if not isinstance(r, str):
                problems.append(f"resource {r!r} is not a string")
    if command == "status" and not usage:
        if d.get("status") not in ("held", "free", "indeterminate"):
            problems.append(f"status {d.get('status')!r}")
        codes = {"held": 0, "free": 3, "indeterminate": 4, "unavailable": 69}
        if codes.get(d.get("verdict")) != d.get("exit_code"):
            problems.append(f"verdict {d.get('verdict')!r} with exit code {d.get('exit_code')}")
        for i, n in enumerate(d.get("nodes", [])):
            check_object(n, NODE, f"$.nodes[{i}]")
            for k, key in enumerate(n.get("keys", []) if isinstance(n, dict) else []):
                check_object(key, KEY, f"$.nodes[{i}].keys[{k}]")
                if isinstance(key, dict) and isinstance(key.get("owner"), dict):
                    check_object(key["owner"], OWNER, f"$.nodes[{i}].keys[{k}].owner")
        if isinstance(d.get("owner"), dict):
            check_object(d["owner"], OWNER, "$.owner")
    if isinstance(d.get("removed"), list):
        for i, rm in enumerate(d["removed"]):
            check_object(rm, REMOVED, f"$.removed[{i}]")
            if isinstance(rm, dict) and isinstance(rm.get("owner"), dict):
                check_object(rm["owner"], OWNER, f"$.removed[{i}].owner")
    if command in ("acquire", "extend") and want_ok:
        if not isinstance(d.get("value"), str) or not isinstance(d.get("validity_ms"), int):
            problems.append("a successful lock has a value and validity_ms")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(text, file=sys.stderr)
        sys.exit(1)


main()
