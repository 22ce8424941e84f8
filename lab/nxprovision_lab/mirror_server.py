"""The lab's artifact mirror: a static HTTP server laid out like the vendors' download sites.

Run as its own daemon process by the lab (`python -m nxprovision_lab.mirror_server ...`); its command
line names the lab directory so that `lab down` can recognise it by PID and cmdline.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nxprovision-lab-mirror")
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--directory", required=True)
    parser.add_argument("--lab-dir", required=True, help="the lab this server belongs to (for `down`)")
    args = parser.parse_args(argv)
    handler = functools.partial(_QuietHandler, directory=args.directory)
    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as server:
        server.daemon_threads = True
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
