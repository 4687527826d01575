"""fma's wire contract: names, ports and paths that more than one fma component must agree on.

This package sits at the bottom of the import graph (it imports nothing of fma), so the webhook
that writes a requester container, the stub that serves in it and the controller that calls it
read every shared name from one place. docs/contracts.md states the contract in prose.
"""
