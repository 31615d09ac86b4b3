"""``python -m services.devtools.launcher``: the same as ``baotuan run``."""

from services.devtools.launcher.cli import run_command

if __name__ == "__main__":  # pragma: no cover
    run_command(prog_name="baotuan run")
