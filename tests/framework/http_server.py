"""A local HTTP server for the download tests (127.0.0.1 only).

usage: http_server.py ROOT PORT_FILE PID
Serves ROOT. /drop/NAME promises NAME's full length, sends half and closes the connection.
Every request path is appended to ROOT/requests.log. Stops when process PID (the test) is
gone, however long the test takes on a busy machine.
"""
import http.server
import os
import sys
import threading
import time

root, port_file, test_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        with open(os.path.join(root, "requests.log"), "a") as log:
            log.write(self.path + "\n")
        drop = self.path.startswith("/drop/")
        name = self.path[len("/drop/"):] if drop else self.path.lstrip("/")
        path = os.path.join(root, "files", name)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if drop else data)
        self.wfile.flush()
        if drop:
            self.close_connection = True


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def watch():
    while True:
        try:
            os.kill(test_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    server.shutdown()


threading.Thread(target=watch, daemon=True).start()
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
