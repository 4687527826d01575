"""Hostile-input fuzzing of every HTTP API fma serves (issue 13, point 5).

`harness` runs the launcher, the requester stub and the webhook in-process (loopback or ASGI
transports only) and records every answer; `properties` holds the hypothesis strategies and
the checks. The tests (`test_apis`) run a few hundred inputs; `bench/fuzz.py` runs the same
properties for at least 10,000.
"""
