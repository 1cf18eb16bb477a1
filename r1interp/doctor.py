"""`r1interp doctor`: check the environment, one line per check (ok / warn / fail) with what to fix.

Network checks run in parallel, each bounded by a short timeout (DNS included: a check that has not answered
by then is reported as timed out), so an offline machine gets its answer in a few seconds. Offline is normal:
the embedded organism profile needs no network. Secrets are only ever reported as "set" / "not set".
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "fail"
PYTHON_RANGE = ((3, 11), (3, 13))  # pyproject: >=3.11,<3.13
TORCH_PIN = "2.13.0"
HUB_DEFAULT = "https://huggingface.co"
ANTHROPIC_DEFAULT = "https://api.anthropic.com"
CHROMIUM = Path("/usr/bin/chromium")
DISK_WARN_GB, DISK_FAIL_GB = 5.0, 1.0
OFFLINE_HINT = "fine offline: the embedded organism profile needs no network"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    hint: str | None = None


def _run(cmd: list[str], cwd: Path, timeout: float = 20.0) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _safe_url(url: str) -> str:
    """The URL without any user:password@ part (a mirror URL may carry credentials)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    return urllib.parse.urlunsplit(parts)


# ---------------------------------------------------------------------------- local checks


def check_python() -> Check:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    lo, hi = PYTHON_RANGE
    if lo <= (v.major, v.minor) < hi:
        return Check("python", OK, text)
    return Check("python", FAIL, text, f"use Python >={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]} (pyproject.toml)")


def check_torch() -> list[Check]:
    try:
        import torch
    except Exception as exc:  # a broken install raises more than ImportError
        return [
            Check(
                "torch",
                FAIL,
                f"cannot import torch ({type(exc).__name__}: {exc})",
                f"pip install torch=={TORCH_PIN} (the CPU build on a CPU machine)",
            )
        ]
    version = torch.__version__
    base = version.split("+")[0]
    torch_check = (
        Check("torch", OK, version)
        if base == TORCH_PIN
        else Check("torch", WARN, f"{version} (the project pins {TORCH_PIN})", f"pip install torch=={TORCH_PIN}")
    )
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        props = torch.cuda.get_device_properties(0)
        gpus = (
            f"{n} x {props.name}, {props.total_memory / 2**30:.0f} GiB"
            if n > 1
            else f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
        )
        cuda = Check("cuda", OK, f"CUDA {torch.version.cuda}: {gpus}")
    elif "+cpu" in version or torch.version.cuda is None:
        cuda = Check(
            "cuda",
            WARN,
            "no GPU (CPU build of torch)",
            "fine for the organism profile; the r1-distill-qwen-1.5b profile at real scale wants a CUDA GPU",
        )
    else:
        cuda = Check(
            "cuda",
            WARN,
            f"torch built for CUDA {torch.version.cuda} but no GPU is visible",
            "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES; the organism profile runs on CPU",
        )
    return [torch_check, cuda, check_numerics()]


def check_numerics() -> Check:
    """Rebuilds are byte-identical across machines only with the pinned numerics (r1interp/numerics.py)."""
    from r1interp import numerics

    if numerics.mode() == "native":
        return Check(
            "numerics",
            WARN,
            "native (R1INTERP_NUMERICS=native): this machine's own kernels",
            "stages then need model.numerics: native, and their bytes depend on the CPU (README: Reproducibility)",
        )
    found = numerics.problems()
    if found:
        return Check(
            "numerics", FAIL, found[0], "unset that variable: r1interp pins it itself (README: Reproducibility)"
        )
    return Check("numerics", OK, "pinned: " + ", ".join(f"{k}={v}" for k, v in numerics.describe().items()))


def check_tools(root: Path) -> list[Check]:
    checks = []
    try:
        from importlib.metadata import version

        dvc_version = version("dvc")
        on_path = shutil.which("dvc")
        if on_path:
            checks.append(Check("dvc", OK, f"{dvc_version} ({on_path})"))
        else:
            checks.append(
                Check(
                    "dvc",
                    WARN,
                    f"{dvc_version} importable but `dvc` is not on PATH",
                    "activate the virtual environment (or use `python -m dvc`)",
                )
            )
    except Exception:
        checks.append(Check("dvc", FAIL, "not installed", "pip install -e . (dvc>=3.67,<3.68)"))
    git = shutil.which("git")
    proc = _run([git, "--version"], root) if git else None
    if proc is None or proc.returncode != 0:
        checks.append(Check("git", FAIL, "not found", "install git (apt-get install git)"))
    else:
        checks.append(Check("git", OK, proc.stdout.strip().removeprefix("git version ")))
    return checks


def find_dvc_root(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / ".dvc").is_dir():
            return d
    return None


def check_repos(root: Path) -> list[Check]:
    checks = []
    proc = _run(["git", "rev-parse", "--show-toplevel"], root) if shutil.which("git") else None
    if proc is not None and proc.returncode == 0:
        checks.append(Check("git repo", OK, proc.stdout.strip()))
    else:
        checks.append(
            Check(
                "git repo",
                FAIL,
                f"{root} is not inside a git repository",
                "run from the project checkout (git clone ...), or `git init`",
            )
        )
    dvc_root = find_dvc_root(root)
    if dvc_root is None:
        checks.append(
            Check("dvc repo", FAIL, f"no .dvc/ in {root} or above", "run from the project checkout, or `dvc init`")
        )
    elif not (dvc_root / "dvc.yaml").is_file():
        checks.append(Check("dvc repo", WARN, f"{dvc_root} has .dvc/ but no dvc.yaml", "run from the project checkout"))
    else:
        checks.append(Check("dvc repo", OK, str(dvc_root)))
    return checks


def check_remote(root: Path, timeout: float) -> Check:
    dvc_root = find_dvc_root(root)
    if dvc_root is None:
        return Check("dvc remote", WARN, "no DVC repo", "run from the project checkout")
    try:
        from dvc.config import Config

        config = Config(dvc_dir=str(dvc_root / ".dvc"))
    except Exception as exc:
        return Check(
            "dvc remote",
            FAIL,
            f"cannot read .dvc/config ({type(exc).__name__}: {exc})",
            "fix .dvc/config or .dvc/config.local",
        )
    name = config["core"].get("remote")
    if not name:
        return Check(
            "dvc remote", WARN, "no default remote", "dvc remote add -d local /path/to/storage (see docs/remotes.md)"
        )
    remote = config["remote"].get(name)
    if remote is None:
        return Check(
            "dvc remote",
            FAIL,
            f"default remote {name!r} is not defined",
            f"dvc remote add {name} URL, or dvc remote default NAME",
        )
    url = remote.get("url", "")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        path = Path(urllib.parse.urlsplit(url).path if scheme == "file" else url)
        if path.is_dir():
            writable = os.access(path, os.W_OK)
            return Check(
                "dvc remote",
                OK if writable else FAIL,
                f"{name}: {path} (local folder{'' if writable else ', not writable'})",
                None
                if writable
                else f"make {path} writable, or move it: dvc remote modify --local {name} url /abs/path",
            )
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and parent.is_dir() and os.access(parent, os.W_OK):
            return Check("dvc remote", OK, f"{name}: {path} (local folder, created on the first `dvc push`)")
        return Check(
            "dvc remote",
            FAIL,
            f"{name}: {path} does not exist and cannot be created",
            f"dvc remote modify --local {name} url /a/writable/folder",
        )
    if scheme == "s3":
        probe = remote.get("endpointurl") or "https://s3.amazonaws.com"
    elif scheme in ("http", "https"):
        probe = url
    else:
        return Check("dvc remote", OK, f"{name}: {_safe_url(url)} ({scheme}; reachability not checked)")
    check = check_http(
        "dvc remote", probe, timeout, hint="check the network / endpointurl; `dvc push` and `dvc pull` need the remote"
    )
    check.detail = f"{name}: {_safe_url(url)}: {check.detail}"
    return check


def check_disk(root: Path) -> Check:
    usage = shutil.disk_usage(root)
    free = usage.free / 1e9
    text = f"{free:.1f} GB free of {usage.total / 1e9:.0f} GB at {root}"
    if free < DISK_FAIL_GB:
        return Check("disk", FAIL, text, "free some space (dvc gc -w drops cache entries no longer used)")
    if free < DISK_WARN_GB:
        return Check(
            "disk",
            WARN,
            text,
            f"under {DISK_WARN_GB:.0f} GB: the real profile's models and activations need more (dvc gc -w)",
        )
    return Check("disk", OK, text)


def check_secrets(params) -> list[Check]:
    """Only whether each variable is set: its value never enters a Check."""
    claude = getattr(getattr(params, "labels", None), "labeler", None) == "claude"
    checks = []
    if os.environ.get("ANTHROPIC_API_KEY"):
        checks.append(Check("ANTHROPIC_API_KEY", OK, "set"))
    elif claude:
        checks.append(
            Check(
                "ANTHROPIC_API_KEY",
                FAIL,
                "not set (params.yaml has labels.labeler: claude)",
                "export ANTHROPIC_API_KEY=... (read from the environment only), or labels.labeler: offline",
            )
        )
    else:
        checks.append(Check("ANTHROPIC_API_KEY", OK, "not set (only needed for labels.labeler: claude)"))
    if os.environ.get("HF_TOKEN"):
        checks.append(Check("HF_TOKEN", OK, "set"))
    else:
        checks.append(Check("HF_TOKEN", OK, "not set (only needed for `r1interp publish` and private repos)"))
    return checks


def check_chromium() -> Check:
    if CHROMIUM.exists():
        return Check("chromium", OK, str(CHROMIUM))
    return Check(
        "chromium",
        WARN,
        f"{CHROMIUM} not found",
        "only the browser tests of the report site need it: apt-get install chromium",
    )


def check_params(root: Path) -> tuple[Check, object | None]:
    from r1interp.config import load_params
    from r1interp.errors import R1InterpError

    path = (find_dvc_root(root) or root) / "params.yaml"
    try:
        params = load_params(path)
    except R1InterpError as exc:
        return Check("params.yaml", FAIL, str(exc), "fix the named key (`r1interp params check` validates it)"), None
    return Check("params.yaml", OK, f"{path}: valid (profile {params.model.profile})"), params


# ---------------------------------------------------------------------------- network checks


def check_http(name: str, url: str, timeout: float, hint: str = OFFLINE_HINT) -> Check:
    """Reachable when the server answers at all (any HTTP status: 401 / 404 still mean it is there)."""
    shown = _safe_url(url)
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "r1interp-doctor"})
    local = urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if local else urllib.request.build_opener()
    try:
        with opener.open(request, timeout=timeout) as resp:  # http(s) URLs from the environment / DVC config
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(name, WARN, f"{shown} unreachable ({reason})", hint)
    if status >= 500:
        return Check(name, WARN, f"{shown} answered HTTP {status} (server error)", hint)
    return Check(name, OK, f"{shown} reachable (HTTP {status})")


def _bounded(fn: Callable[[], Check], name: str, detail: str, timeout: float, hint: str) -> Callable[[], Check]:
    """Run `fn` in a daemon thread; a check still running after `timeout` (a DNS lookup that hangs) is a warning."""
    result: list[Check] = []

    def target() -> None:
        try:
            result.append(fn())
        except Exception as exc:  # a check must report, never take the others down
            result.append(Check(name, FAIL, f"{detail}: check crashed ({type(exc).__name__}: {exc})", hint))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def wait() -> Check:
        thread.join(timeout)
        return result[0] if result else Check(name, WARN, f"{detail} timed out after {timeout:.0f} s", hint)

    return wait


def network_checks(root: Path, timeout: float) -> list[Callable[[], Check]]:
    hub = os.environ.get("HF_ENDPOINT") or HUB_DEFAULT
    claude = os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_DEFAULT
    grace = timeout + 2.0
    return [
        _bounded(
            lambda: check_remote(root, timeout), "dvc remote", "remote check", grace, "check the network / remote URL"
        ),
        _bounded(
            lambda: check_http("hub", hub, timeout, OFFLINE_HINT + "; set HF_ENDPOINT for a mirror"),
            "hub",
            _safe_url(hub),
            grace,
            OFFLINE_HINT,
        ),
        _bounded(
            lambda: check_http(
                "anthropic api",
                claude,
                timeout,
                OFFLINE_HINT + " (labels.labeler: offline); ANTHROPIC_BASE_URL points elsewhere",
            ),
            "anthropic api",
            _safe_url(claude),
            grace,
            OFFLINE_HINT,
        ),
    ]


# ---------------------------------------------------------------------------- all together


def run_checks(root: str | Path = ".", timeout: float = 3.0) -> list[Check]:
    root = Path(root).resolve()
    pending = network_checks(root, timeout)  # started first: they wait on the network while the rest runs
    checks = [check_python(), *check_torch(), *check_tools(root), *check_repos(root), check_disk(root)]
    params_check, params = check_params(root)
    checks += [params_check, *check_secrets(params), check_chromium()]
    checks += [wait() for wait in pending]
    order = [
        "python",
        "torch",
        "cuda",
        "dvc",
        "git",
        "git repo",
        "dvc repo",
        "dvc remote",
        "disk",
        "params.yaml",
        "hub",
        "anthropic api",
        "ANTHROPIC_API_KEY",
        "HF_TOKEN",
        "chromium",
    ]
    return sorted(checks, key=lambda c: order.index(c.name) if c.name in order else len(order))


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.hint and c.status != OK:
            lines.append(f"      {'':<{width}}  hint: {c.hint}")
    n_warn = sum(c.status == WARN for c in checks)
    n_fail = sum(c.status == FAIL for c in checks)
    verdict = "ready" if not n_fail else "not ready: fix the failures above"
    lines.append(
        f"{len(checks)} checks: {len(checks) - n_warn - n_fail} ok, {n_warn} warn, {n_fail} fail ({verdict}; "
        f"{platform.system().lower()} {platform.machine()})"
    )
    return "\n".join(lines)


def run(args) -> int:
    checks = run_checks(args.repo, args.timeout)
    failed = any(c.status == FAIL for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render(checks))
    return 1 if failed else 0
