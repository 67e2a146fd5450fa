"""Our side of the subprocess protocol for methods whose official code needs its own environment.

AnyDoor, LAR-Gen, SmartEdit and InstructAny2Pix pin dependencies that clash with each other and with
ours, so each runs in the user's own python (config key ``python``) from the user's checkout of the
official code (``checkout``, the worker's working directory). One long-lived worker per run loads the
model once; cases go to it as files in a private temporary folder (the file protocol is described in
baselines/worker_main.py). Each case has a time limit (``case_timeout_s``, default 600 s) and start-up
has its own (``startup_timeout_s``, default 600 s).

Failure handling: a driver exception fails that case only (the worker keeps serving); a worker that
dies fails the case with the tail of its stderr in the message; a worker that does not answer in time
is killed and the case fails. In both cases the next case starts a fresh worker. If our process is
killed outright, the worker notices within a fraction of a second, removes the temporary folder and
exits. POSIX only (the worker runs in its own process group so that everything it started is killed
with it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fsmi_bench.errors import BadInputError, FsmiError, MissingWeightsError
from fsmi_bench.io import atomic_write_bytes, atomic_write_text, encode_png, load_rgb
from fsmi_bench.run.method import CheckItem, EditRequest, Method
from fsmi_bench.run.option_types import check_option_types

WORKER_MAIN = Path(__file__).with_name("worker_main.py")
# set in every worker unless the config's ``env`` says otherwise: weights are never downloaded
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
DRIVERS_DIR = Path(__file__).with_name("drivers")
STDERR_TAIL_CHARS = 2000
# Config keys every worker method takes, and their kinds (a method adds its own in ``option_kinds``).
COMMON_OPTION_KINDS = {"python": "str", "checkout": "str", "driver": "str", "startup_timeout_s": "positive_number",
                       "case_timeout_s": "positive_number", "env": "str_mapping"}


class WorkerFailure(RuntimeError):
    """One case failed inside the worker (driver error, crash or timeout); the run goes on."""


class WorkerTimeout(WorkerFailure):
    """The worker did not answer in time and was killed."""


class WorkerStartError(FsmiError):
    """The worker could not start (bad python, import error in the official code, load failure)."""


@dataclass(frozen=True)
class WorkerSpec:
    """How to start a worker. Timeouts in seconds; ``config`` is passed to the driver's ``load``."""

    python: str
    driver: str
    config: dict = field(default_factory=dict)
    cwd: str | None = None
    env: dict = field(default_factory=dict)  # extra environment variables
    startup_timeout_s: float = 600.0
    case_timeout_s: float = 600.0
    name: str = "worker"


class WorkerClient:
    """Starts the worker lazily, sends one case at a time, restarts it after a crash or a timeout.

    ``starts`` counts worker starts (1 for a healthy run).
    """

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.starts = 0
        self._root = Path(tempfile.mkdtemp(prefix=f"fsmi-{spec.name}-"))
        self._process: subprocess.Popen | None = None
        self._exchange: Path | None = None
        self._log: Path | None = None
        self._number = 0

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start a fresh worker and wait until its model is loaded."""
        self._kill()
        self.starts += 1
        self._exchange = self._root / f"start_{self.starts}"
        self._exchange.mkdir()
        self._log = self._root / f"start_{self.starts}.log"
        self._number = 0
        config_path = self._exchange / "config.json"
        atomic_write_text(config_path, json.dumps(self.spec.config))
        # the worker watches this process and, if it is killed, removes our folder and exits (worker_main.py)
        command = [self.spec.python, "-u", str(WORKER_MAIN), "--driver", str(self.spec.driver),
                   "--exchange", str(self._exchange), "--config", str(config_path),
                   "--parent-pid", str(os.getpid()), "--temporary-root", str(self._root)]
        environment = {**os.environ, **{key: str(value) for key, value in self.spec.env.items()}}
        with open(self._log, "wb") as log:
            try:
                self._process = subprocess.Popen(command, cwd=self.spec.cwd, env=environment, stdin=subprocess.DEVNULL,
                                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as error:
                raise WorkerStartError(f"{self.spec.name}: cannot run {self.spec.python!r} "
                                       f"(config key 'python'): {error.strerror or error}") from None
        deadline = time.monotonic() + self.spec.startup_timeout_s
        ready, failed = self._exchange / "ready.json", self._exchange / "startup_error.json"
        delay = 0.005
        while not ready.exists():
            if failed.exists():
                details = json.loads(failed.read_text(encoding="utf-8"))
                self._kill()
                if details.get("missing_file"):
                    # the driver's message names what is missing; its traceback would only bury it
                    raise MissingWeightsError(f"{self.spec.name}: {self._one_line(details.get('message', ''))}")
                raise WorkerStartError(f"{self.spec.name}: the worker could not load the model: {details.get('message')}"
                                       f" | {self._one_line(details.get('error', ''))}")
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise WorkerStartError(f"{self.spec.name}: the worker exited with code {code} during start-up; "
                                       f"stderr tail: {self.stderr_tail()}")
            if time.monotonic() > deadline:
                self._kill()
                raise WorkerStartError(f"{self.spec.name}: the worker did not become ready within "
                                       f"{self.spec.startup_timeout_s:g} s (config key 'startup_timeout_s'); "
                                       f"stderr tail: {self.stderr_tail()}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def close(self) -> None:
        """Ask the worker to exit, kill it if it does not, and remove the exchange folder."""
        if self.running:
            atomic_write_text(self._exchange / "shutdown.json", "{}")
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- one case ------------------------------------------------------------------------------
    def edit(self, request: EditRequest) -> np.ndarray:
        """Send one case; returns the worker's RGB uint8 output (of whatever size it produced)."""
        if not self.running:
            self.start()
        self._number += 1
        number, exchange = self._number, self._exchange
        folder = exchange / f"request_{number}"
        inputs = {"scene": f"request_{number}/scene.png", "mask": f"request_{number}/mask.png", "subject": None,
                  "subject_mask": None}
        atomic_write_bytes(folder / "scene.png", encode_png(np.ascontiguousarray(request.scene, dtype=np.uint8)))
        atomic_write_bytes(folder / "mask.png", encode_png(np.asarray(request.mask, dtype=bool)))
        if request.subject is not None:
            inputs["subject"] = f"request_{number}/subject.png"
            atomic_write_bytes(folder / "subject.png", encode_png(np.ascontiguousarray(request.subject, dtype=np.uint8)))
        if request.subject is not None and request.subject_mask is not None:
            inputs["subject_mask"] = f"request_{number}/subject_mask.png"
            atomic_write_bytes(folder / "subject_mask.png", encode_png(np.asarray(request.subject_mask, dtype=bool)))
        payload = {"id": number, "case_id": request.case_id, "mask_type": request.mask_type, "kind": request.kind,
                   "op": request.op, "instruction": request.instruction, "label": request.label,
                   "seed": int(request.seed), "inputs": inputs}
        atomic_write_text(exchange / f"request_{number}.json", json.dumps(payload))
        reply = self._wait_for_reply(number, request)
        try:
            if not reply.get("ok"):
                raise WorkerFailure(f"{self.spec.name} failed on {request.case_id}/{request.mask_type}: "
                                    f"{self._one_line(reply.get('error', ''))}")
            return load_rgb(exchange / reply["output"])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(exchange / f"reply_{number}", ignore_errors=True)

    def _wait_for_reply(self, number: int, request: EditRequest) -> dict:
        reply_path = self._exchange / f"reply_{number}.json"
        deadline = time.monotonic() + self.spec.case_timeout_s
        delay = 0.002
        while not reply_path.exists():
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise WorkerFailure(f"{self.spec.name} died (exit code {code}) on {request.case_id}/"
                                    f"{request.mask_type}; it restarts for the next case; stderr tail: "
                                    f"{self.stderr_tail()}")
            if time.monotonic() > deadline:
                self._kill()
                raise WorkerTimeout(f"{self.spec.name} gave no answer on {request.case_id}/{request.mask_type} "
                                    f"within {self.spec.case_timeout_s:g} s (config key 'case_timeout_s'); "
                                    f"killed, it restarts for the next case")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return json.loads(reply_path.read_text(encoding="utf-8"))

    # -- helpers -------------------------------------------------------------------------------
    def stderr_tail(self, limit: int = STDERR_TAIL_CHARS) -> str:
        if self._log is None or not self._log.exists():
            return ""
        with open(self._log, "rb") as handle:
            handle.seek(max(0, self._log.stat().st_size - limit))
            return self._one_line(handle.read().decode("utf-8", errors="replace"))

    @staticmethod
    def _one_line(text: str) -> str:
        # failures.jsonl rows and CLI messages are one line each
        return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())

    def _kill(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)  # the worker's own session: it and its children
            except ProcessLookupError:
                pass
            self._process.wait()
        self._process = None


def pin_cuda_device(name: str, device: str, environment: dict, cuda_only: bool) -> str:
    """The device to give a driver, pinning the worker to one GPU in ``environment`` when ``device`` names one.

    Official code says "cuda" (the current GPU, cuda:0 in a fresh process), so "cuda:N" (``--device cuda:1``,
    or a bare "cuda" under ``accelerate launch``, made "cuda:LOCAL_RANK" by the run engine) becomes
    CUDA_VISIBLE_DEVICES = the N-th GPU this process may use (the config's ``env`` first, then ours), and
    the driver is told "cuda". A ``cuda_only`` method refuses any other device in one line.
    """
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        if cuda_only:
            raise BadInputError(f"{name}: its official code runs on CUDA only, not on {device!r}; "
                                "run it with --device cuda (or cuda:N)")
        return device
    if match.group(1) is None:
        return device
    index = int(match.group(1))
    visible = environment.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
    gpus = [entry.strip() for entry in str(visible).split(",") if entry.strip()] if visible is not None else None
    if gpus is not None and index >= len(gpus):
        raise BadInputError(f"{name}: --device {device}, but CUDA_VISIBLE_DEVICES={visible!r} shows "
                            f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}")
    environment["CUDA_VISIBLE_DEVICES"] = gpus[index] if gpus is not None else str(index)
    return "cuda"


def gpu_memory_check(gpu: dict, needed_gib: float, note: str) -> CheckItem:
    """The GPU line of a pre-flight: free memory (bytes, as torch.cuda.mem_get_info gives it) against the
    method's need in GiB; "skip" when no CUDA device is visible (the official code needs one to run)."""
    need = f"needs about {needed_gib:g} GiB" + (f" ({note})" if note else "")
    if not gpu.get("cuda"):
        return CheckItem("GPU memory", "skip", f"{gpu.get('why', 'no CUDA device is visible')}; {need}")
    free_gib, total_gib = gpu["free_bytes"] / 2**30, gpu["total_bytes"] / 2**30
    where = f"{gpu.get('name', 'GPU')}: {free_gib:.1f} GiB free of {total_gib:.1f} GiB"
    if free_gib < needed_gib:
        return CheckItem("GPU memory", "fail", f"{where}; the method {need} (config key 'env': "
                         "CUDA_VISIBLE_DEVICES picks another GPU)")
    return CheckItem("GPU memory", "ok", f"{where}; {need}")


class WorkerMethod(Method):
    """A method run by a driver in the user's environment through ``WorkerClient``.

    Config keys: ``python`` (the environment's interpreter), ``checkout`` (the official code; the
    worker's working directory), ``startup_timeout_s``, ``case_timeout_s``, ``driver`` (a driver file
    of your own instead of ours), and the method's own keys (passed to the driver). ``--device cuda:N``
    shows the worker only that GPU (``pin_cuda_device``). Outputs come back
    at the size the official code made; the run engine resizes them to the scene's size (bicubic) and
    records each in run.json's ``size_mapping``, as for in-process methods.
    """

    driver_file = ""  # file name in baselines/drivers/
    checkout_marker = ""  # a file every checkout of the official code has, relative to it
    weight_keys: tuple[str, ...] = ()  # config keys naming local weight files or folders (must exist)
    option_kinds: dict[str, str] = {}  # the driver's own config keys -> kind (``fsmi_bench.run.option_types``)
    cuda_only = False  # the official code cannot run on another device: refuse one before any worker starts
    setup_hint = "see baselines/README.md"

    def __init__(self, config: dict | None = None, device: str = "cpu"):
        super().__init__(config, device)
        self.client: WorkerClient | None = None

    def _required_path(self, key: str, what: str, error_class=BadInputError) -> Path:
        value = self.config.get(key)
        if not value:
            raise error_class(f"{self.name}: set config key {key!r} to {what} ({self.setup_hint})")
        path = Path(str(value)).expanduser()
        if not path.exists():
            raise error_class(f"{self.name}: {key} = {path} does not exist; set config key {key!r} to {what} "
                              f"({self.setup_hint})")
        return path

    def worker_spec(self) -> WorkerSpec:
        # wrong kinds are refused here, before a worker starts, not as a traceback inside the driver's load
        check_option_types(self.config, {**COMMON_OPTION_KINDS, **{key: "str" for key in self.weight_keys},
                                         **self.option_kinds}, self.name)
        python = self._required_path("python", "the python executable of the environment with the official code")
        checkout = self._required_path("checkout", "your checkout of the official code")
        if self.checkout_marker and not (checkout / self.checkout_marker).exists():
            raise BadInputError(f"{self.name}: {checkout} does not look like the official checkout "
                                f"({self.checkout_marker} is missing); check config key 'checkout'")
        for key in self.weight_keys:
            self._required_path(key, "the local weights", MissingWeightsError)
        driver = Path(self.config["driver"]) if self.config.get("driver") else DRIVERS_DIR / self.driver_file
        reserved = {"python", "checkout", "driver", "startup_timeout_s", "case_timeout_s", "env"}
        driver_config = {key: value for key, value in self.config.items() if key not in reserved}
        # the official code loads helper models by hub id; offline, a missing one fails instead of downloading
        environment = {**OFFLINE_ENV, **{key: str(value) for key, value in dict(self.config.get("env", {})).items()}}
        device = pin_cuda_device(self.name, self.device, environment, self.cuda_only)
        driver_config.update(checkout=str(checkout.resolve()), device=device)
        return WorkerSpec(python=str(python), driver=str(driver.resolve()), config=driver_config,
                          cwd=str(checkout.resolve()), env=environment,
                          startup_timeout_s=float(self.config.get("startup_timeout_s", 600)),
                          case_timeout_s=float(self.config.get("case_timeout_s", 600)), name=self.name)

    def preflight(self, gpu: dict | None = None, timeout_s: float = 120.0) -> list[CheckItem]:
        """The checklist of this method, made in its own python with nothing loaded (see CheckItem).

        Checks the config here (python, checkout), then runs the driver's pre-flight in the method's
        python: the official entry files and every module they import, every checkpoint file the code
        will open, packages it imports later, helper models in the local cache, offline mode and the
        GPU's free memory against the driver's ``GPU_MEMORY_GIB``. ``gpu`` replaces the worker's own
        reading of the GPU ({"cuda": bool, "name", "free_bytes", "total_bytes"}), for tests.
        """
        try:
            # the base spec only: a subclass's own weight checks are repeated item by item by the driver
            spec = WorkerMethod.worker_spec(self)
        except FsmiError as error:
            return [CheckItem("configuration", "fail", str(error))]
        config_path = Path(tempfile.mkdtemp(prefix=f"fsmi-{spec.name}-check-")) / "config.json"
        try:
            atomic_write_text(config_path, json.dumps(spec.config))
            command = [spec.python, "-u", str(WORKER_MAIN), "--driver", spec.driver, "--config", str(config_path),
                       "--check"]
            environment = {**os.environ, **{key: str(value) for key, value in spec.env.items()}}
            try:
                done = subprocess.run(command, cwd=spec.cwd, env=environment, stdin=subprocess.DEVNULL,
                                      capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return [CheckItem(f"python {spec.python}", "fail",
                                  f"the pre-flight did not finish within {timeout_s:g} s in {spec.python}")]
            lines = [line for line in done.stdout.splitlines() if line.startswith('{"problems"')]
            if done.returncode != 0 or not lines:
                return [CheckItem(f"python {spec.python}", "fail", f"the pre-flight failed in {spec.python}: "
                                  f"{WorkerClient._one_line(done.stderr[-STDERR_TAIL_CHARS:])}")]
            report = json.loads(lines[-1])
        finally:
            shutil.rmtree(config_path.parent, ignore_errors=True)
        items = [CheckItem(f"python {spec.python}", "ok", f"Python {report.get('python_version', '?')}"),
                 CheckItem(f"checkout {spec.cwd}", "ok")]
        items += [CheckItem(entry["item"], "fail" if entry["problem"] else "ok", entry["problem"] or "")
                  for entry in report.get("checks", [])]
        if report.get("gpu_memory_gib"):
            items.append(gpu_memory_check(gpu if gpu is not None else report.get("gpu") or {},
                                          float(report["gpu_memory_gib"]), report.get("gpu_memory_note", "")))
        return items

    def setup(self) -> None:
        if self.client is None:
            self.client = WorkerClient(self.worker_spec())
        if not self.client.running:
            self.client.start()

    def edit(self, request: EditRequest) -> np.ndarray:
        if self.client is None:
            self.client = WorkerClient(self.worker_spec())
        # returned at the size the official code made: the run engine maps it to the scene's size and records
        # it in run.json's size_mapping, as for any method
        return self.client.edit(request)

    def weights(self) -> dict[str, str]:
        return {key: str(Path(str(self.config[key])).expanduser()) for key in self.weight_keys if self.config.get(key)}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
