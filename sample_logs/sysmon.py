"""What Sysmon writes on ws-042: accounts, processes, and one record per event.

Each builder returns an `Event` whose `data` is Sysmon's EventData in the order Sysmon
writes it; the winlogbeat shapes in `winlogbeat.py` start from that.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOST_FQDN = "ws-042.corp.example"
HOST_IP = "10.20.4.42"
DOMAIN_SID = "S-1-5-21-3104577235-2440876361-1772419605"
# Sysmon derives the first group of every GUID from the machine, so it never varies.
GUID_MACHINE = "5c1b3e07"

SYS32 = "C:\\Windows\\System32\\"
POWERSHELL = f"{SYS32}WindowsPowerShell\\v1.0\\powershell.exe"
CHROME = "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"
DEFENDER = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.23110.3-0\\"
MS_PRODUCT = "Microsoft\u00ae Windows\u00ae Operating System"
MS_VERSION = "10.0.19041.3570 (WinBuild.160101.0800)"


# --- Accounts, processes and time ----------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A logon session, as Sysmon names it."""

    domain: str
    name: str
    sid: str
    logon_id: int
    session: int

    @property
    def qualified(self) -> str:
        return f"{self.domain}\\{self.name}"

    @property
    def logon_guid(self) -> str:
        # Sysmon puts the logon id, little-endian, in the last group.
        tail = self.logon_id.to_bytes(4, "little").hex()
        return f"{{{GUID_MACHINE}-{self.logon_id & 0xFFFF:04x}-6a0c-0000-0020{tail}}}"


SYSTEM = Account("NT AUTHORITY", "SYSTEM", "S-1-5-18", 0x3E7, 0)
LOCAL_SERVICE = Account("NT AUTHORITY", "LOCAL SERVICE", "S-1-5-19", 0x3E5, 0)
NETWORK_SERVICE = Account("NT AUTHORITY", "NETWORK SERVICE", "S-1-5-20", 0x3E4, 0)
JDOE = Account("CORP", "jdoe", f"{DOMAIN_SID}-1107", 0x4C3F1A2, 1)
# jdoe is a local administrator: his elevated token is a second, linked logon.
JDOE_ADMIN = Account("CORP", "jdoe", f"{DOMAIN_SID}-1107", 0x4C3F1F0, 1)
MLOPEZ = Account("CORP", "mlopez", f"{DOMAIN_SID}-1264", 0x8D21B07, 2)
TCHEN = Account("CORP", "hd-tchen", f"{DOMAIN_SID}-2051", 0x9A40C11, 1)


@dataclass
class Proc:
    """One process, with what Sysmon reports about it."""

    image: str
    pid: int
    guid: str
    user: Account
    command_line: str
    parent: Proc | None
    integrity: str
    cwd: str

    @property
    def name(self) -> str:
        return basename(self.image)


def basename(path: str) -> str:
    """The last component of a Windows path."""
    return path.rsplit("\\", 1)[-1]


def to_ms(when: datetime) -> int:
    """Milliseconds since the epoch: the unit every time here is kept in."""
    return int(when.timestamp()) * 1000 + when.microsecond // 1000


def _utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def sysmon_time(ms: int) -> str:
    """Sysmon's UtcTime: a space between date and time, milliseconds."""
    return _utc(ms).strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def iso(ms: int) -> str:
    """A beats timestamp: ISO 8601 in UTC, milliseconds."""
    return _utc(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --- Sysmon records -------------------------------------------------------------------


@dataclass
class Event:
    """One Sysmon record: event id, time, and EventData in Sysmon's own field order.

    `alert`, `case` and `what` are the answer key that goes into the .expect.tsv.
    """

    code: int
    ms: int
    data: dict[str, str]
    what: str
    alert: bool = False
    case: str = "-"


WINDOWS_DESCRIPTIONS = {
    "ntdll.dll": "NT Layer DLL",
    "kernel32.dll": "Windows NT BASE API Client DLL",
    "kernelbase.dll": "Windows NT BASE API Client DLL",
    "advapi32.dll": "Advanced Windows 32 Base API",
    "rpcrt4.dll": "Remote Procedure Call Runtime",
    "combase.dll": "Microsoft COM for Windows",
    "ucrtbase.dll": "Microsoft\u00ae C Runtime Library",
    "wintypes.dll": "Windows Base Types DLL",
    "dnsapi.dll": "DNS Client API DLL",
    "mswsock.dll": "Microsoft Windows Sockets 2.0 Service Provider",
    "winhttp.dll": "Windows HTTP Services",
    "cryptnet.dll": "Crypto Network Related API",
    "wintrust.dll": "Microsoft Trust Verification APIs",
    "amsi.dll": "Anti-Malware Scan Interface",
    "mpoav.dll": "IOfficeAntiVirus Module",
    "propsys.dll": "Microsoft Property System",
    "windows.storage.dll": "Microsoft WinRT Storage API",
    "mscoree.dll": "Microsoft .NET Runtime Execution Engine",
    "clr.dll": "Microsoft .NET Runtime Common Language Runtime - WorkStation",
    "powershell.exe": "Windows PowerShell",
    "searchprotocolhost.exe": "Microsoft Windows Search Protocol Host",
    "searchfilterhost.exe": "Microsoft Windows Search Filter Host",
    "wmiprvse.exe": "WMI Provider Host",
    "taskhostw.exe": "Host Process for Windows Tasks",
    "backgroundtaskhost.exe": "Background Task Host",
    "dllhost.exe": "COM Surrogate",
    "conhost.exe": "Console Window Host",
    "cmd.exe": "Windows Command Processor",
    "taskmgr.exe": "Task Manager",
    "notepad.exe": "Notepad",
    "smartscreen.exe": "Windows Defender SmartScreen",
    "mpcmdrun.exe": "Microsoft Malware Protection Command Line Utility",
    "compattelrunner.exe": "Microsoft Compatibility Telemetry",
}

VENDOR_PE = {
    "chrome.exe": ("119.0.6045.200", "Google Chrome", "Google Chrome", "Google LLC"),
    "chrome.dll": ("119.0.6045.200", "Google Chrome", "Google Chrome", "Google LLC"),
    "teams.exe": (
        "1.6.0.33567",
        "Microsoft Teams",
        "Microsoft Teams",
        "Microsoft Corporation",
    ),
    "outlook.exe": (
        "16.0.16924.20150",
        "Microsoft Outlook",
        "Microsoft Office",
        "Microsoft Corporation",
    ),
}


def pe_info(path: str, original: str | None = None) -> tuple[str, str, str, str, str]:
    """FileVersion, Description, Product, Company and OriginalFileName of an image."""
    name = basename(path)
    lower = name.lower()
    if lower in VENDOR_PE:
        return (*VENDOR_PE[lower], original or name)
    if path.lower().startswith(("c:\\windows\\", DEFENDER.lower())):
        desc = WINDOWS_DESCRIPTIONS.get(lower, name.rsplit(".", 1)[0])
        return MS_VERSION, desc, MS_PRODUCT, "Microsoft Corporation", original or name
    # Tools built without version resources, like most dumpers, report dashes.
    return "-", "-", "-", "-", original or "-"


def pe_hashes(path: str) -> str:
    """Sysmon's Hashes value for an image: made up, but stable for each path."""
    key = path.lower().encode()
    md5 = hashlib.md5(key).hexdigest().upper()
    sha256 = hashlib.sha256(key).hexdigest().upper()
    imphash = hashlib.md5(b"imports:" + key).hexdigest().upper()
    return f"MD5={md5},SHA256={sha256},IMPHASH={imphash}"


def _subject(proc: Proc) -> dict[str, str]:
    """The acting process's fields, which most event ids share."""
    return {
        "ProcessGuid": proc.guid,
        "ProcessId": str(proc.pid),
        "Image": proc.image,
    }


def process_create(ms: int, proc: Proc, original: str | None = None) -> Event:
    """Event 1: `proc` started; `original` overrides the PE OriginalFileName."""
    parent = proc.parent
    assert parent is not None, "every process start here has a parent"
    version, desc, product, company, original = pe_info(proc.image, original)
    data = {"RuleName": "-", "UtcTime": sysmon_time(ms), **_subject(proc)}
    data |= {
        "FileVersion": version,
        "Description": desc,
        "Product": product,
        "Company": company,
        "OriginalFileName": original,
        "CommandLine": proc.command_line,
        "CurrentDirectory": proc.cwd,
        "User": proc.user.qualified,
        "LogonGuid": proc.user.logon_guid,
        "LogonId": hex(proc.user.logon_id),
        "TerminalSessionId": str(proc.user.session),
        "IntegrityLevel": proc.integrity,
        "Hashes": pe_hashes(proc.image),
        "ParentProcessGuid": parent.guid,
        "ParentProcessId": str(parent.pid),
        "ParentImage": parent.image,
        "ParentCommandLine": parent.command_line,
        "ParentUser": parent.user.qualified,
    }
    return Event(1, ms, data, f"{proc.name} started by {parent.name}")


def process_end(ms: int, proc: Proc) -> Event:
    """Event 5: `proc` exited."""
    data = {"RuleName": "-", "UtcTime": sysmon_time(ms), **_subject(proc)}
    data["User"] = proc.user.qualified
    return Event(5, ms, data, f"{proc.name} ended")


def image_load(
    ms: int, proc: Proc, dll: str, signer: str = "Microsoft Windows"
) -> Event:
    """Event 7: `proc` loaded `dll`; `signer` "-" means unsigned."""
    version, desc, product, company, original = pe_info(dll)
    data = {"RuleName": "-", "UtcTime": sysmon_time(ms), **_subject(proc)}
    data |= {
        "ImageLoaded": dll,
        "FileVersion": version,
        "Description": desc,
        "Product": product,
        "Company": company,
        "OriginalFileName": original,
        "Hashes": pe_hashes(dll),
        "Signed": "false" if signer == "-" else "true",
        "Signature": signer,
        "SignatureStatus": "Unavailable" if signer == "-" else "Valid",
        "User": proc.user.qualified,
    }
    return Event(7, ms, data, f"{proc.name} loaded {basename(dll)}")


def file_create(ms: int, proc: Proc, path: str) -> Event:
    """Event 11: `proc` created (or overwrote) the file at `path`."""
    data = {"RuleName": "-", "UtcTime": sysmon_time(ms), **_subject(proc)}
    data |= {
        "TargetFilename": path,
        "CreationUtcTime": sysmon_time(ms),
        "User": proc.user.qualified,
    }
    return Event(11, ms, data, f"{proc.name} created {basename(path)}")


def registry(ms: int, proc: Proc, kind: str, key: str, details: str = "") -> Event:
    """Event 13 (a value set) when `details` is given, else event 12."""
    data = {"RuleName": "-", "EventType": kind, "UtcTime": sysmon_time(ms)}
    data |= {**_subject(proc), "TargetObject": key}
    if details:
        data["Details"] = details
    data["User"] = proc.user.qualified
    what = f"{proc.name} {kind} {basename(key)}"
    return Event(13 if details else 12, ms, data, what)


# The service names Sysmon prints beside well-known destination ports.
PORT_NAMES = {443: "https", 88: "kerberos", 389: "ldap", 445: "microsoft-ds"}


def connection(ms: int, proc: Proc, port: int, ip: str, host: str, dport: int) -> Event:
    """Event 3: `proc` opened an outbound connection from `port` to `ip`:`dport`."""
    data = {"RuleName": "-", "UtcTime": sysmon_time(ms), **_subject(proc)}
    data |= {
        "User": proc.user.qualified,
        "Protocol": "udp" if dport == 53 else "tcp",
        "Initiated": "true",
        "SourceIsIpv6": "false",
        "SourceIp": HOST_IP,
        "SourceHostname": HOST_FQDN,
        "SourcePort": str(port),
        "SourcePortName": "-",
        "DestinationIsIpv6": "false",
        "DestinationIp": ip,
        "DestinationHostname": host,
        "DestinationPort": str(dport),
        "DestinationPortName": PORT_NAMES.get(dport, "-"),
    }
    return Event(3, ms, data, f"{proc.name} connected to {ip}:{dport}")


def dns_query(ms: int, proc: Proc, name: str, status: str, results: str) -> Event:
    """Event 22: `proc` looked up `name`; `results` in Sysmon's QueryResults form."""
    data = {"RuleName": "-", "UtcTime": sysmon_time(ms)}
    data |= {
        "ProcessGuid": proc.guid,
        "ProcessId": str(proc.pid),
        "QueryName": name,
        "QueryStatus": status,
        "QueryResults": results,
        "Image": proc.image,
        "User": proc.user.qualified,
    }
    return Event(22, ms, data, f"{proc.name} looked up {name}")


def access(
    ms: int,
    src: Proc,
    dst: Proc,
    granted: str,
    call_trace: str,
    thread: int,
    source_image: str | None = None,
) -> Event:
    """Event 10: `src` opened `dst` and was granted `granted`."""
    data = {
        "RuleName": "-",
        "UtcTime": sysmon_time(ms),
        "SourceProcessGUID": src.guid,
        "SourceProcessId": str(src.pid),
        "SourceThreadId": str(thread),
        "SourceImage": source_image or src.image,
        "TargetProcessGUID": dst.guid,
        "TargetProcessId": str(dst.pid),
        "TargetImage": dst.image,
        "GrantedAccess": granted,
        "CallTrace": call_trace,
        "SourceUser": src.user.qualified,
        "TargetUser": dst.user.qualified,
    }
    name = basename(source_image or src.image)
    return Event(10, ms, data, f"{name} opened {dst.name} with {granted}")


# --- Call traces ----------------------------------------------------------------------

NTDLL = "C:\\Windows\\SYSTEM32\\ntdll.dll"
KBASE = "C:\\Windows\\System32\\KERNELBASE.dll"
K32 = "C:\\Windows\\System32\\KERNEL32.DLL"
RPCRT4 = "C:\\Windows\\System32\\RPCRT4.dll"
SAMSRV = "C:\\Windows\\SYSTEM32\\samsrv.dll"
LSASRV = "C:\\Windows\\system32\\lsasrv.dll"
SSPISRV = "C:\\Windows\\SYSTEM32\\SspiSrv.dll"
THREAD_START = f"{K32}+17034|{NTDLL}+526a1"


def frames(module: str, *offsets: int) -> str:
    """Call-trace frames in one module, Sysmon style: `path+hexoffset`."""
    return "|".join(f"{module}+{offset:x}" for offset in offsets)


def trace(*parts: str) -> str:
    """A call trace from its parts, innermost frame first."""
    return "|".join(parts)


# The RPC dispatch under every request lsass serves for a client.
RPC_DISPATCH = trace(
    frames(RPCRT4, 0x796E3, 0xDD77B, 0x5D11C, 0x5A278, 0x3A416, 0x39D68),
    frames(RPCRT4, 0x4887F, 0x47C88, 0x47271, 0x46CDE, 0x4B3B2),
    frames(NTDLL, 0x20330, 0x52F76),
    THREAD_START,
)
# lsass duplicating a handle for a SAM RPC client gets 0x40 from ntdll through
# samsrv.dll and RPCRT4.dll: the everyday near miss, shaped like public Sysmon data.
SAMSRV_TRACES = (
    trace(
        frames(NTDLL, 0x9D4C4),
        frames(SAMSRV, 0x17A3, 0x1449, 0x1366, 0x12DE),
        RPC_DISPATCH,
    ),
    trace(
        frames(NTDLL, 0x9D4C4),
        frames(SAMSRV, 0x17A3, 0x1619, 0x15B7, 0x13B2, 0x12CB),
        RPC_DISPATCH,
    ),
)
LSASRV_TRACE = trace(
    frames(NTDLL, 0x9D4C4),
    frames(LSASRV, 0x3C1D3, 0xA7CC),
    frames(SSPISRV, 0x17CC),
    RPC_DISPATCH,
)
LSASRV_TOKEN_TRACE = trace(
    frames(NTDLL, 0x9D4C4),
    frames(LSASRV, 0x18A2A, 0x195BF, 0x18883),
    frames(SSPISRV, 0x1B02),
    RPC_DISPATCH,
)
SAMSRV_KBASE_TRACE = trace(
    frames(NTDLL, 0x9D4C4),
    frames(KBASE, 0x2C13E),
    frames(SAMSRV, 0x2A79, 0x292F, 0x1FAF),
    RPC_DISPATCH,
)


def caller_trace(module: str, *offsets: int) -> str:
    """An ordinary OpenProcess: ntdll, KERNELBASE, the caller's frames, thread start."""
    own = frames(module, *offsets)
    return trace(f"{NTDLL}+9d4c4", f"{KBASE}+2c13e", own, THREAD_START)


def unknown_frame(rng: random.Random, high: bool = False) -> str:
    """A frame in memory that no loaded module covers; 16 hex digits on x64."""
    if high:
        return f"UNKNOWN(00007FF{rng.randrange(0x900000000, 0xFFFFFFFFF):09X})"
    return f"UNKNOWN(00000000{rng.randrange(0x400000, 0x7FFFFFFF):08X})"


def injected_trace(rng: random.Random) -> str:
    """DuplicateHandle called from code running where no module is mapped."""
    middle = unknown_frame(rng)
    if rng.random() < 0.5:
        middle = trace(frames(KBASE, rng.choice((0x2B7A9, 0x2B6F1))), middle)
    return trace(frames(NTDLL, 0x9D234), middle, THREAD_START)
