"""Every status code openapi.yaml documents must be seen by a real client against a real server.

Collects the (method, path template, status) triples answered during this run — schemathesis's HAR
report, the targeted probes of probes.py (store down, rate limits, oversized bodies, …) and, when
given, newman's JSON report of the Postman collection — and checks each documented status of each
operation against them. A status no request of the run can reach must be listed in
covered_elsewhere.txt with the test that produces it (the script checks that the named test exists
in that file) or, with `-` as the file, the reason it is never reached.

    status_coverage.py openapi.yaml covered_elsewhere.txt REPORT [REPORT ...]

Exit 0 when everything documented was reached; 1 with the list of what was not.
"""

import json
import os
import re
import sys
from urllib.parse import urlparse

import yaml

METHODS = ("get", "post", "put", "delete", "patch", "head", "options")


def templates(spec):
    """(method, template, regex, documented statuses) for every operation."""
    out = []
    for path, ops in spec["paths"].items():
        regex = re.compile("^" + re.sub(r"\{[^}/]+\}", "[^/]+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "/?$")
        for method, op in ops.items():
            if method in METHODS:
                out.append((method.upper(), path, regex, {str(s) for s in op.get("responses", {})}))
    return out


def observed_from_har(path):
    with open(path, encoding="utf-8") as f:
        har = json.load(f)
    for entry in har.get("log", {}).get("entries", []):
        req, resp = entry.get("request", {}), entry.get("response", {})
        if req.get("url") and resp.get("status"):
            yield req["method"].upper(), urlparse(req["url"]).path, str(resp["status"])


def observed_from_newman(path):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    for execution in report.get("run", {}).get("executions", []):
        req, resp = execution.get("request") or {}, execution.get("response") or {}
        url = req.get("url") or {}
        segments = url.get("path") or []
        if isinstance(segments, list) and resp.get("code"):
            yield req.get("method", "").upper(), "/" + "/".join(segments), str(resp["code"])


def observed_from_probes(path):
    with open(path, encoding="utf-8") as f:
        for answer in json.load(f):
            yield answer["method"].upper(), answer["path"], str(answer["status"])


def covered_elsewhere(path, root):
    """{(method, template, status): reason}; a test reference must exist in its file."""
    listed, problems = {}, []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 4)
            if len(parts) != 5:
                problems.append(f"{path}:{number}: expected METHOD PATH STATUS FILE NAME")
                continue
            method, template, status, file, name = parts
            if file != "-":
                source = os.path.join(root, file)
                try:
                    with open(source, encoding="utf-8") as src:
                        if name not in src.read():
                            problems.append(f"{path}:{number}: {name!r} is not in {file}")
                except OSError:
                    problems.append(f"{path}:{number}: no file {file}")
            listed[(method, template, status)] = f"{file} {name}"
    return listed, problems


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    spec_path, elsewhere_path, reports = sys.argv[1], sys.argv[2], sys.argv[3:]
    root = os.path.dirname(os.path.abspath(spec_path))
    with open(spec_path, encoding="utf-8") as f:
        ops = templates(yaml.safe_load(f))
    seen = set()
    for report in reports:
        if report.endswith("newman.json"):
            source = observed_from_newman(report)
        elif report.endswith("probes.json"):
            source = observed_from_probes(report)
        else:
            source = observed_from_har(report)
        for method, path, status in source:
            for op_method, template, regex, _ in ops:
                if op_method == method and regex.match(path):
                    seen.add((method, template, status))
    listed, problems = covered_elsewhere(elsewhere_path, root)
    missing = []
    total = 0
    for method, template, _, statuses in ops:
        for status in sorted(statuses):
            total += 1
            key = (method, template, status)
            if key in seen:
                continue
            if key in listed or (method, template, "*") in listed or ("*", "*", status) in listed:
                continue
            missing.append(f"{method} {template} {status}")
    reached = sum(1 for m, t, _, s in ops for st in s if (m, t, st) in seen)
    print(f"status coverage: {reached} of {total} documented statuses reached by this run; "
          f"{total - reached - len(missing)} covered by the tests listed in {os.path.basename(elsewhere_path)}")
    for p in problems:
        print("  bad entry:", p)
    for m in missing:
        print("  never reached:", m)
    return 1 if missing or problems else 0


if __name__ == "__main__":
    sys.exit(main())
