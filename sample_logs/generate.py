"""Write the synthetic winlogbeat sample logs kept beside this script.

Usage: ``python sample_logs/generate.py [OUTDIR]`` (OUTDIR defaults to this folder).

The output is identical, byte for byte, on every run: a seeded ``random.Random`` per
file makes every choice, no clock or environment is read, and files are written as
UTF-8 with ``\\n`` endings. Only the standard library is used.

The machine is ws-042.corp.example, a busy Windows 10 workstation in the CORP domain
running Sysmon. Two stretches of its Sysmon channel come out, each with an
``.expect.tsv`` naming the lines that Elastic's rule "Potential Credential Access via
DuplicateHandle in LSASS" must alert on, and why every other line must not:

* ``ws-042.winlogbeat7.ndjson``: five minutes as winlogbeat 7.17's Sysmon module ships
  them, with the ECS fields (``event.category``, ``process.*`` ...) filled in.
* ``ws-042.winlogbeat8.ndjson``: a later stretch, after the agent moved to 8.11, whose
  file output holds the raw event data only.

Beside this entry point, which plants the stories and writes the files:
``sysmon.py`` builds Sysmon's records, ``workstation.py`` runs the host and its
ordinary background, and ``winlogbeat.py`` turns a record into either shape.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sysmon import (
    JDOE,
    JDOE_ADMIN,
    KBASE,
    LSASRV_TRACE,
    NTDLL,
    POWERSHELL,
    SYS32,
    TCHEN,
    Event,
    access,
    basename,
    caller_trace,
    connection,
    dns_query,
    file_create,
    frames,
    image_load,
    injected_trace,
    process_create,
    process_end,
    trace,
    unknown_frame,
)
from winlogbeat import shape_ecs_7, shape_raw_8
from workstation import JDOE_LOCAL, Host, play_background

# One seed per file, so that retuning one file's stories never reshuffles the other.
SEED_7 = 20261130
SEED_8 = 20261131
START_7 = datetime(2026, 11, 30, 9, 12, 0, tzinfo=UTC)
START_8 = datetime(2026, 11, 30, 14, 5, 0, tzinfo=UTC)
# Sysmon record numbers keep counting across the agent upgrade between the files.
FIRST_RECORD_7 = 4_182_731
FIRST_RECORD_8 = 4_391_207


# --- The planted stories --------------------------------------------------------------

DOWNLOADS = "C:\\Users\\jdoe\\Downloads\\"
TEMP = f"{JDOE_LOCAL}\\Temp\\"
MLOPEZ_TEMP = "C:\\Users\\mlopez\\AppData\\Local\\Temp\\"
# Explorer unpacks an exe opened from inside a zip to a Temp1_<zip name> folder.
MAIL_ZIP = f"{MLOPEZ_TEMP}Temp1_invoice_0412.zip\\"
TCHEN_DOWNLOADS = "C:\\Users\\hd-tchen\\Downloads\\"


@dataclass(frozen=True)
class Dump:
    """One planted credential dump.

    `parent` names the launching process on the host; `lsass_image`, when set, is the
    path Sysmon reports for lsass in the hit (to vary its letter case).
    """

    case: str
    parent: str
    image: str
    args: str
    plugin: str
    output: str
    lsass_image: str | None = None
    original: str | None = None


def plant_dump(h: Host, ms: int, dump: Dump) -> None:
    """A MirrorDump-style credential dump, told as Sysmon would see it.

    The dumper drops a fake LSA plugin that lsass loads; code in lsass then hands the
    dumper a copy of lsass's own handle with DuplicateHandle, which makes lsass open
    the dumper with PROCESS_DUP_HANDLE (0x40) from memory no module covers. That
    access is the hit; the rest is the context an analyst would pivot to.
    """
    case, story, lsass = dump.case, f"{dump.case}-story", h["lsass"]
    parent = h[dump.parent]
    folder = dump.image.rsplit("\\", 1)[0] + "\\"
    command_line = f'"{dump.image}" {dump.args}'
    dumper = h.spawn(
        dump.image, command_line, parent, parent.user, ms, "High", cwd=folder
    )
    start = h.add(process_create(ms, dumper, dump.original), story)
    start.what = f"{case}: {dumper.name} started by {parent.name} from {folder}"
    clr = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\clr.dll"
    for dll in ("ntdll.dll", "kernel32.dll", "KernelBase.dll", "mscoree.dll", clr):
        ms += h.rng.randrange(3, 20)
        path = dll if "\\" in dll else f"{SYS32}{dll}"
        loaded = h.add(image_load(ms, dumper, path), story)
        loaded.what = f"{case}: {dumper.name} loads {basename(path)}"

    ms += h.rng.randrange(300, 600)
    drop = h.add(file_create(ms, dumper, dump.plugin), story)
    drop.what = f"{case}: the dumper writes its LSA plugin {basename(dump.plugin)}"
    ms += h.rng.randrange(40, 90)
    load = h.add(image_load(ms, lsass, dump.plugin, signer="-"), story)
    load.what = f"{case}: lsass loads the unsigned plugin"

    ms += h.rng.randrange(20, 60)
    call_trace = injected_trace(h.rng)
    hit = access(ms, lsass, dumper, "0x40", call_trace, 6268, dump.lsass_image)
    name = basename(dump.lsass_image or lsass.image)
    hit.what = f"{name} 0x40 to {dumper.name} from an UNKNOWN frame: DuplicateHandle"
    h.add(hit, case, alert=True)

    ms += h.rng.randrange(600, 1400)
    written = h.add(file_create(ms, dumper, dump.output), story)
    written.what = f"{case}: the dumper writes {basename(dump.output)}"
    ms += h.rng.randrange(100, 300)
    h.add(process_end(ms, dumper), story).what = f"{case}: {dumper.name} exits"


def near_miss(h: Host, event: Event, case: str, why: str) -> None:
    event.what = why
    h.add(event, case)


def near_misses(h: Host, at: dict[str, int]) -> None:
    """The accesses that look like a hit and must not alert, at the times in `at`."""
    lsass, rng = h["lsass"], h.rng
    if "near-target" in at:
        # The shape of Invoke-Mimikatz reading lsass from reflectively loaded code.
        reflective = unknown_frame(rng, high=True)
        call_trace = trace(frames(NTDLL, 0x9D4C4), frames(KBASE, 0x2C13E), reflective)
        shell = h["powershell"]
        event = access(at["near-target"], shell, lsass, "0x40", call_trace, 7716)
        why = "lsass is the TARGET (0x40, UNKNOWN frame); the rule wants it as source"
        near_miss(h, event, "near-target", why)

    if "near-upper-0X40" in at:
        ms, call_trace = at["near-upper-0X40"], injected_trace(rng)
        event = access(ms, lsass, h["svc_bits"], "0X40", call_trace, 6268)
        why = "GrantedAccess 0X40 in upper case: '==' is case-sensitive"
        near_miss(h, event, "near-upper-0X40", why)

    if "near-0x1040" in at:
        ms, call_trace = at["near-0x1040"], injected_trace(rng)
        event = access(ms, lsass, h["onedrive"], "0x1040", call_trace, 6268)
        why = "lsass source with an UNKNOWN frame, but GrantedAccess 0x1040 is not 0x40"
        near_miss(h, event, "near-0x1040", why)

    if "near-clean-trace" in at:
        # An Inno Setup helper authenticating: lsass opens it for an SSPI call.
        ms, story = at["near-clean-trace"], "near-clean-trace-story"
        image = f"{TEMP}is-4KQ2P.tmp\\teams_meeting_addin_setup.tmp"
        setup = f"{DOWNLOADS}teams_meeting_addin_setup.exe"
        command_line = f'"{image}" /SL5="$5043A,2349213,56832,{setup}"'
        helper = h.spawn(image, command_line, h["explorer"], JDOE, ms - 2500)
        h.start_process(ms - 2500, helper, case=story)
        event = access(ms, lsass, helper, "0x40", LSASRV_TRACE, 5120)
        why = "lsass 0x40 to a fresh Temp process, but the trace has no UNKNOWN frame"
        near_miss(h, event, "near-clean-trace", why)
        h.add(process_end(ms + 4200, helper), story)

    if "near-lookalike" in at:
        # Isass.exe with a capital I: a masquerade, not lsass, so not this rule.
        ms, story = at["near-lookalike"], "near-lookalike-story"
        image = f"{TEMP}Isass.exe"
        fake = h.spawn(image, f'"{image}"', h["powershell"], JDOE_ADMIN, ms - 1800)
        h.start_process(ms - 1800, fake, case=story)
        event = access(ms, fake, h["svc_bits"], "0x40", injected_trace(rng), 9932)
        why = "source Isass.exe (capital I) is not lsass.exe, even ignoring case"
        near_miss(h, event, "near-lookalike", why)
        h.add(process_end(ms + 900, fake), story)


def taskmgr_window(h: Host, opened: int, closed: int) -> None:
    """jdoe keeps Task Manager open: it reads every process, lsass included."""
    image = f"{SYS32}Taskmgr.exe"
    taskmgr = h.spawn(image, f'"{image}" /4', h["explorer"], JDOE_ADMIN, opened, "High")
    h.start_process(opened, taskmgr, ("uxtheme.dll", "pdh.dll", "wdi.dll"))
    read = caller_trace(f"{SYS32}taskmgr.exe", 0x2E47E, 0x7ABCC, 0x7B2E9)
    ms = opened + 1500
    while ms < closed:
        event = access(ms, taskmgr, h["lsass"], "0x1410", read, 9380)
        event.what = "Task Manager reads lsass (0x1410): lsass is the target"
        h.add(event, "lsass-target")
        other = h[h.rng.choice(("chrome", "teams", "outlook", "msmpeng"))]
        h.add(access(ms + 3, taskmgr, other, "0x1410", read, 9380))
        ms += h.rng.randrange(2500, 4500)
    h.add(process_end(closed, taskmgr))


def stretch_7() -> Host:
    """09:12 to 09:17: jdoe's morning, with four dumps among the ordinary events."""
    h = Host(SEED_7, START_7, 300)
    t = h.start_ms
    # First, so that a replay at 50-100 lines a second alerts within seconds.
    hit1 = Dump(
        case="hit1",
        parent="powershell",
        image=f"{DOWNLOADS}QxR7.exe",
        args=f"-f {TEMP}wct4B2A.zip -d LegitLSAPlugin.dll -l 1073741824",
        plugin=f"{DOWNLOADS}LegitLSAPlugin.dll",
        output=f"{TEMP}wct4B2A.zip",
        original="MirrorDump.exe",
    )
    plant_dump(h, t + 900, hit1)

    # mlopez opens an exe straight from a mailed zip.
    h.add(file_create(t + 78_400, h["explorer2"], f"{MAIL_ZIP}svc_diag64.exe"))
    hit2 = Dump(
        case="hit2",
        parent="explorer2",
        image=f"{MAIL_ZIP}svc_diag64.exe",
        args=f"-f {MLOPEZ_TEMP}diag_0412.dmp -d {MAIL_ZIP}wlsp.dll",
        plugin=f"{MAIL_ZIP}wlsp.dll",
        output=f"{MLOPEZ_TEMP}diag_0412.dmp",
    )
    plant_dump(h, t + 79_100, hit2)

    # The helpdesk account gets a PowerShell through "Run as different user".
    ms = t + 121_000
    shell = h.spawn(
        POWERSHELL, f'"{POWERSHELL}" ', h["svc_seclogon"], TCHEN, ms, "High"
    )
    h.procs["tchen_shell"] = shell
    h.start_process(ms, shell, ("amsi.dll", "clr.dll"))
    hit3 = Dump(
        case="hit3",
        parent="tchen_shell",
        image=f"{TCHEN_DOWNLOADS}wupd_8843.exe",
        args=f"-f {TCHEN_DOWNLOADS}wupd.zip -d wupd_lsa.dll",
        plugin=f"{TCHEN_DOWNLOADS}wupd_lsa.dll",
        output=f"{TCHEN_DOWNLOADS}wupd.zip",
        lsass_image="C:\\Windows\\System32\\LSASS.EXE",
    )
    plant_dump(h, t + 152_300, hit3)

    # jdoe's shell fetches another dumper from a look-alike update host.
    ms, shell, address = t + 236_000, h["powershell"], "198.51.100.23"
    name = "dl.cdn-msupdate.example"
    h.add(dns_query(ms, shell, name, "0", f"::ffff:{address};"))
    h.add(connection(ms + 41, shell, h.port(), address, "-", 443))
    h.add(file_create(ms + 1900, shell, f"{TEMP}a9f0c2e1.exe"))
    hit4 = Dump(
        case="hit4",
        parent="powershell",
        image=f"{TEMP}a9f0c2e1.exe",
        args=f"-f {TEMP}a9f0c2e1.zip -d {TEMP}msv1_1.dll",
        plugin=f"{TEMP}msv1_1.dll",
        output=f"{TEMP}a9f0c2e1.zip",
    )
    plant_dump(h, ms + 3400, hit4)

    near_misses(
        h,
        {
            "near-target": t + 22_300,
            "near-upper-0X40": t + 47_800,
            "near-0x1040": t + 104_600,
            "near-clean-trace": t + 186_200,
            "near-lookalike": t + 207_500,
        },
    )
    taskmgr_window(h, t + 58_000, t + 141_000)
    play_background(h, per_second=7.4)
    return h


def stretch_8() -> Host:
    """14:05 to about 14:07, after the agent upgrade: two more dumps."""
    h = Host(SEED_8, START_8, 130)
    t = h.start_ms
    hit5 = Dump(
        case="hit5",
        parent="explorer",
        image=f"{DOWNLOADS}rtkaudsvc.exe",
        args=f"-f {TEMP}rtk.zip -d rtklsa.dll",
        plugin=f"{DOWNLOADS}rtklsa.dll",
        output=f"{TEMP}rtk.zip",
    )
    plant_dump(h, t + 31_500, hit5)
    hit6 = Dump(
        case="hit6",
        parent="powershell",
        image=f"{TEMP}x64\\hbk.exe",
        args=f"-f {TEMP}x64\\hbk.dmp -d hbklsa.dll",
        plugin=f"{TEMP}x64\\hbklsa.dll",
        output=f"{TEMP}x64\\hbk.dmp",
        lsass_image="C:\\WINDOWS\\system32\\LSASS.EXE",
    )
    plant_dump(h, t + 96_200, hit6)
    near_misses(
        h,
        {
            "near-target": t + 14_700,
            "near-0x1040": t + 58_900,
            "near-clean-trace": t + 74_400,
            "near-upper-0X40": t + 111_300,
        },
    )
    play_background(h, per_second=7.4)
    return h


# --- Writing --------------------------------------------------------------------------

Shape = Callable[[Event, int, int, int], dict]


def write_stretch(h: Host, out_dir: Path, stem: str, shape: Shape, first: int) -> None:
    """Write `stem`.ndjson and its answer key `stem`.expect.tsv."""
    lines: list[bytes] = []
    rows = ["line\toffset\talert\tcase\twhat"]
    offset = created = published = 0
    for number, event in enumerate(h.in_stretch(), start=1):
        # winlogbeat reads the channel a little behind Sysmon, and never goes back.
        created = max(created, event.ms + h.rng.randrange(250, 1400))
        published = max(published, event.ms + h.rng.randrange(0, 4))
        doc = shape(event, first + number - 1, created, published)
        line = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
        alert = "yes" if event.alert else "no"
        rows.append(f"{number}\t{offset}\t{alert}\t{event.case}\t{event.what}")
        lines.append(line.encode("utf-8"))
        offset += len(lines[-1])
    (out_dir / f"{stem}.ndjson").write_bytes(b"".join(lines))
    (out_dir / f"{stem}.expect.tsv").write_bytes(("\n".join(rows) + "\n").encode())


def main(argv: list[str] | None = None) -> None:
    """Write both stretches into the directory given, or beside this script."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("out_dir", nargs="?", type=Path, default=here)
    out_dir = parser.parse_args(argv).out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    write_stretch(
        stretch_7(), out_dir, "ws-042.winlogbeat7", shape_ecs_7, FIRST_RECORD_7
    )
    write_stretch(
        stretch_8(), out_dir, "ws-042.winlogbeat8", shape_raw_8, FIRST_RECORD_8
    )


if __name__ == "__main__":
    main()
