"""Write large winlogbeat 7.x corpora for the throughput benchmarks, fast.

    .venv/bin/python bench/corpus.py busy|worst --size 1G --out FILE [--seed N]
        [--hits N]

Two kinds of file, both Sysmon events as winlogbeat 7.17's Sysmon module ships them
(the layout of sample_logs/ws-042.winlogbeat7.ndjson):

* ``busy``: a busy Windows host's mixed stream (process starts, network, image loads,
  process access, files, registry, DNS ...), about 2 KB a line. lsass.exe shows up as
  it does on a real host: serving SAM RPC calls (0x40, clean trace), read by Defender
  and the SCCM agent, talking to the domain controller. The ordinary events come from
  the background of sample_logs' generator, run with this script's seed.
* ``worst``: every line is a Sysmon event 10 near miss of the bundled rule (lsass
  DuplicateHandle: ``process.name : "lsass.exe"``, ``GrantedAccess == "0x40"``,
  ``CallTrace : "*UNKNOWN*"``) that still holds every literal the rule needs
  (``10``, ``lsass.exe``, ``0x40``, ``unknown`` in some case), so no byte prefilter
  can skip it, yet fails one condition: lsass as the target; 0x40 with a clean
  trace and "unknown" elsewhere; 0x1040, 0X40 or 0x400 with "0x40" elsewhere; a
  look-alike source name.

Both carry ``--hits`` true alerts (lsass.exe, 0x40, an UNKNOWN frame; one in four
spells the image LSASS.EXE), spread evenly through the file. Their line numbers, byte
offsets and record ids go to ``FILE.hits`` (JSON), so a benchmark can check that the
scanner found exactly those.

Speed: a pool of a few thousand distinct lines is built once, then lines are drawn
from it at random and given a fresh ``winlog.record_id`` (rising by one per line, so
no event repeats) and ``@timestamp`` by splicing bytes; nothing is serialised per
line. The file is written in 4 MiB blocks, so memory stays small at any size.
Other times in a line (``event.created``, ``UtcTime``) keep their pool values.

Sizes take K, M and G (powers of 1024).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The sample log generator is a set of plain scripts that import each other by name.
sys.path.insert(0, str(REPO / "sample_logs"))

from sysmon import (  # noqa: E402
    JDOE_ADMIN,
    LSASRV_TRACE,
    NTDLL,
    SAMSRV_TRACES,
    Event,
    access,
    frames,
    injected_trace,
    to_ms,
    trace,
    unknown_frame,
)
from winlogbeat import shape_ecs_7  # noqa: E402
from workstation import Host, play_background  # noqa: E402

KINDS = ("busy", "worst")
POOL_START = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)
# Seconds of the sample host's background: about 4,500 distinct lines.
POOL_SECONDS = 400
WORST_POOL_LINES = 3000
HIT_POOL_LINES = 64
FIRST_RECORD = 7_000_000
# Log time between two lines: a host writing about 1,000 Sysmon events a second.
LINE_STEP_MS = 1

# A record id that appears nowhere else, to find where the real one goes.
_SENTINEL_RECORD = 987_654_321_012_345
_RECORD_MARK = b'"record_id":%d' % _SENTINEL_RECORD
_TIMESTAMP_HEAD = b'{"@timestamp":"'
_TIMESTAMP_LEN = len("2026-12-01T08:00:00.000Z")
_BLOCK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Template:
    """One pool line cut where its timestamp and record id go.

    A line is ``{"@timestamp":"`` + timestamp + `middle` + record id + `tail`; `tail`
    ends with the newline.
    """

    middle: bytes
    tail: bytes


def template(doc: dict) -> Template:
    """Cut a shaped event (serialised as winlogbeat does) into a Template."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    line = text.encode() + b"\n"
    assert line.startswith(_TIMESTAMP_HEAD)
    rest = line[len(_TIMESTAMP_HEAD) + _TIMESTAMP_LEN :]
    middle, tail = rest.split(_RECORD_MARK)
    return Template(middle + b'"record_id":', tail)


def shaped(event: Event) -> Template:
    """`event` as winlogbeat 7.17 writes it, cut into a Template."""
    return template(shape_ecs_7(event, _SENTINEL_RECORD, event.ms + 600, event.ms))


# --- The pools ------------------------------------------------------------------------

DUMPER_FOLDERS = (
    "C:\\Users\\jdoe\\Downloads\\",
    "C:\\Users\\jdoe\\AppData\\Local\\Temp\\",
    "C:\\Users\\mlopez\\AppData\\Local\\Temp\\",
    "C:\\ProgramData\\",
    "C:\\Windows\\Temp\\",
)
LSASS_SPELLINGS = ("C:\\Windows\\system32\\lsass.exe",) * 3 + (
    "C:\\Windows\\System32\\LSASS.EXE",
)


def odd_name(rng: random.Random) -> str:
    """A freshly dropped tool's file name: short, random, plausible."""
    stem = "".join(rng.choice("abcdefghkmnpqrstuvwxz0123456789") for _ in range(7))
    return f"{stem}.exe"


def dumper(h: Host, name: str = ""):
    """A process a MirrorDump-style tool runs as: odd name, user folder."""
    image = h.rng.choice(DUMPER_FOLDERS) + (name or odd_name(h.rng))
    ms = h.start_ms + h.rng.randrange(POOL_SECONDS * 1000)
    return h.spawn(image, f'"{image}"', h["powershell"], JDOE_ADMIN, ms, "High")


def hit_pool(h: Host) -> list[Template]:
    """True alerts: lsass.exe opens a dumper with 0x40 from an UNKNOWN frame."""
    rng, lsass = h.rng, h["lsass"]
    pool = []
    for _ in range(HIT_POOL_LINES):
        ms = h.start_ms + rng.randrange(POOL_SECONDS * 1000)
        target = dumper(h)
        thread = rng.randrange(900, 9000)
        image = rng.choice(LSASS_SPELLINGS)
        event = access(ms, lsass, target, "0x40", injected_trace(rng), thread, image)
        pool.append(shaped(event))
    return pool


def busy_pool(h: Host) -> list[Template]:
    """The sample host's ordinary background (no alert in it), shaped as 7.x."""
    play_background(h, per_second=7.4)
    events = h.in_stretch()
    assert not any(event.alert for event in events)
    return [shaped(event) for event in events]


# Sysmon configs name their rules; a name is free text, and here carries the literal
# that the near miss lacks where the rule looks for it.
RULE_NAMES_0X40 = (
    "technique_id=T1003.001,technique_name=LSASS Memory,GrantedAccess=0x40",
    "LSASS handle duplication (0x40)",
)
RULE_NAMES_UNKNOWN = (
    "technique_id=T1003.001,technique_name=Unknown caller",
    "unknown",
)
RULE_NAMES_LSASS = ("technique_id=T1003.001,technique_name=lsass.exe access",)
ACCESS_0X40_NEIGHBOURS = ("0x1040", "0X40", "0x400", "0x4000")


def worst_pool(h: Host) -> list[Template]:
    """Event 10 near misses that hold every literal of the rule; none alerts."""
    rng, lsass = h.rng, h["lsass"]
    readers = [h[key] for key in ("msmpeng", "wmiprvse", "ccmexec", "powershell")]
    pool = []
    for number in range(WORST_POOL_LINES):
        ms = h.start_ms + rng.randrange(POOL_SECONDS * 1000)
        thread = rng.randrange(900, 9000)
        case = number % 5
        if case == 0:
            # lsass is the target; the rule wants it as the source.
            source = rng.choice(readers)
            unknown = unknown_frame(rng, high=True)
            call_trace = trace(frames(NTDLL, 0x9D4C4), unknown)
            event = access(ms, source, lsass, "0x40", call_trace, thread)
        elif case == 1:
            # 0x40 from lsass with a clean trace; "unknown" only in other fields.
            call_trace = rng.choice((*SAMSRV_TRACES, LSASRV_TRACE))
            if rng.random() < 0.5:
                target = dumper(h, name=f"Unknown_{odd_name(rng)}")
            else:
                target = h[rng.choice(("svc_bits", "svc_schedule", "svc_gpsvc"))]
            event = access(ms, lsass, target, "0x40", call_trace, thread)
            event.data["RuleName"] = rng.choice(RULE_NAMES_UNKNOWN)
        elif case == 2:
            # lsass, an UNKNOWN frame, but the access is not exactly 0x40.
            granted = rng.choice(ACCESS_0X40_NEIGHBOURS)
            target = dumper(h)
            event = access(ms, lsass, target, granted, injected_trace(rng), thread)
            event.data["RuleName"] = rng.choice(RULE_NAMES_0X40)
        elif case == 3:
            # A look-alike source: Isass.exe (capital I), or lsass.exe's name with
            # more after it; "lsass.exe" itself only in the rule name.
            fake = dumper(h, name=rng.choice(("Isass.exe", "lsass.exe.bin")))
            target = h[rng.choice(("svc_bits", "explorer", "chrome"))]
            event = access(ms, fake, target, "0x40", injected_trace(rng), thread)
            event.data["RuleName"] = rng.choice(RULE_NAMES_LSASS)
        else:
            # Defender or WMI reading lsass with 0x40 through unknown frames,
            # lsass.exe written upper-case as the target.
            source = rng.choice(readers)
            call_trace = trace(frames(NTDLL, 0x9D4C4), unknown_frame(rng).lower())
            event = access(ms, source, lsass, "0x40", call_trace, thread)
            event.data["TargetImage"] = "C:\\Windows\\System32\\LSASS.EXE"
        pool.append(shaped(event))
    return pool


# --- Drawing lines --------------------------------------------------------------------


class LineSource:
    """An endless supply of corpus lines of one kind, each with a fresh record id."""

    def __init__(self, kind: str, seed: int, first_record: int = FIRST_RECORD):
        if kind not in KINDS:
            raise ValueError(f"unknown corpus kind {kind!r}")
        host = Host(seed, POOL_START, POOL_SECONDS)
        self.hits = hit_pool(host)
        self.pool = busy_pool(host) if kind == "busy" else worst_pool(host)
        self.rng = random.Random(seed)
        self.record_id = first_record
        self._ms = to_ms(POOL_START)
        self._second = -1
        self._second_text = b""

    def _next(self, line: Template) -> bytes:
        self._ms += LINE_STEP_MS
        second, millis = divmod(self._ms, 1000)
        if second != self._second:
            self._second = second
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second_text = stamp.encode()
        self.record_id += 1
        return b'{"@timestamp":"%b.%03dZ%b%d%b' % (
            self._second_text,
            millis,
            line.middle,
            self.record_id,
            line.tail,
        )

    def line(self) -> bytes:
        """One ordinary line (no alert), newline included."""
        return self._next(self.rng.choice(self.pool))

    def lines(self, count: int) -> list[bytes]:
        return [self._next(line) for line in self.rng.choices(self.pool, k=count)]

    def hit(self) -> tuple[bytes, int]:
        """One alerting line and its record id."""
        return self._next(self.rng.choice(self.hits)), self.record_id


@dataclass(slots=True)
class Written:
    """What `write_corpus` put in a file: the answer key a benchmark checks."""

    kind: str
    seed: int
    lines: int
    bytes: int
    hits: list[dict]  # {"line": 1-based number, "offset": byte, "record_id": int}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def hits_path(corpus: Path) -> Path:
    """Where the answer key of `corpus` is kept (not *.json: no follower reads it)."""
    return corpus.with_name(corpus.name + ".hits")


def load_written(corpus: Path) -> Written:
    return Written(**json.loads(hits_path(corpus).read_text()))


def write_corpus(kind: str, size: int, out: Path, seed: int, hits: int) -> Written:
    """Write about `size` bytes of `kind` to `out` with `hits` alerts evenly spread."""
    source = LineSource(kind, seed)
    # The byte offsets after which each hit goes: the middles of `hits` equal parts.
    marks = [size * (2 * k + 1) // (2 * hits) for k in range(hits)]
    planted: list[dict] = []
    written = lines = 0
    block: list[bytes] = []
    block_bytes = 0
    with open(out, "wb") as stream:
        while written < size:
            if len(planted) < hits and written >= marks[len(planted)]:
                line, record_id = source.hit()
                row = {"line": lines + 1, "offset": written, "record_id": record_id}
                planted.append(row)
            else:
                line = source.line()
            block.append(line)
            block_bytes += len(line)
            written += len(line)
            lines += 1
            if block_bytes >= _BLOCK_BYTES:
                stream.write(b"".join(block))
                block, block_bytes = [], 0
        stream.write(b"".join(block))
    result = Written(kind, seed, lines, written, planted)
    # Written last: a .hits file beside a corpus means the corpus is complete.
    result.save(hits_path(out))
    return result


def parse_size(text: str) -> int:
    """'500M', '1G', '1.5G', '4096' -> bytes (K, M, G are powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes FILE and FILE.hits (the planted alerts, as JSON).",
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--size", type=parse_size, default=parse_size("500M"))
    parser.add_argument("--out", type=Path, required=True, help="corpus file to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hits", type=int, default=100, help="true alerts to plant")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    result = write_corpus(args.kind, args.size, args.out, args.seed, args.hits)
    took = time.perf_counter() - started
    print(
        f"{args.out}: {result.kind}, {result.lines:,} lines, "
        f"{result.bytes / 2**20:,.0f} MiB ({result.bytes / result.lines:,.0f} B a "
        f"line) in {took:.1f} s; {len(result.hits)} planted hits "
        f"(listed in {hits_path(args.out)})"
    )


if __name__ == "__main__":
    main()
