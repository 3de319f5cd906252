"""The Apache Flink job of tests/integration/test_flink_oracle.py (run with PyFlink's Python).

Input: a CSV of (segment, element, event time ms, watermark candidate ms) in arrival order; each
segment is one (source, stream, delay) laid out in its own event-time range, later segments
later (shifted by a multiple of every window size and slide, so windows and their boundaries are
unchanged and a segment never sees an earlier one's watermark as anything but far behind).
The watermark is Flink SQL's: the largest candidate seen, emitted on every event
(scan.watermark.emit.strategy = on-event); candidate = event time − delay − 1 ms is what
BoundedOutOfOrdernessWatermarks(delay) emits, here after every event rather than periodically.
Windows are the Java WindowOperator (windowAll + allowedLateness + sideOutputLateData), whose
PassThroughAllWindowFunction emits the window's whole contents at every firing, stamped with the
window's max timestamp; the late side output is Flink's own. A Python function writes both to
CSV files, one per window (windows-NAME.csv: window, segment, max timestamp, element;
late-NAME.csv: window, segment, element).

Optionally (config key "generator": delays, timestamps, out), in the same JVM before the job:
Flink's own BoundedOutOfOrdernessWatermarks driven event by event through py4j, a periodic
emit after each event; its watermarks per delay are written to "out" as JSON.

Usage: python flink_oracle_job.py CONFIG.json
"""

from __future__ import annotations

import json
import sys

from pyflink.common import Configuration, Types
from pyflink.datastream import DataStream, OutputTag, StreamExecutionEnvironment
from pyflink.datastream.functions import ProcessFunction
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment


class Writer(ProcessFunction):
    """Appends one line per record to a file (parallelism 1: one writer per file)."""

    def __init__(self, path: str, kind: str, stamped: bool) -> None:
        self.path, self.kind, self.stamped = path, kind, stamped
        self.f = None

    def open(self, runtime_context) -> None:  # type: ignore[no-untyped-def]
        self.f = open(self.path, "a")  # noqa: SIM115

    def process_element(self, value, ctx):  # type: ignore[no-untyped-def]
        seg, elem = value[0], value[1]
        if self.stamped:
            self.f.write(f"{self.kind},{seg},{ctx.timestamp()},{elem}\n")
        else:
            self.f.write(f"{self.kind},{seg},{elem}\n")
        return iter(())

    def close(self) -> None:
        if self.f:
            self.f.close()


class Marks:
    """A Java WatermarkOutput (through py4j's callback server) that keeps what is emitted."""

    def __init__(self) -> None:
        self.marks: list[int] = []

    def emitWatermark(self, wm) -> None:  # type: ignore[no-untyped-def]
        self.marks.append(wm.getTimestamp())

    def markIdle(self) -> None:
        pass

    def markActive(self) -> None:
        pass

    class Java:
        implements = ("org.apache.flink.api.common.eventtime.WatermarkOutput",)


def generator_marks(delays: list[int], ts: list[int]) -> list[list[int]]:
    """Per delay, what a fresh BoundedOutOfOrdernessWatermarks(delay) emits for ``ts``."""
    jvm = get_gateway().jvm
    eventtime = jvm.org.apache.flink.api.common.eventtime
    marks = []
    for delay in delays:
        g = eventtime.BoundedOutOfOrdernessWatermarks(jvm.java.time.Duration.ofMillis(delay))
        out = Marks()
        for t in ts:
            g.onEvent(None, t, out)
            g.onPeriodicEmit(out)
        marks.append(out.marks)
    return marks


def main(cfg_path: str) -> None:
    with open(cfg_path) as f:
        cfg = json.load(f)
    if "generator" in cfg:
        gen = cfg["generator"]
        with open(gen["out"], "w") as f:
            json.dump(generator_marks(gen["delays"], gen["ts"]), f)
    conf = Configuration()
    conf.set_string("pipeline.auto-watermark-interval", "0 ms")
    conf.set_string("table.local-time-zone", "UTC")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    t_env = StreamTableEnvironment.create(env)
    t_env.execute_sql(
        "CREATE TABLE ev (seg INT, id BIGINT, ts BIGINT, wm BIGINT,"
        " rt AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR rt AS TO_TIMESTAMP_LTZ(wm, 3))"
        f" WITH ('connector' = 'filesystem', 'path' = '{cfg['input']}', 'format' = 'csv',"
        " 'scan.watermark.emit.strategy' = 'on-event')"
    )
    ds = t_env.to_data_stream(t_env.from_path("ev"))
    jvm = get_gateway().jvm
    duration = jvm.java.time.Duration
    assigners = jvm.org.apache.flink.streaming.api.windowing.assigners
    passthrough = jvm.org.apache.flink.streaming.api.functions.windowing
    for w in cfg["windows"]:
        size, slide = w["size_ms"], w["slide_ms"]
        if size == slide:
            assigner = assigners.TumblingEventTimeWindows.of(duration.ofMillis(size))
        else:
            assigner = assigners.SlidingEventTimeWindows.of(
                duration.ofMillis(size), duration.ofMillis(slide)
            )
        tag = OutputTag(f"late-{w['name']}", ds.get_type())
        jtag = tag.get_java_output_tag()
        fired = (
            ds._j_data_stream.windowAll(assigner)
            .allowedLateness(duration.ofMillis(cfg["lateness_ms"]))
            .sideOutputLateData(jtag)
            .apply(passthrough.PassThroughAllWindowFunction(), ds._j_data_stream.getType())
        )
        out = f"{cfg['out']}/windows-{w['name']}.csv"
        DataStream(fired).process(Writer(out, w["name"], True), Types.STRING()).print()
        late = f"{cfg['out']}/late-{w['name']}.csv"
        DataStream(fired.getSideOutput(jtag)).process(
            Writer(late, w["name"], False), Types.STRING()
        ).print()
    env.execute("skewlab flink oracle")


if __name__ == "__main__":
    main(sys.argv[1])
