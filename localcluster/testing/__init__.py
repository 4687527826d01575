"""Test doubles for the launcher: a cheap fake instance entry and a tiny locally built model.

They live here, with the rest of the test rig, so that the runtime package (`launcher`) and the
image carry none of them.
"""
