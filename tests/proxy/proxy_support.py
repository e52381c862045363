"""The reverse-proxy rig: slapd, the sign-in service, nginx and Apache in front of a real Center.

Everything runs on this machine from Debian's packages, each daemon with its
own configuration, pid and log files in a temporary folder, as ``nobody``
when the tests run as root. The proxies use the configurations shipped in
``deploy/reverse-proxy/`` with only their machine-specific values replaced
(ports, certificate and folder paths), and those replacements are checked, so
a change to a shipped file that the rig no longer understands fails loudly.

Addresses: nginx reaches the Center from 127.0.0.2 (``proxy_bind``, as
shipped). Apache cannot choose its source address, so it runs in a network
namespace of its own, joined to this one by a veth pair: it reaches the
Center from 10.213.N.2. The Center trusts exactly these two addresses; the
tests' own clients connect from 127.0.0.1, like any other local process.
Making the namespace needs root; without it the Apache tests are skipped.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from tests.support import Center, free_port
from townhall.config import Settings
from townhall.desktop.session import find_login_form
from townhall.pki import DevCA
from townhall.schema import migrate
from townhall.store import make_engine
from townhall.webprocess import create_app

REPO = Path(__file__).resolve().parents[2]
APACHE_CONF = REPO / "deploy" / "reverse-proxy" / "apache" / "townhall.conf"
APACHE_SSO_PAGES = REPO / "deploy" / "reverse-proxy" / "apache" / "sso"
NGINX_CONF = REPO / "deploy" / "reverse-proxy" / "nginx" / "townhall.conf"
MODULES = Path("/usr/lib/apache2/modules")
NGINX_SOURCE = "127.0.0.2"
SUFFIX = "dc=example,dc=org"
COOKIE = "townhall_proxy"
# slapd listens here too, though its certificate does not name it.
LDAP_OTHER_NAME = "127.0.0.3"

BINARIES = {
    "slapd": "/usr/sbin/slapd",
    "slapadd": "/usr/sbin/slapadd",
    "apache2": "/usr/sbin/apache2",
    "nginx": "/usr/sbin/nginx",
}

# Directory users: (uid, password, display name, groups). olga, mike and ada also
# have Center accounts; nora has none (auto_create_users makes one, an organizer
# through her group).
USERS = [
    ("olga", "olga-directory-pw", "Olga Organizer", ["staff-organizers"]),
    ("mike", "mike-directory-pw", "Mike Member", []),
    ("nora", "nora-directory-pw", "Nora Newcomer", ["staff-organizers"]),
]
PASSWORDS = {uid: password for uid, password, _, _ in USERS}


def missing_binaries() -> list[str]:
    return [name for name, path in BINARIES.items() if not Path(path).exists()]


def skip_reason() -> str | None:
    missing = missing_binaries()
    if missing:
        return (
            f"the reverse-proxy suite needs Debian's {', '.join(missing)} "
            "(apt-get install apache2 slapd ldap-utils nginx-light; scripts/setup --test does)"
        )
    return None


def apache_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return (
            "Apache cannot choose its source address, so the rig gives it a network "
            "namespace of its own, and making one needs root (CI runs as root)"
        )
    if shutil.which("ip") is None:
        return "the Apache rig needs iproute2's ip command for its network namespace"
    return None


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{process.args!r} did not start listening on {port}:\n{tail}")
        time.sleep(0.02)


def ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - LDAP's {SSHA}
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def directory_ldif() -> str:
    blocks = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups",
    ]
    members: dict[str, list[str]] = {}
    for uid, password, name, groups in USERS:
        blocks.append(
            f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: {name}\nsn: {name.split()[-1]}\nmail: {uid}@example.org\n"
            f"userPassword: {ssha(password)}"
        )
        for group in groups:
            members.setdefault(group, []).append(f"uid={uid},ou=people,{SUFFIX}")
    for group, dns in members.items():
        lines = "\n".join(f"member: {dn}" for dn in dns)
        blocks.append(
            f"dn: cn={group},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {group}\n{lines}"
        )
    return "\n\n".join(blocks) + "\n"


def replace_checked(text: str, replacements: Sequence[tuple[str, str]], source: Path) -> str:
    """Replace each literal exactly where the shipped file has it (and fail if it is gone)."""
    for old, new in replacements:
        count = text.count(old)
        if count == 0:
            raise AssertionError(f"{source} no longer contains {old!r}: update the rig")
        text = text.replace(old, new)
    return text


class CenterServer:
    """The Center under uvicorn in a thread, listening on several addresses (port 0 each)."""

    def __init__(self, app: object, hosts: Sequence[str]) -> None:
        self.sockets = []
        for host in hosts:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            self.sockets.append(sock)
        config = uvicorn.Config(
            app, proxy_headers=False, log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": self.sockets}, daemon=True
        )

    def address(self, host: str) -> str:
        for sock in self.sockets:
            bound_host, port = sock.getsockname()[:2]
            if bound_host == host:
                return f"http://{host}:{port}"
        raise KeyError(host)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Center did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        for sock in self.sockets:
            sock.close()


@dataclass
class Namespace:
    """A network namespace joined to this one by a veth pair (host .1, namespace .2)."""

    name: str
    host_link: str
    host_address: str
    inner_address: str

    @classmethod
    def create(cls) -> Namespace:
        tag = f"{os.getpid() % 10000}{random.randrange(100, 999)}"
        subnet = random.randrange(1, 250)
        ns = cls(f"thpx{tag}", f"thh{tag}", f"10.213.{subnet}.1", f"10.213.{subnet}.2")
        steps = [
            ["ip", "netns", "add", ns.name],
            ["ip", "link", "add", ns.host_link, "type", "veth", "peer", "name", f"thn{tag}"],
            ["ip", "link", "set", f"thn{tag}", "netns", ns.name],
            ["ip", "addr", "add", f"{ns.host_address}/30", "dev", ns.host_link],
            ["ip", "link", "set", ns.host_link, "up"],
            ["ip", "-n", ns.name, "addr", "add", f"{ns.inner_address}/30", "dev", f"thn{tag}"],
            ["ip", "-n", ns.name, "link", "set", f"thn{tag}", "up"],
            ["ip", "-n", ns.name, "link", "set", "lo", "up"],
        ]
        try:
            for step in steps:
                subprocess.run(step, check=True, capture_output=True, timeout=20)  # noqa: S603
        except (subprocess.CalledProcessError, OSError) as error:
            ns.delete()
            detail = getattr(error, "stderr", b"") or b""
            raise RuntimeError(f"cannot make a network namespace: {detail.decode()}") from error
        return ns

    def delete(self) -> None:
        # Deleting the namespace deletes the veth pair with it.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)  # noqa: S603, S607


@dataclass
class Rig:
    work: Path
    ca: DevCA
    center: Center
    nginx_url: str
    apache_url: str | None
    apache_source: str | None
    ldap_url: str
    center_direct: str
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def ca_file(self) -> str:
        return str(self.ca.cert_file)

    def client(self, base: str, **options: object) -> httpx.Client:
        """A browser-like client of a proxy: keeps cookies, trusts the rig's CA."""
        options.setdefault("follow_redirects", True)
        return httpx.Client(
            base_url=base,
            verify=ssl.create_default_context(cafile=self.ca_file),
            timeout=20,
            **options,  # type: ignore[arg-type]
        )

    def sign_in(self, client: httpx.Client, username: str, path: str = "/events") -> httpx.Response:
        """Ask for a page, meet the proxy's sign-in page, fill it in: the page asked for."""
        page = client.get(path)
        assert page.status_code == 401, page.text[:500]
        form = find_login_form(page.text, str(page.url))
        assert form is not None, page.text[:500]
        return client.post(form.action, data=dict(form.filled(username, PASSWORDS[username])))

    def sign_out(self, client: httpx.Client) -> httpx.Response:
        """Sign out at the proxy as a user would: nginx's button (a POST), Apache's link."""
        page = client.get("/sso/logout")
        if str(client.base_url).rstrip("/") != self.nginx_url:
            return page
        assert page.status_code == 200, page.text[:500]
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None, page.text[:500]
        return client.post("/sso/logout", data={"csrf": token.group(1)})


class Daemons:
    """The processes the rig started, stopped in reverse order by their own ids.

    Each starts a session of its own, and is stopped with its whole process group: a
    Center's web workers are its children, and would outlive it otherwise.
    """

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: Sequence[str], log: Path, *, as_daemon_user: bool = True
    ) -> subprocess.Popen[bytes]:
        prefix = _setpriv() if as_daemon_user else []
        with log.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603
                [*prefix, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            signal_group(process, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            signal_group(process, signal.SIGKILL)  # children left behind by a killed parent


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to the process group ``Daemons.start`` made for ``process``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _make_work() -> Path:
    # Not pytest's tmp_path: its parents are private to root, and the daemons run as nobody.
    work = Path(tempfile.mkdtemp(prefix="townhall-proxy-"))
    work.chmod(0o755)
    return work


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, 65534, 65534)
        for name in dirs + files:
            os.chown(os.path.join(root, name), 65534, 65534, follow_symlinks=False)


def _start_slapd(
    daemons: Daemons, work: Path, hosts: Sequence[str], tls: tuple[Path, Path], ca_file: Path
) -> int:
    folder = work / "slapd"
    (folder / "db").mkdir(parents=True)
    schema = Path("/etc/ldap/schema")
    conf = folder / "slapd.conf"
    conf.write_text(
        f"include {schema}/core.schema\ninclude {schema}/cosine.schema\n"
        f"include {schema}/inetorgperson.schema\n"
        f"pidfile {folder}/slapd.pid\nargsfile {folder}/slapd.args\n"
        "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
        # Searches outside the suffix are referred elsewhere: the sign-in
        # service must never follow (tests/proxy/test_proxy_auth_service.py).
        "referral ldap://127.0.0.1:1/\n"
        # StartTLS with the rig's certificate (127.0.0.1 and localhost only).
        f"TLSCACertificateFile {ca_file}\nTLSCertificateFile {tls[0]}\n"
        f"TLSCertificateKeyFile {tls[1]}\n"
        f'database mdb\nmaxsize 10485760\nsuffix "{SUFFIX}"\n'
        f'rootdn "cn=admin,{SUFFIX}"\ndirectory {folder}/db\n'
        "access to attrs=userPassword by anonymous auth by * none\n"
        "access to * by * read\n"
    )
    (folder / "directory.ldif").write_text(directory_ldif())
    _chown_tree(folder)
    log = work / "logs" / "slapd.log"
    loader = daemons.start(
        [BINARIES["slapadd"], "-q", "-f", str(conf), "-l", str(folder / "directory.ldif")], log
    )
    if loader.wait(timeout=30) != 0:
        raise RuntimeError(f"slapadd failed:\n{log.read_text(errors='replace')}")
    port = free_port("127.0.0.1")
    # Also on LDAP_OTHER_NAME, an address its certificate does not name.
    urls = " ".join(f"ldap://{host}:{port}/" for host in [*hosts, LDAP_OTHER_NAME])
    process = daemons.start([BINARIES["slapd"], "-d", "0", "-f", str(conf), "-h", urls], log)
    wait_for_port("127.0.0.1", port, process, log)
    return port


def _start_sign_in_service(
    daemons: Daemons, work: Path, ldap_port: int, *, netns: str | None = None
) -> int:
    """The sign-in service on 127.0.0.1 (of network namespace ``netns``, if given:
    the caller then waits for it, as this process cannot connect there)."""
    port = free_port("127.0.0.1")
    log = work / "logs" / "proxy-auth.log"
    process = daemons.start(
        [
            *(["ip", "netns", "exec", netns] if netns else []),
            sys.executable,
            "-m",
            "townhall.proxyauth",
            "--listen",
            f"127.0.0.1:{port}",
            "--ldap-url",
            f"ldap://127.0.0.1:{ldap_port}",
            "--base-dn",
            f"ou=people,{SUFFIX}",
            "--group-base-dn",
            f"ou=groups,{SUFFIX}",
            "--failure-delay",
            "0",
        ],
        log,
        as_daemon_user=False,
    )
    if netns is None:
        wait_for_port("127.0.0.1", port, process, log)
    return port


def _start_nginx(
    daemons: Daemons,
    work: Path,
    center: str,
    sign_in_port: int,
    tls: tuple[Path, Path],
    port: int,
    *,
    host: str = "127.0.0.1",
    source: str = NGINX_SOURCE,
    netns: str | None = None,
) -> str:
    """nginx with the shipped site on ``host:port``, reaching the Center from ``source``;
    in network namespace ``netns`` if given (the caller then waits for it)."""
    folder = work / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / "tmp" / sub).mkdir(parents=True)
    plain_port = free_port("127.0.0.1")
    site = replace_checked(
        NGINX_CONF.read_text(),
        [
            ("server 127.0.0.1:8080;", f"server {center.removeprefix('http://')};"),
            ("server 127.0.0.1:9091;", f"server 127.0.0.1:{sign_in_port};"),
            ("listen 80;", f"listen {host}:{plain_port};"),
            ("listen 443 ssl http2;", f"listen {host}:{port} ssl http2;"),
            (f"proxy_bind {NGINX_SOURCE};", f"proxy_bind {source};"),
            ("/etc/ssl/certs/townhall.example.org.pem", str(tls[0])),
            ("/etc/ssl/private/townhall.example.org.key", str(tls[1])),
        ],
        NGINX_CONF,
    )
    assert f"proxy_bind {source};" in site
    (folder / "townhall.conf").write_text(site)
    (folder / "nginx.conf").write_text(
        f"pid {folder}/nginx.pid;\nerror_log {work}/logs/nginx-error.log warn;\n"
        "worker_processes 1;\nevents { worker_connections 256; }\nhttp {\n"
        + "".join(
            f"  {kind}_temp_path {folder}/tmp/{sub};\n"
            for kind, sub in (
                ("client_body", "body"),
                ("proxy", "proxy"),
                ("fastcgi", "fastcgi"),
                ("uwsgi", "uwsgi"),
                ("scgi", "scgi"),
            )
        )
        + f"  access_log off;\n  include /etc/nginx/mime.types;\n  include {folder}/townhall.conf;\n"
        "}\n"
        "daemon off;\n"
    )
    _chown_tree(folder)
    log = work / "logs" / "nginx.log"
    argv = [
        BINARIES["nginx"],
        "-p",
        str(folder),
        "-e",
        str(work / "logs" / "nginx-error.log"),
        "-c",
        str(folder / "nginx.conf"),
    ]
    if netns is not None:
        daemons.start(["ip", "netns", "exec", netns, *_setpriv(), *argv], log, as_daemon_user=False)
        return f"https://{host}:{port}"
    process = daemons.start(argv, log)
    wait_for_port(host, port, process, log)
    return f"https://{host}:{port}"


APACHE_MODULES = [
    "mpm_event", "authz_core", "authz_user", "authn_core", "auth_form", "ldap", "authnz_ldap",
    "request", "session", "session_cookie", "session_crypto", "headers", "rewrite", "include",
    "alias", "mime", "proxy", "proxy_http", "ssl", "socache_shmcb",
]  # fmt: skip


def _start_apache(
    daemons: Daemons,
    work: Path,
    namespace: Namespace,
    center: str,
    ldap_port: int,
    tls: tuple[Path, Path],
) -> str:
    folder = work / "apache"
    (folder / "run").mkdir(parents=True)
    pages = folder / "sso"
    shutil.copytree(APACHE_SSO_PAGES, pages)
    site = folder / "townhall.conf"
    shutil.copyfile(APACHE_CONF, site)
    key_file = folder / "session.key"
    key_file.write_text(base64.b64encode(os.urandom(48)).decode() + "\n")
    port = free_port("127.0.0.1")
    address = namespace.inner_address
    defines = {
        "TOWNHALL_SERVER_NAME": "townhall.test",
        "TOWNHALL_VHOST": f"{address}:{port}",
        "TOWNHALL_TLS_CERT": str(tls[0]),
        "TOWNHALL_TLS_KEY": str(tls[1]),
        "TOWNHALL_CENTER": center,
        "TOWNHALL_LDAP_URL": (
            f'"ldap://{namespace.host_address}:{ldap_port}/ou=people,{SUFFIX}'
            '?uid,mail,cn?sub?(objectClass=inetOrgPerson)"'
        ),
        "TOWNHALL_SESSION_KEY_FILE": str(key_file),
        "TOWNHALL_SSO_PAGES": str(pages),
    }
    shipped = APACHE_CONF.read_text()
    for name in defines:
        assert f"<IfDefine !{name}>" in shipped, f"{APACHE_CONF} no longer takes {name}"
    loads = "".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so\n" for m in APACHE_MODULES)
    (folder / "httpd.conf").write_text(
        f"ServerRoot {folder}\nServerName townhall.test\nPidFile {folder}/run/httpd.pid\n"
        f"DefaultRuntimeDir {folder}/run\nErrorLog {work}/logs/apache-error.log\n"
        f"LogLevel warn\nListen {address}:{port} https\n{loads}TypesConfig /etc/mime.types\n"
        + "".join(f"Define {name} {value}\n" for name, value in defines.items())
        + f"Include {site}\n"
    )
    _chown_tree(folder)
    log = work / "logs" / "apache.log"
    argv = [BINARIES["apache2"], "-f", str(folder / "httpd.conf"), "-DFOREGROUND"]
    process = daemons.start(
        ["ip", "netns", "exec", namespace.name, *_setpriv(), *argv], log, as_daemon_user=False
    )
    # The port is in the namespace: wait by connecting to its address from here.
    wait_for_port(address, port, process, log)
    return f"https://{address}:{port}"


def _setpriv() -> list[str]:
    """Run as nobody when the tests run as root (CI); as the caller otherwise."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def _default_tree(center: Center) -> None:
    """One live server in a default tree, so that the Center issues join tickets."""
    with center.client("ada") as admin:
        admin.post(
            "/manager/api/v1/servers",
            json={"name": "main", "host": "127.0.0.1", "port": 9443, "zone": "internal"},
        ).raise_for_status()
        tree = admin.post(
            "/manager/api/v1/trees",
            json={"name": "default", "nodes": [{"server": "main", "parent": None}]},
        )
        tree.raise_for_status()
        admin.post(f"/manager/api/v1/trees/{tree.json()['id']}/default").raise_for_status()


def center_settings(
    work: Path, database_url: str, trusted: Sequence[str], base_url: str
) -> Settings:
    return Settings(
        data=work / "center",
        center={
            "database_url": database_url,
            # As users reach it: through nginx (join tickets name this URL).
            "base_url": base_url,
            "sso": {
                "trusted_proxies": [f"{address}/32" for address in trusted],
                "email_header": "X-Remote-Email",
                "name_header": "X-Remote-Name",
                "groups_header": "X-Remote-Groups",
                "group_roles": {"staff-organizers": "organizer"},
                "auto_create_users": True,
                "capture_cookies": [COOKIE],
            },
        },
    )


@contextmanager
def running_rig(database_url: str) -> Iterator[Rig]:
    """Start everything (Apache only when a namespace can be made); stop it all afterwards."""
    work = _make_work()
    (work / "logs").mkdir()
    _chown_tree(work / "logs")
    daemons = Daemons()
    namespace: Namespace | None = None
    server: CenterServer | None = None
    try:
        if apache_skip_reason() is None:
            namespace = Namespace.create()
        ca = DevCA.ensure(work / "pki")
        hosts = ["127.0.0.1", "localhost"] + ([namespace.inner_address] if namespace else [])
        issued = ca.issue("proxy", hosts)
        tls = (issued.cert_file, issued.key_file)
        _chown_tree(work / "pki")
        # The CA's key stays private; the daemons read only their own certificate and key.
        ca.key_file.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(ca.key_file, 0, 0)

        listen_hosts = ["127.0.0.1"] + ([namespace.host_address] if namespace else [])
        ldap_port = _start_slapd(daemons, work, listen_hosts, tls, ca.cert_file)
        trusted = [NGINX_SOURCE] + ([namespace.inner_address] if namespace else [])
        nginx_port = free_port("127.0.0.1")
        nginx_url = f"https://127.0.0.1:{nginx_port}"
        settings = center_settings(work, database_url, trusted, nginx_url)
        engine = make_engine(settings.database_url)
        migrate(engine)
        engine.dispose()
        app = create_app(settings)
        server = CenterServer(app, listen_hosts)
        server.start()
        center = Center(
            url=server.address("127.0.0.1"),
            settings=settings,
            sessions=app.state.center.sessions,
        )
        center.add_user("ada", role="admin")
        center.add_user("olga", role="organizer")
        center.add_user("mike", role="member")
        _default_tree(center)

        sign_in_port = _start_sign_in_service(daemons, work, ldap_port)
        _start_nginx(daemons, work, center.url, sign_in_port, tls, nginx_port)
        apache_url = None
        if namespace is not None:
            apache_url = _start_apache(
                daemons,
                work,
                namespace,
                server.address(namespace.host_address),
                ldap_port,
                tls,
            )
        yield Rig(
            work=work,
            ca=ca,
            center=center,
            nginx_url=nginx_url,
            apache_url=apache_url,
            apache_source=namespace.inner_address if namespace else None,
            ldap_url=f"ldap://127.0.0.1:{ldap_port}",
            center_direct=center.url,
            logs={p.stem: p for p in (work / "logs").iterdir()},
        )
    finally:
        daemons.stop()
        if server is not None:
            server.stop()
        if namespace is not None:
            namespace.delete()
        shutil.rmtree(work, ignore_errors=True)
