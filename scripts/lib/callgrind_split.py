#!/usr/bin/env python3
"""Self instruction counts per function from a callgrind dump, per request (callgrind_annotate
3.19 attributes a zeroed-and-dumped multi-threaded run wholly to `clone`). usage: FILE [TOP] [REQUESTS]"""
import re, sys, collections
path = sys.argv[1]; top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
reqs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
names = {}
def name(kind, s):
    m = re.match(r"\((\d+)\)(?: (.*))?", s)
    if not m: return s
    key = (kind, m.group(1))
    if m.group(2) is not None: names[key] = m.group(2)
    return names.get(key, s)
selfc = collections.Counter(); incl = collections.Counter()
fn = None; skip_next = False; total = 0
for line in open(path, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("fn="): fn = name("fn", line[3:]); continue
    if line.startswith("cfn=") or line.startswith("cfi=") or line.startswith("cfl="):
        if line.startswith("cfn="): name("fn", line[4:])
        continue
    if line.startswith(("fl=", "fi=", "fe=")): name("fl", line[3:]); continue
    if line.startswith(("ob=", "cob=")): continue
    if line.startswith("calls="): skip_next = True; continue
    if line and (line[0].isdigit() or line[0] in "+-*"):
        parts = line.split()
        if len(parts) < 2: continue
        c = int(parts[1])
        if skip_next:
            incl[fn] += c; skip_next = False
        else:
            selfc[fn] += c; incl[fn] += c; total += c
print(f"total {total:,} ({total/reqs:,.0f} per request)")
for f, c in selfc.most_common(top):
    print(f"{c/reqs:8.0f} {100*c/total:5.1f}%  {f[:150]}")
