"""What the load commands share: start `codemode serve` on a free port and read its memory."""

import json
import pathlib
import subprocess
import threading


def rss_bytes(pid: int) -> int:
    """The resident memory of `pid`, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def start_serve(binary: str, config: dict, workdir: pathlib.Path) -> tuple[subprocess.Popen, str]:
    """Starts `BINARY serve` with `config` and a database in `workdir`; returns the process and
    its base URL once it listens. Its log is read on to the end so it never blocks on stderr."""
    (workdir / "codemode.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [binary, "serve", "--port", "0", "--log-json", "--config", str(workdir / "codemode.json"),
         "--db", str(workdir / "codemode.db")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        log = json.loads(line) if line.startswith("{") else {}
        if log.get("fields", {}).get("message") == "codemode is listening":
            port = log["fields"]["address"].rsplit(":", 1)[1]
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, f"http://127.0.0.1:{port}"
    raise SystemExit("codemode did not start")
