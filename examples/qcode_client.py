#!/usr/bin/env python3
"""A qcode daemon client with nothing but the standard library.

The reference for editor authors: LSP base framing (Content-Length headers)
over the daemon's Unix socket, JSON-RPC 2.0 requests, $/progress
notifications during a solve, $/cancelRequest on Ctrl-C, and the
initialize / shutdown / exit lifecycle. See docs/protocol.md.

    python3 examples/qcode_client.py examples/palindrome/task.json --method greedy
"""
import argparse
import json
import os
import socket
import sys


def default_socket():
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "qcode", "qcode.sock")
    return "/tmp/qcode-%d/qcode.sock" % os.getuid()


class Connection:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buffer = b""
        self.next_id = 1

    def send(self, message):
        message["jsonrpc"] = "2.0"
        body = json.dumps(message).encode("utf-8")
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def receive(self):
        """Reads one framed message; None when the daemon hung up."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return None
        header, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = None
        for line in header.decode("ascii").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise ValueError("frame without Content-Length")
        while len(self.buffer) < length:
            if not self._fill():
                return None
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return json.loads(body)

    def _fill(self):
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def request(self, method, params=None, on_notification=None):
        """Sends a request and returns its result; raises on an error response."""
        request_id = self.next_id
        self.next_id += 1
        message = {"id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        try:
            while True:
                reply = self.receive()
                if reply is None:
                    raise ConnectionError("the daemon closed the connection")
                if "method" in reply:  # a notification such as $/progress
                    if on_notification:
                        on_notification(reply["method"], reply.get("params"))
                    continue
                if reply.get("id") != request_id:
                    continue
                if "error" in reply:
                    error = reply["error"]
                    raise RuntimeError("%s (error %d)" % (error["message"], error["code"]))
                return reply["result"]
        except KeyboardInterrupt:
            # Ask the daemon to stop this request; it answers -32800.
            self.send({"method": "$/cancelRequest", "params": {"id": request_id}})
            raise

    def notify(self, method, params=None):
        message = {"method": method}
        if params is not None:
            message["params"] = params
        self.send(message)


def show_progress(method, params):
    if method != "$/progress":
        return
    value = params["value"]
    if value.get("kind") == "report":
        line = "programs %d  tests %s/%s  tokens %d" % (
            value["programs_tried"], value.get("best_passed", "-"), value.get("best_total", "-"), value["generated_tokens"])
        sys.stderr.write("\r\x1b[2K" + line if sys.stderr.isatty() else line + "\n")
        sys.stderr.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", help="a qcode task file (JSON)")
    parser.add_argument("--socket", default=default_socket())
    parser.add_argument("--method", default=None, help="a planner the daemon lists in capabilities.solve_methods")
    parser.add_argument("--budget-tokens", type=int, default=1500)
    args = parser.parse_args()

    conn = Connection(args.socket)
    info = conn.request("initialize", {"process_id": os.getpid(), "client_info": {"name": "qcode_client.py"}})
    print("initialized: %s %s" % (info["server_info"]["name"], info["server_info"]["version"]))

    methods = info["capabilities"]["solve_methods"]
    if args.method is not None and args.method not in methods:
        parser.error("--method must be one of %s" % ", ".join(methods))
    options = {"budget_tokens": args.budget_tokens}
    if args.method:
        options["method"] = args.method
    params = {"task_file": os.path.abspath(args.task), "options": options}
    try:
        result = conn.request("qcode/solve", params, on_notification=show_progress)
    except KeyboardInterrupt:
        print("\ncancelled")
        return 130
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\r\x1b[2K")
    print(result["program"] or "# no program")
    for a in result["asserts"]:
        print("%s %s" % ("PASS" if a["passed"] else "FAIL", a["source"]))
    stats = result["statistics"]
    print("# %s %d/%d: %d expansions, %d generated tokens, %.1f s" % (
        result["outcome"], result["passed"], result["total"], stats["expansions"],
        stats["cost"]["generated_tokens"], stats["wall_seconds"]))

    conn.request("shutdown")
    conn.notify("exit")
    print("shut down")
    return 0 if result["passed"] == result["total"] and result["total"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
