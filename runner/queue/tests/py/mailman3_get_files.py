"""Prints Mailman 3's own Switchboard.get_files() for a directory, for each slice of N,
as JSON {"N/i": [filebase, ...]}. Calls the real method on a stand-in `self` carrying
the slice bounds exactly as Switchboard.__init__ computes them (no site config needed).

usage: python mailman3_get_files.py DIR N...
"""
import json
import sys
import types

from mailman.core.switchboard import Switchboard, shamax

directory = sys.argv[1]
out = {}
for n in map(int, sys.argv[2:]):
    for i in range(n):
        lower = upper = None
        if n != 1:
            lower = ((shamax + 1) * i) / n
            upper = (((shamax + 1) * (i + 1)) / n) - 1
        me = types.SimpleNamespace(queue_directory=directory, _lower=lower, _upper=upper)
        out['%d/%d' % (i, n)] = Switchboard.get_files(me)
print(json.dumps(out))
