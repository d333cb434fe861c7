"""Prints a line, then exits with code 3 after a delay: a service that crashes."""

import os
import sys
import time

print("toy crash: starting", flush=True)
time.sleep(float(os.environ.get("TOY_CRASH_AFTER", "0")))
print("toy crash: something went wrong", flush=True)
sys.exit(3)
