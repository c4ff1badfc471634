"""The journal (SPEC 4): append-only line-protocol segments, the store and the delivery spool."""
