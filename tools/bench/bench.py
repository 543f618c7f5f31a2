"""graft against PyTorch in Python, side by side in one run (tools/bench.sh runs this).

Every measurement is a fresh child process, graft and Python alternating, repeated
--repeats times; a row reports the medians and the ratio graft/Python. The table goes to
stdout, everything (each value, the machine, the settings) to a JSON file.

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14). Python's training
figures are given three times, and ratios are taken against the fastest, "tuned" one:
  python default  no environment
  python malloc   the MALLOC_* environment that does what graft's trainer does with
                  mallopt (freed buffers stay in the heap instead of going back to the
                  kernel every step)
  python tuned    that, and OPENBLAS_NUM_THREADS=1: Debian's OpenBLAS (pthread flavour)
                  otherwise runs its own pool of threads next to LibTorch's OpenMP pool,
                  spinning in sched_yield between calls (see README.md, "Benchmarks")
graft runs as it is: only what graft itself sets applies to it (--env sets a variable for
both sides).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TORCH_REF = os.path.join(HERE, "torch_ref.py")

# What graft sets with mallopt (configure_cpu() in framework/src/runtime.cpp, which `graft train` calls).
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
              "MALLOC_TOP_PAD_": str(256 << 20)}
PYTHON_ENVS = {"tuned": dict(MALLOC_ENV, OPENBLAS_NUM_THREADS="1"), "malloc": MALLOC_ENV, "default": {}}
AUGMENT = [
    "{name: random_crop, size: 28, padding: 2}",
    "random_horizontal_flip",
    "to_tensor",
    "{name: normalize, mean: [0.2860], std: [0.3530]}",
]

# Steps (warm-up, measured) per model and batch size: about 10 s of training per run on
# 2 cores. --smoke shrinks everything to a few steps.
STEPS = {
    ("cnn", 128): (20, 200),
    ("cnn", 16): (50, 600),
    ("resnet18", 128): (5, 40),
    ("resnet18", 16): (20, 160),
}
GOALS = {  # row id -> minimum of the row's ratio (or of graft's value, for "value" goals)
    "train/cnn/b128": ("ratio", 1.0), "train/resnet18/b128": ("ratio", 1.0),
    "train/cnn/b16": ("ratio", 1.2), "train/resnet18/b16": ("ratio", 1.2),
    "loader/efficiency": ("value", 95.0),
    "ckpt/save": ("ratio", 1.0), "ckpt/load": ("ratio", 3.0), "jpeg/w1": ("ratio", 4.0),
    "infer/cnn/optimized": ("ratio", 1.5), "infer/resnet18/optimized": ("ratio", 1.5),
}


class Failed(Exception):
    pass


def run(cmd, env_extra=None, timeout=900, cwd=None):
    """Runs `cmd`; returns (wall seconds, peak RSS in MB, stdout). Raises Failed on an error."""
    env = dict(os.environ)
    env.update(env_extra or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                             start_new_session=True)
        expired = threading.Event()

        def give_up():
            expired.set()
            os.killpg(p.pid, signal.SIGKILL)

        # a safety net for a hang, never a measurement: generous, and said when it is hit
        timer = threading.Timer(timeout, give_up)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if expired.is_set():
        raise Failed("gave up after %d s waiting for %s to finish" % (timeout, " ".join(cmd[:3])))
    if p.returncode != 0:
        last = [l for l in stderr.strip().splitlines() if l.strip()][-3:]
        raise Failed("exit %d: %s: %s" % (p.returncode, " ".join(cmd[:3]), " | ".join(last)))
    return wall, usage.ru_maxrss / 1024.0, stdout


def step_seconds(run_dir, warmup, steps):
    """Seconds between the step records at steps warmup and warmup+steps of a run's metrics.jsonl."""
    recs = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "img_per_s" in r:
                recs[r["step"]] = r["time"]
    if warmup not in recs or warmup + steps not in recs:
        raise Failed("metrics.jsonl of %s has no records at steps %d and %d" % (run_dir, warmup, warmup + steps))
    return recs[warmup + steps] - recs[warmup]


def last_json(stdout):
    try:
        return json.loads(stdout)  # one document (graft's --json is indented)
    except ValueError:
        pass
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise Failed("no JSON in the output: " + stdout[-300:])


class Bench:
    def __init__(self, a):
        self.a = a
        self.graft = a.graft
        self.tool = a.bench
        self.python = a.python
        self.work = a.work
        self.rows = []
        self.failures = []
        self.ordinal = 0
        self.clock = time.time()
        self.python_versions = None

    # ---- the two sides ----------------------------------------------------------------

    def py(self, args, env="tuned", timeout=900):
        cmd = [self.python, TORCH_REF, "--threads", str(self.a.threads), "--root", self.a.root] + args
        return run(cmd, PYTHON_ENVS[env], timeout=timeout)

    def recipe(self, name, model, batch, steps, log_every, workers=1):
        backbone = ("{name: simple_cnn, in_channels: 1, num_classes: 10, dropout: 0.3}" if model == "cnn"
                    else "resnet18\n  in_channels: 1\n  num_classes: 10\n  input_shape: [1, 28, 28]")
        text = "\n".join([
            "# written by tools/bench/bench.py",
            "description: graft bench, %s batch %d" % (model, batch),
            "seed: 0",
            "model:",
            "  backbone: " + backbone,
            "data:",
            "  dataset: {name: fashion_mnist, root: '%s'}" % self.a.root,
            "  train_split: %s" % self.a.train_split,
            "  val: none",
            "  batch_size: %d" % batch,
            "  workers: %d" % workers,
            "  transforms:",
        ] + ["    - " + t for t in AUGMENT] + [
            "optimizer: {name: sgd, lr: 0.01, momentum: 0.9, weight_decay: 0.0005}",
            "trainer:",
            "  epochs: 1",
            "  max_steps: %d" % steps,
            "  log_every: %d" % log_every,
            "  device: cpu",
            "  threads: %d" % self.a.threads,
            "  test: false",
            "",
        ])
        path = os.path.join(self.work, name + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_dir(self, tag):
        self.ordinal += 1
        return os.path.join(self.work, "runs", "%s-%d" % (tag, self.ordinal))

    def graft_train(self, recipe, warmup, steps, batch, tag):
        """`graft train` as a user runs it; img/s between the records at steps warmup and warmup+steps."""
        d = self.run_dir(tag)
        wall, rss, _ = run([self.graft, "train", recipe, "--run-dir", d, "--progress", "0"])
        seconds = step_seconds(d, warmup, steps)
        shutil.rmtree(d, ignore_errors=True)
        return steps * batch / seconds, rss

    # ---- rows ---------------------------------------------------------------------------

    def add(self, rid, label, unit, better, graft, python, others=None, note=""):
        """`python`: the values of Python tuned; `others`: {"malloc": values, "default": values}."""
        def summary(values):
            values = [v for v in values if v is not None]
            return {"values": values, "median": statistics.median(values) if values else None}

        row = {"id": rid, "label": label, "unit": unit, "better": better, "graft": summary(graft),
               "python": summary(python), "note": note}
        g, p = row["graft"]["median"], row["python"]["median"]
        row["ratio"] = g / p if g is not None and p else None
        for name, values in (others or {}).items():
            row["python_" + name] = summary(values)
            other = row["python_" + name]["median"]
            row["ratio_" + name] = g / other if g is not None and other else None
        if rid in GOALS:
            kind, bound = GOALS[rid]
            got = row["ratio"] if kind == "ratio" else g
            row["goal"] = (">= %.2fx python" % bound) if kind == "ratio" else (">= %g %s" % (bound, unit))
            row["met"] = None if got is None else got >= bound
        self.rows.append(row)
        now = time.time()
        self.progress("%-22s graft %s  python %s  (%.0f s)" % (rid, fmt(row["graft"]["median"]), fmt(row["python"]["median"]),
                                                             now - self.clock))
        self.clock = now
        return row

    def progress(self, text):
        if not self.a.quiet:
            print("bench: " + text, file=sys.stderr, flush=True)

    def attempt(self, what, fn):
        try:
            return fn()
        except Failed as e:
            self.failures.append("%s: %s" % (what, e))
            self.progress("FAILED %s: %s" % (what, e))
            return None

    def steps(self, model, batch):
        if self.a.smoke:
            return 1, 2
        w, m = STEPS[(model, batch)]
        m = int(round(m * self.a.scale / w)) * w or w  # a multiple of the warm-up: log_every = warm-up
        return w, m

    def train_rows(self):
        for model in self.a.models:
            for batch in self.a.batches:
                w, m = self.steps(model, batch)
                recipe = self.recipe("train-%s-b%d" % (model, batch), model, batch, w + m, w)
                speed = {side: [] for side in ["graft"] + list(PYTHON_ENVS)}
                rss = {side: [] for side in speed}
                py_args = ["train", "--model", model, "--batch", str(batch), "--warmup", str(w), "--steps", str(m),
                           "--feed", "preloaded"]
                for r in range(self.a.repeats):
                    order = list(speed)
                    if r % 2:
                        order.reverse()
                    for side in order:
                        if side == "graft":
                            got = self.attempt("graft train %s b%d" % (model, batch),
                                               lambda: self.graft_train(recipe, w, m, batch, "train"))
                            if got:
                                speed[side].append(got[0])
                                rss[side].append(got[1])
                        else:
                            got = self.attempt("python train %s b%d (%s)" % (model, batch, side),
                                               lambda: self.py(py_args, env=side))
                            if got:
                                speed[side].append(last_json(got[2])["img_per_s"])
                                rss[side].append(got[1])
                label = "train %s batch %d" % ("small CNN" if model == "cnn" else "ResNet-18", batch)
                note = "graft: `graft train`, loader + augmentation; python: preloaded tensors"
                others = lambda d: {"malloc": d["malloc"], "default": d["default"]}
                self.add("train/%s/b%d" % (model, batch), label, "img/s", "higher", speed["graft"], speed["tuned"],
                         others(speed), note)
                self.add("rss/%s/b%d" % (model, batch), "peak RSS, " + label, "MB", "lower", rss["graft"], rss["tuned"],
                         others(rss))

    def dist_rows(self):
        """2 ranks x 1 thread (graft launch, Gloo on 127.0.0.1) against 1 process x 2 threads, the
        small CNN at global batch 128 on the same data; and the share of the 2-rank run spent
        waiting for the gradients' all-reduce (what backward did not hide)."""
        model, batch = "cnn", 128
        w, m = self.steps(model, batch)
        threads = self.a.threads
        one = self.recipe("dist-one", model, batch, w + m, w)
        self.a.threads = max(1, threads // 2)
        two = self.recipe("dist-two", model, batch // 2, w + m, w)
        self.a.threads = threads
        speed = {"one": [], "two": []}
        wait = []

        def launch():
            d = self.run_dir("dist")
            run([self.graft, "launch", "--nproc-per-node", "2", "--", "train", two, "--run-dir", d, "--progress", "0"])
            seconds = step_seconds(d, w, m)
            with open(os.path.join(d, "train.log")) as f:
                found = re.search(r"waited ([0-9.]+) s of ([0-9.]+) s", f.read())
            if not found:
                raise Failed("%s: no all-reduce wait line in train.log" % d)
            shutil.rmtree(d, ignore_errors=True)
            return m * batch / seconds, 100.0 * float(found.group(1)) / float(found.group(2))

        for r in range(self.a.repeats):
            for side in (["one", "two"] if r % 2 == 0 else ["two", "one"]):
                if side == "one":
                    got = self.attempt("graft train cnn b128, 1 process", lambda: self.graft_train(one, w, m, batch, "dist1"))
                    if got:
                        speed["one"].append(got[0])
                else:
                    got = self.attempt("graft launch cnn b2x64, 2 ranks", launch)
                    if got:
                        speed["two"].append(got[0])
                        wait.append(got[1])
        note = "graft only: 2 ranks x %d thread(s), batch 2 x 64 (Gloo, 127.0.0.1) vs 1 process x %d threads, batch 128" % (
            max(1, threads // 2), threads)
        self.add("dist/cnn/b128", "train small CNN, 2 ranks vs 1", "img/s", "higher", speed["two"], speed["one"], note=note)
        self.add("dist/allreduce_wait", "2 ranks: waiting in all-reduce", "%", "lower", wait, [],
                 note="share of the training time spent waiting for gradients after backward")

    def loader_rows(self):
        model, batch = "cnn", 128
        w, m = self.steps(model, batch)
        recipe = self.recipe("loader-%s-b%d" % (model, batch), model, batch, w + m, w)
        batches = 3 if self.a.smoke else int(200 * self.a.scale)
        alone_g, alone_p, pre_g, pre_p, load_g, load_p = [], [], [], [], [], []
        for r in range(self.a.repeats):
            got = self.attempt("graft-bench loader", lambda: run([self.tool, "loader", recipe, "--batches", str(batches)]))
            if got:
                alone_g.append(last_json(got[2])["img_per_s"])
            got = self.attempt("python loader", lambda: self.py(["loader", "--batch", str(batch), "--batches", str(batches)]))
            if got:
                alone_p.append(last_json(got[2])["img_per_s"])
            for feed, gl, pl in (("preloaded", pre_g, pre_p), ("loader", load_g, load_p)):
                got = self.attempt("graft-bench train --feed " + feed, lambda: run(
                    [self.tool, "train", recipe, "--feed", feed, "--warmup", str(w), "--steps", str(m)]))
                if got:
                    gl.append(last_json(got[2])["img_per_s"])
                got = self.attempt("python train --feed " + feed, lambda: self.py(
                    ["train", "--model", model, "--batch", str(batch), "--warmup", str(w), "--steps", str(m),
                     "--feed", feed]))
                if got:
                    pl.append(last_json(got[2])["img_per_s"])
        self.add("loader/alone", "loader alone (crop+flip+normalize, 1 worker)", "img/s", "higher", alone_g, alone_p,
                 note="graft: graft::Loader; python: DataLoader(num_workers=1), torchvision tensor transforms")
        gp = self.add("loader/preloaded", "train CNN b%d, preloaded tensors" % batch, "img/s", "higher", pre_g, pre_p,
                      note="the trainer's step on tensors in memory (graft-bench / torch_ref.py)")
        gl = self.add("loader/train", "train CNN b%d, fed by the loader" % batch, "img/s", "higher", load_g, load_p,
                      note="the same step fed by the augmenting loader, 1 worker")

        def eff(lo, pre):
            return [100.0 * a / b for a, b in zip(lo, pre)] if lo and pre else []
        self.add("loader/efficiency", "loader-fed / preloaded throughput", "%", "higher", eff(load_g, pre_g),
                 eff(load_p, pre_p), note="per repeat: the loader-fed run over the preloaded run")

    def ckpt_rows(self):
        arch = self.a.ckpt_arch
        reps = 1 if self.a.smoke else 3
        d = os.path.join(self.work, "ckpt")
        os.makedirs(d, exist_ok=True)
        gs, gl, gc, ps, pf, pl = [], [], [], [], [], []
        size_g = size_p = None
        for r in range(self.a.repeats):
            got = self.attempt("graft-bench ckpt", lambda: run(
                [self.tool, "ckpt", "--backbone", arch, "--dir", d, "--repeats", str(reps)]))
            if got:
                j = last_json(got[2])
                size_g = j["bytes"] / 1e6
                gs += [size_g / s for s in j["save_s"]]
                gl += [size_g / s for s in j["load_s"]]
                gc += [size_g / s for s in j["crc_s"]]
            got = self.attempt("python ckpt", lambda: self.py(
                ["ckpt", "--arch", arch, "--dir", d, "--repeats", str(reps)], env="default"))
            if got:
                j = last_json(got[2])
                size_p = j["bytes"] / 1e6
                ps += [size_p / s for s in j["save_s"]]
                pf += [size_p / s for s in j["save_fsync_s"]]
                pl += [size_p / s for s in j["load_s"]]
        sizes = "file %s MB (graft) / %s MB (python)" % (fmt(size_g), fmt(size_p))
        self.add("ckpt/save", "save %s state dict" % arch, "MB/s", "higher", gs, ps,
                 note="graft's save_state_dict is on the disk when it returns (O_DIRECT + fsync); torch.save is not. " + sizes)
        self.add("ckpt/save_fsync", "save %s, both on disk (fsync)" % arch, "MB/s", "higher", gs, pf,
                 note="python: torch.save + os.fsync")
        self.add("ckpt/load", "load %s state dict" % arch, "MB/s", "higher", gl, pl,
                 note="graft: load_state_dict (CRC-32 of every record checked); python: torch.load; file in the page cache")
        crc_share = "%.0f%% of graft's load time" % (100.0 * statistics.median(gl) / statistics.median(gc)) if gl and gc else ""
        self.add("ckpt/crc", "  of which the CRC-32 check alone", "MB/s", "higher", gc, [],
                 note="the same bytes and threads as the load; " + crc_share)

    def jpeg_recipe(self, root, workers):
        text = "\n".join([
            "# written by tools/bench/bench.py",
            "description: graft bench, the ImageNet training transforms on a JPEG folder",
            "seed: 0",
            "model: {backbone: {name: simple_cnn, in_channels: 3, num_classes: 4}}",
            "data:",
            "  dataset: {name: image_folder, root: '%s'}" % root,
            "  val: none",
            "  batch_size: 32",
            "  workers: %d" % workers,
            "  transforms:",
            "    - {name: random_resized_crop, size: 224, antialias: true}",
            "    - random_horizontal_flip",
            "    - to_tensor",
            "    - {name: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}",
            "  eval_transforms: [{name: resize, size: 256}, {name: center_crop, size: 224}, to_tensor]",
            "trainer: {epochs: 1, device: cpu, threads: %d}" % self.a.threads,
            "",
        ])
        path = os.path.join(self.work, "jpeg-w%d.yaml" % workers)
        with open(path, "w") as f:
            f.write(text)
        return path

    def jpeg_rows(self):
        """The ImageNet-style input pipeline: a folder of photo-like 500x375 JPEGs through
        random_resized_crop 224 + flip + to_tensor + normalize, batch 32: graft's loader
        against torchvision's ImageFolder + DataLoader, 1 and 2 workers."""
        root = os.path.join(self.work, "jpegs")
        per_class = 4 if self.a.smoke else self.a.jpegs // 4
        made = self.attempt("python jpegs", lambda: self.py(
            ["jpegs", "--out", root, "--classes", "4", "--per-class", str(per_class)], timeout=1800))
        if made is None:
            return
        batches = 2 if self.a.smoke else 40
        for workers in (1, 2):
            recipe = self.jpeg_recipe(root, workers)
            g, p = [], []
            for r in range(self.a.repeats):
                got = self.attempt("graft-bench loader (jpeg, %d workers)" % workers, lambda: run(
                    [self.tool, "loader", recipe, "--batches", str(batches)]))
                if got:
                    g.append(last_json(got[2])["img_per_s"])
                got = self.attempt("python folder (%d workers)" % workers, lambda: self.py(
                    ["folder", "--dir", root, "--workers", str(workers), "--batches", str(batches)]))
                if got:
                    p.append(last_json(got[2])["img_per_s"])
            self.add("jpeg/w%d" % workers, "JPEG folder, RandomResizedCrop 224, %d worker%s" % (workers, "s" if workers > 1 else ""),
                     "img/s", "higher", g, p,
                     note="%d photo-like 500x375 JPEGs (~70 KB), + flip, to_tensor, normalize, batch 32; graft: "
                          "graft::Loader (crop decoded in part, antialiased); python: ImageFolder (PIL) + "
                          "DataLoader(num_workers=%d)" % (4 * per_class, workers))

    def infer_rows(self):
        """Evaluation throughput (issue 16): graft eager and optimized against Python eager."""
        for model, batch, label in (("cnn", 500, "small CNN batch 500"), ("resnet18", 32, "ResNet-18 224x224 batch 32")):
            warmup, iters = (1, 1) if self.a.smoke else ((2, 10) if model == "cnn" else (2, 8))
            eager, fast, py = [], [], []
            for r in range(self.a.repeats):
                got = self.attempt("graft-bench infer " + model, lambda: run(
                    [self.tool, "infer", "--model", model, "--batch", str(batch), "--warmup", str(warmup),
                     "--iters", str(iters), "--threads", str(self.a.threads)]))
                if got:
                    j = last_json(got[2])
                    eager.append(j["eager_img_per_s"])
                    fast.append(j["optimized_img_per_s"])
                got = self.attempt("python infer " + model, lambda: self.py(
                    ["infer", "--model", model, "--batch", str(batch), "--warmup", str(warmup), "--iters", str(iters)]))
                if got:
                    py.append(last_json(got[2])["img_per_s"])
            self.add("infer/%s/optimized" % model, "eval %s, optimized" % label, "img/s", "higher", fast, py,
                     note="graft: traced, frozen, optimize_for_inference (graft eval/predict); python: eval + no_grad")
            self.add("infer/%s/eager" % model, "eval %s, eager" % label, "img/s", "higher", eager, py,
                     note="graft: the module as trained, no_grad (--eager)")

    def startup_rows(self):
        scan, cli, imp = [], [], []
        libs = None
        for r in range(self.a.repeats):
            got = self.attempt("graft-bench plugins", lambda: run([self.tool, "plugins"]))
            if got:
                j = last_json(got[2])
                scan.append(1000 * j["seconds"])
                libs = "%d libraries, %d plugins" % (j["libraries"], j["plugins"])
            got = self.attempt("graft plugins", lambda: run([self.graft, "plugins", "--json"]))
            if got:
                cli.append(1000 * got[0])
            got = self.attempt("python import", lambda: run(
                [self.python, "-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"]))
            if got:
                imp.append(1000 * got[0])
                self.python_versions = got[2].strip()
        self.add("startup/plugin_scan", "plugin scan and load (in process)", "ms", "lower", scan, [],
                 note="Registry::scan of the built-in plugins: %s; Python has no counterpart" % libs)
        self.add("startup/cli", "`graft plugins --json` vs `import torch, torchvision`", "ms", "lower", cli, imp,
                 note="process start to exit")

        # resume: the time from launching a resumed run (one step more than its checkpoint)
        # to its exit, against a fresh start of the same recipe (one step) and Python's
        # equivalent (load the checkpoint dict, rebuild model and optimizer, one step, save)
        model = self.a.resume_model
        batch = 16 if self.a.smoke else 128
        k = 2
        recipe = self.recipe("resume-%s" % model, model, batch, k, 1)
        help_text = self.attempt("graft train --help", lambda: run([self.graft, "train", "--help"]))
        has_resume = bool(help_text and "--resume" in help_text[2])
        ckpt = None
        if has_resume:
            got = self.attempt("graft train (checkpoint to resume)", lambda: run(
                [self.graft, "train", recipe, "--run-dir", self.run_dir("resume-src"), "--progress", "0", "--json"]))
            if got:
                ckpt = last_json(got[2]).get("checkpoint")
                if not ckpt:
                    self.failures.append("graft train --json gave no checkpoint to resume from")
        py_ckpt = os.path.join(self.work, "python-resume.pth")
        py_out = os.path.join(self.work, "python-out.pth")
        self.attempt("python run (checkpoint to resume)", lambda: self.py(
            ["run", "--model", model, "--batch", str(batch), "--steps", str(k), "--save", py_ckpt]))
        fresh_g, fresh_p, res_g, res_p = [], [], [], []
        for r in range(self.a.repeats):
            got = self.attempt("graft train (fresh)", lambda: run(
                [self.graft, "train", recipe, "--set", "trainer.max_steps=1", "--run-dir", self.run_dir("fresh"),
                 "--progress", "0"]))
            if got:
                fresh_g.append(got[0])
            got = self.attempt("python run (fresh)", lambda: self.py(
                ["run", "--model", model, "--batch", str(batch), "--steps", "1", "--save", py_out]))
            if got:
                fresh_p.append(got[0])
            if ckpt:
                got = self.attempt("graft train --resume", lambda: run(
                    [self.graft, "train", recipe, "--resume", ckpt, "--set", "trainer.max_steps=%d" % (k + 1),
                     "--run-dir", self.run_dir("resumed"), "--progress", "0"]))
                if got:
                    res_g.append(got[0])
            got = self.attempt("python run (resume)", lambda: self.py(
                ["run", "--model", model, "--batch", str(batch), "--steps", str(k + 1), "--resume", py_ckpt,
                 "--save", py_out]))
            if got:
                res_p.append(got[0])
        what = "%s b%d" % ("ResNet-18" if model == "resnet18" else "small CNN", batch)
        self.add("startup/fresh", "fresh start, 1 step (%s)" % what, "s", "lower", fresh_g, fresh_p,
                 note="launch to exit: open the data, build, 1 step, save the checkpoint")
        self.add("startup/resume", "resume, 1 step (%s)" % what, "s", "lower", res_g, res_p,
                 note=("launch to exit: --resume a %d-step checkpoint with max_steps %d" % (k, k + 1)) if has_resume
                 else "n/a (no --resume): this graft has no `graft train --resume`")

    def plugin_rows(self):
        """How long an out-of-tree plugin of two LibTorch sources takes to build against the
        installed graft, with graft_add_plugin()'s precompiled header and without it: a clean
        build (the header itself included), then a rebuild after one source changed. No ccache."""
        build_dir = os.path.dirname(os.path.dirname(os.path.abspath(self.graft)))
        prefix = os.path.join(self.work, "plugin-prefix")
        if not self.attempt("cmake --install", lambda: run(["cmake", "--install", build_dir, "--prefix", prefix])):
            return
        graft = os.path.join(prefix, "bin", "graft")
        src = os.path.join(self.work, "plugin-src")
        shutil.rmtree(src, ignore_errors=True)
        other = os.path.join(self.work, "plugin-other")
        shutil.rmtree(other, ignore_errors=True)
        if not (self.attempt("graft new-plugin", lambda: run([graft, "new-plugin", "module", "bench_head", src]))
                and self.attempt("graft new-plugin", lambda: run([graft, "new-plugin", "hook", "bench_hook", other]))):
            return
        shutil.copy(os.path.join(other, "bench_hook.cpp"), src)
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.18)\nproject(bench_head LANGUAGES CXX)\nfind_package(graft REQUIRED)\n"
                    "graft_add_plugin(bench_head SOURCES bench_head.cpp bench_hook.cpp)\n")
        env = {"CCACHE_DISABLE": "1"}
        jobs = str(self.a.threads)
        times = {(pch, kind): [] for pch in ("ON", "OFF") for kind in ("clean", "touched")}
        for r in range(self.a.repeats):
            for pch in ("ON", "OFF"):
                b = os.path.join(self.work, "plugin-build-" + pch)
                shutil.rmtree(b, ignore_errors=True)
                if not self.attempt("cmake configure", lambda: run(
                        ["cmake", "-S", src, "-B", b, "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Release",
                         "-DGRAFT_PLUGIN_PCH=" + pch], env)):
                    continue
                got = self.attempt("plugin build", lambda: run(["cmake", "--build", b, "--parallel", jobs], env))
                if got:
                    times[(pch, "clean")].append(got[0])
                os.utime(os.path.join(src, "bench_head.cpp"))
                got = self.attempt("plugin rebuild", lambda: run(["cmake", "--build", b, "--parallel", jobs], env))
                if got:
                    times[(pch, "touched")].append(got[0])
        for kind, label in (("clean", "build a 2-source plugin"), ("touched", "rebuild it, 1 source changed")):
            self.add("plugin/%s/pch" % kind, label + ", precompiled header", "s", "lower", times[("ON", kind)], [],
                     note="graft_add_plugin() (GRAFT_PLUGIN_PCH=ON), -j%s, no ccache" % jobs)
            self.add("plugin/%s/no_pch" % kind, label + ", without", "s", "lower", times[("OFF", kind)], [],
                     note="-DGRAFT_PLUGIN_PCH=OFF, -j%s, no ccache" % jobs)

    # ---- output -------------------------------------------------------------------------

    def machine(self):
        info = {"hostname": platform.node(), "kernel": platform.release(), "cores": os.cpu_count()}
        try:
            with open("/proc/cpuinfo") as f:
                m = re.search(r"model name\s*:\s*(.*)", f.read())
                info["cpu"] = m.group(1).strip() if m else "?"
            with open("/proc/meminfo") as f:
                info["memory_gb"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
        except OSError:
            pass
        info["blas"] = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
        try:
            info["graft"] = json.loads(run([self.graft, "version", "--json"])[2])
        except (Failed, ValueError):
            info["graft"] = None
        return info


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def table(rows):
    head = ["row", "unit", "graft", "python", "py malloc", "py default", "graft/python", "goal", ""]
    lines = []
    for r in rows:
        ratio = "n/a" if r["ratio"] is None else "%.2fx" % r["ratio"]
        if "python_default" in r:
            ratio += " (%s, %s)" % tuple("n/a" if r.get(k) is None else "%.2fx" % r[k]
                                         for k in ("ratio_malloc", "ratio_default"))
        met = {True: "met", False: "MISSED", None: ""}[r.get("met")] if "goal" in r else ""
        graft = fmt(r["graft"]["median"])
        if r["graft"]["median"] is None and r["note"].startswith("n/a"):
            graft = r["note"].split(":")[0]
        lines.append([r["label"], r["unit"], graft, fmt(r["python"]["median"]) if r["python"]["values"] else "-",
                      fmt(r["python_malloc"]["median"]) if "python_malloc" in r else "",
                      fmt(r["python_default"]["median"]) if "python_default" in r else "",
                      ratio if r["python"]["values"] else "", r.get("goal", ""), met])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = []
    for i, l in enumerate([head] + lines):
        out.append("  ".join((s.ljust(w) if k in (0, 1, 7, 8) else s.rjust(w)) for k, (s, w) in enumerate(zip(l, widths))).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graft", required=True, help="the graft binary")
    p.add_argument("--bench", required=True, help="the graft-bench binary")
    p.add_argument("--python", default="/usr/bin/python3", help="Python with torch and torchvision")
    p.add_argument("--out", help="the JSON file (default runs/bench-<date-time>.json)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each side per row (default 3)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of both sides (default 2)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the measured steps (default 1)")
    p.add_argument("--smoke", action="store_true", help="a few steps of everything, 1 repeat: checks that it works")
    p.add_argument("--only", default="train,loader,jpeg,ckpt,infer,startup,dist",
                   help="row groups to run (also: plugin, the build of an out-of-tree plugin, not run by default)")
    p.add_argument("--jpegs", type=int, default=400, help="images in the JPEG folder of the jpeg rows (default 400)")
    p.add_argument("--models", default="cnn,resnet18")
    p.add_argument("--batches", default="128,16", help="training batch sizes")
    p.add_argument("--ckpt-arch", default="resnet50", help="the checkpoint rows' model (default resnet50)")
    p.add_argument("--resume-model", default="resnet18", help="the start-up rows' model (default resnet18)")
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX files")
    p.add_argument("--train-split", default="train", help="train or test (smaller: quicker start-up)")
    p.add_argument("--work", help="scratch directory (default: a new temporary one, removed at the end)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="set K=V for every run of both sides (e.g. OPENBLAS_NUM_THREADS=1); repeatable")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = p.parse_args()
    if a.smoke:
        a.repeats = 1
        if a.ckpt_arch == "resnet50":
            a.ckpt_arch = "resnet18"
        a.train_split = "test"
    for kv in a.env:
        k, _, v = kv.partition("=")
        os.environ[k] = v
    a.models = a.models.split(",")
    a.batches = [int(b) for b in a.batches.split(",")]
    groups = a.only.split(",")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if not a.out:
        a.out = os.path.join("runs", "bench-%s.json" % stamp)
    own_work = a.work is None
    a.work = a.work or tempfile.mkdtemp(prefix="graft-bench-")
    os.makedirs(a.work, exist_ok=True)

    b = Bench(a)
    started = time.time()
    load_before = os.getloadavg()
    machine = b.machine()
    try:
        for g in ("train", "loader", "jpeg", "ckpt", "infer", "startup", "dist", "plugin"):
            if g in groups:
                getattr(b, g + "_rows")()
    finally:
        if own_work:
            shutil.rmtree(a.work, ignore_errors=True)
    load_after = os.getloadavg()
    if b.python_versions is None:  # the start-up rows did not run
        b.attempt("python versions", lambda: setattr(b, "python_versions", run(
            [a.python, "-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"])[2].strip()))
    machine["python_torch"] = b.python_versions
    machine["load_before"] = [round(x, 2) for x in load_before]
    machine["load_after"] = [round(x, 2) for x in load_after]
    report = {
        "date": stamp, "seconds": round(time.time() - started, 1), "machine": machine,
        "settings": {"repeats": a.repeats, "threads": a.threads, "scale": a.scale, "smoke": a.smoke,
                     "models": a.models, "batches": a.batches, "ckpt_arch": a.ckpt_arch,
                     "train_split": a.train_split, "optimizer": "sgd lr 0.01 momentum 0.9 weight_decay 5e-4",
                     "python_envs": PYTHON_ENVS, "env": a.env},
        "rows": b.rows, "failures": b.failures,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    print("graft vs PyTorch %s in Python; %s, %d cores; %d threads each, %d repeats, medians" % (
        machine.get("python_torch") or "?", machine.get("cpu", "?"), machine["cores"], a.threads, a.repeats))
    print("load average before %s, after %s" % ("/".join("%.2f" % x for x in load_before),
                                                 "/".join("%.2f" % x for x in load_after)))
    print("python: tuned = MALLOC_* env (what graft's mallopt does) + OPENBLAS_NUM_THREADS=1; py malloc = MALLOC_* "
          "only; py default = no env. graft/python: against tuned (against malloc, default)")
    print()
    print(table(b.rows))
    print()
    for r in b.rows:
        if r["note"]:
            print("%-22s %s" % (r["id"], r["note"]))
    for f in b.failures:
        print("FAILED: " + f)
    print("\nJSON: " + a.out)
    return 1 if b.failures else 0


if __name__ == "__main__":
    sys.exit(main())
