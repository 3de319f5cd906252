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
window's max timestamp; the late side output is Flink's own. Both are written by the JVM, one
text file each per window, a Flink Row per line: windows-NAME.txt, ``+I[segment, element,
window max timestamp]`` (the firing's record timestamp, read as the table's rowtime metadata, an
ISO instant); late-NAME.txt, ``+I[segment, element, event time, watermark candidate, rt]``. No
Python function runs in the job, so PyFlink starts no Python worker beside the JVM (with one,
the job cost ~30 busy core-s; without, ~20, and 17 s instead of 25 s).

Optionally (config key "generator": delays, timestamps, out), in the same JVM before the job:
Flink's own BoundedOutOfOrdernessWatermarks driven event by event through py4j, a periodic
emit after each event; its watermarks per delay are written to "out" as JSON.

Usage: python flink_oracle_job.py CONFIG.json
"""

from __future__ import annotations

import json
import sys

from pyflink.common import Configuration
from pyflink.datastream import DataStream, OutputTag, StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.table import Schema, StreamTableEnvironment
from pyflink.table.expressions import col


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
    overwrite = jvm.org.apache.flink.core.fs.FileSystem.WriteMode.OVERWRITE
    # a firing's records carry the window's max timestamp: kept as a column (rowtime metadata)
    stamped = Schema.new_builder().column_by_metadata("wts", "TIMESTAMP_LTZ(3)", "rowtime").build()
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
        table = t_env.from_data_stream(DataStream(fired), stamped)
        windows = t_env.to_data_stream(table.select(col("seg"), col("id"), col("wts")))
        windows._j_data_stream.writeAsText(
            f"{cfg['out']}/windows-{w['name']}.txt", overwrite
        ).setParallelism(1)
        fired.getSideOutput(jtag).writeAsText(
            f"{cfg['out']}/late-{w['name']}.txt", overwrite
        ).setParallelism(1)
    env.execute("skewlab flink oracle")


if __name__ == "__main__":
    main(sys.argv[1])
