"""A child for exec: that prints like a script does: print() without flush.

Usage: ticker.py N INTERVAL [noinput]
Prints `tick I T` N times, INTERVAL seconds apart, T being time.time() when printed; then
`got LINE` for every line of standard input (unless `noinput`), and `bye` at its end. Never flushes: on a pipe,
Python holds all of it until exit; on a terminal, each line goes at once.
"""

import sys
import time

n, interval = int(sys.argv[1]), float(sys.argv[2])
for i in range(n):
    if i:
        time.sleep(interval)
    print(f"tick {i} {time.time():.6f}")
if sys.argv[3:] != ["noinput"]:
    for line in sys.stdin:
        print("got", line.rstrip("\n"))
print("bye")
