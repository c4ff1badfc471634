"""Load-generator parsers on REAL outputs: Debian's ab and wrk run against a
real Python http.server and a real nginx on loopback. JMeter and k6 cannot be
installed here: their fixtures are written from their documented formats
(JMeter's CSV result file with jmeter.save.saveservice.print_field_names, 2.13
and 5.x default columns; k6's --summary-export JSON)."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.http_targets import nginx_server, python_server, run_tool, varying_server
from tests.ports import free_port
from wattd.loadgen import ResultsError, ab, ab_csv, detect, jtl, k6, wrk


@pytest.fixture(params=["python", "nginx"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    server = python_server if request.param == "python" else nginx_server
    with server(tmp_path) as (url, _proc):
        yield url + "index.html"


def _label(text: str, label: str) -> float:
    match = re.search(rf"^{re.escape(label)}:\s+([0-9.]+)", text, re.MULTILINE)
    assert match, f"{label} not in ab output"
    return float(match.group(1))


def _monotonic(quantiles: dict[int, float]) -> bool:
    values = [quantiles[q] for q in sorted(quantiles)]
    return all(a <= b for a, b in itertools.pairwise(values))


def test_ab_summary_real(target: str) -> None:
    out = run_tool(["ab", "-n", "300", "-c", "3", target])
    assert out.returncode == 0, out.stderr
    result = detect.parse_stdout(out.stdout)
    assert result is not None
    assert result.tool == "ab"
    v = result.values
    assert v["requests"] == 300
    assert v["failed"] == 0
    assert "non_2xx" not in v
    assert v["concurrency"] == 3
    assert v["time_per_request_ms"] == _label(out.stdout, "Time per request")
    assert v["time_per_request_all_ms"] < v["time_per_request_ms"]
    assert v["rps"] == _label(out.stdout, "Requests per second")
    assert v["duration_s"] == _label(out.stdout, "Time taken for tests")
    assert v["bytes"] == _label(out.stdout, "Total transferred")
    assert v["document_length_bytes"] == 2160
    assert set(result.quantiles()) == {50, 66, 75, 80, 90, 95, 98, 99, 100}
    assert _monotonic(result.quantiles())
    assert v["latency_ms_p50"] == result.quantiles()[50]
    assert v["latency_ms_max"] == v["total_ms_max"] == result.quantiles()[100]
    assert v["connect_ms_min"] <= v["connect_ms_max"]


def test_ab_failed_breakdown_and_non_2xx(tmp_path: Path) -> None:
    with varying_server() as (url, _proc):
        out = run_tool(["ab", "-n", "100", "-c", "2", url])
    assert "(Connect:" in out.stdout
    v = ab.parse(out.stdout).values
    assert v["failed"] > 0
    assert v["failed_length"] == v["failed"]
    assert v["failed_connect"] == v["failed_receive"] == v["failed_exceptions"] == 0
    with python_server(tmp_path) as (base, _proc):
        out = run_tool(["ab", "-n", "50", "-c", "2", base + "missing.html"])
    assert "Non-2xx responses:" in out.stdout
    v = ab.parse(out.stdout).values
    assert v["non_2xx"] == 50
    assert v["requests"] == 50


def test_ab_e_csv_real(tmp_path: Path) -> None:
    csv_path = tmp_path / "ab.csv"
    with python_server(tmp_path) as (url, _proc):
        out = run_tool(["ab", "-n", "200", "-c", "2", "-e", str(csv_path), url + "index.html"])
    assert out.returncode == 0, out.stderr
    result = detect.parse_results_file(csv_path.read_text())
    assert result.tool == "ab"
    assert set(result.quantiles()) == set(range(101))
    assert _monotonic(result.quantiles())
    assert result.values["latency_ms_p99"] == result.quantiles()[99]
    assert ab_csv.parse(csv_path.read_text()).values == result.values


def test_ab_interrupted_has_no_results() -> None:
    port = free_port("tcp")  # nothing listens: ab stops before its summary
    out = run_tool(["ab", "-n", "10", f"http://127.0.0.1:{port}/"])
    assert out.returncode != 0
    assert ab.BANNER in out.stdout
    with pytest.raises(ResultsError, match="no summary"):
        detect.parse_stdout(out.stdout)


@pytest.mark.parametrize("latency", [True, False])
def test_wrk_real(target: str, latency: bool) -> None:
    args = ["wrk", "-t1", "-c2", "-d1s", *(["--latency"] if latency else []), target]
    out = run_tool(args)
    assert out.returncode == 0, out.stderr
    result = detect.parse_stdout(out.stdout)
    assert result is not None
    assert result.tool == "wrk"
    v = result.values
    count = re.search(r"^\s*(\d+) requests in", out.stdout, re.MULTILINE)
    assert count
    assert v["requests"] == int(count.group(1)) > 0
    assert v["rps"] == float(out.stdout.split("Requests/sec:")[1].split()[0])
    assert v["failed"] == 0
    assert 0 < v["latency_ms_mean"] <= v["latency_ms_max"]
    assert v["time_per_request_ms"] == v["latency_ms_mean"]
    assert v["bytes"] > v["requests"] * 2000
    if latency:
        assert set(result.quantiles()) == {50, 75, 90, 99}
        assert _monotonic(result.quantiles())
    else:
        assert result.quantiles() == {}


def test_wrk_units() -> None:
    assert wrk.time_ms("850.00us") == pytest.approx(0.85)
    assert wrk.time_ms("7.25ms") == 7.25
    assert wrk.time_ms("1.20s") == pytest.approx(1200)
    assert wrk.time_ms("2.00m") == pytest.approx(120_000)
    assert wrk.size_bytes("1.58MB") == pytest.approx(1.58 * 1024**2)
    assert wrk.size_bytes("512.00B") == 512
    assert wrk.metric("1.23k") == pytest.approx(1230)
    assert wrk.metric("2.50M") == pytest.approx(2.5e6)
    with pytest.raises(ResultsError):
        wrk.time_ms("12")


WRK_ERRORS = """Running 10s test @ http://pi.local:8080/
  4 threads and 400 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21s   402.17ms   2.00s    68.42%
    Req/Sec    12.34k     1.02k   15.00k    70.00%
  491823 requests in 10.10s, 1.23GB read
  Socket errors: connect 0, read 12, write 0, timeout 345
  Non-2xx or 3xx responses: 17
Requests/sec:  48695.35
Transfer/sec:    124.71MB
"""


def test_wrk_socket_errors_and_suffixes() -> None:
    v = wrk.parse(WRK_ERRORS).values
    assert v["latency_ms_mean"] == pytest.approx(1210)
    assert v["latency_ms_stdev"] == pytest.approx(402.17)
    assert v["thread_rps_mean"] == pytest.approx(12340)
    assert v["failed"] == 357
    assert v["socket_errors_timeout"] == 345
    assert v["non_2xx"] == 17
    assert v["duration_s"] == pytest.approx(10.1)
    assert v["bytes"] == pytest.approx(1.23 * 1024**3)


def test_wrk_interrupted() -> None:
    with pytest.raises(ResultsError, match="no summary"):
        detect.parse_stdout("Running 10s test @ http://x/\n  2 threads and 10 connections\n")


# JMeter 2.13 (Debian's jmeter package): default CSV columns with print_field_names=true.
JTL_213 = "\n".join([
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,"
    "bytes,grpThreads,allThreads,Latency",
    "1449756000000,12,GET /,200,OK,Thread Group 1-1,text,true,2160,2,2,11",
    "1449756000010,30,GET /,200,OK,Thread Group 1-2,text,true,2160,2,2,29",
    '1449756000020,8,GET /,500,"Internal Server Error, really",Thread Group 1-1,text,false,'
    "120,2,2,8",
    "1449756000040,50,GET /,200,OK,Thread Group 1-2,text,true,2160,2,2,48",
]) + "\n"
# JMeter 5.x default columns (failureMessage, sentBytes, URL, IdleTime, Connect added).
_URL = "http://pi.local:8080/"
JTL_5 = "\n".join([
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,"
    "failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect",
    f"1700000000000,12,HTTP Request,200,OK,Thread Group 1-1,text,true,,2160,118,2,2,{_URL},11,0,3",
    f"1700000000010,30,HTTP Request,200,OK,Thread Group 1-2,text,true,,2160,118,2,2,{_URL},29,0,2",
    "1700000000020,8,HTTP Request,500,Internal Server Error,Thread Group 1-1,text,false,"
    f'"Test failed: code expected to contain /200/",120,118,2,2,{_URL},8,0,1',
    f"1700000000040,50,HTTP Request,200,OK,Thread Group 1-2,text,true,,2160,118,2,2,{_URL},48,0,2",
]) + "\n"


@pytest.mark.parametrize("text", [JTL_213, JTL_5])
def test_jtl(text: str) -> None:
    result = detect.parse_results_file(text)
    assert result.tool == "jmeter"
    v = result.values
    assert v["requests"] == 4
    assert v["failed"] == 1
    assert v["time_per_request_ms"] == pytest.approx(25.0)
    assert v["duration_s"] == pytest.approx(0.090)  # first start .000, last end .040+.050
    assert v["bytes"] == 3 * 2160 + 120
    q = result.quantiles()
    assert set(q) == set(range(101))
    assert (q[0], q[25], q[26], q[50], q[51], q[75], q[76], q[100]) == (8, 8, 12, 12, 30, 30, 50,
                                                                       50)
    assert v["latency_ms_max"] == 50


def test_jtl_any_column_order() -> None:
    lines = [row.split(",") for row in JTL_213.strip().splitlines()]
    # drop the quoted row (commas inside quotes) and reverse the columns
    rows = [",".join(reversed(cols)) for i, cols in enumerate(lines) if i != 3]
    v = jtl.parse("\n".join(rows) + "\n").values
    assert v["requests"] == 3
    assert v["failed"] == 0
    assert v["time_per_request_ms"] == pytest.approx((12 + 30 + 50) / 3)


def test_jtl_without_header_and_torn_rows() -> None:
    headless = "\n".join(JTL_213.splitlines()[1:])
    with pytest.raises(ResultsError, match="without a header"):
        detect.parse_results_file(headless)
    with pytest.raises(ResultsError, match="header"):
        jtl.parse(headless)
    torn = JTL_213 + "1449756000090,7,GET /,200"
    assert jtl.parse(torn).values["requests"] == 4  # a torn last row (still writing) is skipped
    bad = JTL_213.replace(",true,2160,2,2,11", ",yes,2160,2,2,11")
    with pytest.raises(ResultsError, match="line 2: success"):
        jtl.parse(bad)
    with pytest.raises(ResultsError, match="no sample rows"):
        jtl.parse(JTL_213.splitlines()[0] + "\n")


K6 = """{
  "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e",
                 "groups": {}, "checks": {}},
  "metrics": {
    "http_reqs": {"count": 5000, "rate": 497.3},
    "http_req_duration": {"avg": 7.9, "min": 0.61, "med": 6.2, "max": 88.1,
                          "p(90)": 14.5, "p(95)": 19.75, "p(99)": 40.2, "p(99.9)": 80.0},
    "http_req_failed": {"passes": 3, "fails": 4997, "value": 0.0006},
    "data_received": {"count": 11230000, "rate": 1116700.1},
    "iterations": {"count": 5000, "rate": 497.3},
    "vus": {"value": 4, "min": 4, "max": 4}
  },
  "state": {"isStdOutTTY": false, "isStdErrTTY": false, "testRunDurationMs": 10054.3}
}
"""


def test_k6_summary_export() -> None:
    result = detect.parse_results_file(K6)
    assert result.tool == "k6"
    v = result.values
    assert v["requests"] == 5000
    assert v["failed"] == 3
    assert v["rps"] == 497.3
    assert v["time_per_request_ms"] == 7.9
    assert v["latency_ms_p50"] == 6.2
    assert v["latency_ms_p95"] == 19.75
    assert v["latency_ms_p99"] == 40.2
    assert v["latency_ms_max"] == 88.1
    assert v["duration_s"] == pytest.approx(10.0543)
    assert result.quantiles() == {0: 0.61, 50: 6.2, 90: 14.5, 95: 19.75, 99: 40.2, 100: 88.1}
    with pytest.raises(ResultsError, match="k6"):
        k6.parse('{"metrics": {"vus": {"value": 1}}}')


@pytest.mark.parametrize("text", ["", "hello world\n", "<testResults version=\"1.2\">\n",
                                  "{not json", '{"a": 1}', "Percentage served,Time in ms\n50,x\n"])
def test_unknown_or_bad_results_file(text: str) -> None:
    with pytest.raises(ResultsError):
        detect.parse_results_file(text)


def test_not_a_load_generator() -> None:
    assert detect.parse_stdout("make: nothing to be done\n") is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_random_text_is_results_or_error(text: str) -> None:
    for func in (detect.parse_results_file, lambda t: detect.parse_stdout(t) or None,
                 lambda t: ab.parse(ab.BANNER + "\n" + t), wrk.parse):
        with contextlib.suppress(ResultsError):
            func(text)
