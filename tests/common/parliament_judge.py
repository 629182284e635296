"""Lint IAM, key and bucket policies with parliament, the IAM policy linter.

Reads a JSON object {name: policy document} on stdin and prints
{name: [{"issue", "severity", "detail"}, ...]}: every finding of every
policy, community auditors included. Exits 3, with one sentence on
stderr, when parliament is not installed.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
try:
    import parliament
except ImportError as e:
    sys.stderr.write(
        "parliament (the IAM policy linter) cannot be imported (%s): run "
        "`bash scripts/setup-tools.sh`, which installs it (and the setuptools "
        "it needs)\n" % e
    )
    sys.exit(3)

# Community auditors are stricter; their settings live in an override file.
import pathlib

override = (
    pathlib.Path(parliament.__file__).parent
    / "community_auditors"
    / "config_override.yaml"
)
if override.exists():
    parliament.override_config(str(override))

policies = json.load(sys.stdin)
out = {}
for name, doc in policies.items():
    text = doc if isinstance(doc, str) else json.dumps(doc)
    policy = parliament.analyze_policy_string(
        text, include_community_auditors=True, config=parliament.config
    )
    findings = [parliament.enhance_finding(f) for f in policy.findings]
    out[name] = [
        {"issue": f.issue, "severity": f.severity, "title": f.title, "detail": f.detail}
        for f in findings
    ]
json.dump(out, sys.stdout, default=str)
