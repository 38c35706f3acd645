"""Helpers to run the real Snakefile as a user would (a subprocess in a temporary directory)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def snakemake(workdir: Path, *args: str, config: dict | None = None, timeout: int = 900,
              check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with ``--config key=value`` pairs; return the process."""
    cmd = [*SNAKEMAKE, "--directory", str(workdir), *args]
    if config:
        cmd += ["--config", *[f"{k}={v}" for k, v in config.items()]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def jobs_run(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule → job count from Snakemake's 'Job stats' table (empty when nothing ran)."""
    text = proc.stdout + proc.stderr
    if "Job stats:" not in text:
        return {}
    table = text.split("Job stats:", 1)[1].splitlines()[3:]
    counts = {}
    for line in table:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    counts.pop("total", None)
    return counts
