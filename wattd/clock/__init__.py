"""Time: realtime stamps, boot-time durations, kernel clock health (SPEC 7)."""
