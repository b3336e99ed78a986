"""ws-042 at work: the processes it runs and the ordinary activity they log."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime

from sysmon import (
    CHROME,
    DEFENDER,
    GUID_MACHINE,
    JDOE,
    JDOE_ADMIN,
    KBASE,
    LOCAL_SERVICE,
    LSASRV_TOKEN_TRACE,
    LSASRV_TRACE,
    MLOPEZ,
    NETWORK_SERVICE,
    NTDLL,
    POWERSHELL,
    SAMSRV_KBASE_TRACE,
    SAMSRV_TRACES,
    SYS32,
    SYSTEM,
    Account,
    Event,
    Proc,
    access,
    caller_trace,
    connection,
    dns_query,
    file_create,
    image_load,
    process_create,
    process_end,
    registry,
    to_ms,
    trace,
    unknown_frame,
)

BOOT = datetime(2026, 11, 30, 7, 58, 12, tzinfo=UTC)
DC = ("10.20.0.10", "dc01.corp.example")
JDOE_LOCAL = "C:\\Users\\jdoe\\AppData\\Local"


# --- The host -------------------------------------------------------------------------

# Processes running before either stretch starts: key, image, command line, parent
# key, account, seconds after boot, integrity level, pid. Image "svchost" stands for
# svchost.exe hosting the service group given as command line; "renderer N" is the
# command line of Chrome's renderer number N.
BOOT_PROCESSES = (
    ("system", "System", "", None, SYSTEM, 0, "System", 4),
    ("wininit", f"{SYS32}wininit.exe", "wininit.exe", "system", SYSTEM, 1, "System",
     648),
    ("services", f"{SYS32}services.exe", f"{SYS32}services.exe", "wininit", SYSTEM, 1,
     "System", 792),
    ("lsass", "C:\\Windows\\system32\\lsass.exe", "C:\\Windows\\system32\\lsass.exe",
     "wininit", SYSTEM, 1, "System", 812),
    ("svc_dcom", "svchost", "DcomLaunch -p", "services", SYSTEM, 2, "System", 936),
    ("svc_rpcss", "svchost", "RPCSS -p", "services", NETWORK_SERVICE, 2, "System",
     1004),
    ("svc_schedule", "svchost", "netsvcs -p -s Schedule", "services", SYSTEM, 3,
     "System", 1188),
    ("svc_gpsvc", "svchost", "netsvcs -p -s gpsvc", "services", SYSTEM, 3, "System",
     1240),
    ("svc_eventlog", "svchost", "LocalServiceNetworkRestricted -p -s EventLog",
     "services", LOCAL_SERVICE, 3, "System", 1392),
    ("svc_dnscache", "svchost", "NetworkService -p -s Dnscache", "services",
     NETWORK_SERVICE, 3, "System", 1528),
    ("svc_bits", "svchost", "netsvcs -p -s BITS", "services", SYSTEM, 4, "System",
     1776),
    ("svc_sysmain", "svchost", "LocalSystemNetworkRestricted -p -s SysMain",
     "services", SYSTEM, 4, "System", 2012),
    ("svc_diagtrack", "svchost", "utcsvc -p", "services", SYSTEM, 5, "System", 2344),
    ("svc_winmgmt", "svchost", "netsvcs -p -s Winmgmt", "services", SYSTEM, 5,
     "System", 2560),
    ("svc_seclogon", "svchost", "netsvcs -p -s seclogon", "services", SYSTEM, 6,
     "System", 2604),
    ("winlogbeat", "C:\\Program Files\\Winlogbeat\\winlogbeat.exe",
     '"C:\\Program Files\\Winlogbeat\\winlogbeat.exe" --environment=windows_service '
     '-c "C:\\Program Files\\Winlogbeat\\winlogbeat.yml" --path.home '
     '"C:\\Program Files\\Winlogbeat" --path.data "C:\\ProgramData\\winlogbeat"',
     "services", SYSTEM, 9, "System", 3420),
    ("msmpeng", f"{DEFENDER}MsMpEng.exe", f'"{DEFENDER}MsMpEng.exe"', "services",
     SYSTEM, 8, "System", 3592),
    ("ccmexec", "C:\\Windows\\CCM\\CcmExec.exe", "C:\\Windows\\CCM\\CcmExec.exe",
     "services", SYSTEM, 15, "System", 3760),
    ("searchindexer", f"{SYS32}SearchIndexer.exe", f"{SYS32}SearchIndexer.exe "
     "/Embedding", "services", SYSTEM, 40, "System", 6120),
    ("wmiprvse", f"{SYS32}wbem\\WmiPrvSE.exe", f"{SYS32}wbem\\wmiprvse.exe -secured "
     "-Embedding", "svc_dcom", NETWORK_SERVICE, 60, "System", 4388),
    ("explorer", "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", "wininit",
     JDOE, 300, "Medium", 5920),
    ("sihost", f"{SYS32}sihost.exe", "sihost.exe", "svc_dcom", JDOE, 298, "Medium",
     5480),
    ("runtimebroker", f"{SYS32}RuntimeBroker.exe", f"{SYS32}RuntimeBroker.exe "
     "-Embedding", "svc_dcom", JDOE, 304, "Medium", 6880),
    ("onedrive", "C:\\Users\\jdoe\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe",
     '"C:\\Users\\jdoe\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe" '
     "/background", "explorer", JDOE, 309, "Medium", 7644),
    ("chrome", CHROME, f'"{CHROME}" ', "explorer", JDOE, 340, "Medium", 8120),
    ("teams", "C:\\Users\\jdoe\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
     '"C:\\Users\\jdoe\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe" '
     "--system-initiated", "explorer", JDOE, 312, "Medium", 10212),
    ("outlook", "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
     '"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE" ', "explorer",
     JDOE, 352, "Medium", 11044),
    ("chrome_r0", CHROME, "renderer 140", "chrome", JDOE, 341, "Low", 8344),
    ("chrome_r1", CHROME, "renderer 141", "chrome", JDOE, 620, "Low", 8412),
    ("chrome_r2", CHROME, "renderer 152", "chrome", JDOE, 1710, "Low", 9012),
    ("chrome_r3", CHROME, "renderer 167", "chrome", JDOE, 3302, "Low", 9460),
    ("powershell", POWERSHELL, f'"{POWERSHELL}" ', "explorer", JDOE_ADMIN, 2460,
     "High", 12380),
    ("explorer2", "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", "wininit",
     MLOPEZ, 2580, "Medium", 13872),
    ("chrome2", CHROME, f'"{CHROME}" ', "explorer2", MLOPEZ, 2590, "Medium", 14220),
)  # fmt: skip


def chrome_renderer(client_id: int) -> str:
    """The command line Chrome gives a renderer child."""
    return (
        f'"{CHROME}" --type=renderer --display-capture-permissions-policy-allowed '
        "--lang=en-US --device-scale-factor=1 --num-raster-threads=4 "
        f"--enable-main-frame-before-activation --renderer-client-id={client_id} "
        "--time-ticks-at-unix-epoch=-1764486280551731 --launch-time-ticks=3421875214 "
        "--field-trial-handle=1912,i,4021356874155832207,9160285503811162584,262144 "
        "/prefetch:1"
    )


class Host:
    """ws-042 during one stretch: its processes, and the events Sysmon logged."""

    def __init__(self, seed: int, start: datetime, seconds: int) -> None:
        self.rng = random.Random(seed)
        self.start_ms = to_ms(start)
        self.end_ms = self.start_ms + seconds * 1000
        self.events: list[Event] = []
        self.procs: dict[str, Proc] = {}
        self._pids: list[int] = []
        self._guid_seq = 0x1A0
        self._port = 50000 + self.rng.randrange(5000)
        boot = to_ms(BOOT)
        for key, image, cmd, parent, user, after, integrity, pid in BOOT_PROCESSES:
            if image == "svchost":
                image = f"{SYS32}svchost.exe"
                cmd = f"{image} -k {cmd}"
            elif cmd.startswith("renderer "):
                cmd = chrome_renderer(int(cmd.split()[1]))
            parent_proc = self.procs[parent] if parent else None
            started = boot + after * 1000 + pid
            proc = self.spawn(image, cmd, parent_proc, user, started, integrity, pid)
            self.procs[key] = proc

    def __getitem__(self, key: str) -> Proc:
        return self.procs[key]

    def spawn(
        self,
        image: str,
        command_line: str,
        parent: Proc | None,
        user: Account,
        started_ms: int,
        integrity: str = "Medium",
        pid: int | None = None,
        cwd: str | None = None,
    ) -> Proc:
        """A new process (no event: the caller logs its start if it should)."""
        if pid is None:
            pid = self.rng.randrange(1000, 17000) // 4 * 4
            while pid in self._pids:
                pid += 4
        self._pids.append(pid)
        self._guid_seq += 1
        # Sysmon splits the start time's epoch seconds over the 2nd and 3rd groups.
        secs = started_ms // 1000
        seq = self._guid_seq.to_bytes(2, "little").hex()
        tail = f"{secs & 0xFFFF:04x}-{secs >> 16:04x}-{seq}-00000000ac00"
        if cwd is None:
            cwd = f"C:\\Users\\{user.name}\\" if user.session else SYS32
        guid = f"{{{GUID_MACHINE}-{tail}}}"
        return Proc(image, pid, guid, user, command_line, parent, integrity, cwd)

    def add(self, event: Event, case: str = "-", alert: bool = False) -> Event:
        """Log `event`; events past the end of the stretch are dropped at writing."""
        event.case = case
        event.alert = alert
        self.events.append(event)
        return event

    def port(self) -> int:
        """The next ephemeral source port: Windows hands them out in rising order."""
        self._port += self.rng.randrange(1, 7)
        return self._port

    def start_process(
        self, ms: int, proc: Proc, dlls: tuple[str, ...] = (), case: str = "-"
    ) -> None:
        """Log a process start and the image loads that follow it."""
        self.add(process_create(ms, proc), case)
        for dll in ("ntdll.dll", "kernel32.dll", "KernelBase.dll", *dlls):
            ms += self.rng.randrange(2, 18)
            path = dll if "\\" in dll else f"{SYS32}{dll}"
            self.add(image_load(ms, proc, path), case)

    def in_stretch(self) -> list[Event]:
        """The events inside the stretch, in the order Sysmon numbered them."""
        kept = [e for e in self.events if self.start_ms <= e.ms < self.end_ms]
        return sorted(kept, key=lambda e: e.ms)


# --- The ordinary background ----------------------------------------------------------

# DLLs that long-running processes load on demand, long after they started.
LAZY_DLLS = (
    "WinTypes.dll", "cryptnet.dll", "wintrust.dll", "dnsapi.dll", "mswsock.dll",
    "winhttp.dll", "propsys.dll", "windows.storage.dll", "rasadhlp.dll",
    "FWPUCLNT.DLL", "webio.dll", "ncrypt.dll", "ntasn1.dll", "CRYPT32.dll",
    "IPHLPAPI.DLL", "uxtheme.dll", "profapi.dll", "userenv.dll", "version.dll",
    "wldp.dll", "schannel.dll", "mskeyprotect.dll", "ncryptsslp.dll", "dpapi.dll",
    "clbcatq.dll", "OneCoreUAPCommonProxyStub.dll", "twinapi.appcore.dll",
)  # fmt: skip
DLL_LOADERS = (
    "chrome", "chrome", "chrome_r0", "chrome_r1", "chrome_r2", "chrome_r3", "teams",
    "teams", "outlook", "outlook", "onedrive", "explorer", "explorer", "svc_schedule",
    "svc_bits", "svc_diagtrack", "svc_winmgmt", "msmpeng", "searchindexer", "ccmexec",
    "runtimebroker", "wmiprvse", "powershell", "explorer2", "chrome2",
)  # fmt: skip

JDOE_LOCAL = "C:\\Users\\jdoe\\AppData\\Local"
FILE_WRITERS: tuple[tuple[str, Callable[[random.Random], str]], ...] = (
    ("chrome", lambda r: f"{JDOE_LOCAL}\\Google\\Chrome\\User Data\\Default\\Cache\\"
     f"Cache_Data\\f_{r.randrange(0x1000, 0xFFFFF):06x}"),
    ("chrome", lambda r: f"{JDOE_LOCAL}\\Google\\Chrome\\User Data\\Default\\"
     f"Code Cache\\js\\{r.getrandbits(64):016x}_0"),
    ("chrome2", lambda r: "C:\\Users\\mlopez\\AppData\\Local\\Google\\Chrome\\User Data"
     f"\\Default\\Cache\\Cache_Data\\f_{r.randrange(0x1000, 0xFFFFF):06x}"),
    ("teams", lambda r: "C:\\Users\\jdoe\\AppData\\Roaming\\Microsoft\\Teams\\"
     "IndexedDB\\https_teams.microsoft.com_0.indexeddb.leveldb\\"
     f"{r.randrange(1200, 1400):06d}.log"),
    ("outlook", lambda r: f"{JDOE_LOCAL}\\Microsoft\\Windows\\INetCache\\"
     f"Content.Outlook\\K3V9W2QZ\\image{r.randrange(1, 9):03d} ({r.randrange(2, 40)})"
     ".png"),
    ("onedrive", lambda r: f"{JDOE_LOCAL}\\Microsoft\\OneDrive\\logs\\Business1\\"
     f"SyncEngine-2026-11-30.{r.randrange(900, 1500):04d}.7644.{r.randrange(1, 9)}"
     ".odlgz"),
    ("msmpeng", lambda r: "C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\"
     f"History\\CacheManager\\{r.getrandbits(32):08X}-0.bin"),
    ("searchindexer", lambda r: "C:\\ProgramData\\Microsoft\\Search\\Data\\"
     "Applications\\Windows\\Projects\\SystemIndex\\PropMap\\"
     f"CiPT{r.randrange(16):04d}.00{r.randrange(1, 4)}"),
    ("winlogbeat", lambda r: "C:\\ProgramData\\winlogbeat\\.winlogbeat.yml.new"),
    ("explorer", lambda r: "C:\\Users\\jdoe\\AppData\\Roaming\\Microsoft\\Windows\\"
     f"Recent\\{r.choice(RECENT_DOCS)}.lnk"),
    ("powershell", lambda r: f"{JDOE_LOCAL}\\Temp\\__PSScriptPolicyTest_"
     f"{r.getrandbits(32):08x}.{r.getrandbits(12):03x}.ps1"),
    ("ccmexec", lambda r: f"C:\\Windows\\CCM\\SystemTemp\\{guid4(r)}.tmp"),
    ("svc_diagtrack", lambda r: "C:\\ProgramData\\Microsoft\\Diagnosis\\ETLLogs\\"
     f"AutoLogger\\AutoLogger-Diagtrack-Listener_{r.randrange(1, 9)}.etl"),
)  # fmt: skip
RECENT_DOCS = (
    "Q4-forecast.xlsx", "meeting-notes.txt", "VPN-howto.pdf", "Downloads",
    "travel-policy-2026.docx", "ws-042-inventory.csv",
)  # fmt: skip

JDOE_HKU = f"HKU\\{JDOE.sid}"
# Registry writers: process key, event type, key, details (empty for event 12).
REGISTRY_WRITERS = (
    ("svc_dcom", "SetValue", f"HKLM\\System\\CurrentControlSet\\Services\\bam\\State\\"
     f"UserSettings\\{JDOE.sid}\\\\Device\\HarddiskVolume3\\Program Files\\Google\\"
     "Chrome\\Application\\chrome.exe", "Binary Data"),
    ("explorer", "SetValue", f"{JDOE_HKU}\\Software\\Microsoft\\Windows\\"
     "CurrentVersion\\Explorer\\UserAssist\\{CEBFF5CD-ACE2-4F4F-9178-9926F41749EA}\\"
     "Count\\HRZR_PGYFRFFVBA", "Binary Data"),
    ("explorer", "CreateKey", f"{JDOE_HKU}\\Software\\Microsoft\\Windows\\"
     "CurrentVersion\\Explorer\\FileExts\\.xlsx\\OpenWithList", ""),
    ("msmpeng", "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\"
     "Signature Updates\\SignaturesLastChecked", "Binary Data"),
    ("svc_schedule", "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\"
     "CurrentVersion\\Schedule\\TaskCache\\Tree\\Microsoft\\Windows\\"
     "UpdateOrchestrator\\Schedule Scan\\Index", "DWORD (0x00000003)"),
    ("svc_diagtrack", "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows\\"
     "CurrentVersion\\Diagnostics\\DiagTrack\\HeartBeats\\Default\\"
     "LastHeartBeatSentTime", "Binary Data"),
    ("outlook", "SetValue", f"{JDOE_HKU}\\Software\\Microsoft\\Office\\16.0\\Outlook\\"
     "Profiles\\Outlook\\0a0d020000000000c000000000000046\\01020fff", "Binary Data"),
    ("ccmexec", "SetValue", "HKLM\\SOFTWARE\\Microsoft\\CCM\\StateSystem\\"
     "LastEvaluationTime", "DWORD (0x00000001)"),
    ("searchindexer", "SetValue", "HKLM\\SOFTWARE\\Microsoft\\Windows Search\\"
     "Gather\\Windows\\SystemIndex\\Sites\\LocalHost\\Paths\\0\\LastCrawlTime",
     "Binary Data"),
    ("svc_gpsvc", "CreateKey", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\"
     "Group Policy\\State\\Machine\\Extension-List\\"
     "{00000000-0000-0000-0000-000000000000}", ""),
    ("teams", "SetValue", f"{JDOE_HKU}\\Software\\Microsoft\\Office\\Teams\\"
     "LoggedInOnce", "DWORD (0x00000001)"),
    ("onedrive", "SetValue", f"{JDOE_HKU}\\Software\\Microsoft\\OneDrive\\Accounts\\"
     "Business1\\LastSignInTime", "QWORD (0x00000000-0x67a3c1f2)"),
)  # fmt: skip

# Lookups: process key, name, CNAME or "", address.
LOOKUPS = (
    ("chrome", "www.google.com", "", "142.250.186.36"),
    ("chrome", "clients2.google.com", "clients.l.google.com", "142.250.185.78"),
    ("chrome", "fonts.gstatic.com", "gstaticadssl.l.google.com", "142.250.184.195"),
    ("chrome", "github.com", "", "140.82.121.3"),
    ("chrome", "intranet.corp.example", "", "10.20.1.80"),
    ("chrome2", "www.bing.com", "www-bing-com.a-0001.a-msedge.net", "13.107.21.200"),
    ("teams", "teams.microsoft.com", "teams-office-com.s-0005.s-msedge.net",
     "52.113.194.132"),
    ("teams", "presence.teams.microsoft.com", "", "52.114.132.46"),
    ("outlook", "outlook.office365.com", "outlook.ms-acdc.office.com", "52.97.146.178"),
    ("onedrive", "corp-my.sharepoint.com", "", "13.107.136.10"),
    ("msmpeng", "wdcp.microsoft.com", "wdcp.microsoft.akadns.net", "20.49.150.241"),
    ("svc_diagtrack", "v10.events.data.microsoft.com",
     "global.asimov.events.data.trafficmanager.net", "20.42.65.90"),
    ("ccmexec", "sccm01.corp.example", "", "10.20.1.20"),
    ("svc_gpsvc", "dc01.corp.example", "", "10.20.0.10"),
)  # fmt: skip
# Connections to names cached long ago: process key, address, hostname, port.
CONNECTIONS = (
    ("winlogbeat", "10.20.1.50", "logstash01.corp.example", 5044),
    ("lsass", *DC, 88),
    ("lsass", *DC, 389),
    ("svc_gpsvc", *DC, 445),
    ("svc_gpsvc", *DC, 389),
    ("teams", "52.114.132.46", "-", 443),
    ("chrome", "142.250.186.36", "-", 443),
    ("outlook", "52.97.146.178", "-", 443),
    ("ccmexec", "10.20.1.20", "sccm01.corp.example", 443),
)  # fmt: skip

LSASS_THREADS = (1044, 1096, 2588, 4712, 5120)
# Services whose SAM RPC calls make lsass duplicate a handle into them.
SAM_CLIENTS = ("svc_schedule", "svc_gpsvc", "svc_gpsvc", "svc_bits", "svc_winmgmt")


# lsass opening its clients for reasons other than SAM: GrantedAccess, call trace,
# the process keys it opens.
LSASS_OTHER_ACCESS = (
    ("0x1000", LSASRV_TRACE, ("svc_schedule", "svc_bits", "svc_dcom")),
    ("0x1478", LSASRV_TOKEN_TRACE, ("runtimebroker", "onedrive", "teams")),
    ("0x1400", SAMSRV_KBASE_TRACE, ("svc_gpsvc", "svc_winmgmt")),
)
# Processes that read lsass itself: process key, GrantedAccess, call trace.
LSASS_READERS = (
    ("msmpeng", "0x1010", caller_trace(f"{DEFENDER}mpsvc.dll", 0x1A2F3, 0x1A0D8)),
    ("msmpeng", "0x1FFFFF", caller_trace(f"{DEFENDER}mpsvc.dll", 0x5C1E2)),
    ("wmiprvse", "0x1410", caller_trace(f"{SYS32}wbem\\cimwin32.dll", 0x3A4F1)),
    ("ccmexec", "0x1410", caller_trace("C:\\Windows\\CCM\\CcmUtilLib.dll", 0x4E1)),
)  # fmt: skip
# Processes that read other processes: process key, GrantedAccess, call trace.
PROCESS_READERS = (
    ("svc_sysmain", "0x1000", caller_trace(f"{SYS32}sysmain.dll", 0x4A1C2)),
    ("explorer", "0x1400", caller_trace(f"{SYS32}windows.storage.dll", 0x8C3E)),
    ("msmpeng", "0x1000", caller_trace(f"{DEFENDER}mpsvc.dll", 0x1A2F3)),
    ("svc_winmgmt", "0x1000", caller_trace(f"{SYS32}wbem\\wbemcore.dll", 0x6B7)),
    ("onedrive", "0x1400", caller_trace(f"{SYS32}psapi.dll", 0x1D5A)),
    ("searchindexer", "0x1000", caller_trace(f"{SYS32}mssrch.dll", 0x2F0C4)),
)
READ_TARGETS = ("chrome", "chrome_r1", "teams", "outlook", "explorer", "svc_bits")


def guid4(rng: random.Random) -> str:
    """A random GUID in its usual text form."""
    raw = f"{rng.getrandbits(128):032x}"
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def bg_image_load(h: Host, ms: int) -> None:
    """A running process loads a DLL or three it needs only now."""
    proc = h[h.rng.choice(DLL_LOADERS)]
    dlls = [f"{SYS32}{dll}" for dll in LAZY_DLLS]
    if proc.name == "powershell.exe":
        # Every script block is scanned: PowerShell loads AMSI and Defender's provider.
        dlls = [f"{SYS32}amsi.dll", f"{DEFENDER}MpOav.dll"]
    for _ in range(h.rng.choice((1, 1, 2, 3))):
        ms += h.rng.randrange(1, 12)
        h.add(image_load(ms, proc, h.rng.choice(dlls)))


def bg_file(h: Host, ms: int) -> None:
    """A cache, log, temp or prefetch file is written."""
    key, path = h.rng.choice(FILE_WRITERS)
    h.add(file_create(ms, h[key], path(h.rng)))


def bg_registry(h: Host, ms: int) -> None:
    """A registry key is created or a value set."""
    key, kind, target, details = h.rng.choice(REGISTRY_WRITERS)
    h.add(registry(ms, h[key], kind, target, details))


def bg_lookup(h: Host, ms: int) -> None:
    """A DNS lookup, usually followed by a connection to the answer."""
    key, name, cname, ip = h.rng.choice(LOOKUPS)
    results = f"type:  5 {cname};::ffff:{ip};" if cname else f"::ffff:{ip};"
    h.add(dns_query(ms, h[key], name, "0", results))
    if h.rng.random() < 0.8:
        ms += h.rng.randrange(8, 70)
        port = 445 if ip.startswith("10.") else 443
        h.add(connection(ms, h[key], h.port(), ip, "-", port))


def bg_connection(h: Host, ms: int) -> None:
    """A connection to a name resolved long ago."""
    key, ip, hostname, port = h.rng.choice(CONNECTIONS)
    h.add(connection(ms, h[key], h.port(), ip, hostname, port))


def bg_lsass_samsrv(h: Host, ms: int) -> None:
    """lsass serving SAM RPC calls: 0x40 to the client, a clean trace, in bursts."""
    lsass, client = h["lsass"], h[h.rng.choice(SAM_CLIENTS)]
    thread = h.rng.choice(LSASS_THREADS)
    for _ in range(h.rng.choice((1, 2, 2, 3, 4))):
        ms += h.rng.randrange(0, 4)
        call_trace = h.rng.choice(SAMSRV_TRACES)
        event = access(ms, lsass, client, "0x40", call_trace, thread)
        event.what = "lsass 0x40 to a SAM RPC client via samsrv/RPCRT4, no UNKNOWN"
        h.add(event, "lsass-samsrv")


def bg_lsass_other(h: Host, ms: int) -> None:
    """lsass opening its clients for other reasons: source lsass, access not 0x40."""
    granted, call_trace, targets = h.rng.choice(LSASS_OTHER_ACCESS)
    target, thread = h[h.rng.choice(targets)], h.rng.choice(LSASS_THREADS)
    event = access(ms, h["lsass"], target, granted, call_trace, thread)
    event.what = f"lsass is the source but GrantedAccess is {granted}, not 0x40"
    h.add(event, "lsass-other-access")


def bg_lsass_target(h: Host, ms: int) -> None:
    """Defender, WMI or the SCCM agent reading lsass: lsass is the target."""
    key, granted, call_trace = h.rng.choice(LSASS_READERS)
    thread = h.rng.randrange(900, 9000)
    event = access(ms, h[key], h["lsass"], granted, call_trace, thread)
    event.what = f"lsass is the target of a {granted} read, not the source"
    h.add(event, "lsass-target")


def bg_other_access(h: Host, ms: int) -> None:
    """A process opening another; lsass on neither side."""
    key, granted, call_trace = h.rng.choice(PROCESS_READERS)
    target, thread = h[h.rng.choice(READ_TARGETS)], h.rng.randrange(900, 9000)
    h.add(access(ms, h[key], target, granted, call_trace, thread))


def bg_script_access(h: Host, ms: int) -> None:
    """jdoe's PowerShell reading processes (Get-Process) from JIT-compiled code."""
    target = h[h.rng.choice(READ_TARGETS)]
    jit = (unknown_frame(h.rng, high=True), unknown_frame(h.rng, high=True))
    call_trace = trace(f"{NTDLL}+9d4c4", f"{KBASE}+2c13e", *jit)
    event = access(ms, h["powershell"], target, "0x1000", call_trace, 7716)
    event.what = "UNKNOWN frames from PowerShell's JIT code; the source is not lsass"
    h.add(event, "unknown-not-lsass")


# Short-lived processes: parent key, image, command line, account, integrity,
# lifetime in seconds, extra DLLs loaded at start.
SPAWNS = (
    ("svc_dcom", f"{SYS32}wbem\\WmiPrvSE.exe", f"{SYS32}wbem\\wmiprvse.exe -secured "
     "-Embedding", NETWORK_SERVICE, "System", (20, 90), ("combase.dll", "RPCRT4.dll")),
    ("searchindexer", f"{SYS32}SearchProtocolHost.exe",
     '"C:\\Windows\\system32\\SearchProtocolHost.exe" '
     "Global\\UsGthrFltPipeMssGthrPipe7_ Global\\UsGthrCtrlFltPipeMssGthrPipe7 1 "
     "-2147483646 \"Software\\Microsoft\\"
     'Windows Search" "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT; MS Search 4.0 '
     'Robot)" "C:\\ProgramData\\Microsoft\\Search\\Data\\Temp\\usgthrsvc" '
     '"DownLevelDaemon" ', SYSTEM, "System", (5, 40), ("advapi32.dll",)),
    ("searchindexer", f"{SYS32}SearchFilterHost.exe",
     '"C:\\Windows\\system32\\SearchFilterHost.exe" 0 820 824 832 8192 828 804 ',
     SYSTEM, "System", (5, 40), ("advapi32.dll",)),
    ("svc_dcom", f"{SYS32}backgroundTaskHost.exe",
     '"C:\\Windows\\system32\\backgroundTaskHost.exe" '
     "-ServerName:BackgroundTaskHost.WebAccountBackgroundTask", JDOE, "Low", (2, 10),
     ("combase.dll", "WinTypes.dll")),
    ("svc_dcom", f"{SYS32}dllhost.exe", "C:\\Windows\\system32\\DllHost.exe "
     "/Processid:{3EB3C877-1F16-487C-9050-104DBCD66683}", JDOE, "Medium", (1, 6),
     ("combase.dll",)),
    ("svc_schedule", f"{SYS32}taskhostw.exe", "taskhostw.exe Install $(Arg0)", SYSTEM,
     "System", (2, 15), ("combase.dll",)),
    ("chrome", CHROME, f'"{CHROME}" --type=utility --utility-sub-type=storage.mojom.'
     "StorageService --lang=en-US --service-sandbox-type=service "
     "--field-trial-handle=1912,i,4021356874155832207,9160285503811162584,262144 "
     "/prefetch:8", JDOE, "Medium", (5, 200), ("C:\\Program Files\\Google\\Chrome\\"
     "Application\\119.0.6045.200\\chrome.dll",)),
    ("svc_schedule", f"{DEFENDER}MpCmdRun.exe", f'"{DEFENDER}MpCmdRun.exe" -IdleTask '
     "-TaskName WdCacheMaintenance", SYSTEM, "System", (3, 20), ("advapi32.dll",)),
    ("ccmexec", POWERSHELL, f'"{POWERSHELL}" -NoLogo -NonInteractive -ExecutionPolicy '
     'Bypass -File "C:\\Windows\\CCM\\SystemTemp\\{guid}.ps1"', SYSTEM, "System",
     (2, 8), ("amsi.dll", "clr.dll")),
    ("svc_dcom", f"{SYS32}smartscreen.exe", f"{SYS32}smartscreen.exe -Embedding", JDOE,
     "Medium", (3, 30), ("combase.dll", "winhttp.dll")),
    ("explorer", f"{SYS32}notepad.exe", '"C:\\Windows\\system32\\NOTEPAD.EXE" '
     "C:\\Users\\jdoe\\Documents\\meeting-notes.txt", JDOE, "Medium", (30, 400),
     ("uxtheme.dll",)),
    ("svc_schedule", f"{SYS32}CompatTelRunner.exe", f"{SYS32}compattelrunner.exe "
     "-m:appraiser.dll -f:DoScheduledTelemetryRun -cv:Lj4kWmqzA0yqWfRQ.2", SYSTEM,
     "System", (10, 60), ("advapi32.dll",)),
)  # fmt: skip


def bg_spawn(h: Host, ms: int) -> None:
    """A short-lived process: start, first loads, prefetch file, end."""
    parent_key, image, cmd, user, integrity, life, dlls = h.rng.choice(SPAWNS)
    cmd = cmd.replace("{guid}", guid4(h.rng))
    proc = h.spawn(image, cmd, h[parent_key], user, ms, integrity)
    h.start_process(ms, proc, dlls)
    if proc.name == "powershell.exe":
        conhost = f"{SYS32}conhost.exe"
        command_line = f"\\??\\{conhost} 0xffffffff -ForceV1"
        console = h.spawn(conhost, command_line, proc, user, ms + 30, integrity)
        h.start_process(ms + 30, console)
        h.add(process_end(ms + life[0] * 1000 + 40, console))
    # SysMain writes the prefetch file about ten seconds after a program starts.
    prefetch = hashlib.md5(proc.image.lower().encode()).hexdigest()[:8].upper()
    pf = f"C:\\Windows\\Prefetch\\{proc.name.upper()}-{prefetch}.pf"
    h.add(file_create(ms + h.rng.randrange(9000, 11000), h["svc_sysmain"], pf))
    h.add(process_end(ms + h.rng.randrange(life[0] * 1000, life[1] * 1000), proc))


BACKGROUND = (
    (bg_image_load, 12),
    (bg_file, 13),
    (bg_registry, 15),
    (bg_lookup, 6),
    (bg_connection, 8),
    (bg_lsass_samsrv, 4),
    (bg_lsass_other, 2),
    (bg_lsass_target, 1.5),
    (bg_other_access, 5),
    (bg_script_access, 0.5),
    (bg_spawn, 2.6),
)


def play_background(h: Host, per_second: float) -> None:
    """Fill the stretch with ordinary activity: `per_second` actions a second."""
    actions = [action for action, _ in BACKGROUND]
    weights = [weight for _, weight in BACKGROUND]
    ms = h.start_ms
    while True:
        ms += 1 + int(h.rng.expovariate(per_second) * 1000)
        if ms >= h.end_ms:
            return
        h.rng.choices(actions, weights)[0](h, ms)
