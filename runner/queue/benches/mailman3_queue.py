"""Times Mailman 3's own Switchboard on a queue directory: get_files() over the whole
queue and over slice 0 of 4, and dequeue() of the first N entries (rename to .bak and
unpickle, as its runners do). Calls the real methods on a stand-in `self` holding the
attributes __init__ would set (no site configuration needed). Prints JSON (seconds).

usage: python mailman3_queue.py DIR N_DEQUEUE
"""
import json
import sys
import time
import types

from mailman.core.switchboard import Switchboard, shamax

directory, n_dequeue = sys.argv[1], int(sys.argv[2])


def board(i, n):
    lower = upper = None
    if n != 1:
        lower = ((shamax + 1) * i) / n
        upper = (((shamax + 1) * (i + 1)) / n) - 1
    return types.SimpleNamespace(queue_directory=directory, _lower=lower, _upper=upper)


def timed(fn, repeat=3):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return best, result


out = {}
out['files_all_s'], files = timed(lambda: Switchboard.get_files(board(0, 1)))
out['files_all_count'] = len(files)
out['files_slice_s'], sliced = timed(lambda: Switchboard.get_files(board(0, 4)))
out['files_slice_count'] = len(sliced)
me = board(0, 1)
start = time.perf_counter()
for filebase in files[:n_dequeue]:
    Switchboard.dequeue(me, filebase)
out['dequeue_s'] = time.perf_counter() - start
out['dequeue_count'] = min(n_dequeue, len(files))
print(json.dumps(out))
