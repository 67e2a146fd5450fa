"""Worker runtime: runs inside the user's own python for a method, next to its official code.

It imports only the standard library, numpy and PIL (both present in every official environment),
then one *driver* file given by path. A driver is a plain module with two functions:

    load(config: dict) -> state                 # load the model once (config from our side)
    edit(state, request: dict, scene, mask, subject) -> RGB uint8 array (H, W, 3)
        # scene: RGB uint8 (H, W, 3); mask: bool (H, W), True = region to edit;
        # subject: RGB uint8 or None; request: case_id, mask_type, kind, op, instruction, label, seed,
        # and subject_mask: bool (h, w), True = the subject's own pixels, or None when not known
    check(config: dict) -> list of str          # optional pre-flight: one line per missing piece
    checklist(config: dict) -> list of [item, problem or None]
        # optional: the same item by item (checkpoint files, packages imported later, helper models)
        # the worker runs it (or check) before load and stops with its problems: load need not repeat it

and, optionally, what the pre-flight reads without loading anything:

    ENTRY_FILES = ("run_inference.py",)  # official files (relative to the checkout) whose module-level
                                         # imports must resolve in this python
    IMPORT_PATHS = ("", "test")          # folders of the checkout put on sys.path, as the official code does
    PACKAGES = ("groundingdino",)        # packages the checklist names itself (not repeated by the import check)
    GPU_MEMORY_GIB = 16.0                # GPU memory the method needs; GPU_MEMORY_NOTE says where it comes from

``load`` raises FileNotFoundError (its message names what is missing) when a file is missing.

Protocol (all files in the exchange folder; every file is written to a temporary name and renamed,
so a reader never sees half a file):
- start-up: ``ready.json`` {pid, python} once ``load`` returned, or ``startup_error.json``
  {error, missing_file} if it raised (FileNotFoundError -> missing_file true), then exit 3;
- request n (1, 2, ...): our side writes ``request_<n>/scene.png``, ``mask.png`` (0/255),
  ``subject.png`` (optional), then ``request_<n>.json``;
- reply n: ``reply_<n>/output.png`` then ``reply_<n>.json`` {ok: true, output} or
  {ok: false, error} when the driver raised (the worker keeps serving);
- ``shutdown.json`` -> exit 0.

When our side dies (``fsmi run`` killed with SIGKILL, so it cannot clean up), the worker notices within
``WATCH_SECONDS``, even in the middle of a case or of ``load``: a watchdog thread sees its parent change
(``--parent-pid``), removes ``--temporary-root`` (our side's private folder of the exchange) and kills its
own process group (it is started as a session leader, so this is it and whatever the driver started),
instead of lingering on a GPU.

Usage: python worker_main.py --driver DRIVER.py --exchange DIR --config CONFIG.json
           [--parent-pid PID --temporary-root DIR]
       python worker_main.py --driver DRIVER.py --config CONFIG.json --check
           (prints one JSON line {"problems": [...], "checks": [...], "gpu": ...}: the pre-flight,
           nothing is loaded)
"""

import argparse
import ast
import importlib.util
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback

import numpy as np
from PIL import Image

POLL_SECONDS = 0.01
WATCH_SECONDS = 0.2


def write_json_atomic(path, payload):
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
    os.replace(temporary, path)


def load_driver(path):
    spec = importlib.util.spec_from_file_location("fsmi_worker_driver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8).copy()


def read_mask(path):
    return np.asarray(Image.open(path).convert("L")) > 127


def save_rgb_atomic(path, image):
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"driver returned an array of dtype {image.dtype} and shape {image.shape}; "
                         "expected RGB uint8 (H, W, 3)")
    temporary = path + ".tmp.png"
    Image.fromarray(image, mode="RGB").save(temporary, format="PNG")
    os.replace(temporary, path)


def error_text(limit=4000):
    return traceback.format_exc()[-limit:]


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def module_level_imports(path):
    """Top-level names imported by the module-level statements of a python file (not those inside a
    try, an if or a function: the official code may treat those as optional)."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    names.discard("__future__")
    return sorted(names)


def importable(name):
    try:
        return importlib.util.find_spec(name) is not None  # finds, never imports, a top-level name
    except (ImportError, ValueError):
        return False


def import_checks(driver, checkout):
    """[item, problem or None] per official entry file: it exists and what it imports resolves here."""
    sys.path[:0] = [os.path.join(checkout, folder) if folder else checkout
                    for folder in getattr(driver, "IMPORT_PATHS", ("",))]
    checks = []
    for relative in getattr(driver, "ENTRY_FILES", ()):
        path = os.path.join(checkout, relative)
        item = f"official code {relative}"
        if not os.path.isfile(path):
            checks.append([item, f"{path} is missing: is config key 'checkout' the official repository?"])
            continue
        try:
            names = module_level_imports(path)
        except (SyntaxError, UnicodeDecodeError) as error:
            checks.append([item, f"{path} does not parse in this python ({error})"])
            continue
        # packages the driver lists itself get their own line (PACKAGES), so each missing piece is named once
        missing = [name for name in names if name not in getattr(driver, "PACKAGES", ()) and not importable(name)]
        checks.append([item, f"{relative} imports {', '.join(missing)}, not found in this python or the checkout"
                       if missing else None])
    return checks


def offline_check():
    loose = [f"{name}={os.environ.get(name, '')!r}" for name in OFFLINE_VARIABLES if os.environ.get(name) != "1"]
    return ["offline mode (" + ", ".join(f"{name}=1" for name in OFFLINE_VARIABLES) + ")",
            f"{', '.join(loose)}: the official code could download weights; remove them from config key 'env'"
            if loose else None]


def gpu_facts():
    """{"cuda": False} without torch or CUDA, else the first visible device's name and free/total bytes."""
    if sys.platform.startswith("linux") and not os.path.exists("/dev/nvidiactl"):
        return {"cuda": False, "why": "no NVIDIA driver on this machine (/dev/nvidiactl)"}  # spares a torch import
    if not importable("torch"):
        return {"cuda": False, "why": "torch is not installed in this python"}
    import torch

    if not torch.cuda.is_available():
        return {"cuda": False, "why": "no CUDA device is visible to this python"}
    free, total = torch.cuda.mem_get_info()
    return {"cuda": True, "name": torch.cuda.get_device_name(), "free_bytes": int(free), "total_bytes": int(total)}


def driver_problems(driver, config):
    """The driver's own check, one line per missing piece: its checklist's problems, or check()."""
    if hasattr(driver, "checklist"):
        return [problem for _, problem in driver.checklist(config) if problem]
    return list(driver.check(config)) if hasattr(driver, "check") else []


def preflight(driver, config):
    """The pre-flight report: every check made here, in this python, with nothing loaded."""
    checks = import_checks(driver, config.get("checkout", os.getcwd()))
    if hasattr(driver, "checklist"):
        checks += [list(entry) for entry in driver.checklist(config)]
    elif hasattr(driver, "check"):
        checks += [["checkpoints and helper models", problem] for problem in driver.check(config)] or \
                  [["checkpoints and helper models", None]]
    checks.append(offline_check())
    return {"problems": [problem for _, problem in checks if problem], "python": sys.executable,
            "python_version": sys.version.split()[0],
            "checks": [{"item": item, "problem": problem} for item, problem in checks],
            "gpu": gpu_facts(), "gpu_memory_gib": getattr(driver, "GPU_MEMORY_GIB", None),
            "gpu_memory_note": getattr(driver, "GPU_MEMORY_NOTE", "")}


def serve(driver, state, exchange):
    parent = os.getppid()
    number = 1
    while True:
        request_path = os.path.join(exchange, f"request_{number}.json")
        if os.path.exists(os.path.join(exchange, "shutdown.json")):
            return 0
        if not os.path.exists(request_path):
            if os.getppid() != parent:  # our side died: do not linger holding a GPU
                return 0
            time.sleep(POLL_SECONDS)
            continue
        with open(request_path, encoding="utf-8") as handle:
            request = json.load(handle)
        reply_folder = os.path.join(exchange, f"reply_{number}")
        os.makedirs(reply_folder, exist_ok=True)
        try:
            inputs = request["inputs"]
            scene = read_rgb(os.path.join(exchange, inputs["scene"]))
            mask = read_mask(os.path.join(exchange, inputs["mask"]))
            subject = read_rgb(os.path.join(exchange, inputs["subject"])) if inputs.get("subject") else None
            subject_mask = inputs.get("subject_mask")
            request["subject_mask"] = read_mask(os.path.join(exchange, subject_mask)) if subject_mask else None
            output = driver.edit(state, request, scene, mask, subject)
            output_name = f"reply_{number}/output.png"
            save_rgb_atomic(os.path.join(exchange, output_name), output)
            reply = {"ok": True, "output": output_name}
        except Exception:
            reply = {"ok": False, "error": error_text()}
        write_json_atomic(os.path.join(exchange, f"reply_{number}.json"), reply)
        number += 1


def watch_parent(parent_pid, temporary_root):
    """Exit the whole worker, removing ``temporary_root``, once ``parent_pid`` is no longer our parent."""
    while os.getppid() == parent_pid:
        time.sleep(WATCH_SECONDS)
    if temporary_root:
        shutil.rmtree(temporary_root, ignore_errors=True)
    if os.getpgrp() == os.getpid():  # our own process group: us and the driver's children, nobody else
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(0)


def start_watchdog(parent_pid, temporary_root):
    thread = threading.Thread(target=watch_parent, args=(parent_pid, temporary_root), name="fsmi-parent-watch",
                              daemon=True)
    thread.start()
    return thread


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", required=True)
    parser.add_argument("--exchange")
    parser.add_argument("--config", required=True)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--temporary-root", default=None)
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        start_watchdog(args.parent_pid, args.temporary_root)
    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    if args.check:
        driver = load_driver(args.driver)
        print(json.dumps(preflight(driver, config)))
        return 0
    if not args.exchange:
        parser.error("--exchange is required unless --check is given")
    try:
        driver = load_driver(args.driver)
        problems = driver_problems(driver, config)
        if problems:  # before anything is loaded: one line naming every missing piece
            raise FileNotFoundError("; ".join(problems))
        state = driver.load(config)
    except Exception as error:
        missing = isinstance(error, FileNotFoundError)
        write_json_atomic(os.path.join(args.exchange, "startup_error.json"),
                          {"error": error_text(), "missing_file": missing, "message": str(error)})
        return 3
    write_json_atomic(os.path.join(args.exchange, "ready.json"), {"pid": os.getpid(), "python": sys.version})
    return serve(driver, state, args.exchange)


if __name__ == "__main__":
    sys.exit(main())
