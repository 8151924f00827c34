"""Reads the reports kosoku wrote for each run of scripts/conformance, prints one table, and
exits 1 when a run did not meet its expectation:

- pass: every case OK, NON-STRICT or INFORMATIONAL (none FAILED, UNIMPLEMENTED or ERROR);
- cap: the gateway's own size cap: cases within it pass, every other case was closed by the
  server with 1009 (message too big), which is the documented answer to an oversized frame;
- unoffered: a feature the gateway does not offer (permessage-deflate): UNIMPLEMENTED is the
  expected verdict, a FAILED case is not.

Usage: summarise.py LABEL:EXPECTATION:REPORT_DIR ...
"""

import collections
import json
import pathlib
import sys

GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}


def section(case_id: str) -> int:
    return int(case_id.split(".")[0])


def check(expectation: str, cases: dict) -> list[str]:
    problems = []
    for case_id, case in sorted(cases.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        passed = case["behavior"] in GOOD and case["behaviorClose"] in GOOD
        if expectation == "pass" and not passed:
            problems.append(f"{case_id}: {case['behavior']} / {case['behaviorClose']}")
        elif expectation == "cap" and not passed and case.get("remoteCloseCode") != 1009:
            problems.append(
                f"{case_id}: {case['behavior']}, closed with {case.get('remoteCloseCode')} (not 1009)"
            )
        elif expectation == "unoffered" and case["behavior"] not in GOOD | {"UNIMPLEMENTED"}:
            problems.append(f"{case_id}: {case['behavior']} / {case['behaviorClose']}")
    return problems


def main(runs: list[str]) -> int:
    failed = False
    header = f"{'run':<44} {'sections':<14} {'cases':>5} {'OK':>5} {'NON-STRICT':>10} {'INFO':>5} {'other':>6}"
    print(header)
    print("-" * len(header))
    notes = []
    for run in runs:
        label, expectation, directory = run.split(":", 2)
        index = pathlib.Path(directory) / "index.json"
        if not index.is_file():
            print(f"{label:<44} no report at {index}")
            failed = True
            continue
        agents = json.loads(index.read_text())
        cases = {k: v for agent in agents.values() for k, v in agent.items()}
        verdicts = collections.Counter(case["behavior"] for case in cases.values())
        others = collections.Counter(
            {k: v for k, v in verdicts.items() if k not in GOOD}
        )
        sections = sorted({section(c) for c in cases})
        span = ",".join(str(s) for s in sections)
        other_text = str(sum(others.values()))
        print(
            f"{label:<44} {span:<14} {len(cases):>5} {verdicts['OK']:>5} "
            f"{verdicts['NON-STRICT']:>10} {verdicts['INFORMATIONAL']:>5} {other_text:>6}"
        )
        if others:
            closes = collections.Counter(
                case.get("remoteCloseCode")
                for case in cases.values()
                if case["behavior"] not in GOOD
            )
            notes.append(
                f"  {label}: other = "
                + ", ".join(f"{n} {v}" for v, n in sorted(others.items()))
                + " (server's close codes: "
                + ", ".join(f"{code}: {n}" for code, n in sorted(closes.items(), key=str))
                + ")"
            )
        problems = check(expectation, cases)
        if problems:
            failed = True
            notes.append(f"  {label}: NOT AS EXPECTED ({expectation}):")
            notes.extend(f"    {p}" for p in problems)
    for note in notes:
        print(note)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
