"""``wattd probe`` (SPEC 9.3): the server's CPU and memory from /proc and
cgroup v2, sent as fire-and-forget ``sample`` datagrams. Light by design:
standard library only (os, socket, time; re with --match), and only the few
/proc files that changed membership needs are read each interval."""
