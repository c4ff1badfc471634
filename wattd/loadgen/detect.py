"""Which tool wrote this text? Recognised by content, never by file name."""

from __future__ import annotations

from wattd.loadgen import LoadResults, ResultsError, ab, ab_csv, jtl, k6, wrk


def is_ab(text: str) -> bool:
    return ab.BANNER in text


def is_wrk(text: str) -> bool:
    return any(line.lstrip().startswith("Requests/sec:") for line in text.splitlines())


def _wrk_banner(text: str) -> bool:
    # "Running 10s test @ http://...": a wrk run, maybe one that never printed its summary
    return any(line.startswith("Running ") and " test @ " in line
               for line in text.splitlines()[:3])


def parse_stdout(text: str) -> LoadResults | None:
    """A command's standard output: ab or wrk results, None when it is neither
    (not every command is a load generator). ResultsError when it is ab or
    wrk output without a complete summary."""
    if is_ab(text):
        return ab.parse(text)
    if is_wrk(text) or _wrk_banner(text):
        return wrk.parse(text)
    return None


def parse_results_file(text: str) -> LoadResults:
    """A results file a command wrote: ab -e CSV, JMeter JTL CSV, k6 summary
    JSON (or ab/wrk text saved to a file). ResultsError otherwise."""
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ResultsError("results file is empty")
    first = stripped.splitlines()[0].strip()
    if first == ab_csv.HEADER:
        return ab_csv.parse(stripped)
    if first.startswith("{"):
        return k6.parse(stripped)
    if jtl.has_header(first):
        return jtl.parse(stripped)
    if first.startswith("<"):
        raise ResultsError("results file looks like XML (a JTL in XML format?): "
                           "only CSV JTL files are read; set jmeter.save.saveservice."
                           "output_format=csv")
    found = parse_stdout(stripped)
    if found is not None:
        return found
    cells = first.split(",")
    if len(cells) >= 3 and cells[0].strip().isdigit() and cells[1].strip().isdigit():
        raise ResultsError("results file looks like a JTL without a header row: set "
                           "jmeter.save.saveservice.print_field_names=true")
    raise ResultsError(f"unknown results format (first line {first[:60]!r}): expected "
                       "ab -e CSV, a JMeter JTL CSV with a header, or k6 --summary-export JSON")
