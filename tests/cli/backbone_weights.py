"""Python side of test_backbone_sources: torchvision's models as weight files, and a local
HTTP server to download them from.

write DIR NAME...            writes DIR/NAME.pth for each torchvision model NAME, in order:
                             its state_dict() with random values, torch.save'd. googlenet and
                             inception_v3 are built as torchvision publishes them (aux heads,
                             transform_input). After each file, prints a JSON line {"name",
                             "file", "tensors", "bytes", "sha256", "torchvision_file" (the
                             IMAGENET1K_V1 file name torch's hub cache holds), "backbone" (the
                             graft backbone spec whose state dict is the file's)}
serve ROOT PORT_FILE PID DIR serves ROOT/files on 127.0.0.1 (port written to PORT_FILE),
                             appending each request path to ROOT/requests.log. When process
                             PID is gone (the test was killed: it stops the server itself
                             otherwise), removes DIR (its gigabytes of files) and exits.
"""
import hashlib
import http.server
import json
import os
import shutil
import sys
import threading
import time


def write(out, names):
    import warnings

    import torch
    import torchvision.models as tvm
    from torch import nn

    warnings.filterwarnings("ignore")
    # Skip torch's and torchvision's initialisation (kaiming on VGG's 120M-weight classifier
    # is most of the time): the values are drawn below, in one cheap pass.
    for cls in (nn.Linear, nn.modules.conv._ConvNd):
        cls.reset_parameters = lambda self: None
    for fn in ("kaiming_normal_", "kaiming_uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
               "uniform_", "xavier_uniform_"):
        setattr(nn.init, fn, lambda tensor, *args, **kwargs: tensor)

    class Hashing:
        """A file that hashes what torch.save writes, as it writes it."""

        def __init__(self, path):
            self.file, self.sha256 = open(path, "wb"), hashlib.sha256()

        def write(self, data):
            self.sha256.update(data)
            return self.file.write(data)

        def flush(self):
            self.file.flush()

    # torchvision's published googlenet and inception_v3 files were trained with the aux
    # heads and transform_input (what pretrained=True sets); the recipe names the same.
    published = {"aux_logits": True, "transform_input": True}
    torch.manual_seed(0)
    for name in names:
        options = published if name in ("googlenet", "inception_v3") else {}
        model = getattr(tvm, name)(**options, **({"init_weights": False} if options else {}))
        sd = model.state_dict()
        with torch.no_grad():
            for key, t in sd.items():
                if t.is_floating_point():
                    t.uniform_(0.5, 1.5) if key.endswith("running_var") else t.uniform_(-0.05, 0.05)
        path = os.path.join(out, name + ".pth")
        f = Hashing(path)
        torch.save(sd, f)
        f.file.close()
        print(json.dumps({
            "name": name,
            "file": path,
            "tensors": len(sd),
            "bytes": os.path.getsize(path),
            "sha256": f.sha256.hexdigest(),
            "torchvision_file": tvm.get_model_weights(name).IMAGENET1K_V1.url.rsplit("/", 1)[1],
            "backbone": dict(options, name=name),
        }), flush=True)
        del model, sd


def serve(root, port_file, pid, workspace):
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            with lock, open(os.path.join(root, "requests.log"), "a") as log:
                log.write(self.path + "\n")
            path = os.path.join(root, "files", self.path.lstrip("/"))
            if not os.path.isfile(path):
                self.send_error(404)
                return
            with open(path, "rb") as f:
                self.send_response(200)
                self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
                self.end_headers()
                self.wfile.flush()
                self.connection.sendfile(f)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def alive():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    def watch():
        while alive():
            time.sleep(0.5)
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()
    # The test is gone without its cleanup; its children may still write there for a moment.
    for _ in range(30):
        shutil.rmtree(workspace, ignore_errors=True)
        if not os.path.exists(workspace):
            break
        time.sleep(1)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("usage: backbone_weights.py write DIR NAME... | serve ROOT PORT_FILE PID DIR")
