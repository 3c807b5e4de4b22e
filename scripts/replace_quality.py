"""Replace some intents' quality scores in a profile file with those of a newer measured run.

Why: re-measuring one intent (say the demo's triage.* sets on their calibration split) should not
re-measure, and so change, every speed and energy row of the shipped profile. The rows keep their
load points; each replaced score's run is appended to the row's provenance (source, date, command),
so the file still says where every number came from.

    python scripts/replace_quality.py murakkab_lg/catalog/data/cpu_embedded_profile.json \
        NEW_PROFILE.json --intents 'triage.*' --command "murakkab profile --evals 'triage.*' ..."
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from murakkab_lg.catalog.profiles import read_profile_file, write_profile_file


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", type=Path, help="profile file to update in place")
    ap.add_argument("measured", type=Path, help="profile file with the newer scores")
    ap.add_argument("--intents", nargs="+", required=True, help="intent names or globs to replace")
    ap.add_argument("--command", required=True, help="the command that produced MEASURED (recorded)")
    ap.add_argument("--note", default="", help="what differs in the new run (recorded)")
    args = ap.parse_args()
    target, measured = read_profile_file(args.target), read_profile_file(args.measured)
    newer = {p.deployment: p for p in measured.profiles}
    rows, changed = [], 0
    for row in target.profiles:
        new = newer.get(row.deployment)
        picked = {k: v for k, v in (new.quality if new else {}).items()
                  if any(fnmatch.fnmatchcase(k, pat) for pat in args.intents)}
        if not picked:
            rows.append(row)
            continue
        prov = row.provenance
        assert new is not None
        prov = prov.model_copy(update={
            "source": f"{prov.source}; then {', '.join(sorted(picked))} re-measured {new.provenance.date}"
                      f"{' (' + args.note + ')' if args.note else ''}",
            "command": f"{prov.command}; then {args.command}",
        })
        rows.append(row.model_copy(update={"quality": {**row.quality, **picked}, "provenance": prov}))
        changed += len(picked)
    write_profile_file(args.target, target.model_copy(update={"profiles": tuple(rows)}))
    print(f"replaced {changed} quality scores in {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
